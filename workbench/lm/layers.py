"""The LM's own building blocks: causal depthwise Conv1D with reset masking and the gated MLP (RMSNorm, RoPE and
the initialiser are shared with other stages: `workbench.core.nn`).

Shapes follow the legend in `workbench.lm.config`. "resets" is always a (b, t) bool tensor, True at the first
token of a new recording in a packed stream: nothing computed at or after a reset may see anything before it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.nn import init_linear


def segment_ids(resets: torch.Tensor | None, b: int, t: int, device: torch.device) -> torch.Tensor:
    """(b, t) int: how many resets happened up to and including each position (0 before the first reset)."""
    if resets is None:
        return torch.zeros(b, t, dtype=torch.long, device=device)
    return torch.cumsum(resets.to(torch.long), dim=1)


class Conv1D(nn.Module):
    """Causal depthwise convolution over time (width c). Its decode state is the last c - 1 inputs, so
    `forward(x, resets, state)` on consecutive chunks equals one call on the whole sequence."""

    def __init__(self, width: int, conv_width: int = 4, device=None, dtype=None):
        super().__init__()
        self.width, self.conv_width = width, conv_width
        self.w = nn.Parameter(torch.empty(conv_width, width, device=device, dtype=dtype))  # w[-1]: current input
        self.b = nn.Parameter(torch.empty(width, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.w, std=math.sqrt(1.0 / self.conv_width))
        nn.init.zeros_(self.b)

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> torch.Tensor:
        return torch.zeros(batch, self.conv_width - 1, self.width, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, resets: torch.Tensor | None = None, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (b, t, d); state: (b, c - 1, d) previous inputs or None -> y (b, t, d), new state (b, c - 1, d)."""
        b, t, _ = x.shape
        c = self.conv_width
        prev = self.init_state(b, x.device, x.dtype) if state is None else state.to(x.dtype)
        xp = torch.cat([prev, x], dim=1)  # (b, c - 1 + t, d)
        seg = segment_ids(resets, b, t, x.device)
        seg_p = F.pad(seg, (c - 1, 0))  # the carried inputs belong to segment 0
        y = self.b.to(x.dtype).expand(b, t, -1)
        for lag in range(c):
            window = xp[:, c - 1 - lag: c - 1 - lag + t]
            if resets is not None and lag:
                window = window * (seg_p[:, c - 1 - lag: c - 1 - lag + t] == seg)[..., None].to(x.dtype)
            y = y + window * self.w[c - 1 - lag].to(x.dtype)
        new_state = xp[:, -(c - 1):].clone()  # a view would keep a whole prefill chunk's inputs alive
        if resets is not None:  # drop carried inputs from before the last reset
            new_state = new_state * (seg_p[:, -(c - 1):] == seg[:, -1:])[..., None].to(x.dtype)
        return y, new_state


class MLP(nn.Module):
    """Gated MLP: GeLU(x W_gate) * (x W_up), expansion e = 3 d, then back to d."""

    def __init__(self, width: int, expansion: int = 3, final_w_init_variance_scale: float = 1.0,
                 device=None, dtype=None):
        super().__init__()
        self.final_w_init_variance_scale = final_w_init_variance_scale
        self.ffw_up = nn.Linear(width, 2 * expansion * width, device=device, dtype=dtype)
        self.ffw_down = nn.Linear(expansion * width, width, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_linear(self.ffw_up)
        init_linear(self.ffw_down, self.final_w_init_variance_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.ffw_up(x).chunk(2, dim=-1)
        return self.ffw_down(F.gelu(gate, approximate="tanh") * up)
