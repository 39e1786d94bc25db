"""SoundStorm on the shared training loop: a killed run resumes to the uninterrupted run's losses (a torn metrics
line dropped with a warning), a finished run resumed with the same budget is left alone, summary.json is strict
JSON, and micro-batches add up to the whole batch's loss."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from run_logs import records, strict, without_time
from safetensors.torch import load_file

from workbench.acoustic.config import PRESETS
from workbench.acoustic.synthesize import Synthesizer
from workbench.acoustic.train import AcousticTask, default_paths, train
from workbench.core.config import override
from workbench.core.paths import codec_dir

SMOKE = PRESETS["smoke"]
PRESET = dataclasses.replace(SMOKE, train=override(SMOKE.train, steps=6, checkpoint_every=3, eval_every=4, log_every=1))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def inputs(smoke_acoustic, smoke_corpus, smoke_tokenizer, smoke_codec):
    """(corpus, codec, tokenizer, pairs) of the session's smoke SoundStorm."""
    return smoke_corpus, smoke_codec, smoke_tokenizer, smoke_acoustic.parent / "pairs"


@pytest.fixture(scope="module")
def straight(tmp_path_factory, inputs):
    out = tmp_path_factory.mktemp("acoustic-straight") / "run"
    train(out, PRESET, *inputs, progress=False, preset_name="smoke")
    return out


def test_a_killed_run_resumes_to_the_same_losses(tmp_path, monkeypatch, straight, inputs):
    out = tmp_path / "run"
    original = AcousticTask.micro_batches

    def killed_at_step_4(self, step, rng, info):
        if step == 4:
            raise KeyboardInterrupt  # after the step-3 checkpoint, the step-4 evaluation and log line
        return original(self, step, rng, info)

    monkeypatch.setattr(AcousticTask, "micro_batches", killed_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(out, PRESET, *inputs, progress=False, preset_name="smoke")
    monkeypatch.undo()
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 3 and not (out / "summary.json").exists()
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "loss": 3.1')  # the kill came in the middle of an append

    with pytest.warns(UserWarning, match="torn last line"):
        summary = train(out, PRESET, *inputs, resume=True, progress=False, preset_name="smoke")
    assert summary["steps"] == 6 and summary["resumed_from"] == 3 and summary["initial_eval_loss"] is None
    resumed, expected = records(out), records(straight)
    assert [r["step"] for r in resumed] == [r["step"] for r in expected] == [0, 1, 2, 3, 4, 4, 5, 6, 6]
    for got, want in zip(without_time(resumed), without_time(expected)):
        assert got.keys() == want.keys()
        assert got == pytest.approx(want, abs=1e-5)
    a = load_file(str(out / "checkpoints/step-0000006/model.safetensors"))
    b = load_file(str(straight / "checkpoints/step-0000006/model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in b)


def test_resuming_a_finished_run_changes_nothing(straight, inputs, capsys):
    files = ("summary.json", "metrics.jsonl", "checkpoint.json")
    before = {name: (straight / name).read_bytes() for name in files}
    summary = train(straight, PRESET, *inputs, resume=True, progress=False, preset_name="smoke")
    assert summary["already_finished"] and summary["steps"] == 6
    assert "nothing to do" in capsys.readouterr().err
    assert {name: (straight / name).read_bytes() for name in files} == before


def test_summary_is_strict_json_with_the_stage_keys(straight, inputs):
    summary = strict((straight / "summary.json").read_text())
    assert {"out", "preset", "steps", "stopped_by", "elapsed_s", "threads", "seconds_of_audio", "initial_eval_loss",
            "final_eval_loss", "initial_eval_accuracy", "final_eval_accuracy", "last", "parameters", "levels",
            "codebook_size", "train_hours"} <= set(summary)
    assert summary["levels"] == 4 and summary["train_hours"]["train"] > 0
    records(straight)  # every metrics line is strict JSON too
    config = strict((straight / "checkpoints" / "step-0000006" / "config.json").read_text())
    assert {"model_config", "train_config", "decode_config", "data", "codec", "tokenizer"} <= set(config)
    # what synthesis reads back from the run folder
    synth = Synthesizer.load(straight, inputs[1], inputs[2])
    assert synth.decode == SMOKE.decode and synth.levels == 4


def test_micro_batches_add_up_to_the_whole_batch(tmp_path, inputs):
    one = dataclasses.replace(PRESET, train=override(PRESET.train, steps=2, checkpoint_every=0, eval_every=0))
    split = dataclasses.replace(one, train=override(one.train, micro_batch=1))
    whole = train(tmp_path / "whole", one, *inputs, progress=False)
    parts = train(tmp_path / "parts", split, *inputs, progress=False)
    first = [[r for r in records(tmp_path / run) if r["step"] == 1 and "loss" in r][0] for run in ("whole", "parts")]
    assert first[0]["loss"] == pytest.approx(first[1]["loss"], abs=1e-5)
    assert first[0]["grad_norm"] == pytest.approx(first[1]["grad_norm"], rel=1e-4)
    # after an Adam step: its first update is ~lr x sign(gradient), so rounding-level gradient differences of
    # near-zero entries move weights by a whole lr; the losses agree to ~1e-4 of themselves, not to float precision
    assert parts["last"]["loss"] == pytest.approx(whole["last"]["loss"], rel=1e-4)


def test_default_paths_follow_core_paths():
    paths = default_paths("smoke")
    assert paths["codec"] == codec_dir("smoke") == paths["codec"].__class__("runs/codec/smoke")
    assert paths["run"].as_posix() == "runs/acoustic/smoke" and paths["pairs"].as_posix() == "data/build/acoustic/smoke"
