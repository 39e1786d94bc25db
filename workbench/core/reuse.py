"""Reuse what was made from the same settings, code and inputs; resume what was interrupted.

Every stage output folder (a built corpus, a token set, a trained model) carries ``stamp.json``::

    {"fingerprint": "3f0c...", "finished": true, "made": 1764690000.0, "parts": {...}}

The fingerprint hashes the *parts*: the stage's settings, the version of the code that makes it (`code_version`:
the source of the modules it imports, transitively) and the fingerprints of its inputs (`input_fingerprint`: an
input folder's own stamp). `make(out_dir, parts, build)` then does the one right thing:

- the folder is stamped with the same fingerprint and finished -> **reuse** it (nothing runs);
- the same fingerprint, not finished (an interrupted run)   -> **resume**: `build(resume=True)`;
- anything else (other settings, code or inputs; no stamp)  -> **new**: the folder is cleared, `build(False)`.

The stamp is written (unfinished) before the work starts, so an interruption leaves a folder known to belong to
these parts, and rewritten (finished) after it. ``WORKBENCH_FRESH=<unix time>`` (`reproduce --fresh`, `make
reproduce FRESH=1`) makes everything stamped before that time count as stale: made again once, then reused
within the same run. The code version is deliberately conservative -- any edit to a module a stage imports
remakes the stage -- because a stale model that looks reused is worse than a retrained one.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from workbench.core import paths
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json, to_json

STAMP = "stamp.json"
FRESH_ENV = "WORKBENCH_FRESH"
PACKAGE = Path(__file__).resolve().parent.parent  # workbench/

Action = Literal["reuse", "resume", "new"]
_PROCESS_START = time.time()


# ------------------------------------------------------------------------------------------ the import graph


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_in(source: str, known: set[str]) -> list[tuple[str, int]]:
    """Workbench modules imported anywhere in `source`, also inside functions (a `from pkg import sub` counts as
    importing `pkg.sub` when that is a module), with line numbers."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("workbench")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workbench"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if sub in known else node.module, node.lineno))
    return found


def import_graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    return {name: imports_in(path.read_text(), set(mods)) for name, path in mods.items()}


@functools.lru_cache(maxsize=None)
def _graph_and_sources() -> tuple[dict[str, set[str]], dict[str, bytes]]:
    mods = modules()
    graph = {name: {t for t, _ in imported} for name, imported in import_graph().items()}
    return graph, {name: path.read_bytes() for name, path in mods.items()}


def closure(roots: list[str] | tuple[str, ...]) -> list[str]:
    """The modules `roots` import, transitively, with the packages (``__init__``) on the way, sorted."""
    graph, sources = _graph_and_sources()
    seen: set[str] = set()
    todo = [r for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name not in sources:
            continue
        seen.add(name)
        todo += sorted(graph.get(name, ()))
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)
    return sorted(seen)


def code_version(*roots: str) -> str:
    """A hash of the source of `roots` and of every workbench module they import, transitively."""
    unknown = [r for r in roots if r not in _graph_and_sources()[1]]
    if unknown:
        raise ValueError(f"not workbench modules: {unknown}")
    sources = _graph_and_sources()[1]
    digest = hashlib.sha256()
    for name in closure(roots):
        digest.update(name.encode() + b"\0" + hashlib.sha256(sources[name]).digest())
    return digest.hexdigest()[:16]


def code_version_of_source(source: str) -> str:
    """The code version of what a piece of source (a notebook's cells) imports from the package."""
    known = set(_graph_and_sources()[1])
    roots = sorted({name for name, _ in imports_in(source, known) if name in known})
    return code_version(*roots) if roots else "none"


# ------------------------------------------------------------------------------------------------ stamps


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A short hash of `parts` as canonical JSON (keys sorted; tuples and lists alike)."""
    text = json.dumps(json.loads(to_json(parts, indent=None)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_stamp(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    try:
        stamp = json.loads((Path(out_dir) / STAMP).read_text())
        return stamp if isinstance(stamp, dict) and "fingerprint" in stamp else None
    except (OSError, ValueError):
        return None


def write_stamp(out_dir: str | os.PathLike, parts: Mapping[str, Any], finished: bool) -> dict[str, Any]:
    stamp = {"fingerprint": fingerprint(parts), "finished": bool(finished), "made": round(time.time(), 3),
             "parts": parts}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(out_dir) / STAMP, stamp)
    return stamp


def input_fingerprint(path: str | os.PathLike) -> str:
    """What an input folder or file is: its stamp's fingerprint (or its parent's, for a model inside a stamped
    folder), else a hash of its file listing (names, sizes, modification times) -- a user's own corpus folder."""
    path = Path(path)
    for folder, inner in ((path, ""), (path.parent, path.name)):
        stamp = read_stamp(folder)
        if stamp is not None and stamp.get("finished"):
            return stamp["fingerprint"] + (f"/{inner}" if inner else "")
    if not path.exists():
        return "missing"
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(path) if f != path else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "files:" + digest.hexdigest()[:16]


def fresh_since() -> float | None:
    """The time from which $WORKBENCH_FRESH asks for everything to be made again (None: reuse freely)."""
    value = os.environ.get(FRESH_ENV, "").strip()
    if not value:
        return None
    try:
        since = float(value)
    except ValueError:
        since = 0.0
    return since if since > 1e9 else _PROCESS_START  # WORKBENCH_FRESH=1: whatever this process did not make


def plan(out_dir: str | os.PathLike, parts: Mapping[str, Any], resumable: Callable[[Path], bool] | None = None,
         adopt: Callable[[Path], bool] | None = None) -> tuple[Action, str]:
    """What `make` would do with `out_dir` for `parts`, and why (one phrase). `adopt(out_dir)`: whether an
    unstamped folder (made before stamps) is already what these parts make; it is then stamped and reused."""
    out_dir = Path(out_dir)
    stamp = read_stamp(out_dir)
    if stamp is None:
        if adopt is not None and out_dir.is_dir() and fresh_since() is None and adopt(out_dir):
            write_stamp(out_dir, parts, finished=True)
            return "reuse", "made before stamps with these settings"
        return "new", "nothing made there yet" if not out_dir.exists() else "no stamp there"
    since = fresh_since()
    if since is not None and stamp.get("made", 0.0) < since:
        return "new", f"{FRESH_ENV} asks for it to be made again"
    if stamp["fingerprint"] != fingerprint(parts):
        changed = sorted(k for k in set(parts) | set(stamp.get("parts", {}))
                         if json.loads(to_json(parts.get(k), indent=None)) != stamp.get("parts", {}).get(k))
        return "new", f"made from other {', '.join(changed) or 'parts'}"
    if stamp.get("finished"):
        return "reuse", f"same fingerprint {stamp['fingerprint']}"
    if resumable is None or resumable(out_dir):
        return "resume", "an interrupted run with the same fingerprint"
    return "new", "an interrupted run that left nothing to resume"


def stamp_or_ours(out_dir: Path) -> bool:
    """Whether `out_dir` may be cleared to be remade: it is stamped, or it lies in the workbench's own build
    folders (runs/, data/build/: made by an earlier version, before stamps)."""
    if read_stamp(out_dir) is not None:
        return True
    here = Path.cwd().resolve()
    return any(out_dir.resolve().is_relative_to(here / own) for own in (paths.RUNS, paths.BUILD))


def make(out_dir: str | os.PathLike, parts: Mapping[str, Any], build: Callable[[bool], Any], *, what: str,
         resumable: Callable[[Path], bool] | None = None, adopt: Callable[[Path], bool] | None = None,
         log: Callable[[str], None] | None = None) -> Action:
    """Reuse, resume or (re)make `out_dir` from `parts` (see the module docstring); `build(resume)` does the work.
    Says what it did through `log` and, inside `reproduce`, on its terminal. Returns the action taken."""
    from workbench.core import progress

    out_dir = Path(out_dir)
    action, why = plan(out_dir, parts, resumable, adopt)
    line = {"reuse": f"reused {what} in {out_dir} ({why})", "resume": f"resuming {what} in {out_dir} ({why})",
            "new": f"making {what} in {out_dir} ({why})"}[action]
    (log or (lambda text: None))(line)
    progress.announce(line)
    if action == "reuse":
        return action
    if action == "new" and out_dir.exists() and any(out_dir.iterdir()):
        if stamp_or_ours(out_dir):
            shutil.rmtree(out_dir)
        else:
            raise UserError(f"{out_dir} holds files this workbench did not stamp ({STAMP}); move them away or "
                            f"choose another folder for {what}")
    write_stamp(out_dir, parts, finished=False)
    build(action == "resume")
    write_stamp(out_dir, parts, finished=True)
    return action
