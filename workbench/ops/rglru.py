"""`rglru` and `rglru_step`: the RG-LRU behind one autograd interface, whatever backend runs it.

Shapes: b batch, t time, d channels. The native backends (kernels/) share one contract:

    forward(x, gate_a, gate_x, a_param, h0, resets) -> y (b, t, d), h_last (b, d) fp32, checkpoints
    backward(dy, dh_last, x, gate_a, gate_x, a_param, resets, checkpoints)
        -> dx, d_gate_a, d_gate_x, d_a_param (d,) fp32, dh0 (b, d) fp32

where `checkpoints` (b, ceil(t / 16), d) fp32 is the state entering every 16th step: the backward recomputes
the gates and the states in between instead of storing them (the op is memory-bound, see kernels/README.md).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch.autograd.function import once_differentiable

from workbench.ops.build import resolve_backend
from workbench.ops.reference import rglru_reference, rglru_step_reference


class _RGLRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ext: ModuleType, x: torch.Tensor, gate_a: torch.Tensor, gate_x: torch.Tensor,
                a_param: torch.Tensor, h0: torch.Tensor | None, resets: torch.Tensor | None):
        x, gate_a, gate_x = x.contiguous(), gate_a.contiguous(), gate_x.contiguous()
        resets = None if resets is None else resets.contiguous()
        y, h_last, checkpoints = ext.forward(x, gate_a, gate_x, a_param, h0, resets)
        ctx.ext = ext
        ctx.h0_dtype = None if h0 is None else h0.dtype
        ctx.save_for_backward(x, gate_a, gate_x, a_param, resets, checkpoints)
        return y, h_last

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor, dh_last: torch.Tensor):
        x, gate_a, gate_x, a_param, resets, checkpoints = ctx.saved_tensors
        dx, d_gate_a, d_gate_x, d_a_param, dh0 = ctx.ext.backward(
            dy.to(x.dtype).contiguous(), dh_last.contiguous(), x, gate_a, gate_x, a_param, resets, checkpoints)
        dh0 = None if ctx.h0_dtype is None else dh0.to(ctx.h0_dtype)
        return None, dx, d_gate_a, d_gate_x, d_a_param.to(a_param.dtype), dh0, None


def rglru(x: torch.Tensor, gate_a: torch.Tensor, gate_x: torch.Tensor, a_param: torch.Tensor,
          h0: torch.Tensor | None = None, resets: torch.Tensor | None = None, *, backend: str | None = None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The RG-LRU over a sequence (definition: `reference.py`).

    x, gate_a, gate_x: (b, t, d), one floating dtype; a_param: (d,) (= -Lambda); h0: (b, d) or None (zeros);
    resets: (b, t) bool or None. Returns y (b, t, d) in x's dtype and h_last (b, d) in fp32 (fp64 for fp64).
    `backend` ("auto", "cuda", "cpu", "reference") overrides $WORKBENCH_RGLRU_BACKEND for this call.
    """
    check_inputs(x, gate_a, gate_x, a_param, h0, resets, time_axis=True)
    _, ext = resolve_backend(x.device, x.dtype, backend)
    if ext is None:
        return rglru_reference(x, gate_a, gate_x, a_param, h0, resets)
    return _RGLRUScan.apply(ext, x, gate_a, gate_x, a_param, h0, resets)


def rglru_step(x: torch.Tensor, gate_a: torch.Tensor, gate_x: torch.Tensor, a_param: torch.Tensor,
               h: torch.Tensor | None = None, reset: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step (t = 1): x, gate_a, gate_x (b, d); a_param (d,); h (b, d) or None; reset (b,) bool
    or None. Returns (y in x's dtype, new state in fp32). A handful of elementwise ops on (b, d): the same
    `gates()` as the reference, no kernel needed."""
    check_inputs(x, gate_a, gate_x, a_param, h, reset, time_axis=False)
    return rglru_step_reference(x, gate_a, gate_x, a_param, h, reset)


def check_inputs(x: torch.Tensor, gate_a: torch.Tensor, gate_x: torch.Tensor, a_param: torch.Tensor,
                 h: torch.Tensor | None, resets: torch.Tensor | None, time_axis: bool) -> None:
    """One-line ValueErrors naming the argument for wrong shapes, dtypes or devices."""
    layout = "(b, t, d)" if time_axis else "(b, d)"
    if not isinstance(x, torch.Tensor) or x.dim() != (3 if time_axis else 2):
        raise ValueError(f"rglru: x must be a {layout} tensor, got shape {_shape(x)}")
    if not x.is_floating_point():
        raise ValueError(f"rglru: x must be floating point, got {x.dtype}")
    b, d = x.shape[0], x.shape[-1]
    for name, t in (("gate_a", gate_a), ("gate_x", gate_x)):
        if not isinstance(t, torch.Tensor) or t.shape != x.shape:
            raise ValueError(f"rglru: {name} must have x's shape {tuple(x.shape)}, got {_shape(t)}")
        if t.dtype != x.dtype:
            raise ValueError(f"rglru: {name} must have x's dtype {x.dtype}, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"rglru: {name} must be on x's device {x.device}, got {t.device}")
    expected = {"a_param": (d,), "h0" if time_axis else "h": (b, d)}
    for (name, shape), t in zip(expected.items(), (a_param, h)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            raise ValueError(f"rglru: {name} must have shape {shape}, got {_shape(t)}")
        if not t.is_floating_point():
            raise ValueError(f"rglru: {name} must be floating point, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"rglru: {name} must be on x's device {x.device}, got {t.device}")
    if resets is not None:
        name, shape = ("resets", (b, x.shape[1])) if time_axis else ("reset", (b,))
        if not isinstance(resets, torch.Tensor) or tuple(resets.shape) != shape:
            raise ValueError(f"rglru: {name} must have shape {shape}, got {_shape(resets)}")
        if resets.dtype != torch.bool:
            raise ValueError(f"rglru: {name} must be a bool tensor, got {resets.dtype}")
        if resets.device != x.device:
            raise ValueError(f"rglru: {name} must be on x's device {x.device}, got {resets.device}")


def _shape(t: object) -> object:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
