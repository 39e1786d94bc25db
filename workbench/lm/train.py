"""Training the speech LM: next-token prediction on long-form crops, by the shared loop (`workbench.core.train`:
budgets, warmup + cosine by progress, accumulation, clipping, bf16 autocast, DDP, exact resume, metrics).

What is the LM's own: the batches (random crops of whole recordings packed with resets, `workbench.lm.data`),
the loss (summed next-token NLL over targets inside the same recording, normalised by the *global* number of
such targets, so N processes under torchrun compute the same update as one process at the same global batch)
and the held-out NLL on fixed crops.

Run folder (`workbench.core.checkpoint`): metrics.jsonl, summary.json, checkpoint.json + checkpoints/
(model.safetensors, state.pt, config.json with model_config / train_config). With ``parallel="fsdp"``
(`workbench.core.distributed`) each residual block is an FSDP unit and checkpoints hold DCP shards
(``sharded/``) instead of model.safetensors, except the final one, which has both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core import checkpoint as ckpt
from workbench.core import reuse
from workbench.core.device import DistInfo, init_distributed
from workbench.core.distributed import one_process_group
from workbench.core.errors import UserError
from workbench.core.io import to_json
from workbench.core.train import (
    EVAL_SEED,
    Run,
    Task,
    fit,
    micro_slices,
    read_metrics,
    saved_train_config,
    write_summary,
)
from workbench.lm.config import TOKENS_PER_SECOND, ModelConfig, TrainConfig
from workbench.lm.data import Batch, TokenCorpus, sample_batch
from workbench.lm.model import HINT, SpeechLM, build_model, count_parameters

__all__ = ["train", "train_or_reuse", "read_metrics", "nll_sum", "LMTask"]


def nll_sum(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Summed next-token NLL over the batch's loss mask (targets inside the same recording)."""
    logits, _ = model(batch.tokens, batch.resets)
    nll = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="none")
    return (nll * batch.mask.flatten()).sum()


def check_vocab(batch: Batch, vocab_size: int) -> None:
    top = int(torch.maximum(batch.tokens.max(), batch.targets.max()))
    if top >= vocab_size or int(batch.tokens.min()) < 0:
        raise UserError(f"token id {top} does not fit the model's vocabulary of {vocab_size}; "
                        "pass a larger --vocab-size")


def training_bytes(config: ModelConfig, micro: int, window: int) -> int:
    """A rough upper estimate of the activation memory of one micro-batch's forward and backward: per layer
    ~40 floats per token and channel, plus, per attention layer, the (b, n, t, t) scores and probabilities and the
    (b, t, t) mask (training masks the local window inside a full t x t attention)."""
    attention_layers = sum(kind == "attention" for kind in config.block_types)
    scores = micro * window * window * (2 * 4 * config.num_heads + 1)
    return int(40 * 4 * micro * window * config.width * config.num_layers + attention_layers * scores)


def available_bytes(device: torch.device) -> int | None:
    """Memory free for this process: the GPU's free memory, or MemAvailable from /proc/meminfo (None elsewhere)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(config: ModelConfig, cfg: TrainConfig, train_tokens: int, micro: int, device: torch.device) -> None:
    """Refuse, before any memory is taken, a training window longer than the training data or one whose
    estimated activations (`training_bytes`) exceed 80% of the free memory."""
    window = cfg.window_tokens
    if window + 1 > train_tokens:
        raise UserError(f"--window {window} tokens ({window / TOKENS_PER_SECOND:g} s) is longer than all the training "
                        f"tokens together ({train_tokens}); use at most {train_tokens - 1} tokens")
    need, free = training_bytes(config, micro, window), available_bytes(device)
    if free is not None and need > 0.8 * free:
        raise UserError(f"--window {window} tokens ({window / TOKENS_PER_SECOND:g} s) with micro batch {micro} needs "
                        f"~{need / 2**30:.1f} GiB of activations, more than 80% of the {free / 2**30:.1f} GiB free; "
                        "use a shorter --window or a smaller --micro-batch")


class LMTask(Task):
    """Next-token prediction over packed long-form crops of a token corpus."""

    def __init__(self, model: SpeechLM, cfg: TrainConfig, corpus: TokenCorpus, info: DistInfo,
                 device: torch.device):
        if cfg.batch_size % info.world:
            raise UserError(f"batch size {cfg.batch_size} is not divisible by {info.world} processes")
        self.per_rank = cfg.batch_size // info.world
        self.micro = cfg.micro_batch or self.per_rank
        if self.per_rank % self.micro:
            raise UserError(f"per-process batch {self.per_rank} is not divisible by micro batch {self.micro}")
        self.model, self.cfg, self.corpus, self.device = model, cfg, corpus, device
        self.train_recs = corpus.split("train")
        check_fits(model.config, cfg, sum(r.num_tokens for r in self.train_recs), self.micro, device)
        held_out = corpus.split(corpus.held_out_split())
        self.eval_batch = sample_batch(corpus, held_out, np.random.default_rng([cfg.seed, EVAL_SEED]),
                                       cfg.eval_batches * cfg.batch_size, cfg.window_tokens)
        check_vocab(self.eval_batch, model.config.vocab_size)
        self.targets = 1  # valid targets in the current step's global batch

    def micro_batches(self, step: int, rng: np.random.Generator, info: DistInfo) -> list[Batch]:
        batch = sample_batch(self.corpus, self.train_recs, rng, self.cfg.batch_size, self.cfg.window_tokens)
        check_vocab(batch, self.model.config.vocab_size)
        self.targets = max(1, int(batch.mask.sum()))
        return [batch.rows(rows).to(self.device) for rows in micro_slices(self.cfg.batch_size, self.micro, info)]

    def shard_units(self) -> list[torch.nn.Module]:
        return list(self.model.blocks)

    def loss(self, model: torch.nn.Module, micro: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return nll_sum(model, micro) / self.targets, {}

    def evaluate(self) -> dict[str, float]:
        total = 0.0
        for i in range(0, self.eval_batch.tokens.shape[0], self.micro):
            total += nll_sum(self.model, self.eval_batch.rows(slice(i, i + self.micro)).to(self.device)).item()
        return {"eval_loss": total / max(1, int(self.eval_batch.mask.sum()))}


def train(out_dir: str | Path, model_config: ModelConfig, train_config: TrainConfig, tokens_dir: str | Path, *,
          resume: bool = False, device: str | None = None, progress: bool | None = None,
          preset: str | None = None, tensorboard: bool = False) -> dict:
    """Train (or, with resume, continue training) a model into `out_dir`; returns the run summary (rank 0; {} on
    the other ranks). On resume the configs must equal the checkpoint's except `steps` and `max_minutes`."""
    cfg, out_dir = train_config, Path(out_dir)
    info, device = init_distributed(device)
    corpus = TokenCorpus(tokens_dir)
    torch.manual_seed(cfg.seed)
    model = build_model(model_config).to(device)
    task = LMTask(model, cfg, corpus, info, device)
    parameters = count_parameters(model_config)
    run = Run(out_dir, identity={"model_config": model_config.to_dict()}, resume=resume, desc=model_config.kind,
              progress=progress, hint=HINT, tensorboard=tensorboard,
              meta={"model": model_config.kind, "preset": preset, "tokens": str(tokens_dir),
                    "synthetic": corpus.synthetic, "parameters": parameters})
    if cfg.parallel == "fsdp" and info.world == 1:  # FSDP needs a process group, even of one process
        with one_process_group(device):
            loop = fit(task, cfg, run, device=device, info=info)
    else:
        loop = fit(task, cfg, run, device=device, info=info)
    if not loop or loop.get("already_finished"):
        return loop
    return write_summary(out_dir, {
        "run": str(out_dir), "model": model_config.kind, "preset": preset, "tokens": str(tokens_dir),
        "synthetic_tokens": corpus.synthetic, "parameters": parameters["total"], "steps": loop["steps"],
        "resumed_from": loop["resumed_from"], "stopped_by": loop["stopped_by"],
        "train_loss": loop["last"].get("loss"), "eval_loss": loop["final_eval"]["eval_loss"],
        "initial_eval_loss": (loop["initial_eval"] or {}).get("eval_loss"), "elapsed_s": loop["elapsed_s"],
        "window_tokens": cfg.window_tokens, "window_seconds": cfg.window_tokens / TOKENS_PER_SECOND,
        "device": loop["device"], "processes": loop["processes"]})


def train_or_reuse(out_dir: str | Path, model_config: ModelConfig, train_config: TrainConfig,
                   tokens_dir: str | Path, **kwargs) -> dict:
    """The run in `out_dir` if it was made from these settings, this code and these tokens (its summary, with
    "reused": True); an interrupted one is resumed; anything else is trained afresh there (`workbench.core.reuse`;
    notebook 03 and `extrapolate` use this). A finished run from before stamps is adopted if its saved settings
    and tokens are these."""
    out_dir = Path(out_dir)
    parts = {"model": model_config.to_dict(), "train": train_config.to_dict(),
             "tokens": reuse.input_fingerprint(tokens_dir), "code": reuse.code_version("workbench.lm.train")}

    def same_settings(folder: Path) -> bool:
        if not ((folder / "checkpoint.json").is_file() and (folder / "summary.json").is_file()):
            return False
        path = ckpt.latest_checkpoint(folder)
        saved = ckpt.load_config(path)
        state = ckpt.load_state(path) if (path / "state.pt").is_file() else {}
        return bool(_plain(saved.get("model_config")) == _plain(model_config.to_dict())
                    and _plain(saved_train_config(train_config, saved.get("train_config")))
                    == _plain(train_config.to_dict())
                    and saved.get("tokens") == str(tokens_dir) and state.get("finished"))

    action = reuse.make(out_dir, parts, lambda resume: train(out_dir, model_config, train_config, tokens_dir,
                                                            resume=resume, **kwargs),
                        what=f"the {model_config.kind} LM", resumable=lambda d: (d / "checkpoint.json").is_file(),
                        adopt=same_settings, log=lambda line: print(line, file=sys.stderr))
    return {**json.loads((out_dir / "summary.json").read_text()), "reused": action == "reuse"}


def _plain(value):
    return json.loads(to_json(value, indent=None))
