"""Training: loss falls, resume is exact, the time budget stops a run, 2-process DDP equals 1 process, and the
CLI commands (info on the meta device, eval writing lm.json) work end to end."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from run_logs import strict, without_time
from safetensors.torch import load_file

from workbench import cli
from workbench.core.checkpoint import latest_checkpoint
from workbench.core.errors import UserError
from workbench.core.train import lr_factor
from workbench.lm.config import train_config
from workbench.lm.data import SYNTHETIC_PRESETS, write_synthetic_tokens
from workbench.lm.model import load_model, model_config
from workbench.lm.train import read_metrics, train

ROOT = Path(__file__).resolve().parent.parent
SMOKE = model_config("smoke")
FAST = dataclasses.replace(train_config("smoke"), steps=8, batch_size=4, window_tokens=32, log_every=1,
                           eval_every=4, checkpoint_every=4, warmup_steps=2)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return write_synthetic_tokens(tmp_path_factory.mktemp("tok"), SYNTHETIC_PRESETS["smoke"])


def losses(run):
    return [m["loss"] for m in read_metrics(run) if "loss" in m]


def test_smoke_training_learns(tokens, tmp_path):
    summary = train(tmp_path / "run", SMOKE, train_config("smoke"), tokens, preset="smoke", progress=False)
    curve = losses(tmp_path / "run")
    assert summary["steps"] == 30 and summary["stopped_by"] == "steps"
    assert summary["eval_loss"] < curve[0] - 0.5  # from ~ln(64) + tied-embedding bias towards ~3.5
    files = {p.name for p in latest_checkpoint(tmp_path / "run").iterdir()}
    assert files == {"model.safetensors", "state.pt", "config.json"}


def test_resume_continues_exactly(tokens, tmp_path):
    """N steps straight == interrupted after k steps (its step-k checkpoint is all that survives) + resume."""
    train(tmp_path / "straight", SMOKE, FAST, tokens, progress=False)  # checkpoints at steps 4 and 8
    split = tmp_path / "split"
    (split / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step-0000004", split / "checkpoints" / "step-0000004")
    (split / "checkpoint.json").write_text(json.dumps({"step": 4, "path": "checkpoints/step-0000004"}))
    shutil.copy(tmp_path / "straight" / "metrics.jsonl", split / "metrics.jsonl")  # resume cuts it back to step 4
    summary = train(split, SMOKE, FAST, tokens, resume=True, progress=False)
    assert summary["resumed_from"] == 4 and summary["steps"] == 8
    a, b = losses(tmp_path / "straight"), losses(split)
    assert len(a) == len(b) == 8
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-6, (a, b)
    wa = load_file(latest_checkpoint(tmp_path / "straight") / "model.safetensors")
    wb = load_file(latest_checkpoint(split) / "model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6


def test_resume_and_overwrite_errors(tokens, tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        train(tmp_path / "none", SMOKE, FAST, tokens, resume=True, progress=False)
    train(tmp_path / "run", SMOKE, dataclasses.replace(FAST, steps=1), tokens, progress=False)
    with pytest.raises(UserError, match="already holds a run"):
        train(tmp_path / "run", SMOKE, FAST, tokens, progress=False)
    with pytest.raises(UserError, match="lr"):
        train(tmp_path / "run", SMOKE, dataclasses.replace(FAST, lr=1.0), tokens, resume=True, progress=False)


def test_time_budget_stops_after_at_least_one_step_and_checkpoints(tokens, tmp_path):
    summary = train(tmp_path / "run", SMOKE, dataclasses.replace(FAST, max_minutes=1e-6), tokens, progress=False)
    assert summary["stopped_by"] == "max_minutes" and summary["steps"] == 1
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["step"] == 1
    lrs = [m["lr"] for m in read_metrics(tmp_path / "run") if "lr" in m]
    assert lrs and lrs[0] == pytest.approx(FAST.lr * lr_factor(FAST, 0, 1.0))  # the budget's progress anneals


def test_zero_budgets_are_refused():
    for bad in ({"steps": 0}, {"max_minutes": 0.0}, {"lr": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            dataclasses.replace(FAST, **bad)


def test_resume_of_a_finished_run_changes_nothing(tokens, tmp_path, capsys):
    run = tmp_path / "run"
    train(run, SMOKE, dataclasses.replace(FAST, steps=3), tokens, progress=False)
    before = {p.name: p.read_bytes() for p in (run / "metrics.jsonl", run / "summary.json")}
    again = train(run, SMOKE, dataclasses.replace(FAST, steps=3), tokens, resume=True, progress=False)
    assert again["already_finished"] and "nothing to do" in capsys.readouterr().err
    assert before == {p.name: p.read_bytes() for p in (run / "metrics.jsonl", run / "summary.json")}
    strict((run / "summary.json").read_text())


def test_torn_metrics_line_is_dropped_on_resume(tokens, tmp_path):
    """Killed during an append after its step-4 checkpoint: the torn line is dropped with a warning and the
    resumed run logs what the uninterrupted one did."""
    train(tmp_path / "straight", SMOKE, FAST, tokens, progress=False)
    split = tmp_path / "split"
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step-0000004", split / "checkpoints" / "step-0000004")
    (split / "checkpoint.json").write_text(json.dumps({"step": 4, "path": "checkpoints/step-0000004"}))
    lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["step"] <= 5]
    (split / "metrics.jsonl").write_text("\n".join(kept) + "\n" + kept[-1][: len(kept[-1]) // 2])
    with pytest.warns(UserWarning, match="torn last line"):
        train(split, SMOKE, FAST, tokens, resume=True, progress=False)
    assert without_time(read_metrics(split)) == without_time(read_metrics(tmp_path / "straight"))
    assert losses(split) == pytest.approx(losses(tmp_path / "straight"), abs=1e-6)


def test_runs_from_before_the_shared_loop_load_but_do_not_resume(tokens, tmp_path):
    run = tmp_path / "old"
    train(run, SMOKE, dataclasses.replace(FAST, steps=2), tokens, progress=False)
    ckpt = latest_checkpoint(run)
    (ckpt / "state.pt").rename(ckpt / "optimizer.pt")  # the layout lm/train.py wrote before
    model, meta = load_model(run)
    assert meta["model_config"]["width"] == SMOKE.width
    with pytest.raises(UserError, match="older workbench"):
        train(run, SMOKE, dataclasses.replace(FAST, steps=4), tokens, resume=True, progress=False)


def test_vocab_mismatch_is_a_clear_error(tokens, tmp_path):
    small_vocab = dataclasses.replace(SMOKE, vocab_size=8)
    with pytest.raises(UserError, match="vocabulary of 8"):
        train(tmp_path / "run", small_vocab, FAST, tokens, progress=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one(tokens, tmp_path):
    """torchrun, 2 CPU processes (gloo on 127.0.0.1), 2 rows each == 1 process with 2 micro-batches of 2 rows.
    Tolerance 1e-5: only the order of the float32 gradient sums differs."""
    args = ["train", "--preset", "smoke", "--tokens", str(tokens), "--steps", "6", "--batch-size", "4",
            "--window", "32", "--precision", "fp32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                    "127.0.0.1", "--master_port", str(free_port()), "-m", "workbench.lm.cli", *args,
                    "--out", str(tmp_path / "ddp")], check=True, env=env, cwd=ROOT, timeout=240,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "workbench.lm.cli", *args, "--micro-batch", "2", "--out",
                    str(tmp_path / "one")], check=True, env=env, cwd=ROOT, timeout=240, capture_output=True)
    a, b = losses(tmp_path / "ddp"), losses(tmp_path / "one")
    assert len(a) == len(b) > 1 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-5, (a, b)
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["processes"] == 2
    wa = load_file(latest_checkpoint(tmp_path / "ddp") / "model.safetensors")
    wb = load_file(latest_checkpoint(tmp_path / "one") / "model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-5


def test_cli_info_paper_on_meta(capsys, tmp_path):
    assert cli.main(["lm", "info", "--preset", "paper", "--json", "--reports", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    counts = payload["models"]["griffin"]["parameters"]
    assert counts["total"] > 2e9 and counts["recurrent"] > 0 and counts["attention"] > 0
    assert payload["models"]["transformer"]["parameters"]["recurrent"] == 0


def test_cli_eval_writes_lm_json(tokens, tmp_path, capsys):
    for model in ("griffin", "transformer"):
        assert cli.main(["lm", "train", "--preset", "smoke", "--model", model, "--tokens", str(tokens), "--steps",
                         "4", "--out", str(tmp_path / model), "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["lm", "eval", "--runs", str(tmp_path / "griffin"), str(tmp_path / "transformer"),
                     "--bin-seconds", "5", "--json", "--reports", str(tmp_path / "reports")]) == 0
    payload = json.loads((tmp_path / "reports" / "lm.json").read_text())
    assert set(payload["models"]) == {"griffin", "transformer"} and payload["synthetic_tokens"]
    g = payload["models"]["griffin"]
    assert g["extrapolation_factor"] > 10 and len(g["nll_by_time"]) >= 4
    assert all(0 < b["nll"] < 10 for b in g["nll_by_time"])
    assert cli.main(["lm", "eval", "--runs", str(tmp_path / "missing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert cli.main(["lm", "sample", "--run", str(tmp_path / "griffin"), "--prompt-seconds", "1", "--seconds", "2",
                     "--batch", "2", "--top-k", "5", "--json"]) == 0
    samples = np.load(tmp_path / "griffin" / "samples.npy")
    assert samples.shape == (2, 25 + 50) and samples.max() < SMOKE.vocab_size


def test_tensorboard_is_optional(tokens, tmp_path):
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="tensorboard"):
            train(tmp_path / "run", SMOKE, FAST, tokens, progress=False, tensorboard=True)
    else:
        train(tmp_path / "run", SMOKE, FAST, tokens, progress=False, tensorboard=True)
        assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_a_window_beyond_memory_is_refused_before_any_allocation(monkeypatch):
    from workbench.lm import train as lm_train

    cfg = dataclasses.replace(FAST, window_tokens=200_000)
    assert lm_train.training_bytes(SMOKE, 1, 200_000) > 600 * 2**30  # the t x t attention alone: 0.6 TB
    monkeypatch.setattr(lm_train, "available_bytes", lambda device: 24 * 2**30)
    with pytest.raises(UserError, match="GiB of activations"):
        lm_train.check_fits(SMOKE, cfg, train_tokens=10**7, micro=1, device=torch.device("cpu"))
    lm_train.check_fits(SMOKE, FAST, train_tokens=10**7, micro=4, device=torch.device("cpu"))  # the smoke run fits


def test_snapshots_for_learning_curves_are_taken_once_each_and_survive_resume(tokens, tmp_path):
    """snapshots=4: weights at 25, 50 and 75% of the run (steps 2, 4, 6 of 8), the finished model the last point;
    a run resumed from step 4 keeps its two and takes only the third; the snapshots are the models of those steps."""
    from workbench.core.checkpoint import snapshots
    from workbench.lm.model import snapshot_models

    cfg = dataclasses.replace(FAST, snapshots=4)
    train(tmp_path / "straight", SMOKE, cfg, tokens, progress=False)
    taken = [meta for meta, _ in snapshots(tmp_path / "straight")]
    assert [(m["mark"], m["step"]) for m in taken] == [(0.25, 2), (0.5, 4), (0.75, 6)]
    points = snapshot_models(tmp_path / "straight")
    assert [m["mark"] for m, _ in points] == [0.25, 0.5, 0.75, 1.0] and points[-1][0]["step"] == 8
    x = torch.randint(0, SMOKE.vocab_size, (1, 16))
    with torch.no_grad():
        outs = [model(x)[0] for _, model in points]  # the logits
    assert not torch.allclose(outs[0], outs[-1])  # early weights are not the final ones
    split = tmp_path / "split"  # interrupted after step 4: its checkpoint and the snapshots it had by then
    (split / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step-0000004", split / "checkpoints" / "step-0000004")
    (split / "checkpoint.json").write_text(json.dumps({"step": 4, "path": "checkpoints/step-0000004"}))
    for pct in ("025", "050"):
        shutil.copytree(tmp_path / "straight" / "snapshots" / f"at-{pct}pct", split / "snapshots" / f"at-{pct}pct")
    train(split, SMOKE, cfg, tokens, resume=True, progress=False)
    assert [(m["mark"], m["step"]) for m, _ in snapshots(split)] == [(0.25, 2), (0.5, 4), (0.75, 6)]
    a = load_file(tmp_path / "straight" / "snapshots" / "at-075pct" / "model.safetensors")
    b = load_file(split / "snapshots" / "at-075pct" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
