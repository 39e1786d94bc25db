"""Every notebook runs headlessly (papermill) at the smoke preset."""

import json

import nbformat

from workbench.notebooks import run_notebook


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
