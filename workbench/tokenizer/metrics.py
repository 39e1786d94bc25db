"""How good are the units? Phone information, speaker invariance, codebook usage, bitrate, speed.

- PNMI (phone-normalised mutual information, Hsu et al. 2021 HuBERT): I(phone; unit) / H(phone) over 40 ms frames,
  each labelled by the phone at its centre (exact mbrola alignments). 1 = the unit determines the phone.
  Phone purity: accuracy of mapping each unit to its most frequent phone. Pause frames (`_`, and time outside
  any phone) are EXCLUDED from both; `pnmi_with_pauses` reports PNMI with pauses as one more phone.
- Cross-voice unit edit distance: the parallel set (the same sentence read by the two held-out voices), units
  deduplicated (repeats collapsed), Levenshtein distance divided by the reference's length (the first voice in
  sorted order), averaged over sentences (Gat et al. 2023's UED). 0 = both voices give the same units.
- Usage: perplexity exp(H(unit)) and the fraction of the K units ever used.
- Bitrate: raw 25 log2 K bits/s; entropy-based = deduplicated units per second x H(deduplicated units).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from workbench.eval.units import entropy_bits
from workbench.tokenizer.config import TOKEN_RATE

PAUSE = "_"


def frame_labels(phones: Sequence[Sequence[Any]], num_frames: int, rate: float = TOKEN_RATE) -> list[str]:
    """The phone at the centre of each 40 ms frame; `_` (pause) where no phone covers it."""
    labels = [PAUSE] * num_frames
    centres = (np.arange(num_frames) + 0.5) / rate
    for label, start, end in phones:
        lo, hi = np.searchsorted(centres, start, "left"), np.searchsorted(centres, end, "left")
        labels[lo:hi] = [label] * (hi - lo)
    return labels


def phone_stats(units: Sequence[int], labels: Sequence[str], exclude: Sequence[str] = (PAUSE,)) -> dict[str, float]:
    """PNMI, phone purity and cluster purity of units against frame phone labels (frames labelled in `exclude`
    left out)."""
    keep = [i for i, lab in enumerate(labels) if lab not in exclude]
    if not keep:
        raise ValueError("no labelled frames left to score")
    u = np.asarray(units)[keep]
    phones = sorted({labels[i] for i in keep})
    y = np.searchsorted(np.array(phones), np.array([labels[i] for i in keep]))
    units_seen, z = np.unique(u, return_inverse=True)
    joint = np.zeros((len(phones), len(units_seen)))
    np.add.at(joint, (y, z), 1)
    h_y, h_z, h_yz = entropy_bits(joint.sum(1)), entropy_bits(joint.sum(0)), entropy_bits(joint.ravel())
    mutual = h_y + h_z - h_yz
    n = joint.sum()
    return {
        "pnmi": mutual / h_y if h_y > 0 else 0.0,
        "phone_purity": float(joint.max(0).sum() / n),  # each unit -> its most frequent phone
        "cluster_purity": float(joint.max(1).sum() / n),  # each phone -> its most frequent unit
        "frames": int(n), "phones": len(phones),
    }


def dedup(units: Sequence[int]) -> list[int]:
    """Collapse runs of the same unit: [3, 3, 7, 7, 7, 3] -> [3, 7, 3]."""
    u = np.asarray(units)
    if len(u) == 0:
        return []
    return u[np.r_[True, u[1:] != u[:-1]]].tolist()


def levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """Edit distance (insert / delete / substitute, cost 1 each); one numpy row per symbol of `a`."""
    b = np.asarray(list(b))
    row = np.arange(len(b) + 1)
    idx = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        diag = row[:-1] + (b != x)  # substitute (or match)
        best = np.r_[i, np.minimum(row[1:] + 1, diag)]  # or delete
        row = np.minimum.accumulate(best - idx) + idx  # insert: min over k <= j of best[k] + (j - k)
    return int(row[-1])


def unit_edit_distance(reference: Sequence[int], other: Sequence[int]) -> float:
    """Levenshtein distance between the deduplicated sequences / the deduplicated reference's length."""
    ref, hyp = dedup(reference), dedup(other)
    return levenshtein(ref, hyp) / max(1, len(ref))


def usage(units: np.ndarray, num_units: int) -> dict[str, float]:
    """Codebook usage and bitrate of a stream of units at 25 Hz (or of several streams concatenated)."""
    units = np.asarray(units)
    counts = np.bincount(units, minlength=num_units)
    h = entropy_bits(counts)
    return {
        "usage_perplexity": 2 ** h,
        "fraction_used": float((counts > 0).mean()),
        "entropy_bits": h,
        "bitrate_raw": TOKEN_RATE * math.log2(num_units),
    }


def dedup_bitrate(streams: Sequence[np.ndarray], num_units: int) -> dict[str, float]:
    """Entropy-based bitrate after deduplication: deduplicated units per second x their unigram entropy (bits)."""
    deduped = [np.asarray(dedup(s), dtype=np.int64) for s in streams]
    frames = sum(len(s) for s in streams)
    if not frames:
        return {"dedup_units_per_second": 0.0, "bitrate_dedup_entropy": 0.0}
    counts = np.bincount(np.concatenate(deduped), minlength=num_units)
    rate = counts.sum() / (frames / TOKEN_RATE)
    return {"dedup_units_per_second": float(rate), "bitrate_dedup_entropy": float(rate * entropy_bits(counts))}
