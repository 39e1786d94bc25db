"""Windowed synthesis of unbounded length: semantic tokens + a speaker prompt -> codec codes -> audio.

    codec frames  0 ................................................................ T
    window 0      [prompt][=========== new ===========]
    window 1                           [prompt][ovl|=========== new ===========]
    window 2                                                    [prompt][ovl|====== new ======]

Every window is decoded (decode.py) as [prompt frames | window frames]: the prompt's codec codes and semantic
tokens (the same ~3 s for every window, so a 16-minute stream keeps one voice), then the window's semantic
tokens. Window k > 0 starts `overlap` frames before its predecessor ends; those frames' codes are already fixed
by the predecessor and are given to the model as known (every level), so the new codes continue them. The
merged code stream is therefore one continuous stream with no seam of its own, and the audio comes from
decoding that whole stream with the codec's chunked decoder (`codec.stream.decode_long`, exact): no audio
crossfade, no click.

Windows of different streams are independent and decoded as one batch (`batch_windows` at a time, padded);
windows of one stream follow each other. Memory: the model only ever sees prompt + window frames; what grows
with length is the code stream itself (levels x frames int64, 2.3 MB for 16 minutes at 6 levels) and the
waveform decode_long returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from workbench.acoustic.config import DecodeConfig
from workbench.acoustic.data import Rates, upsample_semantic
from workbench.acoustic.decode import DecodeTrace, LogitsFn, decode_levels
from workbench.core.errors import UserError


@dataclass(frozen=True)
class Span:
    start: int  # first codec frame of the window
    end: int  # one past its last frame
    fixed: int  # frames at its start whose codes come from the predecessor (the overlap)


def plan_windows(total_frames: int, window_frames: int, overlap_frames: int) -> list[Span]:
    """Windows of `window_frames` (the last may be shorter) covering [0, total_frames), each overlapping its
    predecessor by `overlap_frames`."""
    if total_frames < 1:
        raise ValueError("nothing to synthesize: the semantic stream is empty")
    if not 0 <= overlap_frames < window_frames:
        raise ValueError(f"overlap ({overlap_frames} frames) must be shorter than the window ({window_frames})")
    spans, start = [Span(0, min(window_frames, total_frames), 0)], 0
    while spans[-1].end < total_frames:
        start = spans[-1].end - overlap_frames
        spans.append(Span(start, min(start + window_frames, total_frames), overlap_frames))
    return spans


@dataclass
class Prompt:
    """A speaker prompt at the codec rate: semantic tokens repeated to frames (p,) and codes (q, p)."""

    semantic: np.ndarray
    codes: np.ndarray

    @property
    def frames(self) -> int:
        return self.codes.shape[1]


def make_prompt(semantic_tokens: np.ndarray, codes: np.ndarray, rates: Rates, prompt_frames: int) -> Prompt:
    """The first `prompt_frames` codec frames of a recording whose semantic tokens and codes are given."""
    have = min(codes.shape[1], rates.frames(len(semantic_tokens)))
    if have < prompt_frames:
        raise UserError(f"the speaker prompt is {have / rates.codec_rate:.2f} s long; "
                        f"{prompt_frames / rates.codec_rate:.2f} s are needed")
    return Prompt(upsample_semantic(semantic_tokens, rates, 0, prompt_frames), np.asarray(codes)[:, :prompt_frames])


def synthesize_codes(logits_fn: LogitsFn, streams: Sequence[np.ndarray], prompts: Sequence[Prompt], rates: Rates,
                     levels: int, mask_id: int, cfg: DecodeConfig, generator: torch.Generator | None = None,
                     trace: DecodeTrace | None = None, device: str | torch.device = "cpu",
                     progress: bool = False) -> list[np.ndarray]:
    """Codes (q, frames) for each semantic token stream (s,), in the voice of its prompt. `trace`, if given,
    records the passes of the first batch of windows (for the notebook's picture); `progress` shows a bar of
    windows on stderr."""
    from tqdm.auto import tqdm

    if len(streams) != len(prompts):
        raise ValueError(f"{len(streams)} semantic streams but {len(prompts)} prompts")
    window = rates.seconds_to_frames(cfg.window_seconds)
    overlap = int(round(cfg.overlap_seconds * rates.codec_rate))
    plans = [plan_windows(rates.frames(len(s)), window, overlap) for s in streams]
    outs = [np.full((levels, plan[-1].end), mask_id, dtype=np.int64) for plan in plans]
    iterations = cfg.iterations(levels)
    first = True
    bar = tqdm(total=sum(len(p) for p in plans), desc="synthesizing", unit="window", disable=not progress)
    for k in range(max(len(p) for p in plans)):  # window k of a stream needs its window k - 1 done
        ready = [(i, k) for i in range(len(plans)) if k < len(plans[i])]
        for g in range(0, len(ready), cfg.batch_windows):
            _decode_group(logits_fn, ready[g: g + cfg.batch_windows], streams, prompts, plans, outs, rates, levels,
                          mask_id, iterations, cfg, generator, trace if first else None, device)
            first = False
            bar.update(len(ready[g: g + cfg.batch_windows]))
    bar.close()
    return outs


def _decode_group(logits_fn, group, streams, prompts, plans, outs, rates, levels, mask_id, iterations, cfg, generator,
                  trace, device) -> None:
    rows = []
    for i, k in group:
        span, prompt = plans[i][k], prompts[i]
        n = span.end - span.start
        semantic = np.concatenate([prompt.semantic, upsample_semantic(streams[i], rates, span.start, n)])
        codes = np.concatenate([prompt.codes[:levels], outs[i][:, span.start: span.end]], axis=1)
        known = np.zeros(prompt.frames + n, dtype=bool)
        known[: prompt.frames + span.fixed] = True
        rows.append((semantic, codes, known))
    t = max(len(r[0]) for r in rows)
    semantic = torch.zeros(len(rows), t, dtype=torch.long)
    codes = torch.full((len(rows), levels, t), mask_id, dtype=torch.long)
    known = torch.zeros(len(rows), t, dtype=torch.bool)
    pad = torch.ones(len(rows), t, dtype=torch.bool)
    for j, (s, c, kn) in enumerate(rows):
        semantic[j, : len(s)], codes[j, :, : len(s)] = torch.from_numpy(s), torch.from_numpy(c)
        known[j, : len(s)], pad[j, : len(s)] = torch.from_numpy(kn), False
    out = decode_levels(logits_fn, semantic.to(device), codes.to(device), known.to(device), iterations, mask_id,
                        cfg.temperature, generator, pad.to(device) if pad.any() else None, trace,
                        cfg.guidance).cpu().numpy()
    for j, (i, k) in enumerate(group):
        span, p = plans[i][k], prompts[i].frames
        outs[i][:, span.start + span.fixed: span.end] = out[j, :, p + span.fixed: p + span.end - span.start]
