"""SoundStorm settings as dataclasses, and the three presets (smoke / laptop / paper).

Shape legend used across `workbench.acoustic`:

    b   batch (windows or crops)     t   time in codec frames (50 Hz for our codecs)
    q   RVQ level (0 = coarsest)     k   codebook size (codes per level); index k itself is the mask token
    d   model width                  s   time in semantic tokens (25 Hz)
    p   prompt frames                w   window frames; o overlap frames

Everything that depends on the codec or the tokenizer (levels, codebook size, frame rates, semantic vocabulary)
is read from them when a model is built (`AcousticModelConfig.for_data`): nothing here hard-codes 50 Hz, 25 Hz
or their ratio.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from workbench.core.config import Config
from workbench.core.errors import UserError
from workbench.core.train import TrainConfig as LoopConfig


@dataclass(frozen=True)
class AcousticModelConfig(Config):
    dim: int = 192
    layers: int = 4
    heads: int = 4
    ff_mult: int = 4  # feed-forward width = ff_mult * dim
    conv_kernel: int = 5  # SoundStorm's depthwise kernel
    dropout: float = 0.0
    num_levels: int | None = None  # RVQ levels modelled: None = all of the codec's; a number = the codec must have them
    # add to every frame a projection of the mean code embedding of the frames known at every level (the prompt):
    # a direct path for the voice besides attention (`model.SoundStorm.speaker`)
    prompt_pooling: bool = False
    # add to level q's logits log p(code | the frame's semantic token), counted on the training pairs when a run
    # starts (`model.SoundStorm.prior`), so a new model is that table. Measured (README, the semantic prior): the
    # head start is real, but in 4x the job's steps level 0 never got past the table, which a model without it
    # does: off
    semantic_prior: bool = False
    # a second head regresses the codec latent the masked levels add up to (`model.SoundStorm.latent_head`), with
    # the codec's codebooks kept beside it, so decoding can take a level's code as the one nearest that estimate
    # (`DecodeConfig.regress_levels`): a regression learns "about where" long before a 1024-way softmax learns
    # "which one"
    latent_head: bool = False
    # with the latent head: its estimate starts from a table, the mean codec latent of each semantic token over the
    # training pairs (`data.latent_table`) less the codes already known at the frame, and the head (from zero)
    # learns what to add (`model.SoundStorm.latent_estimate`); decoded as it is, the table alone speaks at WER 0.85
    latent_prior: bool = False
    # filled in from the data (codec, tokenizer) by `for_data`; None in the presets
    codebook_size: int | None = None
    semantic_vocab: int | None = None
    latent_dim: int | None = None  # the codec's codebook vector size (with `latent_head`)

    def for_data(self, codec_levels: int, codebook_size: int, semantic_vocab: int,
                 latent_dim: int | None = None) -> "AcousticModelConfig":
        levels = self.num_levels or codec_levels
        if levels > codec_levels:
            raise UserError(f"the acoustic preset models {levels} RVQ levels but the codec has only {codec_levels}")
        return dataclasses.replace(self, num_levels=levels, codebook_size=codebook_size, semantic_vocab=semantic_vocab,
                                   latent_dim=latent_dim if self.latent_head else None)

    def check(self) -> None:
        problems = []
        if self.dim % self.heads:
            problems.append(f"dim {self.dim} is not divisible by heads {self.heads}")
        elif (self.dim // self.heads) % 4:
            problems.append(f"head dim {self.dim // self.heads} must be a multiple of 4 (half-dim RoPE)")
        if self.conv_kernel % 2 == 0:
            problems.append(f"conv_kernel {self.conv_kernel} must be odd (centred, bidirectional)")
        if None in (self.num_levels, self.codebook_size, self.semantic_vocab):
            problems.append("num_levels, codebook_size and semantic_vocab must be set (AcousticModelConfig.for_data)")
        if self.latent_head and not (self.latent_dim or 0) >= 1:
            problems.append("latent_head needs the codec's latent_dim (AcousticModelConfig.for_data)")
        if self.latent_prior and not self.latent_head:
            problems.append("latent_prior needs latent_head")
        if problems:
            raise UserError("acoustic model config does not fit: " + "; ".join(problems))


@dataclass(frozen=True)
class DecodeConfig(Config):
    """Iterative decoding (SoundStorm): `first_level_iterations` MaskGIT-style passes on level 0, one greedy pass
    on every finer level; windows of `window_seconds` (+ the prompt) overlapping by `overlap_seconds`."""

    first_level_iterations: int = 16
    finer_level_iterations: int = 1
    temperature: float = 1.0  # sampling temperature of every iteration but the last of a level (which is greedy)
    # classifier-free guidance on the prompt (decode.guided_logits): 1 = none; w > 1 pushes each pass toward what
    # the prompt (and the overlap) add over decoding blind, at twice the forward cost
    guidance: float = 1.0
    # levels 0 .. regress_levels - 1 take, in one pass each, the code nearest the latent head's estimate of what
    # the still-masked levels add up to (greedy RVQ on the estimate; needs a model with `latent_head`); 0 = none
    regress_levels: int = 0
    prompt_seconds: float = 3.0
    window_seconds: float = 6.0
    overlap_seconds: float = 1.0
    batch_windows: int = 8  # windows of different streams decoded together

    def iterations(self, levels: int) -> tuple[int, ...]:
        passes = (self.first_level_iterations,) + (self.finer_level_iterations,) * (levels - 1)
        return tuple(1 if q < self.regress_levels else n for q, n in enumerate(passes))  # a nearest code: one pass


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """The shared loop's settings (`workbench.core.train.TrainConfig`: budgets, schedule, clipping, logging) with
    SoundStorm's defaults, and its crops and held-out batches."""

    steps: int = 100_000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    eval_every: int = 200
    checkpoint_every: int = 200
    # torch's default, every core: SoundStorm trains alone in the job, and on the 2-core machine 2 threads make
    # 1.90x the steps of 1 (1.30 vs 0.69 steps/s) and synthesize 1.55x faster
    threads: int | None = None
    precision: str = "native"  # bf16 where the CPU or GPU computes it natively: 1.9x the steps on the job's CPU (README)
    crop_seconds: float = 6.0  # the crop after the prompt: one window
    prompt_elsewhere: float = 0.5  # probability the unmasked prefix is a prompt from elsewhere in the recording
    # share of rows across voices: voice A's semantic tokens on voice B's codes (the same train sentences, frames
    # matched by phone boundaries), after a prompt of B -- the voice can then only come from the prompt
    cross_voice: float = 0.0
    cross_sentences: int = 200  # train sentences rendered in several train voices for those rows
    # probability a row trains RVQ level 0 (None: every level alike, SoundStorm's, 1/6 of the rows with 6 levels);
    # measured at 0.5 (README): level 0's loss falls, the finer levels' rises and the words stay where they were
    level0_share: float | None = None
    # weight of the latent head's loss (its squared error relative to the target's energy) beside the cross-entropy
    latent_weight: float = 1.0
    eval_batches: int = 4  # held-out batches of batch_size crops, fixed for a run

    def __post_init__(self):
        super().__post_init__()
        if self.level0_share is not None and not 0 <= self.level0_share <= 1:
            raise ValueError(f"bad TrainConfig: level0_share is a probability, got {self.level0_share}")
        if not 0 <= self.latent_weight <= 100:
            raise ValueError(f"bad TrainConfig: latent_weight must be in [0, 100], got {self.latent_weight}")
        if not self.crop_seconds > 0 or not 0 <= self.prompt_elsewhere <= 1 or self.eval_batches < 1:
            raise ValueError(f"bad TrainConfig: need crop_seconds > 0 (got {self.crop_seconds}), prompt_elsewhere "
                             f"in [0, 1] (got {self.prompt_elsewhere}) and eval_batches >= 1 (got {self.eval_batches})")


@dataclass(frozen=True)
class EvalConfig(Config):
    clips: int = 12  # clips of the held-out (test) speakers, spread over their recordings
    clip_seconds: float = 8.0
    real_prompts: int = 6  # real voices (workbench.data.loaders.REAL_SPEECH_DIRS) given as prompts in the swap test
    speed_seconds: float = 30.0  # semantic stream length timed for realtime_factor


@dataclass(frozen=True)
class AcousticPreset(Config):
    model: AcousticModelConfig = field(default_factory=AcousticModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


PRESETS = {
    # seconds on a CPU: correctness only
    "smoke": AcousticPreset(
        AcousticModelConfig(dim=32, layers=2, heads=2, ff_mult=2),
        TrainConfig(steps=30, batch_size=4, crop_seconds=1.0, warmup_steps=5, log_every=5, eval_every=15,
                    eval_batches=1, checkpoint_every=15),
        DecodeConfig(first_level_iterations=4, prompt_seconds=1.0, window_seconds=1.0, overlap_seconds=0.4,
                     batch_windows=4),
        EvalConfig(clips=2, clip_seconds=2.0, speed_seconds=4.0, real_prompts=2),
    ),
    # 8 minutes of training (22, then 12, 10 and 9, before the 90-minute reproduction; 8 once real speech was mixed
    # in: the timed run with 9 took 89.0 of its 90 minutes) on every core + its pairs; 3 s prompt + 6 s
    # windows (overlap 1 s) as at inference
    # since 2026-12-06 with the latent prior, every level decoded by regression from the table moved by the
    # prompt (README, "A latent head"): on 36 clips WER -0.13 [-0.17, -0.09], same-prompt gap +0.03, swap unchanged
    "laptop": AcousticPreset(
        AcousticModelConfig(dim=192, layers=4, heads=4, ff_mult=4, latent_head=True, latent_prior=True),
        TrainConfig(max_minutes=8.0, batch_size=8, crop_seconds=6.0, lr=1e-3, latent_weight=10.0),
        DecodeConfig(regress_levels=6),
        EvalConfig(real_prompts=0),  # the corpus's real test speakers are the real prompt voices (cost as 3 extra)
    ),
    # SoundStorm (Borsos et al. 2023): 12-layer Conformer, d 1024, 16 heads, FF 4096, kernel 5, RoPE, 12 RVQ
    # levels x 1024 codes (the codec's paper preset); SpeechSSM's 30 s windows with 4 s overlap; GPU scale.
    "paper": AcousticPreset(
        AcousticModelConfig(dim=1024, layers=12, heads=16, ff_mult=4, dropout=0.1, num_levels=12),
        TrainConfig(steps=200_000, max_minutes=None, batch_size=64, crop_seconds=30.0, lr=5e-4, warmup_steps=2000,
                    eval_every=2000, checkpoint_every=2000, log_every=100, threads=16),
        DecodeConfig(window_seconds=30.0, overlap_seconds=4.0, batch_windows=32),
        EvalConfig(clips=200, clip_seconds=10.0),
    ),
}
