"""`python -m workbench reproduce`: the main job. Build the corpus and execute every notebook at one preset.

Each notebook writes its figures (``corpus.json``, ``scan.json``, ...) into the report folder; the executed
notebooks land there too, so a reproduction run is one folder a user can read or diff, and its front page,
``index.html`` (`workbench.pipeline.report`), is written at the end -- also when a notebook fails.

While a notebook runs, its stages report progress (`workbench.core.progress`) into
``<reports>/progress-<notebook>.jsonl`` (the kernel inherits ``WORKBENCH_PROGRESS``), and a thread prints the
newest line at most every 10 s, with the time the whole run has left: the stage's own estimate plus the
expected minutes of the notebooks still to come (`expected_minutes`, from the presets' budgets).

Reuse and resume: after each notebook, ``<reports>/reuse.json`` records its fingerprint (`notebook_parts`: the
notebook's bytes, its parameters, the code version of every workbench module its cells import, and the stamps
of the corpus, tokens and models it reads, `workbench.core.reuse`) and the files it wrote. A notebook whose
fingerprint and files are there is reused, not run: a second `reproduce` takes seconds, and an interrupted one
continues with the notebook it stopped in, whose training resumes from its last checkpoint (the stages' own
stamps). ``--fresh`` remakes everything once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from workbench.core.errors import UserError
from workbench.pipeline.notebooks import NOTEBOOKS


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


def notebook_reads(name: str, preset: str) -> list[Path]:
    """The stage outputs (corpus, tokens, models) notebook `name` reads at `preset` by default: their stamps are
    part of its fingerprint, so a model retrained elsewhere makes the notebooks that show it run again."""
    from workbench.core import paths

    corpus, tokens, tokenizer = paths.corpus_dir(preset), paths.tokens_dir(preset), paths.run_dir("tokenizer", preset)
    lms = [paths.lm_run_dir(preset, "griffin"), paths.lm_run_dir(preset, "transformer")]
    codec, acoustic = paths.codec_dir(preset), paths.acoustic_dir(preset)
    return {
        "00_corpus": [corpus],
        "01_tokenization": [corpus, tokenizer, tokens],
        "03_griffin_training": [tokens, *lms],
        "04_acoustic_synthesis": [corpus, tokenizer, codec, acoustic],
        "05_extrapolation_16min": [corpus, tokens, tokenizer, *lms, codec, acoustic],
    }.get(name, [])


def notebook_parts(name: str, preset: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """What notebook `name`'s results are made of (see the module docstring); its fingerprint decides reuse."""
    import hashlib

    from workbench.core.reuse import code_version_of_source, input_fingerprint
    from workbench.pipeline.notebooks import NOTEBOOK_DIR

    raw = (NOTEBOOK_DIR / f"{name}.ipynb").read_bytes()
    cells = json.loads(raw)["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return {"notebook": hashlib.sha256(raw).hexdigest()[:16], "parameters": parameters,
            "code": code_version_of_source(code),
            "inputs": {str(p): input_fingerprint(p) for p in notebook_reads(name, preset)}}


REUSE_FILE = "reuse.json"
RUN_FILES = ("run.json", "index.html", REUSE_FILE)  # written by reproduce itself, not by a notebook


def reusable(record: dict[str, Any] | None, parts: dict[str, Any], reports: Path) -> bool:
    from workbench.core.reuse import fingerprint

    return bool(record) and record.get("fingerprint") == fingerprint(parts) and all(
        (reports / f).is_file() for f in record.get("outputs", []))


def _snapshot(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


HEARTBEAT_S = 60.0  # a notebook whose stages report nothing still says it is running, this often

# Minutes each notebook spends outside its stages' wall-clock budgets (building, encoding, evaluating, the
# benchmarks), per preset: rough figures from runs on 2 CPU cores. A preset not listed has no estimate.
OVERHEAD_MINUTES = {
    "smoke": {"00_corpus": 0.5, "01_tokenization": 1.0, "02_ssm_primer": 0.5, "03_griffin_training": 1.5,
              "04_acoustic_synthesis": 2.0, "05_extrapolation_16min": 1.0, "06_efficiency": 1.0},
    # measured in the fifth timed fresh-clone run of 2026-12-03 (commit 705d009, real speech mixed in, on a slow
    # machine; run.json; README "Reproduction"): each notebook's wall clock less its stages' budgets
    "laptop": {"00_corpus": 2.8, "01_tokenization": 1.9, "02_ssm_primer": 0.8, "03_griffin_training": 9.8,
               "04_acoustic_synthesis": 14.4, "05_extrapolation_16min": 14.5, "06_efficiency": 5.0},
}


def expected_minutes(preset: str, configs: dict[str, Any] | None = None) -> dict[str, float | None]:
    """Expected minutes per notebook at `preset`: the stages' wall-clock budgets (`max_minutes` of the tokenizer,
    of both LMs, of the codec and SoundStorm) plus each notebook's overhead. None where a stage that trains has
    no budget (it runs to its step count: the paper preset) or the preset has no overhead figures."""
    configs = configs or stage_configs(preset)
    overhead = OVERHEAD_MINUTES.get(preset, {})

    def budget(cfg: Any) -> float | None:
        train = getattr(cfg, "train", cfg)
        return getattr(train, "max_minutes", None)

    smoke = preset == "smoke"  # smoke runs a few steps: its stages end long before any budget
    budgets: dict[str, list[float | None]] = {
        "01_tokenization": [budget(configs["tokenizer"])],
        "03_griffin_training": [budget(configs["lm_train"])] * 2,  # Griffin, then the Transformer
        "04_acoustic_synthesis": [budget(configs["codec"]), budget(configs["acoustic"])],
    }
    out: dict[str, float | None] = {}
    for name in NOTEBOOKS:
        extra = overhead.get(name)
        parts = [] if smoke else budgets.get(name, [])
        out[name] = None if extra is None or None in parts else round(extra + sum(parts), 1)
    return out


def _settings(configs: dict[str, Any]) -> dict[str, Any]:
    return {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in configs.items()}


def _read_records(path: Path) -> dict[str, Any]:
    try:
        records = json.loads(path.read_text())
        return records if isinstance(records, dict) else {}
    except (OSError, ValueError):
        return {}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="build the corpus and run every notebook into the report folder")
    p.add_argument("--preset", default="laptop", help="smoke | laptop | paper (default laptop)")
    p.add_argument("--reports", default="reports/latest", help="report folder (default reports/latest)")
    p.add_argument("--only", nargs="*", default=None, help="run only these notebooks (e.g. 00_corpus)")
    p.add_argument("--fresh", action="store_true",
                   help="remake everything (corpus tokens, models, measurements) instead of reusing it")
    p.set_defaults(func=run)


@contextmanager
def spin_alone() -> Iterator[None]:
    """Inside the block, processes started from here (the notebooks' kernels) let torch's OpenMP threads spin
    `workbench.SPIN_ALONE` times before sleeping instead of `SPIN_SHARED`: the job runs one stage at a time with the
    cores to itself, where longer spinning trains the codec ~15% and the Griffin LM ~7% faster
    (`workbench/__init__.py`). Not if the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT set before the workbench
    was imported); restored after."""
    import workbench

    before = os.environ.get("GOMP_SPINCOUNT")
    if not workbench.SPIN_CHOSEN_BY_USER:
        os.environ["GOMP_SPINCOUNT"] = workbench.SPIN_ALONE  # a kernel reads it when it first imports torch
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GOMP_SPINCOUNT", None)
        else:
            os.environ["GOMP_SPINCOUNT"] = before


def run(args: argparse.Namespace) -> int:
    import torch

    from workbench.core import progress, reuse
    from workbench.core.io import atomic_write_json, to_json
    from workbench.pipeline.notebooks import available_notebooks, run_notebook
    from workbench.pipeline.report import write_report_page

    configs = stage_configs(args.preset)  # every stage knows the preset, or one line says which does not
    names = available_notebooks()
    if args.only:
        unknown = sorted(set(args.only) - set(NOTEBOOKS))
        if unknown:
            raise UserError(f"unknown notebook(s) {unknown}; notebooks: {', '.join(NOTEBOOKS)}")
        names = [n for n in names if n in args.only]
    reports = Path(args.reports)
    reports.mkdir(parents=True, exist_ok=True)
    if args.fresh:  # every stage stamped before now is made again, once (the kernels inherit this)
        os.environ[reuse.FRESH_ENV] = str(time.time())
    parameters = {"preset": args.preset, "reports": str(reports)}
    records = {} if args.fresh else _read_records(reports / REUSE_FILE)
    expected = expected_minutes(args.preset, configs)
    reused_now = {n for n in names if reusable(records.get(n), notebook_parts(n, args.preset, parameters), reports)}
    plan = [0.0 if n in reused_now else expected.get(n) for n in names]
    total = None if None in plan else sum(plan)
    say = lambda text: print(f"[reproduce] {text}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"{len(names)} notebooks at preset {args.preset!r} into {reports}/; expected "
        + (f"~{progress.clock(total * 60)} (the stages' budgets + overheads)" if total is not None else
           "time unknown (a stage without a wall-clock budget)"))
    timings: dict[str, float] = {}
    reused: dict[str, dict[str, Any]] = {}
    started_run, failed = time.time(), None
    try:
        for i, name in enumerate(names):
            started = time.time()
            record = records.get(name)
            if reusable(record, notebook_parts(name, args.preset, parameters), reports):
                reused[name] = record
                timings[name] = 0.0
                say(f"{name} ({i + 1}/{len(names)}) reused: its notebook, code, settings and inputs are those of "
                    f"the run made {record['made']} in {progress.clock(record['seconds'])} "
                    f"(fingerprint {record['fingerprint']}; --fresh remakes it)")
                continue
            files_before = _snapshot(reports)
            rest = plan[i + 1:]
            after_s = None if None in rest else 60 * sum(rest)
            left = "" if None in plan[i:] else f", run ~{progress.clock(60 * sum(plan[i:]))} left"
            say(f"{name} ({i + 1}/{len(names)}; expected ~{progress.clock((plan[i] or 0) * 60)}{left}) ...")
            log = reports / f"progress-{name}.jsonl"
            log.unlink(missing_ok=True)
            before = os.environ.get(progress.ENV)
            os.environ[progress.ENV] = str(log.resolve())  # the kernel papermill starts inherits it
            try:
                with progress.ProgressPrinter(log, f"reproduce {name}", after_s=after_s, heartbeat_s=HEARTBEAT_S,
                                              expected_s=None if plan[i] is None else 60 * plan[i]), spin_alone():
                    run_notebook(name, reports, parameters)
            except BaseException:
                failed = name
                raise
            finally:
                if before is None:
                    os.environ.pop(progress.ENV, None)
                else:
                    os.environ[progress.ENV] = before
                timings[name] = round(time.time() - started, 1)
            after = _snapshot(reports)
            records[name] = {
                "fingerprint": reuse.fingerprint(notebook_parts(name, args.preset, parameters)),
                "outputs": sorted(f for f, t in after.items() if files_before.get(f) != t and f not in RUN_FILES
                                  and not f.startswith("progress-")),
                "seconds": timings[name], "made": time.strftime("%Y-%m-%d %H:%M:%S")}
            atomic_write_json(reports / REUSE_FILE, records)
            say(f"{name} done in {progress.clock(timings[name])}")
    finally:
        run_info = {
            "preset": args.preset, "notebooks": timings, "total_seconds": round(sum(timings.values()), 1),
            "reused": {n: {"seconds_when_made": r["seconds"], "made": r["made"]} for n, r in reused.items()},
            "fresh": bool(args.fresh),
            "expected_minutes": {n: expected.get(n) for n in names}, "failed": failed,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_run)),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpus": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "settings": json.loads(to_json(_settings(configs))),
        }
        atomic_write_json(reports / "run.json", run_info)
        try:
            page = write_report_page(reports)
            say(f"report page: {page}" + (f" (the run stopped in {failed})" if failed else ""))
        except Exception as err:  # noqa: BLE001 -- never hide the run's own error behind the page's
            page = None
            say(f"could not write the report page: {type(err).__name__}: {err}")
    print(json.dumps(timings, indent=1))
    print(f"reports in {reports}/: {', '.join(sorted(p.name for p in reports.iterdir()))}")
    if page is not None:
        print(f"open {page} in a browser")
    return 0
