"""Code audio of any length in chunks, with memory bounded by the chunk size, identical to coding it whole.

Overlap-discard: each chunk of frames is run together with enough neighbouring context that every output
the chunk keeps has seen exactly what it would see in one pass over the whole signal (`Codec.context_frames`
bounds the reach of the convolutions). There is no seam to hide: kept outputs equal the whole-signal ones up to
float rounding. A causal codec needs left context only, so it can run as a stream with a fixed delay of one
chunk; a non-causal one also reads `context` frames ahead.

Only the network's activations are chunked; the waveform (61 MB for 16 minutes at 16 kHz) and the codes are
held whole.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.codec.model import Codec
from workbench.core.audio import gain_to_level, speech_level_db


def level_gain(codec: Codec, wav: np.ndarray | torch.Tensor) -> float:
    """The factor `encode_long` scales `wav` by so that its speech sits at the level the codec learned
    (`ModelConfig.input_level_db`): 1 for a codec without one, or silence. Dividing the decoded audio by it gives
    back the input's own level (`reconstruct`); one number per signal, sent beside the codes (`codec encode`)."""
    target = codec.cfg.input_level_db
    level = None if target is None else speech_level_db(np.asarray(wav, dtype=np.float32), codec.cfg.sample_rate)
    return gain_to_level(level, target)


def _context(codec: Codec, which: int) -> tuple[int, int]:
    reach = codec.context_frames()[which]
    return reach, 0 if codec.cfg.causal else reach


def _chunk_frames(codec: Codec, chunk_seconds: float) -> int:
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    return max(1, int(round(chunk_seconds * codec.cfg.frame_rate)))


@torch.inference_mode()
def encode_long(codec: Codec, wav: np.ndarray | torch.Tensor, n_q: int | None = None,
                chunk_seconds: float = 10.0) -> torch.Tensor:
    """Mono waveform (T,) -> codes (n_q, ceil(T / hop)) as int64, on the CPU; the waveform is first scaled by
    `level_gain` (the codes describe it at the codec's level)."""
    device = next(codec.parameters()).device
    wav = torch.as_tensor(np.asarray(wav, dtype=np.float32) if not torch.is_tensor(wav) else wav).float()
    if wav.dim() != 1 or wav.numel() == 0:
        raise ValueError(f"expected a non-empty mono waveform (T,), got shape {tuple(wav.shape)}")
    wav = wav * level_gain(codec, wav.cpu().numpy())
    hop = codec.hop
    wav = codec.pad(wav)
    frames = wav.numel() // hop
    left, right = _context(codec, 0)
    step = _chunk_frames(codec, chunk_seconds)
    out = []
    for f0 in range(0, frames, step):
        f1 = min(frames, f0 + step)
        a, b = max(0, f0 - left), min(frames, f1 + right)
        codes = codec.encode(wav[a * hop: b * hop][None].to(device), n_q)[:, 0]
        out.append(codes[:, f0 - a: f1 - a].cpu())
    return torch.cat(out, 1)


@torch.inference_mode()
def decode_long(codec: Codec, codes: torch.Tensor | np.ndarray, chunk_seconds: float = 10.0) -> torch.Tensor:
    """Codes (n_q, F) -> waveform (F * hop,) float32 on the CPU."""
    device = next(codec.parameters()).device
    codes = torch.as_tensor(np.asarray(codes) if not torch.is_tensor(codes) else codes).long()
    if codes.dim() != 2 or codes.shape[1] == 0:
        raise ValueError(f"expected codes of shape (n_q, frames) with frames > 0, got {tuple(codes.shape)}")
    if int(codes.min()) < 0 or int(codes.max()) >= codec.cfg.codebook_size:
        raise ValueError(f"codes must lie in 0..{codec.cfg.codebook_size - 1}; "
                         f"got {int(codes.min())}..{int(codes.max())}")
    hop, frames = codec.hop, codes.shape[1]
    left, right = _context(codec, 1)
    step = _chunk_frames(codec, chunk_seconds)
    out = []
    for f0 in range(0, frames, step):
        f1 = min(frames, f0 + step)
        a, b = max(0, f0 - left), min(frames, f1 + right)
        wav = codec.decode(codes[:, None, a:b].to(device))[0]
        out.append(wav[(f0 - a) * hop: (f1 - a) * hop].float().cpu())
    return torch.cat(out)


def reconstruct(codec: Codec, wav: np.ndarray, n_q: int | None = None, chunk_seconds: float = 10.0) -> np.ndarray:
    """Encode then decode at `n_q` levels; the result has the input's length and level."""
    out = decode_long(codec, encode_long(codec, wav, n_q, chunk_seconds), chunk_seconds)
    return out[: len(wav)].numpy() / level_gain(codec, wav)
