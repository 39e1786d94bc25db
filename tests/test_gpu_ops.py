"""The RG-LRU kernels on long sequences (up to T = 1M), against the exact answer -- what tests/test_ops.py does
not cover: there the float64 oracle is the reference's plain Python loop, fine for thousands of steps, far too
slow for a million, and its 1M CUDA check is finiteness only.

The oracle here is the same recurrence (the reference's own `gates()`, in float64, so the same definition and
the same bounded sqrt derivative) run as a chunked scan: a loop over the positions of a chunk for all chunks at
once, then a loop carrying the state from chunk to chunk, then the fix-up h_t += (prod of a within the chunk up
to t) * carry. About 2 sqrt(T) vectorised steps, differentiable, so every gradient is checked as well:
y, h_T and d x, d gate_a, d gate_x, d a_param, d h0, with a start state h0 and resets.

The oracle is validated against the plain reference (short T), and the CPU kernel is held to it at long T on
any machine (the 1M CPU case is `slow`); the CUDA cases are marked `gpu` (`make test-gpu`).

Tolerances, relative to each tensor's largest magnitude: fp32 inputs 1e-4 (test_ops.py holds T <= 4099 to
1e-5; over segments of thousands of steps with a within 1e-7 of 1 the fp32 sums of the backward pass drift
further: the CPU kernel's largest errors, on d x, were 1.6e-5 at T = 20k and 2.3e-5 at T = 1M on the
development machine); bf16 inputs 1e-2 (input/output rounding, 3.4e-3 measured; the state stays fp32).
"""

from __future__ import annotations

import pytest
import torch

from workbench.ops import rglru
from workbench.ops.reference import gates, rglru_reference

ARG_NAMES = ("x", "gate_a", "gate_x", "a_param", "h0")


def long_inputs(b: int, t: int, d: int, dtype: torch.dtype, device: str, reset_rate: float = 1e-3, seed: int = 0):
    """As test_ops.make_inputs (gates ~ N(0, 2), a_param from -18, a within 1e-7 of 1, to 5), with h0 and
    resets at `reset_rate` per step, so a near-1 channel carries state over ~1/reset_rate steps."""
    g = torch.Generator().manual_seed(seed)
    x, gate_a, gate_x = (torch.randn(b, t, d, generator=g) * s for s in (1.0, 2.0, 2.0))
    a_param = torch.linspace(-18.0, 5.0, d)[torch.randperm(d, generator=g)]
    h0 = torch.randn(b, d, generator=g)
    resets = torch.rand(b, t, generator=g) < reset_rate
    resets[:, t // 2:t // 2 + 3] = True  # a few adjacent resets
    return [v.to(device) for v in (x.to(dtype), gate_a.to(dtype), gate_x.to(dtype), a_param, h0, resets)]


def chunked_scan(a: torch.Tensor, u: torch.Tensor, h0: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = a_t h_{t-1} + u_t, h_{-1} = h0 (a, u: (b, t, d); t a multiple of `chunk`)."""
    b, t, d = a.shape
    n = t // chunk
    A, U = a.reshape(b, n, chunk, d), u.reshape(b, n, chunk, d)
    h = torch.zeros(b, n, d, dtype=a.dtype, device=a.device)
    p = torch.ones(b, n, d, dtype=a.dtype, device=a.device)
    hs, ps = [], []
    # unbind, not A[:, :, j]: indexing's backward would allocate a gradient of A's full size per step
    for a_j, u_j in zip(A.unbind(2), U.unbind(2)):  # every chunk from a zero state; the running product of a
        h = a_j * h + u_j
        p = p * a_j
        hs.append(h)
        ps.append(p)
    H, P = torch.stack(hs, 2), torch.stack(ps, 2)
    carry, carries = h0, []
    for h_end, p_end in zip(hs[-1].unbind(1), ps[-1].unbind(1)):  # the state entering each chunk
        carries.append(carry)
        carry = h_end + p_end * carry
    y = H + P * torch.stack(carries, 1)[:, :, None]
    return y.reshape(b, t, d), carry


def oracle(x, gate_a, gate_x, a_param, h0, resets, chunk: int):
    """The RG-LRU in float64 (y, h_T), differentiable."""
    a, scale = gates(gate_a, gate_x, a_param, resets[..., None])
    return chunked_scan(a, scale * x, h0, chunk)


def grads_of(fn, inputs: list, **kwargs) -> tuple[list, list]:
    leaves = [v.detach().clone().requires_grad_(True) if v.is_floating_point() else v for v in inputs]
    y, h = fn(*leaves, **kwargs)
    g = torch.Generator().manual_seed(1)
    wy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.device)
    wh = torch.randn(h.shape, generator=g, dtype=torch.float64).to(h.device)
    ((y.double() * wy).sum() + (h.double() * wh).sum()).backward()
    return [y.detach(), h.detach()], [leaf.grad for leaf in leaves[:5]]


def check_long(backend: str, device: str, t: int, dtype: torch.dtype, tol: float, d: int = 32) -> None:
    chunk = 2 ** (t.bit_length() // 2)  # ~ sqrt(t): both loops of the oracle about as long
    assert t % chunk == 0, "use a power of two for t"
    inputs = long_inputs(1, t, d, dtype, device)
    outs, grads = grads_of(rglru, inputs, backend=backend)
    assert outs[0].dtype == dtype and outs[1].dtype == torch.float32
    exact = [v.double() if v.is_floating_point() else v for v in inputs]
    ref_outs, ref_grads = grads_of(oracle, exact, chunk=chunk)
    for name, got, want in zip(("y", "h_T", *(f"d {n}" for n in ARG_NAMES)), outs + grads, ref_outs + ref_grads):
        scale = want.abs().max().item() or 1.0
        error = (got.double() - want).abs().max().item()
        assert error <= tol * scale, f"{name}: max error {error:.3g} > {tol} x {scale:.3g} (T={t}, {dtype})"


def test_chunked_oracle_is_the_reference():
    """The oracle against the reference's plain loop (float64, forward and all gradients), T not a power of
    the chunk, h0 and resets included."""
    inputs = [v.double() if v.is_floating_point() else v for v in long_inputs(2, 600, 7, torch.float64, "cpu",
                                                                             reset_rate=0.02)]
    o_outs, o_grads = grads_of(oracle, inputs, chunk=40)
    r_outs, r_grads = grads_of(rglru_reference, inputs)
    for got, want in zip(o_outs + o_grads, r_outs + r_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


FP32_LONG_TOL, BF16_TOL = 1e-4, 1e-2
MILLION = 2**20


@pytest.mark.parametrize("dtype,tol", [(torch.float32, FP32_LONG_TOL), (torch.bfloat16, BF16_TOL)],
                         ids=["fp32", "bf16"])
def test_cpu_kernel_long_sequence(dtype: torch.dtype, tol: float):
    check_long("cpu", "cpu", 2**16, dtype, tol)


@pytest.mark.slow
@pytest.mark.parametrize("dtype,tol", [(torch.float32, FP32_LONG_TOL), (torch.bfloat16, BF16_TOL)],
                         ids=["fp32", "bf16"])
def test_cpu_kernel_one_million_steps(dtype: torch.dtype, tol: float):
    check_long("cpu", "cpu", MILLION, dtype, tol)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("t", [2**16, MILLION], ids=["T65k", "T1M"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, FP32_LONG_TOL), (torch.bfloat16, BF16_TOL)],
                         ids=["fp32", "bf16"])
def test_cuda_kernel_long_sequence(t: int, dtype: torch.dtype, tol: float):
    check_long("cuda", "cuda", t, dtype, tol, d=64)
