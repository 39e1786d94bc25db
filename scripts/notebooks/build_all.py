"""Regenerate every notebook in notebooks/ from its generator here (build_NN_name.py, one per notebook).

Run: .venv/bin/python scripts/notebooks/build_all.py   (or: .venv/bin/python -m scripts.notebooks.build_all)
Edit a notebook's generator, not the .ipynb: tests/test_notebook_sources.py checks that they agree.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from workbench.pipeline.notebooks import write_notebook

HERE = Path(__file__).resolve().parent


def load_generators() -> list[ModuleType]:
    """Every ``build_NN_name.py`` here, imported by path, in notebook order."""
    modules = []
    for path in sorted(HERE.glob("build_[0-9][0-9]_*.py")):
        spec = importlib.util.spec_from_file_location(f"notebook_generator_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def main() -> None:
    for module in load_generators():
        print("wrote", write_notebook(module.NAME, module.CELLS))


if __name__ == "__main__":
    main()
