"""Statistics of discrete unit streams, shared by the tokenizer's metrics and the long-form measures."""

from __future__ import annotations

import numpy as np


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of the distribution given by `counts` (zeros ignored)."""
    counts = np.asarray(counts, dtype=np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def unit_entropy(units: np.ndarray) -> float:
    """Entropy (bits) of the unigram distribution of a stream of unit ids."""
    return entropy_bits(np.bincount(np.asarray(units, dtype=np.int64)))
