"""Progress a person can read: `workbench.core.progress` from any process, tailed and printed by `reproduce`;
the run's expected time comes from the presets' budgets."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from workbench.core import progress

FAKE_STAGE = textwrap.dedent("""
    import sys, time
    from workbench.core import progress
    steps = int(sys.argv[1])
    start = time.monotonic()
    for step in range(1, steps + 1):
        time.sleep(0.25)
        progress.report("griffin", step, steps, "step", time.monotonic() - start, note=f"loss {5 - step / steps:.2f}")
""")


def test_report_is_a_no_op_without_the_variable_and_never_raises(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    progress.report("x", 1, 2, "step", 1.0)
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv(progress.ENV, str(tmp_path))  # a directory: cannot be appended to
    progress.report("x", 1, 2, "step", 1.0)
    monkeypatch.setenv(progress.ENV, str(tmp_path / "p.jsonl"))
    progress.report("y", 2, 4, "step", 10.0, budget_s=12.0)
    progress.report("y", 3, 4, "step", 11.0)  # within a second of the last: thinned out
    progress.report("y", 4, 4, "step", 12.0)  # the last one is always written
    records, offset = progress.read_new(tmp_path / "p.jsonl")
    assert [r["done"] for r in records] == [2, 4] and records[0]["eta_s"] == 2.0  # min(rate: 10 s, budget: 2 s)
    assert offset == (tmp_path / "p.jsonl").stat().st_size
    with (tmp_path / "p.jsonl").open("a") as f:
        f.write('{"stage": "torn"')  # a line still being written is left for later
    assert progress.read_new(tmp_path / "p.jsonl", offset) == ([], offset)


def test_format_record():
    line = progress.format_record({"stage": "griffin", "unit": "step", "done": 120, "total": 600, "elapsed_s": 151,
                                   "eta_s": 310, "note": "loss 3.2"}, "reproduce 03_griffin_training", after_s=3600)
    assert line == ("[reproduce 03_griffin_training] griffin step 120/600 (02:31 elapsed, ~05:10 left; "
                    "all ~1:05:10 left) -- loss 3.2")


def test_a_fake_long_stage_is_tailed_and_printed(tmp_path):
    """A separate process reports; the printer, like reproduce's, prints its lines (thinned to one per `every_s`)."""
    log = tmp_path / "progress.jsonl"
    out = io.StringIO()
    env = {**os.environ, progress.ENV: str(log)}
    with progress.ProgressPrinter(log, "reproduce fake", every_s=1.0, poll_s=0.1, after_s=60, out=out) as printer:
        subprocess.run([sys.executable, "-c", FAKE_STAGE, "12"], env=env, check=True, timeout=120)
        time.sleep(1.3)  # one more interval: the last record is printed too
    lines = out.getvalue().splitlines()
    assert printer.printed == lines and 2 <= len(lines) <= 6, lines  # ~3 s of reports, not one line per report
    assert all(line.startswith("[reproduce fake] griffin step ") and "elapsed, ~" in line for line in lines)
    assert re.fullmatch(r"\[reproduce fake\] griffin step 12/12 \(00:0\d elapsed, ~00:00 left; all ~01:00 left\) "
                        r"-- loss 4\.00", lines[-1]), lines[-1]
    written = [json.loads(x) for x in log.read_text().splitlines()]
    assert written[-1]["done"] == 12 and len(written) < 12  # thinned at the source too


def test_the_run_estimate_counts_the_notebooks_other_stages(tmp_path):
    """A notebook expected to take 40 min whose first stage (a 16-minute codec) says 15 min are left: the run's
    estimate holds the rest of the notebook (SoundStorm and its evaluation) too, then the notebooks after it."""
    log = tmp_path / "progress.jsonl"
    log.write_text(json.dumps({"t": 0, "stage": "codec", "done": 60, "total": 1000, "unit": "step",
                               "elapsed_s": 60.0, "eta_s": 900.0, "note": ""}) + "\n")
    out = io.StringIO()
    printer = progress.ProgressPrinter(log, "reproduce 04", after_s=1200.0, expected_s=2400.0, out=out)
    printer.started -= 60.0  # a minute into the notebook
    printer.poll()
    # stage 15:00 + (40:00 - 01:00 - 15:00) of the notebook + 20:00 after it = 59:00
    assert out.getvalue().strip().endswith("(01:00 elapsed, ~15:00 left; all ~59:00 left)"), out.getvalue()


def test_expected_minutes_come_from_the_budgets():
    from workbench.core.config import override
    from workbench.pipeline.reproduce import OVERHEAD_MINUTES, expected_minutes, stage_configs

    laptop = stage_configs("laptop")
    minutes = expected_minutes("laptop", laptop)
    assert minutes["03_griffin_training"] == OVERHEAD_MINUTES["laptop"]["03_griffin_training"] + \
        2 * laptop["lm_train"].max_minutes
    assert minutes["04_acoustic_synthesis"] == OVERHEAD_MINUTES["laptop"]["04_acoustic_synthesis"] + \
        laptop["codec"].train.max_minutes + laptop["acoustic"].train.max_minutes
    longer = {**laptop, "tokenizer": override(laptop["tokenizer"], max_minutes=laptop["tokenizer"].max_minutes + 30)}
    assert expected_minutes("laptop", longer)["01_tokenization"] == minutes["01_tokenization"] + 30
    assert all(v is None for v in expected_minutes("paper").values())  # no budgets: no pretend estimate
    assert all(v is not None for v in expected_minutes("smoke").values())


def test_reproduce_sets_the_variable_per_notebook_and_writes_the_page(tmp_path, monkeypatch, capsys):
    """reproduce with its notebooks replaced by the fake stage in a child process (as papermill's kernel is)."""
    import workbench
    from workbench.pipeline import notebooks, reproduce

    seen, spins = [], []

    def fake_notebook(name, out_dir, parameters=None, timeout_s=None):
        seen.append(os.environ[progress.ENV])
        spins.append(os.environ.get("GOMP_SPINCOUNT"))
        subprocess.run([sys.executable, "-c", FAKE_STAGE, "4"], check=True, timeout=120)  # inherits the env
        (out_dir / f"{name}.ipynb").write_text("{}")

    monkeypatch.setattr(notebooks, "run_notebook", fake_notebook)
    monkeypatch.setattr(notebooks, "available_notebooks", lambda: ["00_corpus", "01_tokenization"])
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr(workbench, "SPIN_CHOSEN_BY_USER", False)
    reports = tmp_path / "reports"
    reproduce.run(argparse.Namespace(preset="smoke", reports=str(reports), only=None, fresh=False))
    assert seen == [str((reports / f"progress-{n}.jsonl").resolve()) for n in ("00_corpus", "01_tokenization")]
    assert spins == [workbench.SPIN_ALONE] * 2  # the job's stages have the cores to themselves
    assert progress.ENV not in os.environ  # restored
    err = capsys.readouterr().err
    assert "[reproduce] 2 notebooks at preset 'smoke'" in err and "expected ~01:30" in err
    assert "[reproduce 00_corpus] griffin step " in err and "[reproduce 01_tokenization] griffin step " in err
    run = json.loads((reports / "run.json").read_text())
    assert set(run["notebooks"]) == {"00_corpus", "01_tokenization"} and run["failed"] is None
    assert run["expected_minutes"] == {"00_corpus": 0.5, "01_tokenization": 1.0} and "lm_train" in run["settings"]
    assert "00_corpus" in (reports / "index.html").read_text()


def test_the_jobs_kernels_spin_longer_unless_the_user_chose(monkeypatch):
    """`spin_alone` hands the job's stage processes SPIN_ALONE (a kernel importing the workbench keeps it), puts the
    shared count back after, and leaves a user's own choice alone."""
    import workbench
    from workbench.pipeline.reproduce import spin_alone

    probe = [sys.executable, "-c",
             "import os, workbench; print(os.environ['GOMP_SPINCOUNT'], workbench.SPIN_CHOSEN_BY_USER)"]
    monkeypatch.setattr(workbench, "SPIN_CHOSEN_BY_USER", False)
    monkeypatch.setenv("GOMP_SPINCOUNT", workbench.SPIN_SHARED)
    with spin_alone():
        child = subprocess.run(probe, capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert child == [workbench.SPIN_ALONE, "True"]
    assert os.environ["GOMP_SPINCOUNT"] == workbench.SPIN_SHARED
    monkeypatch.setattr(workbench, "SPIN_CHOSEN_BY_USER", True)
    monkeypatch.setenv("GOMP_SPINCOUNT", "50000")
    with spin_alone():
        assert os.environ["GOMP_SPINCOUNT"] == "50000"


def test_the_package_spins_the_shared_count_unless_the_user_chose():
    import workbench

    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    probe = "import os, workbench; print(os.environ.get('GOMP_SPINCOUNT'))"

    def spins(**extra: str) -> str:
        return subprocess.run([sys.executable, "-c", probe], env={**env, **extra}, capture_output=True, text=True,
                              check=True, timeout=60).stdout.strip()

    assert spins() == workbench.SPIN_SHARED == "3000"
    assert spins(OMP_WAIT_POLICY="passive") == "None"
    assert spins(GOMP_SPINCOUNT="50000") == "50000"


def test_a_failing_notebook_still_leaves_run_json_and_the_page(tmp_path, monkeypatch):
    from workbench.pipeline import notebooks, reproduce

    def broken(name, out_dir, parameters=None, timeout_s=None):
        raise RuntimeError("cell 3 failed")

    monkeypatch.setattr(notebooks, "run_notebook", broken)
    monkeypatch.setattr(notebooks, "available_notebooks", lambda: ["00_corpus"])
    with pytest.raises(RuntimeError, match="cell 3"):
        reproduce.run(argparse.Namespace(preset="smoke", reports=str(tmp_path), only=None, fresh=False))
    assert json.loads((tmp_path / "run.json").read_text())["failed"] == "00_corpus"
    assert (tmp_path / "index.html").is_file()


def test_papermill_kernel_inherits_the_variable(tmp_path, monkeypatch):
    """The real path: a notebook executed by `run_notebook` reports progress into the file reproduce names."""
    from workbench.pipeline import notebooks

    (tmp_path / "notebooks").mkdir()
    notebooks.write_notebook("00_corpus", [("parameters", "preset = 'smoke'"), (
        "code", "from workbench.core import progress\nprogress.report('kernel', 1, 1, 'step', 0.5, note=preset)")],
        tmp_path / "notebooks")
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", tmp_path / "notebooks")
    log = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(log))
    notebooks.run_notebook("00_corpus", tmp_path, {"preset": "laptop"}, timeout_s=120)
    (record,), _ = progress.read_new(log)
    assert record["stage"] == "kernel" and record["note"] == "laptop" and record["pid"] != os.getpid()


def test_a_silent_stage_gets_a_heartbeat(tmp_path):
    out = io.StringIO()
    printer = progress.ProgressPrinter(tmp_path / "none.jsonl", "reproduce 04", heartbeat_s=0.2, expected_s=600,
                                       out=out)
    assert printer.poll() is None  # not yet
    time.sleep(0.25)
    assert printer.poll() == "[reproduce 04] running (00:00 elapsed, expected ~10:00)"
    assert printer.poll() is None  # and not again until another heartbeat_s has passed
