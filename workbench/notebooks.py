"""Execute the workbench's notebooks headlessly with papermill.

Each notebook's first cell is tagged ``parameters`` and is its whole interface (``preset``, ``reports``, ...).
`run_notebook` is what `make reproduce` and the tests call; executed copies land in the report folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

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

    from workbench.io import atomic_path

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


def write_notebook(name: str, cells: list) -> Path:
    """Write ``notebooks/<name>.ipynb`` (no outputs) from the generator scripts in scripts/.

    `cells` holds nbformat cells or ``(kind, source[, metadata])`` tuples with kind "code" or "markdown".
    """
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    for cell in cells:
        if isinstance(cell, tuple):
            kind, source, *meta = cell
            cell = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
            if meta:
                cell.metadata.update(meta[0])
        nb.cells.append(cell)
    out = NOTEBOOK_DIR / f"{name}.ipynb"
    nbformat.write(nb, out)
    return out
