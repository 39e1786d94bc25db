"""`bench scan`: the RG-LRU backends against each other and against the machine's copy bandwidth.

The op is memory-bound, so the figure of merit is achieved bandwidth for the bytes the op must move
(N = b * t * d elements of s bytes each; the d-sized a_param, the (b, d) states and the 1/16-size fp32
checkpoints are left out, < 7% at the measured shapes):

    forward   reads x, gate_a, gate_x, writes y                           4 N s
    backward  reads dy, x, gate_a, gate_x, writes dx, d_gate_a, d_gate_x  7 N s

and the ceiling is this machine's `copy_` (reads N s, writes N s) measured in the same run. The reference
is timed through autograd of its Python loop: that is what the model would run without the kernels.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Any, Callable

import torch

from workbench.bench.machine import machine_info
from workbench.ops import rglru
from workbench.ops.build import resolve_backend

FWD_BYTES_PER_ELEMENT = 4  # x, gate_a, gate_x in; y out  (times the element size)
BWD_BYTES_PER_ELEMENT = 7  # dy, x, gate_a, gate_x in; dx, d_gate_a, d_gate_x out

TARGETS = {  # from the issue; recorded next to the measurements, never asserted
    "cpu_speedup_fwdbwd": 10.0,
    "cpu_fwd_fraction_of_copy": 0.5,
    "gpu_fwd_fraction_of_copy": 0.7,
    "gpu_bwd_fraction_of_copy": 0.5,
}


@dataclasses.dataclass(frozen=True)
class ScanBenchConfig:
    cpu_shape: tuple[int, int, int] = (8, 4096, 512)  # (b, t, d)
    cpu_dtype: str = "float32"
    gpu_shape: tuple[int, int, int] = (8, 8192, 2560)
    gpu_dtype: str = "bfloat16"
    repeats: int = 5  # timed runs per figure (median); one untimed warm-up precedes them
    reference: bool = True  # also time autograd through the reference loop


PRESETS = {
    "smoke": ScanBenchConfig(cpu_shape=(2, 256, 64), gpu_shape=(2, 1024, 256), repeats=2),
    "laptop": ScanBenchConfig(),
    "paper": ScanBenchConfig(repeats=20),
}


def run_scan_bench(config: ScanBenchConfig) -> dict[str, Any]:
    """Measure everything the config asks for; returns the JSON payload of `bench scan`."""
    payload: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "machine": machine_info(),
        "bytes_per_element": {"fwd": FWD_BYTES_PER_ELEMENT, "bwd": BWD_BYTES_PER_ELEMENT,
                              "note": "times the element size; see workbench/bench/scan.py"},
        "cpu": measure_device(torch.device("cpu"), config.cpu_shape, getattr(torch, config.cpu_dtype),
                              ["reference", "cpu"] if config.reference else ["cpu"], config.repeats),
        "gpu": None,
        "targets": TARGETS,
    }
    if torch.cuda.is_available():
        payload["gpu"] = measure_device(torch.device("cuda"), config.gpu_shape, getattr(torch, config.gpu_dtype),
                                        ["reference", "cuda"] if config.reference else ["cuda"], config.repeats)
    cpu, gpu = payload["cpu"], payload["gpu"] or {}
    payload["speedup_fwdbwd"] = cpu.get("speedup_fwdbwd")
    payload["fwd_fraction_of_copy"] = cpu.get("fwd_fraction_of_copy")
    payload["met"] = {
        "cpu_speedup_fwdbwd": _at_least(cpu.get("speedup_fwdbwd"), TARGETS["cpu_speedup_fwdbwd"]),
        "cpu_fwd_fraction_of_copy": _at_least(cpu.get("fwd_fraction_of_copy"), TARGETS["cpu_fwd_fraction_of_copy"]),
        "gpu_fwd_fraction_of_copy": _at_least(gpu.get("fwd_fraction_of_copy"), TARGETS["gpu_fwd_fraction_of_copy"]),
        "gpu_bwd_fraction_of_copy": _at_least(gpu.get("bwd_fraction_of_copy"), TARGETS["gpu_bwd_fraction_of_copy"]),
    }
    return payload


def measure_device(device: torch.device, shape: tuple[int, int, int], dtype: torch.dtype, backends: list[str],
                   repeats: int) -> dict[str, Any]:
    b, t, d = shape
    n = b * t * d
    size = torch.empty((), dtype=dtype).element_size()
    x, gate_a, gate_x = (torch.randn(shape, device=device).to(dtype) for _ in range(3))
    a_param = torch.linspace(-6.0, 4.0, d, device=device)
    dy = torch.randn(shape, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    src, dst = torch.randn(n, device=device).to(dtype), torch.empty(n, device=device, dtype=dtype)
    copy_s = median_time(lambda: dst.copy_(src), repeats, sync)
    add_s = median_time(lambda: torch.add(src, dst), repeats, sync)
    result: dict[str, Any] = {
        "shape": list(shape), "dtype": str(dtype).removeprefix("torch."), "elements": n,
        # copy_ into a preallocated tensor: the physical ceiling; add allocates its output, like the op does
        "copy_gbps": 2 * n * size / copy_s / 1e9,
        "add_gbps": 3 * n * size / add_s / 1e9,
        "backends": {},
    }
    for name in backends:
        try:
            result["backends"][name] = _measure_backend(name, (x, gate_a, gate_x, a_param), dy, repeats, sync,
                                                        n * size)
        except (RuntimeError, ValueError) as err:  # e.g. an extension that fails to build here
            result["backends"][name] = {"error": str(err).splitlines()[0]}
    native = "cuda" if device.type == "cuda" else "cpu"
    if native == "cuda" and "error" not in result["backends"].get("cuda", {"error": ""}):
        _, ext = resolve_backend(device, dtype, "cuda")
        index = device.index if device.index is not None else -1
        result["cuda_time_chunks"] = {"fwd": int(ext.auto_chunks(b, t, d, index)),
                                      "bwd": int(ext.auto_chunks(b, t, d, index, backward=True))}
    fast, slow = result["backends"].get(native, {}), result["backends"].get("reference", {})
    result["speedup_fwd"] = _ratio(slow.get("fwd_s"), fast.get("fwd_s"))
    result["speedup_fwdbwd"] = _ratio(slow.get("fwdbwd_s"), fast.get("fwdbwd_s"))
    result["fwd_fraction_of_copy"] = _ratio(fast.get("fwd_gbps"), result["copy_gbps"])
    result["bwd_fraction_of_copy"] = _ratio(fast.get("bwd_gbps"), result["copy_gbps"])
    return result


def _measure_backend(name: str, inputs: tuple[torch.Tensor, ...], dy: torch.Tensor, repeats: int,
                     sync: Callable[[], None], tensor_bytes: int) -> dict[str, float]:
    with torch.no_grad():
        fwd_s = median_time(lambda: rglru(*inputs, backend=name), repeats, sync)
    leaves = [v.detach().requires_grad_(True) for v in inputs]

    def forward() -> torch.Tensor:
        for leaf in leaves:
            leaf.grad = None
        return rglru(*leaves, backend=name)[0]

    fwdbwd_s = median_time(lambda: torch.autograd.backward([forward()], [dy]), repeats, sync)
    # the backward pass timed on its own (its forward run untimed before each repeat), not as the difference of
    # two noisy medians, which at small shapes can come out negative
    bwd_s = median_time(lambda y: torch.autograd.backward([y], [dy]), repeats, sync, setup=forward)
    return {
        "fwd_s": fwd_s, "fwdbwd_s": fwdbwd_s, "bwd_s": bwd_s,
        "fwd_gbps": FWD_BYTES_PER_ELEMENT * tensor_bytes / fwd_s / 1e9,
        "bwd_gbps": BWD_BYTES_PER_ELEMENT * tensor_bytes / bwd_s / 1e9,
        "fwdbwd_gbps": (FWD_BYTES_PER_ELEMENT + BWD_BYTES_PER_ELEMENT) * tensor_bytes / fwdbwd_s / 1e9,
    }


def median_time(fn: Callable[..., object], repeats: int, sync: Callable[[], None],
                setup: Callable[[], object] | None = None) -> float:
    """Median seconds of `fn()` over `repeats` runs after one warm-up; with `setup`, each run times
    `fn(setup())` and leaves `setup()` itself out of the time."""
    def once() -> float:
        args = () if setup is None else (setup(),)
        sync()
        start = time.perf_counter()
        fn(*args)
        sync()
        return time.perf_counter() - start

    once()  # warm-up: extension load, allocator, caches
    return statistics.median(once() for _ in range(max(1, repeats)))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b and math.isfinite(a) else None


def _at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def summary(payload: dict[str, Any]) -> str:
    """The human-readable table `bench scan` prints without --json."""
    lines = [f"machine: {payload['machine']['cpu_name']}, {payload['machine']['torch_threads']} threads, "
             f"torch {payload['machine']['torch_version']}"]
    for key in ("cpu", "gpu"):
        section = payload.get(key)
        if not section:
            lines.append(f"{key}: not available")
            continue
        lines.append(f"{key}: shape {tuple(section['shape'])} {section['dtype']}; copy_ {section['copy_gbps']:.1f} GB/s, "
                     f"allocating add {section['add_gbps']:.1f} GB/s")
        for name, r in section["backends"].items():
            if "error" in r:
                lines.append(f"  {name:<10} unavailable: {r['error']}")
                continue
            lines.append(f"  {name:<10} fwd {r['fwd_s'] * 1e3:9.2f} ms ({r['fwd_gbps']:6.2f} GB/s)   "
                         f"fwd+bwd {r['fwdbwd_s'] * 1e3:9.2f} ms   bwd {r['bwd_gbps']:6.2f} GB/s")
        lines.append(f"  speedup fwd+bwd vs reference: {_fmt(section['speedup_fwdbwd'], 'x')}; "
                     f"fwd {_fmt(section['fwd_fraction_of_copy'], '', 100)}% and bwd "
                     f"{_fmt(section['bwd_fraction_of_copy'], '', 100)}% of copy bandwidth")
    return "\n".join(lines)


def _fmt(value: float | None, unit: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else f"{value * scale:.1f}{unit}"
