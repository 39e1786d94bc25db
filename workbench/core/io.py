"""I/O shared by every stage: atomic writes, JSONL logs that survive a torn line, and the run's report folder.

Everything the workbench writes goes through `atomic_path`, so an interrupted run never leaves a
half-written file behind: data lands in a temporary sibling, is flushed to disk and renamed into place only
when complete. JSON is written strictly (NaN and infinity become null: the files stay valid JSON).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from workbench.core.errors import UserError

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
        if tmp.is_file():  # make the data durable before the rename makes it visible
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    return atomic_write_text(path, to_json(payload) + "\n")


def to_json(payload: Any, indent: int | None = 2) -> str:
    """Strict JSON: NaN/inf become null, Paths strings, numpy/torch scalars and arrays plain numbers."""
    return json.dumps(_finite(payload), indent=indent, default=_json_default, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalars
        return _finite(obj.item())
    return obj


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as a line (flushed), the way training logs grow."""
    with Path(path).open("a") as f:
        f.write(to_json(record, indent=None) + "\n")
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSONL file. A torn last line (a kill during the append) is dropped with a warning;
    a bad line elsewhere is an error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                warnings.warn(f"{path}: dropping a torn last line ({len(line)} characters)", stacklevel=2)
                continue
            raise UserError(f"{path}: line {i + 1} is not JSON; the log is damaged") from None
    return records


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
