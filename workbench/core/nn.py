"""Neural building blocks used by more than one stage (the LM and SoundStorm): RMSNorm, rotary position
embeddings on half of each head's dims, and RecurrentGemma's variance-scaling initialiser.

Shapes: b batch, t time, n heads, k head dim.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def init_linear(layer: nn.Linear, variance_scale: float = 1.0) -> None:
    """Variance-scaling normal init over the fan-in (RecurrentGemma's), zero bias."""
    nn.init.normal_(layer.weight, std=math.sqrt(variance_scale / layer.in_features))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class RMSNorm(nn.Module):
    """x / rms(x) * (1 + scale), scale initialised to 0 (RecurrentGemma's parameterisation); computed in fp32."""

    def __init__(self, width: int, eps: float = 1e-6, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.zeros(width, device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (1.0 + self.scale.float())).to(x.dtype)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, max_wavelength: float = 10_000.0) -> torch.Tensor:
    """Rotary embedding on the first half of each head's dims (RecurrentGemma); the second half passes through.
    x: (b, t, n, k); positions: (b, t) int."""
    x_rope, x_pass = torch.chunk(x, 2, dim=-1)
    half = x_rope.shape[-1] // 2
    freq_exponents = 2.0 * torch.arange(half, device=x.device, dtype=torch.float32) / x_rope.shape[-1]
    inv_freq = max_wavelength ** -freq_exponents
    angles = positions[..., None, None].float() * inv_freq  # (b, t, 1, half)
    sin, cos = torch.sin(angles), torch.cos(angles)
    first, second = torch.chunk(x_rope.float(), 2, dim=-1)
    rotated = torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1).to(x.dtype)
    return torch.cat([rotated, x_pass], dim=-1)
