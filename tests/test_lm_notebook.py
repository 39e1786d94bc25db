"""Notebook 03 runs end to end at smoke scale (both models, loss curves, NLL vs position, a sample)."""

import json

import nbformat

from workbench.lm.data import SYNTHETIC_PRESETS, write_synthetic_tokens
from workbench.pipeline.notebooks import run_notebook


def test_griffin_training_notebook_smoke(tmp_path):
    tokens = write_synthetic_tokens(tmp_path / "tokens", SYNTHETIC_PRESETS["smoke"])
    out = run_notebook("03_griffin_training", tmp_path, {
        "preset": "smoke", "tokens": str(tokens), "steps": 10, "eval_seconds": None, "bin_seconds": 5.0,
        "sample_seconds": 2.0, "runs": str(tmp_path / "runs"), "reports": str(tmp_path / "reports")})
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "SYNTHETIC" in text and "continuation" in text
    payload = json.loads((tmp_path / "reports" / "lm.json").read_text())
    assert set(payload["models"]) == {"griffin", "transformer"}
    assert all(m["steps"] == 10 for m in payload["models"].values())


def test_griffin_training_notebook_scores_the_probes_on_speech_tokens(tmp_path, smoke_tokens):
    """On real (smoke) speech tokens notebook 03 scores the zero-shot probes with both LMs and draws their
    learning curves from the snapshots (smoke: at 50% and 100% of training) -> probes.json."""
    from workbench.pipeline.probes import build_sets

    items = tmp_path / "probes"
    build_sets("smoke", items, progress=False, log=lambda m: None)
    out = run_notebook("03_griffin_training", tmp_path, {
        "preset": "smoke", "tokens": str(smoke_tokens["tokens"]), "steps": 10, "eval_seconds": None,
        "bin_seconds": 5.0, "sample_seconds": 2.0, "runs": str(tmp_path / "runs"), "probe_items": str(items),
        "probe_tokenizer": str(smoke_tokens["tokenizer"]),
        "reports": str(tmp_path / "reports")})
    curves = json.loads((tmp_path / "reports" / "probe_curves.json").read_text())
    assert set(curves["models"]) == {"griffin", "transformer"}
    assert set(curves["sets"]) == {"lexical/dev", "syntactic/dev", "story"}  # the long-context sets are not scored
    for model in ("griffin", "transformer"):
        points = curves["models"][model]
        assert [p["mark"] for p in points] == [0.5, 1.0] and [p["step"] for p in points] == [5, 10]
        for acc in points[-1]["sets"].values():
            assert acc["n"] > 0 and 0 <= acc["share"] <= 1
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "griffin finished: lexical/dev" in text
