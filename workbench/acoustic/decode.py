"""SoundStorm's iterative decoding, level by level, coarse to fine (pure: the model is any function
``logits_fn(semantic, codes, level, pad) -> (b, t, k)``, so the tests drive it with a fake that records what it
was shown).

    known frames (prompt, overlap with the previous window): every level given, never changed
    level 0:  n_0 iterations (default 16), MaskGIT-style:
              all unknown frames start masked; each iteration predicts every masked frame, samples a token
              (temperature; the last iteration of a level is greedy), scores it by its probability, and keeps
              the most confident so that cos(pi/2 * (i+1)/n) of the level's frames stay masked; the least
              confident are re-masked for the next iteration. Tokens once kept are never re-masked.
    level q>0: one greedy pass (default), reading the decoded coarser levels; finer levels are still masked.
    guidance w != 1 (classifier-free guidance on the prompt): every pass also runs blind -- the known frames (the
              prompt and the overlap) masked at every level, the window's decoded tokens kept -- and decodes from
              blind + w * (seen - blind): what knowing the speaker adds, scaled. The blind input needs no
              training of its own: SoundStorm's training mask draws prefixes of any length, none included.

While level q is decoded, every unknown frame of every level finer than q is the mask token: the model never
reads a finer level before it is decoded (the tests check this on every call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

LogitsFn = Callable[[torch.Tensor, torch.Tensor, int, "torch.Tensor | None"], torch.Tensor]


@dataclass
class DecodeTrace:
    """What each forward pass fixed, for the notebook's picture: per pass, its level and iteration and the number
    of levels decided at every frame afterwards (b, t)."""

    passes: list[tuple[int, int]] = field(default_factory=list)
    levels_fixed: list[torch.Tensor] = field(default_factory=list)


def masked_count_after(total: torch.Tensor, iteration: int, iterations: int) -> torch.Tensor:
    """How many of a level's `total` frames stay masked after `iteration` (0-based) of `iterations`: the cosine
    schedule, reaching 0 at the last iteration."""
    return torch.floor(total.double() * math.cos(math.pi / 2 * (iteration + 1) / iterations)).long()


def guided_logits(logits_fn: LogitsFn, semantic: torch.Tensor, codes: torch.Tensor, level: int,
                  pad: torch.Tensor | None, known: torch.Tensor, mask_id: int, guidance: float) -> torch.Tensor:
    """The model's logits (b, t, k) at `level`; for guidance != 1, blind + guidance * (seen - blind), where the
    blind input hides the `known` frames at every level (one batched call of 2b rows)."""
    if guidance == 1.0:
        return logits_fn(semantic, codes, level, pad).float()
    blind = codes.masked_fill(known[:, None], mask_id)
    both = logits_fn(torch.cat([semantic, semantic]), torch.cat([codes, blind]), level,
                     None if pad is None else torch.cat([pad, pad])).float()
    seen, unseen = both.chunk(2)
    return unseen + guidance * (seen - unseen)


@torch.no_grad()
def decode_levels(logits_fn: LogitsFn, semantic: torch.Tensor, codes: torch.Tensor, known: torch.Tensor,
                  iterations: Sequence[int], mask_id: int, temperature: float = 1.0,
                  generator: torch.Generator | None = None, pad: torch.Tensor | None = None,
                  trace: DecodeTrace | None = None, guidance: float = 1.0) -> torch.Tensor:
    """Fill every unknown frame of every level. semantic (b, t); codes (b, q, t), read only at `known` frames;
    known (b, t) bool; iterations: passes per level (len q); pad (b, t) bool (True = no frame); guidance: the
    prompt's weight (1 = plain decoding, one forward per pass; otherwise two, batched). Returns (b, q, t);
    padded frames hold `mask_id`."""
    b, q, t = codes.shape
    if len(iterations) != q or min(iterations) < 1:
        raise ValueError(f"need a positive number of iterations for each of the {q} levels, got {list(iterations)}")
    valid = torch.ones(b, t, dtype=torch.bool, device=codes.device) if pad is None else ~pad
    known = known & valid
    todo = valid & ~known  # (b, t) frames to generate
    out = torch.where(known[:, None], codes, torch.full_like(codes, mask_id))
    total = todo.sum(1)
    for level, n in enumerate(iterations):
        for i in range(n):
            masked = todo & (out[:, level] == mask_id)
            if not masked.any():
                break
            logits = guided_logits(logits_fn, semantic, out, level, pad, known, mask_id, guidance)  # (b, t, k)
            probs = torch.softmax(logits, -1)
            last = i == n - 1
            if last or temperature <= 0:
                sampled = probs.argmax(-1)
            else:
                scaled = torch.softmax(logits / temperature, -1)
                sampled = torch.multinomial(scaled.flatten(0, 1), 1, generator=generator).view(b, t)
            confidence = probs.gather(-1, sampled[..., None])[..., 0]
            stay = masked_count_after(total, i, n) if not last else torch.zeros_like(total)
            stay = torch.minimum(stay, masked.sum(1) - 1).clamp(min=0)  # every pass fixes at least one frame
            confidence = confidence.masked_fill(~masked, math.inf)  # only masked frames may stay masked
            rank = confidence.argsort(1).argsort(1)
            remask = masked & (rank < stay[:, None])
            fix = masked & ~remask
            out[:, level] = torch.where(fix, sampled, out[:, level])
            if trace is not None:
                trace.passes.append((level, i))
                trace.levels_fixed.append((out != mask_id).sum(1).cpu())
    return out
