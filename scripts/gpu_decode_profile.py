"""Where a decode step's time goes: wall-clock seconds per step against the time the device's kernels run.

For the `small` Griffin and its SpeechTransformer (global attention), at batch 1 and 64, bf16 autocast on a
GPU: the median wall time of a decode step (forward + sampling, synchronised), and under torch.profiler the
kernel time, kernel launches and aten calls per step. Wall >> kernel time means the step is bound by the
host (Python and the dispatcher launching ~1,000 small kernels), not by the GPU: the case for CUDA graphs or
fewer, fused ops.

    python scripts/gpu_decode_profile.py OUT.json [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from torch.profiler import ProfilerActivity, profile

from workbench.bench.decode import extend, time_steps
from workbench.core.io import atomic_write_json
from workbench.lm.generate import stream
from workbench.lm.model import build_model, model_config

PROMPT, WARMUP, TIMED, PROFILED = 64, 5, 30, 10  # tokens, then steps


def profile_steps(model, batch: int, device: str) -> dict:
    cache = extend(model, model.init_cache(batch, device), PROMPT, PROMPT, torch.Generator().manual_seed(0))
    wall = time_steps(model, cache, batch, TIMED, WARMUP)  # median seconds per step, synchronised
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    steps = stream(model, torch.zeros(batch, 1, dtype=torch.long, device=device), WARMUP + PROFILED, cache=cache)
    for _ in range(WARMUP):
        next(steps)
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(PROFILED):
            next(steps)
        sync()
    events = prof.key_averages()
    on_device = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    return {
        "wall_ms_per_step": round(1e3 * wall, 3),
        "kernel_ms_per_step": round(sum(e.self_device_time_total for e in on_device) / PROFILED / 1e3, 3)
        if device == "cuda" else None,
        "kernels_per_step": sum(e.count for e in on_device) / PROFILED if device == "cuda" else None,
        "aten_calls_per_step": sum(e.count for e in events if e.key.startswith("aten::")) / PROFILED,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    small = model_config("small")
    models = {"griffin": small,
              "transformer": dataclasses.replace(small, block_pattern=("attention",), attention_window=None)}
    result = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
              "torch": torch.__version__, "prompt_tokens": PROMPT, "runs": {}}
    for name, config in models.items():
        torch.manual_seed(0)
        model = build_model(config, args.device).eval()
        for batch in (1, 64):
            result["runs"][f"{name} batch {batch}"] = run = profile_steps(model, batch, args.device)
            print(f"{name} batch {batch}: {run}", flush=True)
    atomic_write_json(args.out, result)  # no half-written file if it is interrupted


if __name__ == "__main__":
    main()
