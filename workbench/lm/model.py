"""The speech LM: Griffin (recurrent, recurrent, local attention, ...) or the SpeechTransformer (global
attention in every block) -- one class, the block pattern in `ModelConfig` decides.

tokens (b, t) -> embedding * sqrt(d) -> residual blocks -> final RMSNorm -> tied output -> soft-cap(30).

`forward(tokens, resets=None, cache=None)` returns (logits (b, t, v), cache). Without a cache it is the training
path; with one (from `init_cache`) it continues a stream chunk by chunk, which is how prompts are prefilled,
tokens decoded and long recordings evaluated in bounded memory. A stream's first token always counts as a reset
(as in RecurrentGemma, where segment_pos == 0 resets), so a training crop, a prompt and a scored recording all
start from the same state.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.core import checkpoint as ckpt
from workbench.core.config import pick_preset
from workbench.core.nn import RMSNorm
from workbench.lm.config import ATTENTION, GRIFFIN_PRESETS, MODELS, RECURRENT, ModelConfig
from workbench.lm.modules import BlockCache, ResidualBlock

HINT = "train one first: python -m workbench lm train"


@dataclass
class ModelCache:
    """A stream's decode state: one typed cache per layer, where the stream is, and the next RoPE positions."""

    blocks: list[BlockCache]  # per layer: RecurrentBlockCache or AttentionBlockCache
    index: int  # stream index of the next token
    positions: torch.Tensor  # (b,) long: RoPE position of the next token (restarts at 0 after a reset)

    def nbytes(self) -> int:
        """Bytes the stream keeps in memory between steps (Griffin: constant; the Transformer: growing)."""
        return sum(c.nbytes() for c in self.blocks) + self.positions.numel() * self.positions.element_size()


class SpeechLM(nn.Module):
    def __init__(self, config: ModelConfig, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.config = config
        self.embedder = nn.Embedding(config.vocab_size, config.width, **dd)
        self.blocks = nn.ModuleList(ResidualBlock(config, kind, **dd) for kind in config.block_types)
        self.final_norm = RMSNorm(config.width, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedder.weight, std=math.sqrt(1.0 / self.config.width))

    def init_cache(self, batch: int, device=None, dtype=torch.float32) -> ModelCache:
        device = device or self.embedder.weight.device
        return ModelCache(blocks=[blk.init_cache(batch, device, dtype) for blk in self.blocks], index=0,
                          positions=torch.zeros(batch, dtype=torch.long, device=device))

    def forward(self, tokens: torch.Tensor, resets: torch.Tensor | None = None, cache: ModelCache | None = None
                ) -> tuple[torch.Tensor, ModelCache | None]:
        b, t = tokens.shape
        start = 0 if cache is None else cache.index
        base = torch.zeros(b, dtype=torch.long, device=tokens.device) if cache is None else cache.positions
        steps = torch.arange(t, device=tokens.device).expand(b, t)
        positions = base[:, None] + steps
        if start == 0:  # a stream's first token is a reset (RecurrentGemma: segment_pos == 0), so training
            # crops, prompts and scored recordings all begin from the same state
            first = torch.zeros(b, t, dtype=torch.bool, device=tokens.device)
            first[:, 0] = True
            resets = first if resets is None else resets.to(torch.bool) | first
        if resets is not None:
            resets = resets.to(torch.bool)
            last = torch.cummax(torch.where(resets, steps, torch.full_like(steps, -1)), dim=1).values
            positions = torch.where(last >= 0, steps - last, positions)

        x = self.embedder(tokens)
        if self.config.embeddings_scale_by_sqrt_dim:
            x = x * math.sqrt(self.config.width)
        new_blocks = []
        for i, block in enumerate(self.blocks):
            x, block_cache = block(x, positions, resets, start, None if cache is None else cache.blocks[i])
            new_blocks.append(block_cache)
        x = self.final_norm(x)
        logits = (x @ self.embedder.weight.t().to(x.dtype)).float()
        cap = self.config.logit_soft_cap
        logits = torch.tanh(logits / cap) * cap
        if cache is None:
            return logits, None
        return logits, ModelCache(blocks=new_blocks, index=start + t, positions=positions[:, -1] + 1)


def build_model(config: ModelConfig, device: torch.device | str | None = None, dtype=None) -> SpeechLM:
    """Instantiate on `device`; "meta" allocates nothing (for the paper-scale parameter count)."""
    with torch.device(device or "cpu"):  # also places buffers and parameters made inside the ops
        return SpeechLM(config, device=device, dtype=dtype)


def count_parameters(config: ModelConfig) -> dict[str, int]:
    """Parameter counts by role, counted on the meta device: embedding (tied, so also the output layer),
    recurrent (temporal-mixing blocks with the RG-LRU), attention, mlp, norm, and total."""
    model = build_model(config, "meta")
    counts = {"total": 0, "embedding": 0, "recurrent": 0, "attention": 0, "mlp": 0, "norm": 0}
    for name, param in model.named_parameters():
        if name.startswith("embedder."):
            role = "embedding"
        elif ".temporal_block." in name:
            role = RECURRENT if model.blocks[int(name.split(".")[1])].block_type == RECURRENT else ATTENTION
        elif ".mlp_block." in name:
            role = "mlp"
        else:
            role = "norm"
        counts[role] += param.numel()
        counts["total"] += param.numel()
    return counts


def model_config(preset: str, model: str = "griffin") -> ModelConfig:
    """The preset's model config; `model="transformer"` gives the parameter-matched SpeechTransformer."""
    griffin = pick_preset(GRIFFIN_PRESETS, preset, "lm")
    if model == "griffin":
        return griffin
    if model == "transformer":
        return matched_transformer(griffin)
    raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")


def transformer_like(griffin: ModelConfig, num_layers: int) -> ModelConfig:
    return dataclasses.replace(griffin, num_layers=num_layers, block_pattern=(ATTENTION,), attention_window=None,
                               lru_width=None)


@functools.lru_cache(maxsize=None)
def matched_transformer(griffin: ModelConfig) -> ModelConfig:
    """Same width, heads, MLP and vocabulary; the depth whose parameter count is closest to Griffin's."""
    target = count_parameters(griffin)["total"]
    candidates = [transformer_like(griffin, n) for n in range(1, 2 * griffin.num_layers + 2)]
    return min(candidates, key=lambda c: abs(count_parameters(c)["total"] - target))


def checkpoint_meta(run_dir: str | Path) -> dict:
    """The latest checkpoint's config.json: model/train configs, tokens, step, parameter counts."""
    return ckpt.load_config(ckpt.latest_checkpoint(run_dir, HINT))


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[SpeechLM, dict]:
    """The latest checkpoint's model (eval mode) and its config.json contents. Runs written before the shared
    loop (optimizer.pt beside model.safetensors) load the same way."""
    path = ckpt.latest_checkpoint(run_dir, HINT)
    meta = ckpt.load_config(path)
    model = build_model(ModelConfig.from_dict(meta["model_config"], what=f"the model config of {path}"))
    ckpt.load_weights(path, "model", model)
    return model.to(device).eval(), meta


def snapshot_models(run_dir: str | Path, device: str | torch.device = "cpu") -> list[tuple[dict, SpeechLM]]:
    """The run's learning-curve points as (meta, model in eval mode): each snapshot (`TrainConfig.snapshots`:
    "mark" = fraction of the run, "step", "elapsed_s") and then the finished model (mark 1.0)."""
    import json

    model, meta = load_model(run_dir, device)
    config = ModelConfig.from_dict(meta["model_config"], what=f"the model config of {run_dir}")
    points = []
    for snap, path in ckpt.snapshots(run_dir):
        early = build_model(config)
        ckpt.load_weights(path, "model", early)
        points.append((snap, early.to(device).eval()))
    summary = Path(run_dir) / "summary.json"
    elapsed = json.loads(summary.read_text()).get("elapsed_s") if summary.is_file() else None
    points.append(({"mark": 1.0, "step": meta["step"], "elapsed_s": elapsed}, model))
    return points
