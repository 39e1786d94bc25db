"""The house rules of the package, checked by walking its import graph (every import, also those inside
functions): imports flow one way, from the stages down to `workbench.core`; no two stages of the same layer
import each other; no cycle anywhere; every stage package has the same files for the same roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.core import reuse

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"

# Lower layers never import higher ones; packages of the same layer never import each other.
LAYERS = {
    "core": 0,
    "ops": 1, "data": 1, "eval": 1,
    "tokenizer": 2, "codec": 2, "lm": 2,
    "acoustic": 3, "bench": 3,
    "pipeline": 4,
    "cli": 5,  # workbench/cli.py lists every command
    "__main__": 6,
}
STAGES = ("tokenizer", "lm", "codec", "acoustic")
STAGE_FILES = ("config.py", "model.py", "data.py", "train.py", "evaluate.py", "cli.py", "notebook.py", "README.md")


def modules() -> dict[str, Path]:
    return reuse.modules()


def imports_of(path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Workbench modules imported anywhere in `path` (a `from pkg import sub` counts as importing `pkg.sub`)."""
    return reuse.imports_in(path.read_text(), known)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def graph() -> dict[str, list[tuple[str, int]]]:
    return reuse.import_graph()


def test_every_module_belongs_to_a_layer():
    unknown = sorted({layer_of(m) for m in modules()} - set(LAYERS) - {None})
    assert not unknown, f"packages without a layer in tests/test_layering.py: {unknown}"


def test_imports_flow_down():
    bad = set()
    for name, imported in graph().items():
        here = layer_of(name)
        for target, line in imported:
            there = layer_of(target)
            if here is None or there is None or here == there:
                continue
            if LAYERS[there] >= LAYERS[here]:
                bad.add(f"{modules()[name].relative_to(PACKAGE.parent)}:{line} imports {target} "
                           f"({there} is layer {LAYERS[there]}, {here} is layer {LAYERS[here]})")
    assert not bad, "imports that run back up:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    g = {name: {t for t, _ in imported if t != name} for name, imported in graph().items()}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            # a package's __init__ re-exporting its submodules is how Python packages work, not a cycle
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif state.get(nxt) is None and nxt in g:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_packages_have_the_same_files(stage):
    missing = [f for f in STAGE_FILES if not (PACKAGE / stage / f).is_file()]
    assert not missing, f"workbench/{stage} lacks {missing}"


def test_the_walker_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from workbench.core.io import atomic_path\n    import workbench.lm.model\n")
    found = imports_of(src, {"workbench.core.io", "workbench.lm.model"})
    assert ("workbench.core.io", 2) in found and ("workbench.lm.model", 3) in found
