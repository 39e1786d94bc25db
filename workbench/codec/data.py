"""The codec's training data: random crops of a corpus's recordings (train split; dev or test held out).

A step's crops come from the RNG the training loop seeds by (seed, step), so a resumed run sees the same audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workbench.core.audio import SAMPLE_RATE
from workbench.core.errors import UserError
from workbench.data.loaders import SpeechDataset, open_dataset


def crop_samples(crop_seconds: float, hop: int, sample_rate: int = SAMPLE_RATE) -> int:
    """`crop_seconds` rounded down to whole frames of `hop` samples."""
    n = int(crop_seconds * sample_rate) // hop * hop
    if n < hop:
        raise UserError(f"crop_seconds {crop_seconds} is shorter than one frame ({hop} samples)")
    return n


def sample_batch(dataset: SpeechDataset, crop_seconds: float, batch_size: int, rng: np.random.Generator, hop: int,
                 sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(batch_size, 1, T) random crops, T = crop_seconds rounded down to whole frames."""
    n = crop_samples(crop_seconds, hop, sample_rate)
    try:
        crops = [dataset.random_crop(n / sample_rate, rng)[2][:n] for _ in range(batch_size)]
    except ValueError as err:
        raise UserError(f"cannot draw training crops: {err}") from None
    return torch.from_numpy(np.stack([np.pad(c, (0, n - len(c))) for c in crops]))[:, None]


def open_training_data(corpus_dir: str | Path) -> tuple[SpeechDataset, SpeechDataset]:
    """(train, held out): the corpus's train split (all of it if it has none) and its dev (else test, else train)
    split."""
    try:
        full = open_dataset(corpus_dir)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"cannot open the training corpus: {err}") from None
    train = full.split("train") if any(r.split == "train" for r in full.recordings) else full
    held = next((full.split(s) for s in ("dev", "test") if any(r.split == s for r in full.recordings)), train)
    return train, held
