"""The RG-LRU as an nn.Module: the gates and the decay parameter around the `workbench.ops.rglru` recurrence.

Shapes (the legend of `workbench.lm.config`): b batch, t time, r the RG-LRU width, n heads (gate blocks), g = r // n
the width of one gate block.

Follows RecurrentGemma's `RGLRU`: the recurrence gate and the input gate are block-diagonal linear maps of the
input (n independent g x g blocks, with biases), and `a_param` stores -Lambda, so the base decay is
a = sigmoid(Lambda) = exp(-softplus(a_param)). The recurrence itself is never re-implemented here: `forward`
calls `workbench.ops.rglru` (the fused op once it lands) and `step` calls `workbench.ops.rglru_step`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from workbench.ops.rglru import rglru, rglru_step


class BlockDiagonalLinear(nn.Module):
    """y = x W + b with W block-diagonal: n blocks of (g, g). Cheaper than a dense gate and what Griffin uses."""

    def __init__(self, width: int, num_blocks: int, w_init_variance_scale: float = 1.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        if width % num_blocks:
            raise ValueError(f"width {width} is not divisible by the number of heads {num_blocks}")
        self.width, self.num_blocks, self.block_width = width, num_blocks, width // num_blocks
        self.w_init_variance_scale = w_init_variance_scale
        self.w = nn.Parameter(torch.empty(num_blocks, self.block_width, self.block_width, device=device, dtype=dtype))
        self.b = nn.Parameter(torch.empty(num_blocks, self.block_width, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # variance scaling over the fan-in of one block, as in RecurrentGemma
        nn.init.normal_(self.w, std=math.sqrt(self.w_init_variance_scale / self.block_width))
        nn.init.zeros_(self.b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., d)
        x = x.unflatten(-1, (self.num_blocks, self.block_width))
        y = torch.einsum("...hi,hij->...hj", x, self.w)
        return (y + self.b.to(y.dtype)).flatten(-2)  # under bf16 autocast the fp32 bias must not promote y


def rnn_param_init(a_param: torch.Tensor, min_rad: float = 0.9, max_rad: float = 0.999, eps: float = 1e-8) -> None:
    """RecurrentGemma's `rnn_param_init`: sample a^2 uniformly in [min_rad^2, max_rad^2] (uniform on the ring
    area of the complex-plane annulus, the LRU paper's recipe) and store a_param = softplus^-1(-log a), so that
    a = sigmoid(Lambda) = exp(-softplus(a_param)) lies in [min_rad, max_rad]."""
    with torch.no_grad():
        unif = torch.rand(a_param.shape, dtype=torch.float64, device=a_param.device)
        log_a = 0.5 * torch.log(unif * (max_rad**2 - min_rad**2) + min_rad**2 + eps)
        a_param.copy_(torch.log(torch.expm1(-log_a)))  # softplus^-1(y) = log(exp(y) - 1)


class RGLRU(nn.Module):
    """Real-Gated Linear Recurrent Unit (Griffin, De et al. 2024) with block-diagonal gates."""

    def __init__(self, width: int, num_heads: int, w_init_variance_scale: float = 1.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        if width % num_heads:
            raise ValueError(f"RG-LRU width {width} is not divisible by num_heads {num_heads}")
        self.width, self.num_heads = width, num_heads
        self.a_param = nn.Parameter(torch.empty(width, device=device, dtype=dtype))
        self.input_gate = BlockDiagonalLinear(width, num_heads, w_init_variance_scale, device=device, dtype=dtype)
        self.a_gate = BlockDiagonalLinear(width, num_heads, w_init_variance_scale, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.input_gate.reset_parameters()
        self.a_gate.reset_parameters()
        if self.a_param.device.type != "meta":
            rnn_param_init(self.a_param)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, resets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (b, t, d); h0: (b, d) or None; resets: (b, t) bool or None -> y (b, t, d), h_last (b, d) fp32."""
        return rglru(x, self.a_gate(x), self.input_gate(x), self.a_param, h0=h0, resets=resets)

    def step(self, x: torch.Tensor, h: torch.Tensor | None, reset: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token. x: (b, d); h: (b, d) or None; reset: (b,) bool or None -> y (b, d), h_new (b, d) fp32."""
        return rglru_step(x, self.a_gate(x), self.input_gate(x), self.a_param, h=h, reset=reset)
