"""The codec's training data: random crops of a corpus's recordings (train split; dev or test held out).

A step's crops come from the RNG the training loop seeds by (seed, step), so a resumed run sees the same audio.

Speed perturbation (`speed_perturb`, Kaldi's augmentation): a crop is read `factor` times longer and resampled to
the crop's length, so it plays `factor` times faster with its pitch and formants moved by the same factor: a
new voice made from one the corpus has, for a codec that must code voices it never heard. Factors lie on a
grid of `SPEED_STEP` so every resampling ratio is a small fraction (16800:16000 = 21:20).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workbench.core.audio import SAMPLE_RATE, resample_audio
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


def sample_batch(dataset: SpeechDataset, crop_seconds: float, batch_size: int, rng: np.random.Generator, hop: int,
                 sample_rate: int = SAMPLE_RATE, speed_perturb: float = 0.0) -> torch.Tensor:
    """(batch_size, 1, T) random crops, T = crop_seconds rounded down to whole frames; with `speed_perturb`, each
    crop is played at a factor drawn uniformly from `speed_factors(speed_perturb)` (0: as recorded, and the RNG
    draws exactly what it drew before the option existed)."""
    n = crop_samples(crop_seconds, hop, sample_rate)
    factors = speed_factors(speed_perturb)
    crops = []
    try:
        for _ in range(batch_size):
            factor = float(factors[rng.integers(len(factors))]) if len(factors) > 1 else 1.0
            read = int(round(sample_rate * factor))  # the crop is read as if recorded at this rate
            audio = dataset.random_crop(n * read / sample_rate / sample_rate, rng)[2]
            crops.append((audio if read == sample_rate else resample_audio(audio, read, sample_rate))[:n])
    except ValueError as err:
        raise UserError(f"cannot draw training crops: {err}") from None
    return torch.from_numpy(np.stack([np.pad(c, (0, n - len(c))) for c in crops]))[:, None]


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
