"""Codec settings as dataclasses, and the three presets (smoke / laptop / paper).

Bit accounting: a frame every `hop` samples (16 kHz / 320 = 50 Hz), each of `n_q` quantizer levels sends one
index of log2(codebook_size) bits, so kbps = frame_rate * n_q * log2(K) / 1000. With K = 1024 the default six
levels give 50 * 6 * 10 = 3.0 kbps (<= 3.2 kbps, Codec2's top rate); quantizer dropout trains every prefix
1..n_q, so one model also serves 0.5, 1.0, ..., 2.5 kbps. More levels buy higher rates: 8 -> 4 kbps,
12 -> 6 kbps (what AudioLM/SoundStorm's SoundStream sends at 50 Hz), 16 -> 8 kbps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workbench.core.audio import SAMPLE_RATE
from workbench.core.config import Config
from workbench.core.errors import UserError
from workbench.core.train import TrainConfig as LoopConfig

MAX_GLA_ITERS = 256
MAX_RVQ_BEAM = 256


@dataclass(frozen=True)
class ModelConfig(Config):
    sample_rate: int = SAMPLE_RATE
    channels: int = 16  # encoder width at the sample rate; doubles at every downsampling
    decoder_channels: int = 16  # decoder width at the sample rate (the decoder mirrors the encoder)
    strides: tuple[int, ...] = (2, 4, 5, 8)  # product = hop = 320 samples -> 50 Hz frames
    dilations: tuple[int, ...] = (1, 3)  # one residual unit per dilation at every resolution
    dim: int = 64  # latent (codebook vector) size
    encoder: str = "conv"  # "conv": strided convolutions on the waveform (SoundStream); "stft": frame-rate convs on log-magnitude spectra
    decoder: str = "conv"  # "conv": transposed convolutions (SoundStream); "istft": frame-rate convs + iSTFT (Vocos);
    # "griffinlim": frame-rate convs -> magnitudes, phase by fast Griffin-Lim
    # Griffin-Lim iterations of the griffinlim decoder: 16 decodes the codec's magnitudes better than 32 (README:
    # more iterations fit the phase to what the decoder got wrong; chosen on the dev speakers)
    gla_iters: int = 16
    gla_momentum: float = 0.99  # fast Griffin-Lim momentum (0: the original algorithm)
    # the griffinlim decoder's postfilter, at decoding only (`model.postfilter`): the predicted log magnitudes'
    # deviations from their 2 s moving average in time, then from their 187 Hz moving average in frequency, are
    # multiplied by these (1, 1: no postfilter). A regression to the log spectrum is too smooth in both
    postfilter_time: float = 1.0
    postfilter_freq: float = 1.0
    causal: bool = False  # causal convolutions: streaming, and chunked == unchunked with left context only
    # the speech level (dBFS, `core.audio.speech_level_db`) every input is scaled to before coding, the gain undone
    # after decoding (`stream.level_gain`): the codec trains at its corpus's levels and codes others worse (0.1-0.2
    # PESQ at 6-12 dB away: README); set at training from the corpus (`TrainConfig.level_from_corpus`); None: as is
    input_level_db: float | None = None
    codebook_size: int = 1024
    num_quantizers: int = 6
    # encoding only (training quantizes greedily): the RVQ beam search keeps this many partial sums per level
    # (`quantizer.beam_encode`); 16 codes real speech +0.07 PESQ-WB over greedy (1) at the same bitrate (README)
    rvq_beam: int = 16
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.1  # restart a code whose EMA usage falls below this x uniform usage

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def kbps(self, n_q: int | None = None) -> float:
        return self.frame_rate * (n_q or self.num_quantizers) * math.log2(self.codebook_size) / 1000

    def check(self) -> None:
        problems = []
        if self.sample_rate % self.hop:
            problems.append(f"hop {self.hop} (product of strides {self.strides}) does not divide {self.sample_rate} Hz")
        if self.codebook_size < 2 or self.codebook_size & (self.codebook_size - 1):
            problems.append(f"codebook_size {self.codebook_size} is not a power of two >= 2")
        if self.num_quantizers < 1:
            problems.append("num_quantizers must be >= 1")
        if min(self.channels, self.decoder_channels, self.dim) < 2:
            problems.append("channels, decoder_channels and dim must be >= 2")
        if self.encoder not in ("conv", "stft"):
            problems.append(f"encoder {self.encoder!r} is not 'conv' or 'stft'")
        if self.decoder not in ("conv", "istft", "griffinlim"):
            problems.append(f"decoder {self.decoder!r} is not 'conv', 'istft' or 'griffinlim'")
        if self.decoder == "griffinlim" and self.causal:
            problems.append("the griffinlim decoder is not causal (each iteration reads 3 frames ahead)")
        if not (0 < self.postfilter_time <= 3 and 0 < self.postfilter_freq <= 3):
            problems.append(f"postfilter factors ({self.postfilter_time}, {self.postfilter_freq}) are not in (0, 3]")
        if not 0 <= self.gla_iters <= MAX_GLA_ITERS:
            problems.append(f"gla_iters {self.gla_iters} is not in [0, {MAX_GLA_ITERS}]")
        if not 1 <= self.rvq_beam <= MAX_RVQ_BEAM:
            problems.append(f"rvq_beam {self.rvq_beam} is not in [1, {MAX_RVQ_BEAM}]")
        if not 0 < self.ema_decay < 1:
            problems.append(f"ema_decay {self.ema_decay} is not in (0, 1)")
        if self.input_level_db is not None and not -60 <= self.input_level_db <= 0:
            problems.append(f"input_level_db {self.input_level_db} is not in [-60, 0] dBFS")
        if problems:
            raise UserError("codec config does not fit: " + "; ".join(problems))


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """The shared loop's settings (`workbench.core.train.TrainConfig`: budgets, schedule, clipping, logging) with
    the codec's defaults, and what the codec adds: crops, quantizer dropout, loss weights, the discriminator."""

    steps: int = 4000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0  # with no weight decay the loop's AdamW is Adam
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    checkpoint_every: int = 200
    precision: str = "fp32"  # the STFTs (encoder, mel loss, discriminator) have no bf16 kernels
    crop_seconds: float = 1.0
    quantizer_dropout: float = 0.5  # probability a batch uses a random prefix 1..n_q of the levels
    # each training crop played at a speed (pitch and formants with it) drawn from 1 +- this, on a 0.05 grid:
    # voices the corpus does not have (data.speed_factors); 0 = as recorded
    speed_perturb: float = 0.0
    # each training crop through a random smooth gain curve within +- this many dB (data.random_eq): the microphones
    # and rooms of voices the corpus does not have; 0 = as recorded
    eq_perturb: float = 0.0
    # measure the training crops' median speech level when training starts and record it as the codec's
    # `ModelConfig.input_level_db`, so every input is coded at the level the codec learned
    level_from_corpus: bool = True
    # and bring every training crop to that level too (one gain per crop), so the codec never models loudness
    level_crops: bool = False
    # reconstruction: multi-scale log-mel L1 (windows 2^5..2^11 at 16 kHz) + waveform L1, and RVQ commitment
    mel_weight: float = 1.0
    wave_weight: float = 0.1
    commit_weight: float = 1.0
    # the griffinlim decoder's L1 on log magnitudes weighs a bin at f Hz by (700 + f) ** -magnitude_tilt (mean 1):
    # 0 every bin alike, 1 the mel scale's density (the low harmonics that limit PESQ count more; README)
    magnitude_tilt: float = 0.0
    # + this x the L1 between the cepstral envelopes of the decoded and the input log magnitudes (losses.magnitude_loss)
    envelope_weight: float = 0.0
    # adversarial (hinge loss) with feature matching, from `adversarial_start`: a multi-scale STFT discriminator
    # (disc_ffts) on the waveform, or for the griffinlim decoder one on its log magnitudes
    adversarial: bool = False
    adversarial_start: float = 0.0  # fraction of training (the loop's progress) before the discriminator joins
    disc_channels: int = 16
    disc_ffts: tuple[int, ...] = (256, 512, 1024)
    adv_weight: float = 1.0
    feat_weight: float = 2.0

    def __post_init__(self):
        super().__post_init__()
        if self.level_crops and not self.level_from_corpus:
            raise ValueError("bad TrainConfig: level_crops needs level_from_corpus (the level the crops are brought to)")
        if not 0 <= self.magnitude_tilt <= 4:
            raise ValueError(f"bad TrainConfig: magnitude_tilt {self.magnitude_tilt} is not in [0, 4]")
        if not 0 <= self.speed_perturb <= 0.3:
            raise ValueError(f"bad TrainConfig: speed_perturb {self.speed_perturb} is not in [0, 0.3]")
        if not 0 <= self.envelope_weight <= 10:
            raise ValueError(f"bad TrainConfig: envelope_weight {self.envelope_weight} is not in [0, 10]")
        if not 0 <= self.eq_perturb <= 20:
            raise ValueError(f"bad TrainConfig: eq_perturb {self.eq_perturb} is not in [0, 20] dB")
        if not self.crop_seconds > 0 or not 0 <= self.quantizer_dropout <= 1 or not 0 <= self.adversarial_start <= 1:
            raise ValueError(f"bad TrainConfig: need crop_seconds > 0 (got {self.crop_seconds}), quantizer_dropout "
                             f"and adversarial_start in [0, 1] (got {self.quantizer_dropout}, {self.adversarial_start})")


@dataclass(frozen=True)
class EvalConfig(Config):
    test_clips: int = 24  # clips of clip_seconds from the synthetic test segments (spread over all of them)
    real_test_clips: int = 24  # clips from the real test speakers mixed into the corpus (if it has any)
    real_clips: int = 40  # at most this many real-speech files (spread over all), each cut to clip_seconds
    clip_seconds: float = 8.0
    chunk_seconds: float = 10.0  # encode/decode chunk size (bounded memory)
    speed_seconds: float = 30.0  # audio length timed for encode/decode x real time


@dataclass(frozen=True)
class CodecPreset(Config):
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


PRESETS = {
    # seconds on a CPU: correctness only
    "smoke": CodecPreset(
        ModelConfig(channels=4, decoder_channels=4, dim=16, dilations=(1,), codebook_size=64, num_quantizers=4,
                    encoder="stft", decoder="istft", ema_decay=0.9),
        TrainConfig(steps=30, batch_size=2, crop_seconds=0.4, warmup_steps=5, log_every=5, checkpoint_every=15,
                    adversarial=True, adversarial_start=0.5, disc_channels=4, disc_ffts=(128, 256)),
        EvalConfig(test_clips=2, real_test_clips=2, real_clips=2, clip_seconds=2.0, chunk_seconds=1.0,
                   speed_seconds=2.0),
    ),
    # 16 minutes on 2 CPU cores (40, then 16, 14 and 12 before the 90-minute reproduction; 16 again since its steps
    # got 1.24x cheaper and the figure on real voices follows steps, and 1.18x more from the ELU; README: what each costs),
    # so everything runs at the 50 Hz frame rate (STFT encoder, iSTFT decoder, 256 channels): ~3x the steps per
    # second of the waveform-conv encoder, ~7x of SoundStream's conv pair. The discriminator (--adversarial) costs
    # ~3.5x per step here; see README.md for the measured trade-offs.
    "laptop": CodecPreset(
        # thousands of steps: codebooks follow fast; the postfilter widens the magnitudes' swing in time by 1.1 (README).
        # Every batch trains all six levels (no quantizer dropout): the 3.0 kbps codec SoundStorm uses gains on real
        # voices (+0.05 PESQ at equal steps, +0.02 in equal time: ~6% fewer steps); the lower bitrates still decode (README).
        ModelConfig(encoder="stft", decoder="griffinlim", ema_decay=0.95, postfilter_time=1.1),
        TrainConfig(steps=100_000, max_minutes=16.0, commit_weight=0.0, magnitude_tilt=1.0, quantizer_dropout=0.0),
        EvalConfig(test_clips=18, real_test_clips=18, real_clips=8),
    ),
    # SoundStream's scale (Zeghidour et al. 2021: C_enc = C_dec = 32, dilations 1/3/9, 12 x 1024 codes at
    # 50 Hz = 6 kbps with quantizer dropout), trained adversarially with feature matching as in the paper.
    "paper": CodecPreset(
        ModelConfig(channels=32, decoder_channels=32, dilations=(1, 3, 9), dim=128, num_quantizers=12),
        TrainConfig(steps=400_000, batch_size=32, crop_seconds=2.0, lr=3e-4, betas=(0.5, 0.9), warmup_steps=1000,
                    adversarial=True, adversarial_start=0.0, disc_channels=32, disc_ffts=(512, 1024, 2048),
                    checkpoint_every=5000, log_every=100),
        EvalConfig(test_clips=200, clip_seconds=10.0, chunk_seconds=30.0),
    ),
}
