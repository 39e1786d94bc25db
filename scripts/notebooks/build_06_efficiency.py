"""Notebook 06 teaches why a constant-size state pays off when decoding: Griffin against the SpeechTransformer
in decode time per sample (Figure 7 of the paper), throughput under a memory budget (Figure 8) and memory
against length, plus the RG-LRU scan's speed against the bandwidth ceiling.

Writes notebooks/06_efficiency.ipynb (no outputs). Edit this file, not the notebook, then run
`.venv/bin/python scripts/notebooks/build_all.py` (or this script).
"""

from workbench.pipeline.notebooks import write_notebook

NAME = "06_efficiency"

CELLS = [
    ("parameters", """# Parameters (papermill overrides these).
preset = "smoke"            # smoke (seconds) | laptop (~10 min on 2 CPU cores) | paper (GPU)
reports = "reports/latest"  # decode.json / decode.md go here; scan.json is read from here if present
lengths = None              # sample lengths in tokens, e.g. [128, 1024, 16384]; None: the preset's
budget_mb = None            # memory budget of the throughput batch (MB, weights excluded); None: the preset's
threads = None              # torch threads; None: the preset's (laptop: torch's default)
reuse = False               # plot reports/decode.json of the same preset instead of measuring again"""),
    ("markdown", """# 06 · Efficiency: Griffin against the SpeechTransformer when decoding long samples

SpeechSSM's practical argument (Figures 7 and 8 of the paper): Griffin decodes with a **constant-size state** --
the RG-LRU state, a 3-input conv buffer and a ring buffer of the local-attention window -- while a Transformer's
KV cache grows with every token. So Griffin's time per token stays flat with length, its memory stays flat,
and under a fixed memory budget it can decode many more samples at once.

Both models here have matched parameter counts and decode through their real streaming path
(`workbench.lm.generate.stream`). The measuring code is `workbench.bench.decode` (its docstring states the
method); this notebook only runs it and plots."""),
    ("code", r"""import json
from pathlib import Path

from workbench.bench.decode import (PRESETS, decode_time_figure, memory_figure, run_decode_bench,
                                    speedup_figure, summary)
from workbench.core.config import override
from workbench.core.io import atomic_write_text, write_report

changes = {k: v for k, v in {"lengths": tuple(lengths) if lengths else None, "budget_mb": budget_mb,
                             "threads": threads}.items() if v is not None}
config = override(PRESETS[preset], **changes)
saved = Path(reports) / "decode.json"
payload = json.loads(saved.read_text()) if reuse and saved.exists() else None
if payload is not None and payload.get("preset") == preset:
    print(f"plotting the measurements in {saved}")
else:
    payload = run_decode_bench(config, log=print)
    payload["preset"] = preset
    print("wrote", write_report("decode.json", payload, reports))
    atomic_write_text(Path(reports) / "decode.md", summary(payload) + "\n")"""),
    ("markdown", """## The measurements

Decode time per sample is a real batch-1 decode (prompt prefill, then token by token) up to the preset's
`full_decode_max`; beyond it (marked `*`) it is integrated from per-step latencies measured at each length.
Throughput uses the largest batch whose **measured** peak memory fits the budget."""),
    ("code", """from IPython.display import Markdown

Markdown(summary(payload))"""),
    ("markdown", """## Figure 7: decode time per sample

Griffin's curve is a straight line of slope 1 on log-log axes (a constant cost per token); the Transformer's
bends upward as every step reads (and here also copies) its whole KV cache."""),
    ("code", """decode_time_figure(payload).show()"""),
    ("markdown", """## Figure 8: throughput speed-up under a memory budget

At batch 1 on a CPU both models are limited by per-op overhead, so their ratio is modest. The large factor
comes from batching: Griffin's rows cost the same memory at any length, so its batch stays at the budget's
maximum, while the Transformer's shrinks as 1/length."""),
    ("code", """speedup_figure(payload).show()"""),
    ("markdown", """## Memory against length"""),
    ("code", """memory_figure(payload).show()"""),
    ("markdown", """## What a decode step is made of: the RG-LRU scan's bandwidth

Griffin's recurrence is memory-bound; notebook 02 and `python -m workbench bench scan` measure its kernels
against this machine's copy bandwidth. Shown from the report folder's `scan.json` when there is one, else from a
quick smoke-scale run."""),
    ("code", """from workbench.bench.scan import PRESETS as SCAN_PRESETS, run_scan_bench
from workbench.ops import notebook as primer

scan_path = Path(reports) / "scan.json"
if scan_path.exists():
    scan = json.loads(scan_path.read_text())
    print(f"from {scan_path} (preset {scan.get('preset')})")
else:
    scan = run_scan_bench(SCAN_PRESETS["smoke"])
    print("no scan.json in the report folder: a smoke-scale scan measured now")
primer.bandwidth_figure(scan).show()"""),
]

if __name__ == "__main__":
    print("wrote", write_notebook(NAME, CELLS))
