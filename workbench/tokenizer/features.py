"""Frame features at 25 Hz, every one of them local in time (the windowing in windowed.py relies on it).

    audio (B, N) 16 kHz  --pad to a multiple of 640-->  STFT (n_fft 400, hop 160, centred)  -> power (B, 4T, 201)
    power --mel filterbank (optionally VTLP-warped per example)--> log-mel (B, 4T, M)
    log-mel --stack the 4 x 10 ms frames of each 40 ms token--> (B, T, 4M)      [learned encoder input]
    log-mel --DCT--> MFCC (B, 4T, C) --stack 4, then frames j-c..j+c--> (B, T, 4C(2c+1))   [baseline]

Frame j covers samples [640 j, 640 (j+1)). Because the STFT is centred on multiples of 160 samples, cutting the
audio at a multiple of 640 samples gives exactly the same frames away from the cut.

VTLP (vocal-tract-length perturbation, Jaitly & Hinton 2013) moves the energy at frequency f to phi(f) = alpha f
(piecewise linear so that the band edge stays put) before the mel filterbank: the student hears a longer or
shorter vocal tract while every frame keeps its time, so targets from the clean audio stay aligned.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from workbench.tokenizer.config import FRAME, HOP, N_FFT, SAMPLE_RATE, SUB

VTLP_BOUNDARY_HZ = 4800.0  # above this the warp bends back so that 8 kHz maps to 8 kHz
LOG_FLOOR = 1e-6


def num_frames(num_samples: int) -> int:
    return max(1, math.ceil(num_samples / FRAME))


def pad_to_frames(audio: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """(B, N) -> (B, 640 T) with zeros at the end; T = ceil(N / 640) unless given."""
    frames = frames or num_frames(audio.shape[-1])
    return F.pad(audio, (0, frames * FRAME - audio.shape[-1]))[..., : frames * FRAME]


def power_spectrogram(audio: torch.Tensor) -> torch.Tensor:
    """(B, 640 T) -> (B, 4T, 201) power spectra, frame i centred on sample 160 i."""
    window = torch.hann_window(N_FFT, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (B, 201, 4T + 1)
    return power[..., : audio.shape[-1] // HOP].transpose(1, 2)


def _hz_to_mel(f):
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def vtlp_warp(freqs: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """phi(f) for each alpha: (F,), (B,) -> (B, F). Linear alpha*f up to a boundary, then to (nyquist, nyquist)."""
    nyq = SAMPLE_RATE / 2
    a = alpha[:, None]
    knee = VTLP_BOUNDARY_HZ * torch.clamp(a, max=1.0) / a  # input frequency where the slope changes
    low = a * freqs
    high = nyq - (nyq - a * knee) / (nyq - knee) * (nyq - freqs)
    return torch.where(freqs <= knee, low, high)


def mel_filterbank(n_mels: int, alpha: torch.Tensor | None = None, device=None) -> torch.Tensor:
    """(B, 201, M) triangular mel filters read at the (warped) frequency of every STFT bin; (1, 201, M) if no alpha."""
    freqs = torch.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1, device=device)
    warped = freqs[None] if alpha is None else vtlp_warp(freqs, alpha.to(device))
    top = float(_hz_to_mel(torch.tensor(SAMPLE_RATE / 2)))
    edges = 700.0 * (10 ** (torch.linspace(0.0, top, n_mels + 2, device=device) / 2595) - 1)  # mel-spaced corners
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    f = warped[..., None]  # (B, 201, 1)
    up, down = (f - lo) / (mid - lo), (hi - f) / (hi - mid)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    return fb * (2.0 / (hi - lo))  # Slaney-style area normalisation: wide filters do not dominate


def log_mel(audio: torch.Tensor, n_mels: int, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N) audio -> (B, 4T, M) log-mel; `alpha` (B,) warps each example's vocal tract (VTLP)."""
    power = power_spectrogram(pad_to_frames(audio))
    fb = mel_filterbank(n_mels, alpha, device=audio.device)
    return torch.log(torch.matmul(power, fb) + LOG_FLOOR)


def stack_subframes(x: torch.Tensor) -> torch.Tensor:
    """(B, 4T, F) -> (B, T, 4F): the four 10 ms frames of each 40 ms token side by side."""
    b, t4, f = x.shape
    return x.reshape(b, t4 // SUB, SUB * f)


def stack_context(x: torch.Tensor, context: int) -> torch.Tensor:
    """(B, T, F) -> (B, T, (2c+1) F): frames j-c..j+c (edge frames repeated)."""
    if context == 0:
        return x
    t = x.shape[1]
    padded = torch.cat([x[:, :1].expand(-1, context, -1), x, x[:, -1:].expand(-1, context, -1)], dim=1)
    return torch.cat([padded[:, k: k + t] for k in range(2 * context + 1)], dim=-1)


def dct_matrix(n_mels: int, n_mfcc: int, device=None) -> torch.Tensor:
    """(M, C) orthonormal DCT-II, the last step from log-mel to MFCC."""
    m = torch.arange(n_mels, device=device, dtype=torch.float32)
    k = torch.arange(n_mfcc, device=device, dtype=torch.float32)
    d = torch.cos(math.pi / n_mels * (m[:, None] + 0.5) * k[None]) * math.sqrt(2.0 / n_mels)
    d[:, 0] /= math.sqrt(2.0)
    return d


def mfcc_features(logmel: torch.Tensor, n_mfcc: int, context: int) -> torch.Tensor:
    """(B, 4T, M) log-mel -> (B, T, 4 C (2c+1)) stacked MFCCs: the GSLM-style k-means baseline's features."""
    mfcc = logmel @ dct_matrix(logmel.shape[-1], n_mfcc, device=logmel.device)
    return stack_context(stack_subframes(mfcc), context)


def as_batch(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)) if not torch.is_tensor(audio) else audio.float()
    return x[None] if x.ndim == 1 else x
