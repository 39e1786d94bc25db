#!/usr/bin/env bash
# The GPU acceptance check, for a machine with a CUDA device. Each step has its own time limit (together
# 13.5 minutes, the worst case); on an H200 the whole check took about 6 minutes:
#
#   1. build the RG-LRU extensions (CUDA and CPU)                      reports/gpu/build.log
#   2. the `gpu` tests (kernel vs reference up to T = 1M, LM on CUDA, FSDP on one GPU)  test-gpu.log
#   3. bench scan on the GPU (bf16, 8 x 8192 x 2560)                  scan.json
#   4. bench decode at a GPU-sized shape (the `small` LM, to 16k tokens)   decode.json, decode.md
#   5. a timed training step of the `small` and `paper` shapes: tokens/s and peak memory, or "does not fit"
#      with the memory figure                                          train_step.json
#   6. the scan kernels at every forced number of time chunks (what `auto_chunks` should pick)  chunk_sweep.json
#   7. a decode step's wall time against its kernel time (host- or device-bound?)   decode_profile.json
#
# Everything goes to $GPU_REPORTS (default reports/gpu/), with summary.json: each step's status and seconds.
# A failed step is recorded and the next one runs; the exit status is non-zero if any failed. Without a visible
# CUDA device it exits at once (status 2) with one line and writes nothing.
#
#   bash scripts/gpu_check.sh            (after `make setup`; PY=... to use another interpreter, e.g. a
#                                         machine's own torch: PY=python3 with the repo on PYTHONPATH)
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
REPORTS=${GPU_REPORTS:-reports/gpu}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    echo "gpu_check: no CUDA device visible (torch.cuda.is_available() is False): nothing was checked" >&2
    exit 2
fi

mkdir -p "$REPORTS"
STATUS="$REPORTS/status.tsv"
: > "$STATUS"
failed=0

step() {  # step NAME LIMIT_SECONDS COMMAND...: run it, log to REPORTS/NAME.log, record status and time
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS rc
    echo "[gpu_check] $name (limit ${limit}s) ..." >&2
    timeout --kill-after=10 "$limit" "$@" > "$REPORTS/$name.log" 2>&1
    rc=$?
    local took=$((SECONDS - start))
    if [ $rc -eq 0 ]; then
        echo "[gpu_check] $name: ok (${took}s)" >&2
    else
        [ $rc -eq 124 ] && echo "[gpu_check] $name: TIMED OUT after ${limit}s" >&2 \
            || echo "[gpu_check] $name: FAILED (exit $rc, ${took}s): see $REPORTS/$name.log" >&2
        failed=1
    fi
    printf '%s\t%s\t%s\n' "$name" "$rc" "$took" >> "$STATUS"
}

step build 150 "$PY" -c '
from workbench.ops import build
for backend in ("cuda", "cpu"):
    build.load_extension(backend)
    print(backend, "extension built and loaded")
'

# the files that hold `gpu` tests, not `make test-gpu`: that sets a .venv up first, and collecting every
# test file imports the notebook and demo stacks, which a GPU machine's own Python may not have
step test-gpu 120 "$PY" -m pytest -q -m gpu tests/test_ops.py tests/test_gpu_ops.py tests/test_gpu_lm.py

step bench-scan 60 "$PY" -m workbench bench scan --preset laptop --no-reference --reports "$REPORTS"

# real batch-1 decodes only to 256 tokens (longer ones are integrated from step latencies): a step is host-bound
# on a GPU (step 7), so the Transformer's full decode to 4096 alone outran a 90 s limit
step bench-decode 150 "$PY" -m workbench bench decode --preset laptop --model-preset small --device cuda \
    --lengths 256,1024,4096,16384 --full-decode-max 256 --budget-mb 20000 --reports "$REPORTS"

step train-step 110 "$PY" - "$REPORTS/train_step.json" <<'EOF'
"""Timed training steps on one GPU: forward + backward + AdamW of one micro-batch of full training windows,
bf16 autocast, fp32 weights and optimizer state. small: plain (one GPU holds it all). paper: FSDP over a
one-process group (so exactly the sharded code path) with activation checkpointing, micro-batch 1, then 4.
A shape that does not fit is recorded as "does not fit" with the memory it had reached."""
import json, sys, time
import torch
from workbench.core.device import autocast
from workbench.core.distributed import one_process_group, prepare_blocks, shard
from workbench.core.io import atomic_write_json
from workbench.core.train import make_optimizer
from workbench.lm.config import train_config
from workbench.lm.model import build_model, count_parameters, model_config

out_path, device = sys.argv[1], torch.device("cuda")
GIB = 2**30


def timed(preset, micro, fsdp, ac, steps=3):
    cfg = train_config(preset)
    mcfg = model_config(preset)
    window = cfg.window_tokens
    record = {"preset": preset, "parameters": count_parameters(mcfg)["total"], "micro_batch": micro,
              "window_tokens": window, "fsdp": fsdp, "activation_checkpointing": ac, "precision": "bf16 autocast"}
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = optimizer = None
    try:
        torch.manual_seed(0)
        model = build_model(mcfg, device)
        prepare_blocks(model.blocks, activation_checkpointing=ac)
        if fsdp:
            shard(model, model.blocks, device)
        optimizer = make_optimizer(model, cfg)
        tokens = torch.randint(0, mcfg.vocab_size, (micro, window), device=device)
        times = []
        for i in range(steps + 1):  # the first is a warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with autocast(device, "bf16"):
                logits, _ = model(tokens[:, :-1])
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
        step_s = sorted(times)[len(times) // 2]
        record.update(fits=True, step_s=round(step_s, 4), tokens_per_s=round(micro * (window - 1) / step_s, 1),
                      peak_memory_gib=round(torch.cuda.max_memory_allocated() / GIB, 2), loss=round(loss.item(), 4))
    except torch.cuda.OutOfMemoryError as err:
        record.update(fits=False, result="does not fit",
                      peak_memory_gib=round(torch.cuda.max_memory_allocated() / GIB, 2),
                      device_memory_gib=round(torch.cuda.get_device_properties(device).total_memory / GIB, 2),
                      error=str(err).splitlines()[0][:300])
    except Exception as err:  # recorded, not fatal: the next shape still runs
        record.update(fits=None, result="error", error=f"{type(err).__name__}: {str(err)[:300]}")
    finally:
        del model, optimizer
        torch.cuda.empty_cache()
    print(json.dumps(record), flush=True)
    return record


results = {"device": torch.cuda.get_device_name(device), "runs": []}
results["runs"].append(timed("small", 8, fsdp=False, ac=False))
with one_process_group(device):
    for micro in (1, 4):
        run = timed("paper", micro, fsdp=True, ac=True, steps=2)
        results["runs"].append(run)
        if not run["fits"]:
            break
atomic_write_json(out_path, results)
sys.exit(0 if all(run["fits"] is not None for run in results["runs"]) else 1)
EOF

step chunk-sweep 120 "$PY" scripts/gpu_chunk_sweep.py "$REPORTS/chunk_sweep.json"

step decode-profile 90 "$PY" scripts/gpu_decode_profile.py "$REPORTS/decode_profile.json"

"$PY" - "$REPORTS" <<'EOF'
import json, sys, pathlib
reports = pathlib.Path(sys.argv[1])
steps = [dict(zip(("step", "exit", "seconds"), line.split("\t"))) for line in (reports / "status.tsv").read_text().splitlines()]
for s in steps:
    s["exit"], s["seconds"] = int(s["exit"]), int(s["seconds"])
    s["ok"] = s["exit"] == 0
import torch
summary = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
           "steps": steps, "all_ok": all(s["ok"] for s in steps)}
from workbench.core.io import atomic_write_json
atomic_write_json(reports / "summary.json", summary)
print(json.dumps(summary, indent=2))
EOF

exit $failed
