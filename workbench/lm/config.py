"""Model and training settings for the speech LM, with named presets.

Shape legend used across `workbench.lm` and `workbench.ops` (one place, recurrentgemma style; one letter, one
meaning):

    b   batch                           t   time (tokens; 25 tokens = 1 second of speech)
    d   model width                     r   RG-LRU width (`lru_width`, d unless set)
    n   attention / RG-LRU heads         k   attention head dim (d // n)
    g   RG-LRU gate block width (r // n) e   MLP expansion width (3 d)
    v   vocabulary size                 c   conv width (4)
    w   attention window (tokens)       s   cache slots (w for Griffin's ring buffer; every token so far for
                                            the Transformer's growing cache)

`ModelConfig` describes either model: Griffin (block pattern recurrent, recurrent, local attention) or the
SpeechTransformer baseline (global causal multi-query attention in every block, otherwise identical). Each
Griffin preset has a parameter-matched Transformer (`workbench.lm.model.model_config(preset, "transformer")`),
the Transformer depth whose parameter count (counted on the meta device) is closest to the Griffin model's.

Presets: `smoke`, `laptop`, `paper` (RecurrentGemma-2B's shape, the paper's scale) as in every stage, and the
extra `small` (106M, a single-GPU size).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.core.config import Config, pick_preset
from workbench.core.train import TrainConfig as LoopConfig

TOKENS_PER_SECOND = 25  # the semantic tokenizer's frame rate
RECURRENT, ATTENTION = "recurrent", "attention"
GRIFFIN_PATTERN = (RECURRENT, RECURRENT, ATTENTION)
MODELS = ("griffin", "transformer")


@dataclass(frozen=True)
class ModelConfig(Config):
    vocab_size: int
    width: int
    num_layers: int
    num_heads: int
    attention_window: int | None  # None: global causal attention (the Transformer)
    block_pattern: tuple[str, ...] = GRIFFIN_PATTERN  # repeated to num_layers
    mlp_expansion: int = 3
    conv_width: int = 4
    lru_width: int | None = None  # None: = width
    logit_soft_cap: float = 30.0
    rope_max_wavelength: float = 10_000.0
    embeddings_scale_by_sqrt_dim: bool = True

    def __post_init__(self):
        object.__setattr__(self, "block_pattern", tuple(self.block_pattern))
        problems = []
        if self.width % self.num_heads:
            problems.append(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        elif (self.width // self.num_heads) % 4:
            # RoPE rotates half of each head's dims in (cos, sin) pairs
            problems.append(f"head dim {self.width // self.num_heads} must be a multiple of 4 for half-dim RoPE")
        if self.lru_width is not None and self.lru_width % self.num_heads:
            problems.append(f"lru_width {self.lru_width} is not divisible by num_heads {self.num_heads}")
        if unknown := set(self.block_pattern) - {RECURRENT, ATTENTION}:
            problems.append(f"unknown block types {sorted(unknown)}")
        for name in ("vocab_size", "width", "num_layers", "num_heads", "conv_width", "mlp_expansion"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be positive")
        if self.attention_window is not None and self.attention_window < 1:
            problems.append("attention_window must be positive (or None for global attention)")
        if problems:
            raise ValueError("bad model config: " + "; ".join(problems))

    @property
    def block_types(self) -> tuple[str, ...]:
        return tuple(self.block_pattern[i % len(self.block_pattern)] for i in range(self.num_layers))

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def kind(self) -> str:
        return "griffin" if RECURRENT in self.block_types else "transformer"


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """The shared loop's settings (`workbench.core.train.TrainConfig`) and the LM's training crop."""

    window_tokens: int = 750  # training crop length (30 s)
    eval_batches: int = 2  # held-out batches of batch_size crops, fixed for a run
    batch_size: int = 8
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eval_every: int = 50
    checkpoint_every: int = 100
    steps: int = 200
    # bf16 autocast wherever the hardware computes it natively, this project's CPUs included: the laptop step
    # 1.25x (Griffin) and 1.8x (Transformer) faster on the job's CPU (README); decoding keeps "auto" (fp32 on a CPU)
    precision: str = "native"

    def __post_init__(self):
        super().__post_init__()
        if self.window_tokens < 2 or self.eval_batches < 1:
            raise ValueError(f"bad TrainConfig: need window_tokens >= 2 (got {self.window_tokens}) and "
                             f"eval_batches >= 1 (got {self.eval_batches})")


# Griffin shapes. Each local-attention window is shorter than the preset's training window (as in the paper:
# 2048 tokens against 4-minute crops), so attention never spans more at test time than it did in training.
# paper is RecurrentGemma-2B's (width 2560, 26 layers, 10 heads, window 2048) with the
# paper's 32k-token semantic vocabulary instead of Gemma's 256k text vocabulary.
GRIFFIN_PRESETS: dict[str, ModelConfig] = {
    "smoke": ModelConfig(vocab_size=64, width=32, num_layers=3, num_heads=2, attention_window=16),
    "laptop": ModelConfig(vocab_size=1024, width=272, num_layers=12, num_heads=4, attention_window=128),
    "small": ModelConfig(vocab_size=1024, width=768, num_layers=15, num_heads=12, attention_window=1024),
    "paper": ModelConfig(vocab_size=32_768, width=2560, num_layers=26, num_heads=10, attention_window=2048,
                         lru_width=2560),
}

TRAIN_PRESETS: dict[str, TrainConfig] = {
    "smoke": TrainConfig(steps=30, batch_size=4, window_tokens=48, lr=3e-3, warmup_steps=5, eval_every=15,
                         eval_batches=1, log_every=5, checkpoint_every=15, snapshots=2),
    "laptop": TrainConfig(steps=600, batch_size=4, window_tokens=250, lr=2e-3, warmup_steps=30, eval_every=100,
                          eval_batches=2, log_every=10, checkpoint_every=100, max_minutes=5.0,
                          snapshots=3),  # learning-curve points for the probes (notebook 03): 1/3, 2/3, end
    "small": TrainConfig(steps=20_000, batch_size=32, window_tokens=3000, lr=6e-4, warmup_steps=1000,
                         eval_every=1000, eval_batches=8, log_every=50, checkpoint_every=1000),
    # the paper trains on 4-minute windows (6000 tokens)
    # the 2.1B model sharded with FSDP (16 bytes/parameter of weights, grads and AdamW state: ~34 GB replicated)
    "paper": TrainConfig(steps=100_000, batch_size=256, micro_batch=4, window_tokens=6000, lr=3e-4,
                         warmup_steps=2000, eval_every=2000, eval_batches=16, log_every=100,
                         checkpoint_every=2000, parallel="fsdp", activation_checkpointing=True),
}

PRESETS = tuple(GRIFFIN_PRESETS)


def train_config(preset: str) -> TrainConfig:
    return pick_preset(TRAIN_PRESETS, preset, "lm")
