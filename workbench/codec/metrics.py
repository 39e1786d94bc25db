"""Quality measures for a decoded signal against its reference (both mono 16 kHz float).

- PESQ wide-band (ITU-T P.862.2, the `pesq` package): MOS-LQO 1.04..4.64, higher is better.
- STOI (the `pystoi` package): intelligibility 0..1, higher is better.
- mel distance: mean |log-mel(ref) - log-mel(deg)| (80 bands, 25 ms windows, 10 ms hop, natural log, the
  workbench's `plots.log_mel`); 0 for identical signals.

Codecs with a delay (Codec2) are aligned first (`align`): STOI compares frames in place, PESQ aligns itself.
"""

from __future__ import annotations

import math

import numpy as np

from workbench.core.audio import SAMPLE_RATE
from workbench.core.plots import log_mel


def align(ref: np.ndarray, deg: np.ndarray, max_lag: int = 1600) -> tuple[np.ndarray, int]:
    """Shift `deg` by the lag (|lag| <= max_lag samples) that best correlates it with `ref`; same length as ref."""
    n = len(ref) + len(deg)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.r_[0:max_lag + 1, -max_lag:0]
    lag = int(lags[np.argmax(corr[lags])])  # negative indices wrap: corr[-k] is lag -k
    shifted = deg[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, deg.dtype), deg])
    return fit_length(shifted, len(ref)), lag


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


def pesq_wb(ref: np.ndarray, deg: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ; NaN where PESQ finds no speech in the reference (e.g. a silent clip)."""
    from pesq import NoUtterancesError, pesq

    if not np.abs(ref).max() > 0:
        return math.nan
    try:
        return float(pesq(sample_rate, ref.astype(np.float64), deg.astype(np.float64), "wb"))
    except NoUtterancesError:
        return math.nan


def stoi(ref: np.ndarray, deg: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    from pystoi import stoi as _stoi

    return float(_stoi(ref, deg, sample_rate, extended=False))


def mel_distance(ref: np.ndarray, deg: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    a, b = log_mel(ref, sample_rate), log_mel(fit_length(deg, len(ref)), sample_rate)
    return float(np.abs(a - b).mean())


def measure(ref: np.ndarray, deg: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    deg = fit_length(np.asarray(deg, dtype=np.float32), len(ref))
    return {"pesq": pesq_wb(ref, deg, sample_rate), "stoi": stoi(ref, deg, sample_rate),
            "mel_distance": mel_distance(ref, deg, sample_rate)}
