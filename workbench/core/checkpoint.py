"""Atomic training checkpoints shared by the stages: safetensors weights, a JSON config, the loop's state.

Layout of a run folder:

    OUT/checkpoint.json                   {"step": s, "path": "checkpoints/step-000000s"}: the latest complete one
    OUT/checkpoints/step-XXXXXXX/         <name>.safetensors per module, state.pt (optimizers, RNG, ...),
                                          config.json (whatever the stage needs to rebuild its models)

Every file goes through `atomic_path` and the pointer `checkpoint.json` is written last, so an interrupted
save leaves the previous checkpoint in force; only the newest `keep` checkpoints are kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from workbench.core.errors import UserError
from workbench.core.io import atomic_path, atomic_write_json


def save_checkpoint(run_dir: str | Path, step: int, modules: dict[str, torch.nn.Module], state: dict[str, Any],
                    config: dict[str, Any], keep: int = 2) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"step-{step:07d}"
    _save_weights(path, modules, step)
    with atomic_path(path / "state.pt") as tmp:
        torch.save({**state, "step": step}, tmp)
    atomic_write_json(path / "config.json", {**config, "step": step})
    atomic_write_json(run_dir / "checkpoint.json", {"step": step, "path": str(path.relative_to(run_dir))})
    for old in sorted((run_dir / "checkpoints").glob("step-*"))[:-keep]:
        if old != path:
            shutil.rmtree(old, ignore_errors=True)
    return path


def _save_weights(path: Path, modules: dict[str, torch.nn.Module], step: int | str) -> None:
    for name, module in modules.items():
        with atomic_path(path / f"{name}.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp),
                      metadata={"step": str(step)})


def snapshot_path(run_dir: str | Path, mark: float) -> Path:
    """Where the snapshot taken at `mark` (a fraction of the run's progress) lives."""
    return Path(run_dir) / "snapshots" / f"at-{round(100 * mark):03d}pct"


def save_snapshot(run_dir: str | Path, mark: float, modules: dict[str, torch.nn.Module], meta: dict[str, Any]) -> Path:
    """Weights only, for learning curves: what the run was at `mark` of its progress (`TrainConfig.snapshots`)."""
    path = snapshot_path(run_dir, mark)
    _save_weights(path, modules, meta.get("step", ""))
    atomic_write_json(path / "snapshot.json", {"mark": mark, **meta})  # last: its presence means complete
    return path


def snapshots(run_dir: str | Path) -> list[tuple[dict[str, Any], Path]]:
    """The run's complete snapshots as (meta, folder), in order of progress."""
    found = []
    for path in sorted((Path(run_dir) / "snapshots").glob("at-*pct")):
        if (path / "snapshot.json").is_file():
            found.append((json.loads((path / "snapshot.json").read_text()), path))
    return sorted(found, key=lambda item: item[0]["mark"])


def latest_checkpoint(run_dir: str | Path, hint: str = "") -> Path:
    """The folder of the run's latest complete checkpoint, or a UserError saying what is missing."""
    run_dir = Path(run_dir)
    pointer = run_dir / "checkpoint.json"
    if not pointer.is_file():
        raise UserError(f"no checkpoint in {run_dir} (expected {pointer})" + (f"; {hint}" if hint else ""))
    path = run_dir / json.loads(pointer.read_text())["path"]
    if not (path / "config.json").is_file():
        raise UserError(f"checkpoint {path} named by {pointer} is missing or incomplete")
    return path


def load_config(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / "config.json").read_text())


def load_weights(path: Path, name: str, module: torch.nn.Module) -> torch.nn.Module:
    file = Path(path) / f"{name}.safetensors"
    if not file.is_file():
        raise UserError(f"checkpoint {path} has no {file.name}")
    module.load_state_dict(load_file(str(file)))
    return module


def load_state(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(Path(path) / "state.pt", map_location=device, weights_only=True)
