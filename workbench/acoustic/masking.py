"""SoundStorm's training mask, as pure functions (no model, no data loading): the part the open
reimplementations got wrong, so every rule below has a test in tests/test_acoustic_masking.py.

For each item of a batch of codes (b, q, t):

1. prompt boundary `prompt` ~ U{min_prompt .. t-1}: frames before it keep every level (the acoustic prompt);
2. level `level` ~ U{0 .. q-1} (or, with `level0_share`, level 0 with that probability and U{1 .. q-1}
   otherwise: the coarse level, which carries the words, gets more of the training signal);
3. u ~ U[0, pi/2), p = cos(u): round(p * n) of the n non-prompt frames (at least 1) are masked at `level`,
   chosen uniformly at random;
4. every non-prompt frame is masked at all levels finer than `level`; coarser levels are kept everywhere;
5. the loss is taken on the masked `level` tokens only (`loss_mask`).

`min_prompt` lets the data put a prompt from elsewhere in the recording in front of a crop (as at inference,
where a 3 s prompt precedes each window): those frames must stay in the unmasked prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class TrainingMask:
    inputs: torch.Tensor  # (b, q, t) codes with `mask_id` where masked: what the model reads
    loss_mask: torch.Tensor  # (b, t) bool: masked frames of the chosen level, where the loss is taken
    level: torch.Tensor  # (b,) the level trained in each item
    prompt: torch.Tensor  # (b,) frames [0, prompt) are the unmasked prompt
    mask_ratio: torch.Tensor  # (b,) p = cos(u)


def cosine_ratio(u: torch.Tensor) -> torch.Tensor:
    """MaskGIT's cosine schedule: the fraction masked for u in [0, 1) (0 -> all masked, 1 -> none)."""
    return torch.cos(u * math.pi / 2)


def random_subset(candidates: torch.Tensor, count: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(b, t) bool: `count[i]` positions chosen uniformly among the True positions of `candidates[i]`."""
    scores = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    scores = scores.masked_fill(~candidates, 2.0)  # never chosen before every candidate is
    rank = scores.argsort(1).argsort(1)
    return (rank < count[:, None]) & candidates


def training_mask(codes: torch.Tensor, mask_id: int, generator: torch.Generator | None = None,
                  min_prompt: torch.Tensor | int = 0, level: int | None = None, ratio: float | None = None,
                  level0_share: float | None = None) -> TrainingMask:
    """The mask for a batch of codes (b, q, t); `level` and `ratio` fix what is otherwise drawn (for measuring
    one level at one masking ratio); `level0_share` (None: uniform, SoundStorm's) is the probability an item
    trains level 0."""
    b, q, t = codes.shape
    device = codes.device
    min_prompt = torch.as_tensor(min_prompt, device=device).expand(b).long()
    if int(min_prompt.max()) >= t:
        raise ValueError(f"min_prompt {int(min_prompt.max())} leaves no frame to mask in {t} frames")
    drawn = torch.randint(0, q, (b,), generator=generator, device=device)
    if level0_share is not None and q > 1:  # drawn after the uniform draw, so None draws exactly as before
        coarse = torch.rand(b, generator=generator, device=device) < level0_share
        drawn = torch.where(coarse, 0, torch.randint(1, q, (b,), generator=generator, device=device))
    level = drawn if level is None else torch.full_like(drawn, level)
    span = t - min_prompt  # prompt ~ U{min_prompt .. t-1}
    prompt = min_prompt + (torch.rand(b, generator=generator, device=device) * span).long().clamp(max=span - 1)
    drawn = cosine_ratio(torch.rand(b, generator=generator, device=device))
    ratio = drawn if ratio is None else torch.full_like(drawn, ratio)
    frames = torch.arange(t, device=device)
    open_ = frames[None] >= prompt[:, None]  # (b, t) non-prompt frames
    count = (ratio * (t - prompt)).round().long().clamp(min=1)
    loss_mask = random_subset(open_, count, generator)

    levels = torch.arange(q, device=device)[None, :, None]  # (1, q, 1)
    at_level = (levels == level[:, None, None]) & loss_mask[:, None]  # (b, q, t)
    finer = (levels > level[:, None, None]) & open_[:, None]
    inputs = codes.masked_fill(at_level | finer, mask_id)
    return TrainingMask(inputs, loss_mask, level, prompt, ratio)
