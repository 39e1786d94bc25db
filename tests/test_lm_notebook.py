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
