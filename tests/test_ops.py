"""The RG-LRU op: the reference is gradchecked, every native backend must match it (forward and all grads).

Shapes: b batch, t time, d channels. The oracle is the reference evaluated in float64 on the same inputs:
in fp32 the reference's own rounding of a ~ 1 - 1e-7 drifts by up to ~1e-4 over a few thousand steps (its
exp is biased there on some CPUs), so the kernels are held to the exact answer instead.
Tolerance relative to each tensor's largest magnitude: 1e-5 for fp32 inputs, 1e-2 for bf16/fp16 inputs (the
kernels keep an fp32 state, so they differ from the exact answer by input/output roundings only).
"""

from __future__ import annotations

import pytest
import torch

from workbench.ops import build, rglru, rglru_step
from workbench.ops.reference import gates, rglru_reference, rglru_step_reference

FP32_TOL = 1e-5
BF16_TOL = 1e-2
ARG_NAMES = ("x", "gate_a", "gate_x", "a_param", "h0")


def make_inputs(b: int, t: int, d: int, dtype: torch.dtype = torch.float32, h0: bool = True,
                resets: bool = False, device: str = "cpu", seed: int = 0) -> list:
    """Gates ~ N(0, 2); a_param spans -18 (a within 1e-7 of 1: the bounded-sqrt regime) to 5 (fast decay)."""
    g = torch.Generator().manual_seed(seed)
    x, gate_a, gate_x = (torch.randn(b, t, d, generator=g) * s for s in (1.0, 2.0, 2.0))
    a_param = torch.linspace(-18.0, 5.0, d)[torch.randperm(d, generator=g)]
    state = torch.randn(b, d, generator=g) if h0 else None
    reset = (torch.rand(b, t, generator=g) < 0.1) if resets else None
    out = [x.to(dtype), gate_a.to(dtype), gate_x.to(dtype), a_param, state, reset]
    return [None if v is None else v.to(device) for v in out]


def run_with_grads(fn, inputs: list, seed: int = 1, **kwargs) -> tuple[list, list]:
    """(outputs [y, h_last], grads of the five differentiable inputs) for a random linear loss of both outputs."""
    leaves = [v.detach().clone().requires_grad_(True) if v is not None and v.is_floating_point() else v
              for v in inputs]
    y, h_last = fn(*leaves, **kwargs)
    g = torch.Generator().manual_seed(seed)
    wy, wh = torch.randn(y.shape, generator=g).to(h_last), torch.randn(h_last.shape, generator=g).to(h_last)
    ((y.to(wy.dtype) * wy).sum() + (h_last * wh).sum()).backward()
    return [y, h_last], [None if v is None else v.grad for v in leaves[:5]]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    assert actual.shape == expected.shape, what
    scale = expected.detach().double().abs().max().item() or 1.0
    torch.testing.assert_close(actual.detach().double(), expected.detach().double(), rtol=tol, atol=tol * scale,
                               msg=lambda m: f"{what}: {m}")


def fp64(inputs: list) -> list:
    return [v.double() if v is not None and v.is_floating_point() else v for v in inputs]


def compare_to_reference(inputs: list, backend: str, tol: float) -> None:
    outs, grads = run_with_grads(rglru, inputs, backend=backend)
    assert outs[0].dtype == inputs[0].dtype and outs[1].dtype == torch.float32
    ref_outs, ref_grads = run_with_grads(rglru_reference, fp64(inputs))
    for name, a, e in zip(("y", "h_last"), outs, ref_outs):
        assert_close(a, e, tol, name)
    for name, a, e in zip(ARG_NAMES, grads, ref_grads):
        if e is not None:
            assert_close(a, e, tol, f"d {name}")


# ---------------------------------------------------------------- the reference

def test_reference_gradcheck_fp64() -> None:
    x, gate_a, gate_x, a_param, h0, resets = make_inputs(2, 9, 5, torch.float64, resets=True, seed=3)
    a_param = torch.linspace(-3.0, 3.0, 5, dtype=torch.float64)  # away from the bounded-derivative regime
    args = [v.requires_grad_(True) for v in (x, gate_a, gate_x, a_param, h0.double())]
    assert torch.autograd.gradcheck(lambda *a: rglru_reference(*a, resets=resets), args)


def test_reference_bounds_sqrt_derivative() -> None:
    # a -> 1 (a_param -> -inf): d sqrt(1 - a^2) would blow up; the bound keeps gate_a's gradient finite.
    gate_a = torch.zeros(1, 1, 1, requires_grad=True)
    y, _ = rglru_reference(torch.ones(1, 1, 1), gate_a, torch.zeros(1, 1, 1), torch.tensor([-30.0]))
    y.sum().backward()
    assert torch.isfinite(gate_a.grad).all()


def test_reference_reset_drops_state_and_skips_rescale() -> None:
    x, gate_a, gate_x, a_param, h0, _ = make_inputs(1, 1, 4, seed=4)
    y, _ = rglru_reference(x, gate_a, gate_x, a_param, h0, resets=torch.ones(1, 1, dtype=torch.bool))
    torch.testing.assert_close(y, torch.sigmoid(gate_x) * x)


def test_cpu_is_accurate_where_a_is_near_one() -> None:
    """Channels with a within 1e-7 of 1 accumulate rounding over thousands of steps; the kernel stays within
    1e-5 of the exact answer there (the fp32 reference drifted by 3e-5 on the development machine)."""
    inputs = make_inputs(1, 4099, 3)
    exact = rglru_reference(*fp64(inputs))[1]
    error = (rglru(*inputs, backend="cpu")[1].double() - exact).abs().max().item()
    assert error < 1e-5 * exact.abs().max().item()


# ---------------------------------------------------------------- the native CPU kernel against the reference

SHAPES = [(1, 1, 1), (2, 1, 7), (1, 37, 5), (3, 100, 33), (2, 17, 300), (1, 1000, 16), (1, 4099, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("h0,resets", [(False, False), (True, False), (True, True)], ids=["zero", "h0", "resets"])
def test_cpu_matches_reference_fp32(shape: tuple[int, int, int], h0: bool, resets: bool) -> None:
    compare_to_reference(make_inputs(*shape, h0=h0, resets=resets), "cpu", FP32_TOL)


@pytest.mark.parametrize("shape", [(2, 1, 7), (3, 100, 33), (1, 513, 64)], ids=lambda s: "x".join(map(str, s)))
def test_cpu_matches_reference_bf16(shape: tuple[int, int, int]) -> None:
    compare_to_reference(make_inputs(*shape, dtype=torch.bfloat16, resets=True), "cpu", BF16_TOL)


def test_cpu_empty_sequence_passes_the_state_through() -> None:
    x, gate_a, gate_x, a_param, h0, _ = make_inputs(2, 0, 5)
    h0.requires_grad_(True)
    y, h = rglru(x, gate_a, gate_x, a_param, h0, backend="cpu")
    assert y.shape == (2, 0, 5)
    torch.testing.assert_close(h, h0)
    h.sum().backward()
    torch.testing.assert_close(h0.grad, torch.ones_like(h0))


def test_cpu_grads_when_only_one_output_is_used() -> None:
    inputs = make_inputs(2, 40, 8)
    for pick in (0, 1):
        got = [v.clone().requires_grad_(True) for v in inputs[:4]]
        want = [v.clone().requires_grad_(True) for v in inputs[:4]]
        rglru(*got, backend="cpu")[pick].sum().backward()
        rglru_reference(*fp64(want))[pick].sum().backward()
        for name, a, e in zip(ARG_NAMES, got, want):
            assert_close(a.grad, e.grad, FP32_TOL, f"output {pick}: d {name}")


def test_cpu_accepts_non_contiguous_inputs() -> None:
    x, gate_a, gate_x, a_param, h0, _ = make_inputs(3, 20, 6)
    x_t = x.transpose(0, 1).contiguous().transpose(0, 1)  # same values, (t, b, d) memory order
    y, h = rglru(x_t, gate_a, gate_x, a_param, h0, backend="cpu")
    y_ref, h_ref = rglru_reference(*fp64([x, gate_a, gate_x, a_param, h0]))
    assert_close(y, y_ref, FP32_TOL, "y")
    assert_close(h, h_ref, FP32_TOL, "h_last")


# ---------------------------------------------------------------- state passing, resets, long sequences

@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_state_passing_equals_one_pass(backend: str) -> None:
    x, gate_a, gate_x, a_param, h0, resets = make_inputs(2, 50, 9, resets=True)
    y, h = rglru(x, gate_a, gate_x, a_param, h0, resets, backend=backend)
    k = 23
    y1, h1 = rglru(x[:, :k], gate_a[:, :k], gate_x[:, :k], a_param, h0, resets[:, :k], backend=backend)
    y2, h2 = rglru(x[:, k:], gate_a[:, k:], gate_x[:, k:], a_param, h1, resets[:, k:], backend=backend)
    assert_close(torch.cat([y1, y2], dim=1), y, 1e-6, "y")
    assert_close(h2, h, 1e-6, "h_last")


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_resets_equal_separate_sequences(backend: str) -> None:
    x, gate_a, gate_x, a_param, _, _ = make_inputs(1, 30, 6)
    k = 12
    resets = torch.zeros(1, 30, dtype=torch.bool)
    resets[0, k] = True
    packed, h_packed = rglru(x, gate_a, gate_x, a_param, torch.randn(1, 6), resets, backend=backend)
    second, h_second = rglru(x[:, k:], gate_a[:, k:], gate_x[:, k:], a_param,
                             resets=resets[:, k:], backend=backend)
    fresh, _ = rglru(x[:, k:], gate_a[:, k:], gate_x[:, k:], a_param, backend=backend)
    assert_close(packed[:, k:], second, 1e-6, "segment after the reset")
    assert_close(h_packed, h_second, 1e-6, "h_last")
    # a reset differs from a zero state only in skipping the sqrt(1 - a^2) rescale of the first input
    scale = gates(gate_a[:, k], gate_x[:, k], a_param)[1]
    torch.testing.assert_close(fresh[:, 0], scale * x[:, k])


def test_million_steps_stay_finite() -> None:
    x, gate_a, gate_x, a_param, h0, _ = make_inputs(1, 1_000_000, 4, seed=7)
    a_param = torch.tensor([-18.0, -8.0, 0.0, 4.0])  # includes a within 1e-7 of 1
    inputs = [v.requires_grad_(True) for v in (x, gate_a, gate_x, a_param, h0)]
    y, h = rglru(*inputs, backend="cpu")
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
    assert y.abs().max() < 100  # sqrt(1 - a^2) normalisation keeps the state O(|x|)
    (y.sum() + h.sum()).backward()
    assert all(torch.isfinite(v.grad).all() for v in inputs)


# ---------------------------------------------------------------- the single step

def test_step_matches_scan() -> None:
    x, gate_a, gate_x, a_param, h0, resets = make_inputs(2, 6, 5, resets=True)
    y, h_last = rglru(x, gate_a, gate_x, a_param, h0, resets)
    h = h0
    for t in range(6):
        y_t, h = rglru_step(x[:, t], gate_a[:, t], gate_x[:, t], a_param, h, resets[:, t])
        assert_close(y_t, y[:, t], 1e-6, f"step {t}")
    assert_close(h, h_last, 1e-6, "h_last")
    y0, _ = rglru_step(x[:, 0], gate_a[:, 0], gate_x[:, 0], a_param)  # h=None: zero state
    torch.testing.assert_close(y0, rglru_step_reference(x[:, 0], gate_a[:, 0], gate_x[:, 0], a_param)[0])


# ---------------------------------------------------------------- dispatch and errors

def test_backend_env_var_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = make_inputs(1, 5, 3)[:4]
    monkeypatch.setenv(build.BACKEND_ENV, "reference")
    assert build.resolve_backend(torch.device("cpu"), torch.float32) == ("reference", None)
    assert build.resolve_backend(torch.device("cpu"), torch.float32, "cpu")[0] == "cpu"
    monkeypatch.setenv(build.BACKEND_ENV, "gpu")
    with pytest.raises(ValueError, match=build.BACKEND_ENV):
        rglru(*inputs)
    monkeypatch.setenv(build.BACKEND_ENV, "cuda")
    with pytest.raises(ValueError, match="cannot run on cpu"):
        rglru(*inputs)
    monkeypatch.delenv(build.BACKEND_ENV)
    assert build.resolve_backend(torch.device("cpu"), torch.float32)[0] == "cpu"


def test_failed_build_falls_back_once_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(backend: str):
        raise RuntimeError("Error building extension 'rglru_cpu'\nlong compiler log")

    monkeypatch.setattr(build, "load_extension", broken)
    monkeypatch.setattr(build, "_warned", set())
    inputs = make_inputs(1, 5, 3)[:4]
    with pytest.warns(build.RGLRUFallbackWarning, match="cpu extension failed to build .*using the PyTorch reference"):
        y, _ = rglru(*inputs)
    torch.testing.assert_close(y, rglru_reference(*inputs)[0])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rglru(*inputs)  # the second call is silent
    with pytest.raises(RuntimeError, match="failed to build"):
        rglru(*inputs, backend="cpu")  # explicitly requested: an error, not a fallback


def test_unsupported_dtype_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "_warned", set())
    inputs = make_inputs(1, 5, 3, dtype=torch.float16)[:4]
    with pytest.warns(build.RGLRUFallbackWarning, match="no torch.float16 kernel"):
        assert build.resolve_backend(torch.device("cpu"), torch.float16) == ("reference", None)
    with pytest.raises(ValueError, match="no torch.float16 kernel"):
        rglru(*inputs, backend="cpu")


def _bad(**changes):
    x, gate_a, gate_x, a_param, h0, resets = make_inputs(2, 4, 3, resets=True)
    args = dict(x=x, gate_a=gate_a, gate_x=gate_x, a_param=a_param, h0=h0, resets=resets)
    args.update(changes)
    return args


@pytest.mark.parametrize("args,match", [
    (_bad(x=torch.zeros(4, 3)), "x must be a"),
    (_bad(x=torch.zeros(2, 4, 3, dtype=torch.long)), "x must be floating"),
    (_bad(gate_a=torch.zeros(2, 4, 4)), "gate_a must have x's shape"),
    (_bad(gate_x=torch.zeros(2, 4, 3, dtype=torch.bfloat16)), "gate_x must have x's dtype"),
    (_bad(a_param=torch.zeros(4)), r"a_param must have shape \(3,\)"),
    (_bad(h0=torch.zeros(3, 3)), r"h0 must have shape \(2, 3\)"),
    (_bad(resets=torch.zeros(2, 4)), "resets must be a bool"),
    (_bad(resets=torch.zeros(2, 5, dtype=torch.bool)), r"resets must have shape \(2, 4\)"),
    (_bad(gate_a=torch.zeros(2, 4, 3, device="meta")), "gate_a must be on x's device"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_inputs_raise_clear_errors(args: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rglru(**args)


def test_step_bad_inputs() -> None:
    x, gate_a, gate_x, a_param, h, _ = make_inputs(2, 1, 3)
    with pytest.raises(ValueError, match="x must be a"):
        rglru_step(x, gate_a[:, 0], gate_x[:, 0], a_param)
    with pytest.raises(ValueError, match=r"reset must have shape \(2,\)"):
        rglru_step(x[:, 0], gate_a[:, 0], gate_x[:, 0], a_param, h, torch.zeros(2, 1, dtype=torch.bool))


# ---------------------------------------------------------------- CUDA (where a GPU exists)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("shape", SHAPES + [(2, 3000, 130), (8, 700, 512)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("h0,resets", [(False, False), (True, True)], ids=["zero", "h0-resets"])
def test_cuda_matches_reference_fp32(shape: tuple[int, int, int], h0: bool, resets: bool) -> None:
    compare_to_reference(make_inputs(*shape, h0=h0, resets=resets, device="cuda"), "cuda", FP32_TOL)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", [(2, 1, 7), (3, 100, 33), (4, 1500, 256)], ids=lambda s: "x".join(map(str, s)))
def test_cuda_matches_reference_half(shape: tuple[int, int, int], dtype: torch.dtype) -> None:
    compare_to_reference(make_inputs(*shape, dtype=dtype, resets=True, device="cuda"), "cuda", BF16_TOL)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("num_chunks", [1, 2, 7, 64])
def test_cuda_chunked_scan_matches_reference(num_chunks: int) -> None:
    """The chunked strategy (local scans + carry + fix-up) forced on, whatever the heuristic would pick."""
    x, gate_a, gate_x, a_param, h0, resets = make_inputs(2, 1000, 66, resets=True, device="cuda")
    ext = build.load_extension("cuda")
    y, h_last, ckpt = ext.forward(x, gate_a, gate_x, a_param, h0, resets, num_chunks)
    dy, dh = torch.randn_like(y), torch.randn_like(h_last)
    grads = ext.backward(dy, dh, x, gate_a, gate_x, a_param, resets, ckpt, num_chunks)
    leaves = [v.double().requires_grad_(True) for v in (x, gate_a, gate_x, a_param, h0)]
    y_ref, h_ref = rglru_reference(*leaves, resets=resets)
    assert_close(y, y_ref, FP32_TOL, "y")
    assert_close(h_last, h_ref, FP32_TOL, "h_last")
    torch.autograd.backward([y_ref, h_ref], [dy.double(), dh.double()])
    for name, got, leaf in zip(("x", "gate_a", "gate_x", "a_param", "h0"), grads, leaves):
        assert_close(got, leaf.grad, FP32_TOL, f"d {name}")


@pytest.mark.gpu
@cuda
def test_cuda_state_passing_and_long_sequence() -> None:
    x, gate_a, gate_x, a_param, h0, resets = make_inputs(2, 5000, 40, resets=True, device="cuda")
    y, h = rglru(x, gate_a, gate_x, a_param, h0, resets, backend="cuda")
    k = 1234
    y1, h1 = rglru(x[:, :k], gate_a[:, :k], gate_x[:, :k], a_param, h0, resets[:, :k], backend="cuda")
    y2, h2 = rglru(x[:, k:], gate_a[:, k:], gate_x[:, k:], a_param, h1, resets[:, k:], backend="cuda")
    assert_close(torch.cat([y1, y2], dim=1), y, 1e-6, "y")
    assert_close(h2, h, 1e-6, "h_last")
    x, gate_a, gate_x, a_param, h0, _ = make_inputs(1, 1_000_000, 64, device="cuda", seed=7)
    y, h = rglru(x, gate_a, gate_x, a_param, h0, backend="cuda")
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
