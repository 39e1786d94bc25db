"""Small I/O helpers shared by every stage: atomic writes and the run's report folder.

Everything the workbench writes goes through `atomic_path`, so an interrupted run never leaves a
half-written file behind: data lands in a temporary sibling and is renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPORTS_ENV = "WORKBENCH_REPORTS"
DEFAULT_REPORTS = Path("reports/latest")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix: some writers (soundfile, papermill) choose the format from it
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def reports_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder a run's figures go to: `path`, else $WORKBENCH_REPORTS, else reports/latest."""
    return Path(path or os.environ.get(REPORTS_ENV) or DEFAULT_REPORTS)


def write_report(name: str, payload: Any, reports: str | os.PathLike | None = None) -> Path:
    """Write one measurement file (e.g. ``corpus.json``) into the run's report folder, atomically."""
    return atomic_write_json(reports_dir(reports) / name, payload)
