"""The codec's training data: random crops of a corpus's recordings (train split; dev or test held out).

A step's crops come from the RNG the training loop seeds by (seed, step), so a resumed run sees the same audio.

Speed perturbation (`speed_perturb`, Kaldi's augmentation): a crop is read `factor` times longer and resampled to
the crop's length, so it plays `factor` times faster with its pitch and formants moved by the same factor: a
new voice made from one the corpus has, for a codec that must code voices it never heard. Factors lie on a
grid of `SPEED_STEP` so every resampling ratio is a small fraction (16800:16000 = 21:20).

Channel perturbation (`eq_perturb`): a crop is filtered by a random smooth gain curve (a gain drawn within
+-`eq_perturb` dB at each of `EQ_ANCHORS_HZ`, straight lines between them on a log-frequency axis) and brought back
to its own loudness: the microphones and rooms of real recordings tilt and colour a voice's spectrum in ways no
change of speed makes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workbench.core.audio import SAMPLE_RATE, gain_to_level, resample_audio, speech_level_db
from workbench.core.errors import UserError
from workbench.data.loaders import SpeechDataset, open_dataset


def crop_samples(crop_seconds: float, hop: int, sample_rate: int = SAMPLE_RATE) -> int:
    """`crop_seconds` rounded down to whole frames of `hop` samples."""
    n = int(crop_seconds * sample_rate) // hop * hop
    if n < hop:
        raise UserError(f"crop_seconds {crop_seconds} is shorter than one frame ({hop} samples)")
    return n


SPEED_STEP = 0.05


def speed_factors(max_change: float) -> np.ndarray:
    """The speed factors a crop may get: 1 and every multiple of SPEED_STEP away from it up to `max_change`."""
    k = int(round(max_change / SPEED_STEP, 6))
    return 1.0 + SPEED_STEP * np.arange(-k, k + 1)


EQ_ANCHORS_HZ = (100.0, 250.0, 600.0, 1500.0, 3500.0, 8000.0)


def random_eq(audio: np.ndarray, rng: np.random.Generator, max_db: float,
              sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`audio` through a zero-phase filter whose gain is drawn within +-max_db dB at each of EQ_ANCHORS_HZ
    (linear in log frequency between them, flat beyond), applied to the whole crop's spectrum, then scaled back to
    the crop's RMS."""
    gains_db = rng.uniform(-max_db, max_db, len(EQ_ANCHORS_HZ))
    freqs = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    curve_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(EQ_ANCHORS_HZ), gains_db)
    out = np.fft.irfft(np.fft.rfft(audio) * 10 ** (curve_db / 20), n=len(audio))
    rms_in, rms_out = float(np.sqrt(np.mean(audio ** 2))), float(np.sqrt(np.mean(out ** 2)))
    return (out * (rms_in / rms_out if rms_out > 0 else 1.0)).astype(np.float32)


def sample_batch(dataset: SpeechDataset, crop_seconds: float, batch_size: int, rng: np.random.Generator, hop: int,
                 sample_rate: int = SAMPLE_RATE, speed_perturb: float = 0.0, eq_perturb: float = 0.0,
                 level_db: float | None = None) -> torch.Tensor:
    """(batch_size, 1, T) random crops, T = crop_seconds rounded down to whole frames; with `speed_perturb`, each
    crop is played at a factor drawn uniformly from `speed_factors(speed_perturb)`; with `eq_perturb`, filtered by
    `random_eq` (0: as recorded, and the RNG draws exactly what it drew before the options existed); with
    `level_db`, scaled so that its speech sits at that level (`core.audio.gain_to_level`)."""
    n = crop_samples(crop_seconds, hop, sample_rate)
    factors = speed_factors(speed_perturb)
    crops = []
    try:
        for _ in range(batch_size):
            factor = float(factors[rng.integers(len(factors))]) if len(factors) > 1 else 1.0
            read = int(round(sample_rate * factor))  # the crop is read as if recorded at this rate
            audio = dataset.random_crop(n * read / sample_rate / sample_rate, rng)[2]
            audio = (audio if read == sample_rate else resample_audio(audio, read, sample_rate))[:n]
            audio = random_eq(audio, rng, eq_perturb, sample_rate) if eq_perturb > 0 else audio
            crops.append(audio * np.float32(gain_to_level(speech_level_db(audio, sample_rate), level_db)))
    except ValueError as err:
        raise UserError(f"cannot draw training crops: {err}") from None
    return torch.from_numpy(np.stack([np.pad(c, (0, n - len(c))) for c in crops]))[:, None]


LEVEL_CROPS, LEVEL_CROP_SECONDS = 200, 4.0


def corpus_speech_level_db(dataset: SpeechDataset, seed: int, crops: int = LEVEL_CROPS,
                           seconds: float = LEVEL_CROP_SECONDS) -> float:
    """The median speech level (dBFS, `speech_level_db`) of `crops` random crops drawn as training draws them (real
    speech as often as the corpus asks): the level the codec learns to code (`ModelConfig.input_level_db`)."""
    rng = np.random.default_rng([seed, 0x1E7E1])
    seconds = min(seconds, max(r.duration for r in dataset.recordings))
    levels = [speech_level_db(dataset.random_crop(seconds, rng)[2]) for _ in range(crops)]
    levels = [v for v in levels if v is not None and v >= -60]  # near-silent crops say nothing of the level
    if not levels:
        raise UserError(f"cannot measure the training corpus's speech level: {crops} crops of {seconds:g} s are all "
                        "below -60 dBFS")
    return round(float(np.median(levels)), 1)


def open_training_data(corpus_dir: str | Path) -> tuple[SpeechDataset, SpeechDataset]:
    """(train, held out): the corpus's train split (all of it if it has none) with its extra voices (the `voices`
    split, which only the codec trains on: `CorpusConfig.real_extra_voices`), and its dev (else test, else
    train) split."""
    try:
        full = open_dataset(corpus_dir)
        voices = open_dataset(corpus_dir, split="voices").recordings \
            if (Path(corpus_dir) / "voices.jsonl").is_file() else []
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"cannot open the training corpus: {err}") from None
    train = full.split("train") if any(r.split == "train" for r in full.recordings) else full
    train = SpeechDataset(train.kind, train.root, train.recordings + voices)
    held = next((full.split(s) for s in ("dev", "test") if any(r.split == s for r in full.recordings)), train)
    return train, held
