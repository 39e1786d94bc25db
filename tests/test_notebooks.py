"""Every notebook runs headlessly (papermill) at the smoke preset."""

import json

import nbformat

from workbench.pipeline.notebooks import run_notebook


def outputs(path):
    nb = nbformat.read(path, as_version=4)  # joins multi-line strings
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def test_00_corpus(tmp_path, smoke_corpus):
    out = run_notebook("00_corpus", tmp_path, {"preset": "smoke", "corpus_dir": str(smoke_corpus),
                                                "reports": str(tmp_path)})
    stats = json.loads((tmp_path / "corpus.json").read_text())
    assert stats["speakers"] == 10
    shown = outputs(out)
    assert sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in shown) >= 3  # figures were drawn
    assert sum("<audio" in o.get("data", {}).get("text/html", "") for o in shown) >= 3  # players


def test_01_tokenization(tmp_path, smoke_corpus):
    from conftest import REAL_SPEECH

    out = run_notebook("01_tokenization", tmp_path, {
        "preset": "smoke", "corpus_dir": str(smoke_corpus), "reports": str(tmp_path),
        "tokenizer_dir": str(tmp_path / "tokenizer"), "tokens_dir": str(tmp_path / "tokens"),
        "real_speech": [str(REAL_SPEECH)]})
    results = json.loads((tmp_path / "tokenizer.json").read_text())
    assert {"mfcc_kmeans", "learned"} <= set(results) and 0 < results["learned"]["pnmi"] < 1
    assert (tmp_path / "tokenizer" / "learned" / "model.safetensors").exists()
    rows = (tmp_path / "tokens" / "manifest.jsonl").read_text().splitlines()
    assert len(rows) == len((smoke_corpus / "manifest.jsonl").read_text().splitlines())
    shown = outputs(out)
    assert sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in shown) >= 5
    text = "".join(o.get("text", "") for o in shown)
    assert "windowed == whole-file" in text
