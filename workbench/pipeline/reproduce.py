"""`python -m workbench reproduce`: the main job. Build the corpus and execute every notebook at one preset.

Each notebook writes its figures (``corpus.json``, ``scan.json``, ...) into the report folder; the executed
notebooks land there too, so a reproduction run is one folder a user can read or diff.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from workbench.core.errors import UserError


def stage_configs(preset: str) -> dict[str, object]:
    """Every stage's settings at `preset`, looked up the way its notebook looks them up: what `reproduce` checks
    before it starts an hours-long run, so a missing preset fails in a second, not at notebook 03."""
    from workbench.acoustic.config import PRESETS as ACOUSTIC
    from workbench.bench.decode import PRESETS as DECODE
    from workbench.bench.scan import PRESETS as SCAN
    from workbench.codec.config import PRESETS as CODEC
    from workbench.core.config import pick_preset
    from workbench.data.corpus import PRESETS as CORPUS
    from workbench.lm.config import train_config
    from workbench.lm.model import model_config
    from workbench.pipeline.extrapolate import extrapolation_config
    from workbench.tokenizer.config import PRESETS as TOKENIZER

    return {
        "corpus": pick_preset(CORPUS, preset, "corpus"),  # 00
        "tokenizer": pick_preset(TOKENIZER, preset, "tokenizer"),  # 01
        "scan": pick_preset(SCAN, preset, "scan benchmark"),  # 02, 06
        "lm_griffin": model_config(preset, "griffin"),  # 03, 05
        "lm_transformer": model_config(preset, "transformer"),
        "lm_train": train_config(preset),
        "codec": pick_preset(CODEC, preset, "codec"),  # 04
        "acoustic": pick_preset(ACOUSTIC, preset, "acoustic"),  # 04
        "extrapolation": extrapolation_config(preset),  # 05
        "decode": pick_preset(DECODE, preset, "decode benchmark"),  # 06
    }


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="build the corpus and run every notebook into the report folder")
    p.add_argument("--preset", default="laptop", help="smoke | laptop | paper (default laptop)")
    p.add_argument("--reports", default="reports/latest", help="report folder (default reports/latest)")
    p.add_argument("--only", nargs="*", default=None, help="run only these notebooks (e.g. 00_corpus)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    import torch

    from workbench.core.io import atomic_write_json
    from workbench.pipeline.notebooks import NOTEBOOKS, available_notebooks, run_notebook

    stage_configs(args.preset)  # every stage knows the preset, or one line says which does not
    names = available_notebooks()
    if args.only:
        unknown = sorted(set(args.only) - set(NOTEBOOKS))
        if unknown:
            raise UserError(f"unknown notebook(s) {unknown}; notebooks: {', '.join(NOTEBOOKS)}")
        names = [n for n in names if n in args.only]
    reports = Path(args.reports)
    reports.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    for name in tqdm(names, desc=f"reproduce ({args.preset})", unit="notebook"):
        started = time.time()
        print(f"[reproduce] {name} ...", file=sys.stderr, flush=True)
        run_notebook(name, reports, {"preset": args.preset, "reports": str(reports)})
        timings[name] = round(time.time() - started, 1)
    atomic_write_json(reports / "run.json", {
        "preset": args.preset, "notebooks": timings, "total_seconds": round(sum(timings.values()), 1),
        "python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
        "cpus": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
    })
    print(json.dumps(timings, indent=1))
    print(f"reports in {reports}/: {', '.join(sorted(p.name for p in reports.iterdir()))}")
    return 0
