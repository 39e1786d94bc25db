"""The RG-LRU recurrence, written to be read: the definition every backend is tested against.

Shapes: b batch, t time, d channels. Griffin's Real-Gated Linear Recurrent Unit (De et al. 2024):

    r_t = sigmoid(gate_a_t)                      recurrence gate
    i_t = sigmoid(gate_x_t)                      input gate
    log a_t = -c * r_t * softplus(a_param)       a_param = -Lambda, so a_t = sigmoid(Lambda) ** (c * r_t)
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)
    y_t = h_t

with c = 8. At a reset (the first position of a new segment in a packed batch) the previous state is dropped
and the input is not rescaled: h_t = i_t * x_t, as in RecurrentGemma. The state is kept in float32 whatever
the input dtype. sqrt(1 - a^2) has an unbounded derivative as a -> 1; like the reference implementation we
bound that derivative (at MAX_SQRT_GRADIENT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

C = 8.0
MAX_SQRT_GRADIENT = 1000.0


class SqrtBoundDerivative(torch.autograd.Function):
    """sqrt(x) whose derivative 1 / (2 sqrt(x)) is clipped at MAX_SQRT_GRADIENT."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.sqrt(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad / torch.sqrt(torch.clamp(4.0 * x, min=MAX_SQRT_GRADIENT**-2))


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The recurrence runs in at least fp32 (fp64 stays fp64, for gradcheck)."""
    return torch.promote_types(dtype, torch.float32)


def gates(gate_a: torch.Tensor, gate_x: torch.Tensor, a_param: torch.Tensor,
          reset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step decay `a` and input scale `i * sqrt(1 - a^2)` (fp32). `reset` (bool, broadcastable) zeroes
    the decay and sets the multiplier to 1 where true."""
    dtype = state_dtype(gate_a.dtype)
    gate_a, gate_x, a_param = gate_a.to(dtype), gate_x.to(dtype), a_param.to(dtype)
    log_a = -C * torch.sigmoid(gate_a) * F.softplus(a_param)
    a = torch.exp(log_a)
    multiplier = SqrtBoundDerivative.apply(-torch.expm1(2.0 * log_a))  # sqrt(1 - a^2), accurate near a = 1
    scale = torch.sigmoid(gate_x) * multiplier
    if reset is not None:
        reset = reset.to(torch.bool)
        a = torch.where(reset, torch.zeros_like(a), a)
        scale = torch.where(reset, torch.sigmoid(gate_x), scale)
    return a, scale


def rglru_step_reference(x: torch.Tensor, gate_a: torch.Tensor, gate_x: torch.Tensor, a_param: torch.Tensor,
                         h: torch.Tensor | None = None, reset: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step. x, gate_a, gate_x: (b, d); a_param: (d,); h: (b, d) fp32 or None; reset: (b,) bool or None.
    Returns (y in x's dtype, new h in the state dtype)."""
    a, scale = gates(gate_a, gate_x, a_param, None if reset is None else reset[:, None])
    h_new = scale * x.to(scale.dtype)
    if h is not None:
        h_new = h_new + a * h.to(scale.dtype)
    return h_new.to(x.dtype), h_new


def rglru_reference(x: torch.Tensor, gate_a: torch.Tensor, gate_x: torch.Tensor, a_param: torch.Tensor,
                    h0: torch.Tensor | None = None, resets: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole sequence by a plain loop. x, gate_a, gate_x: (b, t, d); a_param: (d,); h0: (b, d) or None;
    resets: (b, t) bool or None. Returns y (b, t, d) in x's dtype and h_last (b, d) in the state dtype (fp32, or fp64 for fp64 inputs)."""
    b, t, d = x.shape
    a, scale = gates(gate_a, gate_x, a_param, None if resets is None else resets[..., None])
    u = scale * x.to(scale.dtype)
    h = torch.zeros(b, d, dtype=u.dtype, device=x.device) if h0 is None else h0.to(u.dtype)
    ys = []
    for a_t, u_t in zip(a.unbind(1), u.unbind(1)):  # unbind, not a[:, step]: one (b, t, d) gradient, not t of them
        h = a_t * h + u_t
        ys.append(h)
    y = torch.stack(ys, dim=1) if t else u.new_zeros(b, 0, d)
    return y.to(x.dtype), h
