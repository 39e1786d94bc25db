"""Execute the workbench's notebooks headlessly with papermill.

Each notebook's first cell is tagged ``parameters`` and is its whole interface (``preset``, ``reports``, ...).
`run_notebook` is what `make reproduce` and the tests call; executed copies land in the report folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"  # the repository root's notebooks/

# In pipeline order; a notebook is run only if it exists, so the list can name what is still being built.
NOTEBOOKS = (
    "00_corpus",
    "01_tokenization",
    "02_ssm_primer",
    "03_griffin_training",
    "04_acoustic_synthesis",
    "05_extrapolation_16min",
    "06_efficiency",
)


def available_notebooks() -> list[str]:
    return [name for name in NOTEBOOKS if (NOTEBOOK_DIR / f"{name}.ipynb").exists()]


def run_notebook(name: str, out_dir: str | os.PathLike, parameters: dict[str, Any] | None = None,
                 timeout_s: int | None = None) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with `parameters` into ``out_dir/<name>.ipynb`` and return that path.

    The notebook runs with the repository root as its working directory, so relative paths mean the same
    thing in JupyterLab, under papermill and in the tests. The executed copy is written atomically.
    """
    import papermill

    from workbench.core.io import atomic_path

    source = NOTEBOOK_DIR / f"{name}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"no notebook {source}")
    out = Path(out_dir) / f"{name}.ipynb"
    with atomic_path(out) as tmp:
        papermill.execute_notebook(
            str(source), str(tmp), parameters=parameters or {}, kernel_name="python3",
            cwd=str(NOTEBOOK_DIR.parent), progress_bar=False, execution_timeout=timeout_s, log_output=False,
        )
    return out


# The kinds of cell a generator in scripts/notebooks/ writes; "parameters" is a code cell tagged for papermill.
CELL_KINDS = ("markdown", "code", "parameters")


def write_notebook(name: str, cells: list[tuple[str, str]], out_dir: str | os.PathLike = NOTEBOOK_DIR) -> Path:
    """Write ``<out_dir>/<name>.ipynb`` (no outputs) from a generator's ``(kind, source)`` cells and return its path.

    `kind` is "markdown", "code" or "parameters" (a code cell tagged ``parameters``, which must be the notebook's
    first code cell). The output is deterministic -- cell ids come from `name` and the cell's index, the
    metadata is fixed, nothing is executed -- so regenerating a notebook gives identical bytes. The file is
    written atomically and in nbformat's own on-disk layout.
    """
    import hashlib
    import json

    from workbench.core.io import atomic_path

    notebook_cells = []
    for index, cell in enumerate(cells):
        kind, source = cell
        if kind not in CELL_KINDS:
            raise ValueError(f"{name} cell {index}: kind {kind!r} is not one of {CELL_KINDS}")
        if not isinstance(source, str):
            raise TypeError(f"{name} cell {index}: the source must be a str, not {type(source).__name__}")
        first_code = not any(c["cell_type"] == "code" for c in notebook_cells)
        if (kind == "parameters") != (kind != "markdown" and first_code):
            raise ValueError(f"{name} cell {index}: the parameters cell must be the first code cell, and only it")
        entry = {
            "cell_type": "markdown" if kind == "markdown" else "code",
            "id": hashlib.sha256(f"{name}/{index}".encode()).hexdigest()[:8],
            "metadata": {"tags": ["parameters"]} if kind == "parameters" else {},
            "source": source.splitlines(keepends=True),
        }
        if kind != "markdown":
            entry.update(execution_count=None, outputs=[])
        notebook_cells.append(entry)
    if not any(c["metadata"] for c in notebook_cells):
        raise ValueError(f"{name}: no parameters cell")
    notebook = {
        "cells": notebook_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    out = Path(out_dir) / f"{name}.ipynb"
    with atomic_path(out) as tmp:
        # nbformat's layout (indent 1, sorted keys, UTF-8), so saving from Jupyter changes as little as possible
        tmp.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
