"""Notebook 05 runs end to end at smoke scale on real (smoke) speech tokens: both models trained, continued
far past their window, measured; the ground truth's audio measured; extrapolation.json written."""

import json

import nbformat
import numpy as np

from workbench.pipeline.notebooks import run_notebook


def test_05_extrapolation_smoke(tmp_path, smoke_tokens):
    out = run_notebook("05_extrapolation_16min", tmp_path, {
        "preset": "smoke", "runs": str(tmp_path / "runs"), "tokens": str(smoke_tokens["tokens"]),
        "reports": str(tmp_path / "reports")})
    payload = json.loads((tmp_path / "reports" / "extrapolation.json").read_text())
    assert not payload["synthetic_tokens"]
    g, t = payload["models"]["griffin"], payload["models"]["transformer"]
    assert g["trained_now"] and g["generated_tokens"] == t["generated_tokens"] == 750  # 0.5 min each
    assert g["times_train_window"] > 10
    assert g["cache_growth"] == 1.0 and t["cache_growth"] > 10  # constant state vs a growing KV cache
    assert [b["from_s"] for b in g["measures"]] == [0, 5, 10, 15, 20, 25]
    for b in g["measures"] + payload["ground_truth"]["measures"]:
        assert 0 <= b["repeat_rate"] <= 1 and b["entropy_bits"] > 0 and b["nll"] > 0
    truth = payload["audio"]["ground_truth"]
    assert truth["status"] == "ok" and truth["speaker_similarity"][0]["similarity"] > 0.7
    assert any(b["words"] > 3 for b in truth["sc_l"])
    # the naturalness proxy per bin of the real continuation: real (synthetic-voice) speech, well above silence
    assert [b["from_s"] for b in truth["naturalness"]] == [b["from_s"] for b in truth["speaker_similarity"]]
    assert all(2.0 < b["ovrl"] <= 5.0 for b in truth["naturalness"] if b["ovrl"] is not None)
    # SC-L's floor, written by the run: other held-out recordings (not the prompt's), scored like a bin
    floor = payload["sc_l_floor"]
    assert floor["status"] == "ok" and floor["n"] >= 1, floor
    assert all(p["recording"] != payload["prompt"]["recording"] for p in floor["passages"])
    assert -1 <= floor["mean"] <= 1
    assert payload["audio"]["continuations"]["status"] == "skipped"
    assert payload["llm_judge"]["status"] == "skipped" and payload["llm_judge"]["reason"]
    units = payload["units_end"]["streams"]  # the raster's data: the last 20 s (the real recording is shorter)
    assert len(units["griffin"]) == len(units["transformer"]) == 500 and 0 < len(units["ground_truth"]) <= 500
    streams = np.load(tmp_path / "reports" / "extrapolation-tokens.npz")
    assert payload["units_end"]["streams"]["griffin"] == streams["griffin"][-500:].tolist()
    assert streams["griffin"].shape == (800,)
    units = json.loads((smoke_tokens["tokens"] / "tokens.json").read_text())["num_units"]
    assert max(int(streams[n].max()) for n in streams.files) < units  # the LM has 64 ids, the tokenizer 32 units
    nb = nbformat.read(out, as_version=4)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in shown) >= 9
