"""A naturalness proxy over time: DNSMOS, a stand-in for the paper's N-MOS-T (human naturalness per minute).

The paper asks people to rate each minute of a continuation (N-MOS-T). Offline, the closest instrument is a
learned MOS predictor: DNSMOS P.835 (Reddy et al., ICASSP 2022), whose ONNX models ship inside the `speechmos`
wheel. It predicts, on a 1-5 scale, the overall quality (OVRL), the speech signal (SIG), the background (BAK) and
an ITU-T P.808 score, from ~9 s windows averaged over the clip. It was trained on noisy and enhanced real
speech, not on generated speech: it is a **proxy** (it hears a vocoder's buzz or a noise floor, not whether the
words make sense). Labelled so wherever it is shown.

Reference points measured here: real read speech (CMU ARCTIC) OVRL ~3.3; the same with white noise at 0.05 ~1.9;
digital silence ~1.8.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from workbench.core.audio import SAMPLE_RATE
from workbench.eval.longform import audio_bins

PROXY_LABEL = "DNSMOS P.835 OVRL (an offline proxy of N-MOS-T, not human ratings)"
SCORES = ("ovrl", "sig", "bak", "p808")
MIN_SECONDS = 2.0  # shorter clips are repeated to DNSMOS's window by the model; below this that is no measure
WINDOW_S = 9.01  # DNSMOS's input length


def available() -> str | None:
    """None if DNSMOS can run, else why not (one line)."""
    try:
        import onnxruntime  # noqa: F401
        import speechmos  # noqa: F401
    except ImportError as err:
        return f"the naturalness proxy needs speechmos and onnxruntime ({err}); pip install '.[eval]'"
    return None


def dnsmos(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """DNSMOS scores of one clip (mono float, 16 kHz): {"ovrl", "sig", "bak", "p808"}, the means over its
    non-overlapping 9.01 s windows (the reference implementation slides the window 1 s at a time: 9x the work
    for the same mean over a minute; a clip shorter than one window is scored whole)."""
    if sample_rate != 16000:
        raise ValueError(f"DNSMOS scores 16 kHz audio, got {sample_rate} Hz")
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or len(wav) < MIN_SECONDS * sample_rate:
        raise ValueError(f"DNSMOS needs at least {MIN_SECONDS:g} s of mono audio, got shape {wav.shape}")
    if not np.isfinite(wav).all():
        raise ValueError("DNSMOS: the audio holds NaN or inf")
    why = available()
    if why:
        raise RuntimeError(why)
    from speechmos import dnsmos as model

    wav = np.clip(wav, -1.0, 1.0)
    size = round(WINDOW_S * sample_rate)
    pieces = [wav[i: i + size] for i in range(0, len(wav) - size + 1, size)] or [wav]
    scores = [model.run(piece, sample_rate) for piece in pieces]
    return {name: round(float(np.mean([s[f"{name}_mos"] for s in scores])), 4) for name in SCORES}


def naturalness_over_time(wav: np.ndarray, *, bin_seconds: float = 60.0, sample_rate: int = SAMPLE_RATE,
                          score: Callable[[np.ndarray], dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """Per bin of `wav`: the DNSMOS scores (None with the reason where a bin is too short to score)."""
    score = score or (lambda piece: dnsmos(piece, sample_rate))
    out = []
    for lo, hi, piece in audio_bins(wav, bin_seconds, sample_rate):
        row: dict[str, Any] = {"from_s": lo, "to_s": hi}
        try:
            row.update(score(piece))
        except ValueError as err:
            row.update({name: None for name in SCORES}, note=str(err))
        out.append(row)
    return out
