"""The codec on the shared training loop: a killed run resumes to the uninterrupted run's losses (a torn metrics
line dropped with a warning), a finished run resumed with the same budget is left alone, summary.json is strict
JSON, and a run in the old place (data/build/codec/<preset>) is named with the command that moves it."""

from __future__ import annotations

import json

import pytest
from run_logs import records, strict, without_time

from workbench.cli import UserError, main
from workbench.codec.config import PRESETS
from workbench.codec.train import CodecTask, load_codec, train
from workbench.core.config import override

SMOKE = PRESETS["smoke"]
# adversarial from step 2, so the discriminator's optimizer is part of what must resume exactly
CFG = override(SMOKE.train, steps=8, checkpoint_every=4, log_every=1, adversarial_start=0.25)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def straight(tmp_path_factory, smoke_corpus):
    out = tmp_path_factory.mktemp("codec-straight") / "run"
    train(out, SMOKE.model, CFG, smoke_corpus, progress=False)
    return out


def test_a_killed_run_resumes_to_the_same_losses(tmp_path, monkeypatch, straight, smoke_corpus):
    out = tmp_path / "run"
    original = CodecTask.micro_batches

    def killed_at_step_5(self, step, rng, info):
        if step == 5:
            raise KeyboardInterrupt  # after the step-4 checkpoint and the step-5 log line
        return original(self, step, rng, info)

    monkeypatch.setattr(CodecTask, "micro_batches", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(out, SMOKE.model, CFG, smoke_corpus, progress=False)
    monkeypatch.undo()
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4 and not (out / "summary.json").exists()
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "loss": 0.12')  # the kill came in the middle of an append

    with pytest.warns(UserWarning, match="torn last line"):
        summary = train(out, SMOKE.model, CFG, smoke_corpus, resume=True, progress=False)
    assert summary["steps"] == 8 and summary["resumed_from"] == 4 and summary["initial_eval_mel"] is None
    resumed, expected = records(out), records(straight)
    assert [r["step"] for r in resumed] == [r["step"] for r in expected]  # each step once, the torn line gone
    assert any("disc" in r for r in resumed)
    for got, want in zip(without_time(resumed), without_time(expected)):
        assert got.keys() == want.keys()
        assert got == pytest.approx(want, abs=1e-5)
    assert summary["final_eval_mel"] == pytest.approx(strict((straight / "summary.json").read_text())["final_eval_mel"],
                                                      abs=1e-5)


def test_resuming_a_finished_run_changes_nothing(tmp_path, straight, smoke_corpus, capsys):
    files = ("summary.json", "metrics.jsonl", "checkpoint.json")
    before = {name: (straight / name).read_bytes() for name in files}
    summary = train(straight, SMOKE.model, CFG, smoke_corpus, resume=True, progress=False)
    assert summary["already_finished"] and summary["steps"] == 8
    assert "nothing to do" in capsys.readouterr().err
    assert {name: (straight / name).read_bytes() for name in files} == before


def test_summary_is_strict_json_with_the_stage_keys(straight):
    summary = strict((straight / "summary.json").read_text())
    assert {"out", "preset", "steps", "stopped_by", "elapsed_s", "seconds_of_audio", "initial_eval_mel",
            "final_eval_mel", "last", "parameters", "discriminator_parameters", "kbps"} <= set(summary)
    assert summary["discriminator_parameters"] > 0 and summary["kbps"] == pytest.approx(SMOKE.model.kbps())
    records(straight)  # every metrics line is strict JSON too
    config = strict(next((straight / "checkpoints").glob("step-*/config.json")).read_text())
    assert {"model_config", "train_config"} <= set(config)
    names = {p.name for p in (straight / "checkpoints" / "step-0000008").iterdir()}
    assert {"codec.safetensors", "discriminator.safetensors", "state.pt", "config.json"} <= names


def test_a_run_in_the_old_place_is_named_with_the_move(tmp_path, monkeypatch, capsys, smoke_corpus):
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "data/build/codec/smoke"
    old.mkdir(parents=True)
    (old / "checkpoint.json").write_text("{}")
    with pytest.raises(UserError, match="mv data/build/codec/smoke runs/codec/smoke"):
        load_codec("runs/codec/smoke")
    with pytest.raises(UserError, match="mv data/build/codec/smoke runs/codec/smoke"):
        train("runs/codec/smoke", SMOKE.model, CFG, smoke_corpus, progress=False)
    assert main(["codec", "encode", "in.wav", "--preset", "smoke", "--out", "c.npz"]) == 2  # the default folder
    err = capsys.readouterr().err
    assert "mv data/build/codec/smoke runs/codec/smoke" in err and len(err.strip().splitlines()) == 1
