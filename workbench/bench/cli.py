"""`python -m workbench bench <what>`: measurements that are benchmarks, not tests (nothing is asserted)."""

from __future__ import annotations

import argparse

from workbench.cli import UserError, add_output_args, emit
from workbench.config import override, pick_preset


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks: time the kernels against references and ceilings")
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="{scan}")

    scan = sub.add_parser("scan", help="RG-LRU scan: reference vs CPU vs CUDA, GB/s vs copy bandwidth")
    scan.add_argument("--preset", default="laptop", help="smoke (seconds), laptop (default) or paper")
    scan.add_argument("--cpu-shape", type=_shape, help="b,t,d for the CPU run (default from the preset)")
    scan.add_argument("--gpu-shape", type=_shape, help="b,t,d for the GPU run (default from the preset)")
    scan.add_argument("--repeats", type=int, help="timed runs per figure (median)")
    scan.add_argument("--no-reference", action="store_true", help="skip timing the slow PyTorch reference")
    add_output_args(scan)
    scan.set_defaults(func=run_scan)


def run_scan(args: argparse.Namespace) -> int:
    from workbench.bench.scan import PRESETS, run_scan_bench, summary

    config = pick_preset(PRESETS, args.preset, "bench scan")
    changes = {k: v for k, v in (("cpu_shape", args.cpu_shape), ("gpu_shape", args.gpu_shape),
                                  ("repeats", args.repeats)) if v is not None}
    if args.no_reference:
        changes["reference"] = False
    if changes.get("repeats", 1) < 1:
        raise UserError("--repeats must be at least 1")
    payload = run_scan_bench(override(config, **changes))
    payload["preset"] = args.preset
    emit(args, payload, summary, report_name="scan.json")
    return 0


def _shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers b,t,d, got {text!r}")
    return shape  # type: ignore[return-value]
