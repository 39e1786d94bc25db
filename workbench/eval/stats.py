"""Intervals for figures measured over a set (of streams, clips, probe pairs): a figure without its spread and
its count is a sample, not a statistic.

- `mean_interval`: mean with a 95% Student-t interval across items;
- `share_interval`: a proportion (k of n) with its 95% Wilson score interval (sound at k = 0 or k = n);
- `slope`: least-squares slope of y on x, the per-item statistic behind "flat" and "drifting".
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

Z95 = 1.959963984540054
# two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30; beyond, the normal quantile is within 2%
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t95(df: int) -> float:
    if df < 1:
        raise ValueError("a t interval needs at least two items")
    return _T95[df - 1] if df <= len(_T95) else Z95


def mean_interval(values: Sequence[float | None]) -> dict[str, Any]:
    """{"mean", "low", "high", "n"} over the finite values; low/high are None for fewer than two."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "low": None, "high": None, "n": 1}
    half = t95(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def share_interval(k: int, n: int) -> dict[str, Any]:
    """{"share", "low", "high", "k", "n"}: k of n with the 95% Wilson score interval."""
    if n == 0:
        return {"share": None, "low": None, "high": None, "k": 0, "n": 0}
    p = k / n
    denom = 1 + Z95 ** 2 / n
    centre = (p + Z95 ** 2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / denom
    return {"share": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half), "k": k, "n": n}


def slope(x: Sequence[float], y: Sequence[float | None]) -> float | None:
    """Least-squares slope of y on x over the pairs whose y is finite; None for fewer than two."""
    pairs = [(a, b) for a, b in zip(x, y) if b is not None and math.isfinite(b)]
    if len(pairs) < 2:
        return None
    xs, ys = np.asarray(pairs, dtype=np.float64).T
    if np.ptp(xs) == 0:
        return None
    return float(np.polyfit(xs, ys, 1)[0])


def excludes(interval: dict[str, Any], value: float = 0.0) -> bool | None:
    """Whether a mean interval lies wholly on one side of `value` (None when it has no interval)."""
    if interval.get("low") is None:
        return None
    return interval["low"] > value or interval["high"] < value
