"""Tokenizer settings: one dataclass, three presets (smoke / laptop / paper); `train_config` gives the shared
training loop's settings for one HuBERT iteration.

Time is counted in 25 Hz frames (40 ms, 640 samples at 16 kHz) throughout: the unit rate of the paper's
semantic tokens. Windowed tokenization uses windows that start on this grid, so a window's frames are frames of
the whole recording.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.core.config import PRECISIONS, Config
from workbench.core.train import TrainConfig

SAMPLE_RATE = 16_000
FRAME = 640  # samples per 25 Hz token
HOP = 160  # samples per 10 ms spectrogram frame; 4 per token
SUB = FRAME // HOP
N_FFT = 400  # 25 ms analysis window
TOKEN_RATE = SAMPLE_RATE / FRAME  # 25.0 tokens/s


@dataclass(frozen=True)
class TokenizerConfig(Config):
    name: str = "laptop"
    num_units: int = 256  # k-means codebook size K
    # features (both tokenizers read the same log-mel; the baseline turns it into MFCCs)
    n_mels: int = 80
    # every input (training crop, file, prompt) is scaled to this speech level before its log-mel, one gain per
    # signal (`core.audio.speech_level_db`): a recording's loudness is not content, and unlevelled the learned units
    # moved with it (half of them at 6 dB: README). None: audio is read at its own level (tokenizers before it)
    input_level_db: float | None = -26.0
    n_mfcc: int = 20
    mfcc_context: int = 1  # baseline: stack the frames j-c..j+c (each 4 x 10 ms MFCC frames)
    # learned encoder: residual dilated 1-D convs over 25 Hz frames (receptive field: see encoder.py)
    d_model: int = 192
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    kernel: int = 3
    # k-means reads the output of this block (1-based): the last, which the cross-speaker loss trains directly
    # (laptop, k-means refitted on one encoder: PNMI/UED 0.48/0.90 at block 4, 0.54/0.60 at 6, 0.54/0.55 at 8)
    feature_layer: int = 8
    teacher_layer: int = 4  # iteration 2's targets: k-means over this block of the iteration-1 encoder (the middle)
    # HuBERT-style masked prediction (span of 4 frames = 160 ms; ~45% of frames masked)
    mask_prob: float = 0.12
    mask_span: int = 4
    vtlp: tuple[float, float] = (0.8, 1.2)  # student input's vocal-tract-length warp factor range (ContentVec-style)
    crop_seconds: float = 8.0
    # the training loop (workbench.core.train; see `train_config`), per HuBERT iteration
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    steps: int = 2000  # per iteration; training also stops at its share of max_minutes
    iterations: int = 2  # 1: targets = baseline k-means units; 2: k-means on iteration 1's features
    max_minutes: float = 10.0  # wall-clock budget for the whole `train` (both tokenizers, both iterations)
    # cross-speaker loss (data.py): train sentences rendered by several train voices, frames aligned by phones
    parallel_weight: float = 1.0  # 0 turns it off (the ablation); else weight of its loss next to the masked one
    parallel_sentences: int = 300
    parallel_voices: int = 3  # distinct train voices per sentence -> 6 ordered pairs
    parallel_seconds: tuple[float, float] = (1.5, 7.0)  # sentence length range (as read in the train chapter)
    parallel_min_match: float = 0.8  # fraction of phones that must correspond one-to-one, else the pair is skipped
    parallel_batch: int = 8  # pairs per step, besides `batch_size` crops for the masked loss
    # real train speech in the cross-speaker loss (data.py): this many stretches (cut at pauses, `parallel_seconds`
    # long), each heard beside a rendering of its transcript; 0: mbrola voices only. Needs a corpus whose real
    # train utterances are aligned (built since the corpus aligns them all)
    parallel_real: int = 300
    parallel_real_share: float = 0.25  # share of each step's pairs whose heard side is real speech (A/B: README)
    # k-means
    kmeans_seconds: float = 3600.0  # train audio (seconds) whose frames k-means clusters
    kmeans_iters: int = 25
    norm_seconds: float = 1200.0  # train audio for the global feature mean/std
    # windowed tokenization (paper: 30 s windows, 4 s overlap, merged at the middle of each overlap)
    window_seconds: float = 30.0
    overlap_seconds: float = 4.0
    seed: int = 0
    threads: int = 2  # torch CPU threads
    precision: str = "fp32"  # the training loop's autocast (`workbench.core.config.PRECISIONS`)

    def __post_init__(self):
        if self.input_level_db is not None and not -60 <= self.input_level_db <= 0:
            raise ValueError(f"bad TokenizerConfig: input_level_db {self.input_level_db} is not in [-60, 0] dBFS")
        if self.parallel_real < 0 or not 0 <= self.parallel_real_share <= 1:
            raise ValueError(f"bad TokenizerConfig: parallel_real {self.parallel_real} must be >= 0 and "
                             f"parallel_real_share {self.parallel_real_share} in [0, 1]")
        if self.precision not in PRECISIONS:  # checked here, not after minutes of k-means when training starts
            raise ValueError(f"bad TokenizerConfig: precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    @property
    def receptive_frames(self) -> int:
        """Frames of context on each side that one output frame of the encoder can see."""
        return sum(d * (self.kernel - 1) // 2 for d in self.dilations)

    def train_config(self, max_minutes: float | None = None, iteration: int = 1) -> TrainConfig:
        """The shared loop's settings for HuBERT iteration `iteration`, stopped by `steps` or `max_minutes` (its
        share of the whole budget): AdamW with betas (0.9, 0.98) (decay on matrices only), linear warmup, then
        cosine decay to zero, gradient clipping at 1, `precision`, every step logged. Each iteration draws
        other crops (seed + iteration)."""
        return TrainConfig(steps=self.steps, max_minutes=max_minutes, batch_size=self.batch_size, lr=self.lr,
                           min_lr_ratio=0.0, warmup_steps=self.warmup_steps, weight_decay=self.weight_decay,
                           betas=(0.9, 0.98), grad_clip=1.0, log_every=1, eval_every=0, checkpoint_every=0,
                           seed=self.seed + iteration, precision=self.precision, threads=self.threads)


PRESETS: dict[str, TokenizerConfig] = {
    "smoke": TokenizerConfig(
        name="smoke", num_units=32, d_model=64, dilations=(1, 2, 4, 8), feature_layer=4, teacher_layer=3,
        crop_seconds=4.0, batch_size=8, warmup_steps=5, steps=30, max_minutes=1.0, kmeans_seconds=120.0, kmeans_iters=10,
        norm_seconds=60.0, window_seconds=10.0, overlap_seconds=4.0, parallel_sentences=24, parallel_batch=4,
        parallel_real=24,
    ),
    "laptop": TokenizerConfig(max_minutes=7.0),  # 10, then 8, before the 90-minute reproduction (README: the cost)
    # The paper's scale, documented, for a GPU: a 32k-scale codebook (per issue 5's reading of SpeechSSM's
    # USM-v2 tokens), a wider and deeper encoder, k-means over ~100 h of frames. Not run here.
    "paper": TokenizerConfig(
        name="paper", num_units=32768, d_model=768, dilations=(1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8),
        feature_layer=12, teacher_layer=9, batch_size=64, steps=100_000, max_minutes=24 * 60.0,
        kmeans_seconds=100 * 3600.0, kmeans_iters=50, norm_seconds=10 * 3600.0, threads=16,
    ),
}
