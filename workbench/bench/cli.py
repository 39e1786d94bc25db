"""`python -m workbench bench <what>`: measurements that are benchmarks, not tests (nothing is asserted)."""

from __future__ import annotations

import argparse

from workbench.core.cli import add_output_args, emit
from workbench.core.config import override, pick_preset
from workbench.core.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks: time the kernels against references and ceilings")
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="{scan,decode}")

    scan = sub.add_parser("scan", help="RG-LRU scan: reference vs CPU vs CUDA, GB/s vs copy bandwidth")
    scan.add_argument("--preset", default="laptop", help="smoke (seconds), laptop (default) or paper")
    scan.add_argument("--cpu-shape", type=_shape, help="b,t,d for the CPU run (default from the preset)")
    scan.add_argument("--gpu-shape", type=_shape, help="b,t,d for the GPU run (default from the preset)")
    scan.add_argument("--repeats", type=int, help="timed runs per figure (median)")
    scan.add_argument("--no-reference", action="store_true", help="skip timing the slow PyTorch reference")
    add_output_args(scan)
    scan.set_defaults(func=run_scan)

    decode = sub.add_parser("decode", help="Griffin vs Transformer decoding: time, throughput and memory vs length")
    decode.add_argument("--preset", default="laptop", help="smoke (seconds), laptop (default, ~10 min on CPU) or paper")
    decode.add_argument("--model-preset", help="lm config to benchmark (smoke, laptop, small, paper)")
    decode.add_argument("--lengths", type=_ints, help="comma-separated sample lengths in tokens")
    decode.add_argument("--prompt-tokens", type=int, help="prompt length (prefilled before decoding)")
    decode.add_argument("--budget-mb", type=float, help="memory budget of the throughput batch (MB, weights excluded)")
    decode.add_argument("--full-decode-max", type=int,
                        help="real batch-1 full decodes up to this length; integrated from step latencies beyond")
    decode.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    decode.add_argument("--device", help="auto (default), cpu or cuda")
    decode.add_argument("--griffin-run", help="trained Griffin run directory (default: random weights)")
    decode.add_argument("--transformer-run", help="trained Transformer run directory (default: random weights)")
    add_output_args(decode)
    decode.set_defaults(func=run_decode)


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


def run_decode(args: argparse.Namespace) -> int:
    import sys

    from workbench.bench.decode import PRESETS, run_decode_bench, summary
    from workbench.core.io import atomic_write_text, reports_dir

    config = pick_preset(PRESETS, args.preset, "bench decode")
    fields = ("model_preset", "lengths", "prompt_tokens", "budget_mb", "full_decode_max", "threads", "device",
              "griffin_run", "transformer_run")
    config = override(config, **{k: getattr(args, k) for k in fields if getattr(args, k) is not None})
    log = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    payload = run_decode_bench(config, log)
    payload["preset"] = args.preset
    emit(args, payload, summary, report_name="decode.json")
    atomic_write_text(reports_dir(args.reports) / "decode.md", summary(payload) + "\n")
    return 0


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers b,t,d, got {text!r}")
    return shape  # type: ignore[return-value]
