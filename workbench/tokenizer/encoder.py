"""The learned tokenizer's encoder: a residual stack of dilated 1-D convolutions over 25 Hz frames.

    x (B, T, 4M) normalised stacked log-mel --Linear--> (B, T, D)  [masked frames -> learned mask vector]
      -> L blocks: h + W2 GELU(DilatedConv_k(LayerNorm(h)))   (B, T, D), "same" zero padding
      -> head: Linear(D, K) over the last block (training only: predicts the masked frames' cluster targets)

Every operation is local in time; one output frame sees `receptive_frames` = sum(d (k-1)/2) frames on each
side (laptop: 30 frames = 1.2 s), less than half the 4 s window overlap, so windowed tokenization equals
whole-file tokenization away from window edges. LayerNorm normalises each frame by itself (no BatchNorm or
sequence statistics, which would make a frame depend on the whole window).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.tokenizer.config import TokenizerConfig


class Block(nn.Module):
    def __init__(self, d: int, kernel: int, dilation: int):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.conv = nn.Conv1d(d, d, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.out = nn.Conv1d(d, d, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, D, T)
        y = self.norm(h.transpose(1, 2)).transpose(1, 2)
        return h + self.out(F.gelu(self.conv(y)))


class Encoder(nn.Module):
    def __init__(self, config: TokenizerConfig, num_targets: int | None = None):
        super().__init__()
        d = config.d_model
        self.inp = nn.Linear(4 * config.n_mels, d)
        self.mask_emb = nn.Parameter(torch.randn(d) * 0.1)
        self.blocks = nn.ModuleList(Block(d, config.kernel, dil) for dil in config.dilations)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, num_targets or config.num_units)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, upto: int | None = None) -> list[torch.Tensor]:
        """x (B, T, 4M), mask (B, T) bool -> outputs of blocks 1..upto, each (B, T, D)."""
        h = self.inp(x)
        if mask is not None:
            h = torch.where(mask[..., None], self.mask_emb.to(h.dtype), h)
        h = h.transpose(1, 2)
        outs = []
        for block in self.blocks[:upto]:
            h = block(h)
            outs.append(h.transpose(1, 2))
        return outs

    def logits(self, last: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(last))  # (B, T, K)

    def features(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """(B, T, 4M) -> (B, T, D): the output of block `layer` (1-based), what k-means clusters."""
        return self.forward(x, upto=layer)[-1]


def span_mask(batch: int, frames: int, prob: float, span: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, T) bool HuBERT/wav2vec 2.0 masking: every frame starts a masked span of `span` frames with `prob`
    (spans may overlap); at least one span per row so every example contributes to the loss."""
    starts = torch.rand(batch, frames, generator=generator) < prob
    starts[torch.arange(batch), torch.randint(max(1, frames - span + 1), (batch,), generator=generator)] = True
    # frame t is masked if a span started in (t - span, t]
    cover = F.conv1d(starts.float()[:, None], torch.ones(1, 1, span), padding=span - 1)[:, 0, : frames]
    return cover > 0
