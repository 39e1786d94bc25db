"""Every notebook is written by its generator in scripts/notebooks/, and the committed .ipynb is exactly its output.

Edit the generator (scripts/notebooks/build_NN_name.py), never the .ipynb, then regenerate them all.
"""

import ast
import importlib.util
import json
from pathlib import Path

import pytest

from workbench.pipeline.notebooks import NOTEBOOK_DIR, NOTEBOOKS, write_notebook

GENERATOR_DIR = Path(__file__).resolve().parent.parent / "scripts" / "notebooks"
REGENERATE = "run `.venv/bin/python scripts/notebooks/build_all.py`"


def load_generator(name):
    path = GENERATOR_DIR / f"build_{name}.py"
    spec = importlib.util.spec_from_file_location(f"notebook_generator_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_generator_per_notebook():
    generators = {p.stem.removeprefix("build_") for p in GENERATOR_DIR.glob("build_[0-9][0-9]_*.py")}
    notebooks = {p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")}
    assert generators == set(NOTEBOOKS), "a generator for every notebook in NOTEBOOKS, and no other"
    assert notebooks == set(NOTEBOOKS), f"notebooks/ holds exactly the notebooks in NOTEBOOKS ({REGENERATE})"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_its_generators_output(name, tmp_path):
    generator = load_generator(name)
    assert generator.NAME == name
    written = write_notebook(name, generator.CELLS, out_dir=tmp_path)
    committed = NOTEBOOK_DIR / f"{name}.ipynb"
    assert committed.exists(), f"notebooks/{name}.ipynb is missing: {REGENERATE}"
    assert written.read_bytes() == committed.read_bytes(), (
        f"notebooks/{name}.ipynb differs from scripts/notebooks/build_{name}.py's output: edit the generator, "
        f"then {REGENERATE}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_code_cell_is_the_parameters_cell(name):
    cells = json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and code[0]["metadata"].get("tags") == ["parameters"], f"{name}: first code cell not tagged parameters"
    assert not any("parameters" in c["metadata"].get("tags", []) for c in code[1:]), f"{name}: two parameters cells"
    tree = ast.parse("".join(code[0]["source"]))
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    assert "preset" in assigned, f"{name}: the parameters cell has no `preset`"


def test_write_notebook_is_deterministic(tmp_path):
    cells = [("markdown", "# Title\n\nText"), ("parameters", 'preset = "smoke"'), ("code", "print(preset)\n")]
    first = write_notebook("99_example", cells, out_dir=tmp_path / "a").read_bytes()
    second = write_notebook("99_example", cells, out_dir=tmp_path / "b").read_bytes()
    assert first == second
    nb = json.loads(first)
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    assert nb["metadata"] == {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                              "language_info": {"name": "python"}}
    assert ["".join(c["source"]) for c in nb["cells"]] == [source for _, source in cells]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in nb["cells"] if c["cell_type"] == "code")
    assert len({c["id"] for c in nb["cells"]}) == len(cells)
    assert list(tmp_path.glob("*/.*")) == []  # no temporary file left behind
    with pytest.raises(ValueError, match="first code cell"):
        write_notebook("99_example", [("code", "x = 1"), ("parameters", "preset = 1")], out_dir=tmp_path)
    with pytest.raises(ValueError, match="kind"):
        write_notebook("99_example", [("raw", "x")], out_dir=tmp_path)
