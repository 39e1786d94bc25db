"""Reuse and resume (`workbench.core.reuse`): a stage output is reused when its settings, code and inputs are
the same, resumed when it was interrupted, remade otherwise; `reproduce` skips a notebook whose fingerprint and
files are there, continues an interrupted run with the notebook it stopped in, and remakes all with --fresh."""

from __future__ import annotations

import argparse
import json
import time

import pytest

from workbench.core import progress, reuse
from workbench.core.errors import UserError


class Builder:
    """A stage's work: writes a file, remembers how it was called, can be told to fail half-way."""

    def __init__(self, out):
        self.out, self.calls, self.fail = out, [], False

    def __call__(self, resume: bool) -> None:
        self.calls.append(resume)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "part.txt").write_text("half")
        if self.fail:
            raise KeyboardInterrupt("interrupted")
        (self.out / "model.txt").write_text("done")


PARTS = {"config": {"width": 8}, "corpus": "abc", "code": "v1"}


def test_made_then_reused_then_remade_when_a_part_changes(tmp_path):
    out = tmp_path / "runs" / "stage"
    build = Builder(out)
    assert reuse.make(out, PARTS, build, what="a model") == "new" and build.calls == [False]
    assert reuse.read_stamp(out)["finished"] is True
    assert reuse.make(out, PARTS, build, what="a model") == "reuse" and build.calls == [False]
    (out / "stray.txt").write_text("left by the old run")
    changed = {**PARTS, "config": {"width": 16}}
    assert reuse.plan(out, changed)[1] == "made from other config"
    assert reuse.make(out, changed, build, what="a model") == "new" and build.calls == [False, False]
    assert not (out / "stray.txt").exists()  # the folder was cleared before it was remade


def test_an_interrupted_run_is_resumed_and_then_reused(tmp_path):
    out = tmp_path / "stage"
    build = Builder(out)
    build.fail = True
    with pytest.raises(KeyboardInterrupt):
        reuse.make(out, PARTS, build, what="a model")
    assert reuse.read_stamp(out)["finished"] is False  # claimed for these parts, not finished
    build.fail = False
    assert reuse.make(out, PARTS, build, what="a model") == "resume" and build.calls == [False, True]
    assert reuse.make(out, PARTS, build, what="a model") == "reuse"
    # a stage that cannot resume part-way starts again instead
    build.fail = True
    with pytest.raises(KeyboardInterrupt):
        reuse.make(out, {**PARTS, "code": "v2"}, build, what="a model")
    build.fail = False
    assert reuse.make(out, {**PARTS, "code": "v2"}, build, what="a model", resumable=lambda d: False) == "new"


def test_fresh_remakes_what_was_made_before_it_once(tmp_path, monkeypatch):
    out = tmp_path / "stage"
    build = Builder(out)
    reuse.make(out, PARTS, build, what="a model")
    monkeypatch.setenv(reuse.FRESH_ENV, str(time.time() + 1))
    assert reuse.plan(out, PARTS)[0] == "new"
    time.sleep(1.1)
    assert reuse.make(out, PARTS, build, what="a model") == "new"
    assert reuse.make(out, PARTS, build, what="a model") == "reuse"  # made in this fresh run: not again


def test_a_folder_not_made_by_the_workbench_is_never_deleted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "my-models"
    mine.mkdir()
    (mine / "precious.pt").write_text("x")
    with pytest.raises(UserError, match="did not stamp"):
        reuse.make(mine, PARTS, Builder(mine), what="a model")
    assert (mine / "precious.pt").exists()
    ours = tmp_path / "runs" / "codec" / "laptop"  # made by a version before stamps: ours to remake
    ours.mkdir(parents=True)
    (ours / "old.pt").write_text("x")
    assert reuse.make(ours, PARTS, Builder(ours), what="a model") == "new" and not (ours / "old.pt").exists()


def test_an_unstamped_run_with_the_same_settings_is_adopted(tmp_path):
    out = tmp_path / "stage"
    out.mkdir()
    build = Builder(out)
    assert reuse.make(out, PARTS, build, what="a model", adopt=lambda d: True) == "reuse" and build.calls == []
    assert reuse.read_stamp(out)["fingerprint"] == reuse.fingerprint(PARTS)


def test_input_fingerprints_follow_stamps_and_files(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.wav").write_bytes(b"123")
    first = reuse.input_fingerprint(corpus)
    assert first.startswith("files:") and reuse.input_fingerprint(corpus) == first
    (corpus / "b.wav").write_bytes(b"4")
    assert reuse.input_fingerprint(corpus) != first
    reuse.write_stamp(corpus, {"config": 1}, finished=True)
    assert reuse.input_fingerprint(corpus) == reuse.fingerprint({"config": 1})
    (corpus / "learned").mkdir()  # a model inside a stamped folder (runs/tokenizer/<preset>/learned)
    assert reuse.input_fingerprint(corpus / "learned") == reuse.fingerprint({"config": 1}) + "/learned"
    assert reuse.input_fingerprint(tmp_path / "nothing") == "missing"


def test_code_versions_follow_the_modules_a_stage_imports(monkeypatch):
    assert "workbench.core.io" in reuse.closure(["workbench.lm.train"])
    assert "workbench.codec.model" not in reuse.closure(["workbench.lm.train"])
    lm = reuse.code_version("workbench.lm.train")
    assert lm == reuse.code_version("workbench.lm.train") != reuse.code_version("workbench.codec.train")
    assert reuse.code_version_of_source("from workbench.lm.train import train_or_reuse\nimport json") == lm
    graph, sources = reuse._graph_and_sources()
    edited = {**sources, "workbench.core.io": sources["workbench.core.io"] + b"\n# an edit\n"}
    monkeypatch.setattr(reuse, "_graph_and_sources", lambda: (graph, edited))
    assert reuse.code_version("workbench.lm.train") != lm  # an edit two imports away remakes the LM
    with pytest.raises(ValueError, match="not workbench modules"):
        reuse.code_version("workbench.nope")


def test_announcements_are_printed_as_they_come(tmp_path, monkeypatch):
    log = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(log))
    reuse.make(tmp_path / "stage", PARTS, Builder(tmp_path / "stage"), what="the codec")
    reuse.make(tmp_path / "stage", PARTS, Builder(tmp_path / "stage"), what="the codec")
    import io

    out = io.StringIO()
    printer = progress.ProgressPrinter(log, "reproduce 04", out=out)
    printer.poll()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[reproduce 04] making the codec in ") and "nothing made there yet" in lines[0]
    assert lines[1].startswith("[reproduce 04] reused the codec in ") and "same fingerprint" in lines[1]


# ------------------------------------------------------------------------------------------- reproduce


@pytest.fixture
def fake_reproduce(tmp_path, monkeypatch):
    """reproduce over two fake notebooks; the second reads a stamped 'model' folder."""
    from workbench.pipeline import notebooks, reproduce

    model = tmp_path / "model"
    reuse.write_stamp(model, {"weights": 1}, finished=True)
    ran, fail = [], set()

    def fake_notebook(name, out_dir, parameters=None, timeout_s=None):
        ran.append(name)
        if name in fail:
            raise KeyboardInterrupt(name)
        (out_dir / f"{name}.ipynb").write_text("{}")
        (out_dir / f"{name}.json").write_text(json.dumps({"made": len(ran)}))

    monkeypatch.setattr(notebooks, "run_notebook", fake_notebook)
    monkeypatch.setattr(notebooks, "available_notebooks", lambda: ["00_corpus", "03_griffin_training"])
    monkeypatch.setattr(reproduce, "notebook_reads",
                        lambda name, preset: [model] if name == "03_griffin_training" else [])
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.delenv(reuse.FRESH_ENV, raising=False)
    reports = tmp_path / "reports"

    def run(fresh=False):
        reproduce.run(argparse.Namespace(preset="smoke", reports=str(reports), only=None, fresh=fresh))
        return json.loads((reports / "run.json").read_text())

    return run, ran, fail, model, reports


def test_a_second_reproduce_reuses_every_notebook(fake_reproduce, capsys):
    run, ran, fail, model, reports = fake_reproduce
    run()
    assert ran == ["00_corpus", "03_griffin_training"]
    records = json.loads((reports / "reuse.json").read_text())
    assert records["03_griffin_training"]["outputs"] == ["03_griffin_training.ipynb", "03_griffin_training.json"]
    info = run()
    assert ran == ["00_corpus", "03_griffin_training"]  # nothing ran again
    assert set(info["reused"]) == {"00_corpus", "03_griffin_training"}
    assert "00_corpus (1/2) reused" in capsys.readouterr().err
    reuse.write_stamp(model, {"weights": 2}, finished=True)  # the model was retrained elsewhere
    run()
    assert ran[2:] == ["03_griffin_training"]
    (reports / "00_corpus.json").unlink()  # a file the notebook wrote is gone: made again
    run()
    assert ran[3:] == ["00_corpus"]
    run(fresh=True)
    assert ran[4:] == ["00_corpus", "03_griffin_training"]


def test_an_interrupted_reproduce_continues_where_it_stopped(fake_reproduce):
    run, ran, fail, model, reports = fake_reproduce
    fail.add("03_griffin_training")
    with pytest.raises(KeyboardInterrupt):
        run()
    fail.clear()
    info = run()
    assert ran == ["00_corpus", "03_griffin_training", "03_griffin_training"]
    assert set(info["reused"]) == {"00_corpus"} and info["failed"] is None
