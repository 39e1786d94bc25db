"""The one validation layer every entry point uses (CLI, demo, notebooks' Python calls).

Each check returns the value (converted where that is safe) or raises a one-line `UserError` naming the
argument and the allowed range, before any work starts::

    seed("--seed", 2**70)          -> UserError("--seed 1180591620717411303424: must be an integer in [0, 2**63 - 1]")
    output_file("--out", "x.mp3", (".wav", ".flac"))
                                   -> UserError("--out x.mp3: must end in .wav or .flac (got .mp3); ...")

Audio is checked in `workbench.core.audio` (minimum and maximum sample rate, a maximum duration per command read
from the header before anything is decoded or resampled); the bounds below are the ones the commands state in
their `--help`.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, Sequence

from workbench.core.errors import UserError

SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed's range (and numpy's default_rng accepts it)
MAX_SAMPLE_SECONDS = 3600.0  # `lm sample --seconds`: an hour of continuation per prompt (90,000 tokens)
MAX_SYNTH_SECONDS = 3600.0  # `acoustic synthesize`: an hour of audio (90,000 semantic tokens at 25 Hz)
MAX_BATCH = 1024  # rows sampled at once


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value}"


def _range(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "finite"


def number(name: str, value: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False, optional: bool = False, unit: str = "") -> Any:
    """`value` if it is a finite number (an integer with `integer`) in the range; else a UserError naming `name`
    and the range. `optional`: None passes through."""
    if value is None and optional:
        return None
    kind = "an integer" if integer else "a finite number"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and integer:
        ok = isinstance(value, numbers.Integral) or (math.isfinite(float(value)) and float(value).is_integer())
    if ok:
        x = float(value) if not isinstance(value, numbers.Integral) else value
        ok = math.isfinite(x) and not (
            lo is not None and (x <= lo if lo_open else x < lo)) and not (
            hi is not None and (x >= hi if hi_open else x > hi))
    if not ok:
        bound = _range(lo, hi, lo_open, hi_open)
        what = kind if bound == "finite" else f"{kind} {bound}{unit}"
        raise UserError(f"{name} {_show(value)}: must be {what}")
    return int(value) if integer else value


def temperature(value: Any, name: str = "--temperature") -> float:
    """Sampling temperature: finite and >= 0 (0 = greedy)."""
    return float(number(name, value, 0.0, None))


def guidance(value: Any, name: str = "--guidance") -> float:
    """Classifier-free guidance weight: 0 (unconditioned) to 10; 1 = no guidance."""
    return float(number(name, value, 0.0, 10.0))


def top_k(value: Any, name: str = "--top-k") -> int | None:
    """Top-k: None (off) or an integer >= 1."""
    return number(name, value, 1, None, integer=True, optional=True)


def top_p(value: Any, name: str = "--top-p") -> float | None:
    """Top-p (nucleus): None (off) or in (0, 1]."""
    return number(name, value, 0.0, 1.0, lo_open=True, optional=True)


def seed(value: Any, name: str = "--seed") -> int:
    """A seed within torch.Generator's range, [0, 2**63 - 1]."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value <= SEED_MAX:
        return int(value)
    raise UserError(f"{name} {_show(value)}: must be an integer in [0, 2**63 - 1]")


def count(name: str, value: Any, lo: int = 1, hi: int | None = None, optional: bool = False) -> int | None:
    """An integer count (batch, steps, iterations...) >= `lo` (and <= `hi`)."""
    return number(name, value, lo, hi, integer=True, optional=optional)


def batch(value: Any, name: str = "--batch", hi: int = MAX_BATCH) -> int:
    return count(name, value, 1, hi)


def seconds(name: str, value: Any, cap: float | None = None, optional: bool = False) -> float | None:
    """A duration > 0 (and <= `cap`, the documented bound)."""
    return number(name, value, 0.0, cap, lo_open=True, optional=optional, unit=" seconds")


def output_file(name: str, path: str | os.PathLike, suffixes: Sequence[str]) -> Path:
    """An output path checked before work starts: the suffix is one of `suffixes` (the format written), it is not
    a folder, and its parent folder exists or can be created (the nearest existing ancestor is a writable
    folder)."""
    p = Path(path)
    allowed = tuple(s.lower() for s in suffixes)
    if p.is_dir() or str(path).endswith(("/", os.sep)):
        raise UserError(f"{name} {path}: is a folder; name a file ending in {' or '.join(allowed)}")
    if p.suffix.lower() not in allowed:
        got = p.suffix or "no suffix"
        raise UserError(f"{name} {path}: must end in {' or '.join(allowed)} (got {got}); that is the format written")
    _creatable(name, path, p.parent)
    return p


def output_dir(name: str, path: str | os.PathLike) -> Path:
    """An output folder checked before work starts: not a file, and it exists or can be created."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{name} {path}: is a file; name a folder")
    _creatable(name, path, p)
    return p


def _creatable(name: str, path: str | os.PathLike, folder: Path) -> None:
    """`folder` exists or can be made: its nearest existing ancestor is a writable folder."""
    parent = folder
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{name} {path}: cannot create its folder ({parent} is a file)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{name} {path}: folder {parent} is not writable")


def input_file(name: str, path: str | os.PathLike, what: str = "file") -> Path:
    """An input that must be an existing file (not a folder)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{name} {path}: is a folder, not a {what}")
    if not p.is_file():
        raise UserError(f"{name} {path}: no such {what}")
    return p
