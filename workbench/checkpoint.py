"""Atomic training checkpoints shared by the stages: safetensors weights, a JSON config, optimizer state; and the
other pieces every training loop shares (the step/time budget, resume checks, JSONL metrics).

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
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from workbench.io import atomic_path, atomic_write_json


def save_checkpoint(run_dir: str | Path, step: int, modules: dict[str, torch.nn.Module], state: dict[str, Any],
                    config: dict[str, Any], keep: int = 2) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"step-{step:07d}"
    for name, module in modules.items():
        with atomic_path(path / f"{name}.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp),
                      metadata={"step": str(step)})
    with atomic_path(path / "state.pt") as tmp:
        torch.save({**state, "step": step}, tmp)
    atomic_write_json(path / "config.json", {**config, "step": step})
    atomic_write_json(run_dir / "checkpoint.json", {"step": step, "path": str(path.relative_to(run_dir))})
    for old in sorted((run_dir / "checkpoints").glob("step-*"))[:-keep]:
        if old != path:
            shutil.rmtree(old, ignore_errors=True)
    return path


def latest_checkpoint(run_dir: str | Path, hint: str = "") -> Path:
    """The folder of the run's latest complete checkpoint, or a UserError saying what is missing."""
    from workbench.cli import UserError

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
    from workbench.cli import UserError

    file = Path(path) / f"{name}.safetensors"
    if not file.is_file():
        raise UserError(f"checkpoint {path} has no {file.name}")
    module.load_state_dict(load_file(str(file)))
    return module


def load_state(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(Path(path) / "state.pt", map_location=device, weights_only=True)


def changed_settings(current: dict[str, Any], saved: dict[str, Any], free: tuple[str, ...] = ("steps", "max_minutes")
                     ) -> list[str]:
    """Names of the training settings that differ from a checkpoint's, leaving out those a resumed run may change."""
    return sorted(k for k in {**current, **saved} if k not in free and current.get(k) != saved.get(k))


def truncate_metrics(path: str | Path, step: int) -> None:
    """Drop the JSONL records logged after `step` (what a run resumed from that step will log again)."""
    path = Path(path)
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep))


def append_metrics(path: str | Path, record: dict[str, Any]) -> None:
    with Path(path).open("a") as f:
        f.write(json.dumps(record) + "\n")


class TrainingSteps:
    """The steps of a run, from `start` to `steps`, cut short by a wall-clock budget. The schedule's progress is
    max(step / steps, elapsed / max_minutes) (so a run stopped by its budget still anneals), and the run stops
    once it reaches 1, after at least one step. Iterating yields (step, progress); `done` is the number of
    completed steps, `stopped_by` says why it ended, `elapsed()` counts time across resumes. A tqdm bar (shown on
    a terminal unless `show` says otherwise) advances with the steps."""

    def __init__(self, steps: int, max_minutes: float | None, start: int = 0, elapsed_before: float = 0.0,
                 desc: str = "train", show: bool | None = None):
        from tqdm.auto import tqdm

        self.steps, self.max_minutes, self.start, self.done = steps, max_minutes, start, start
        self.elapsed_before, self.t0, self.stopped_by = elapsed_before, time.monotonic(), "steps"
        show = sys.stderr.isatty() if show is None else show
        self.bar = tqdm(total=steps, initial=start, disable=not show, desc=desc, leave=False)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t0

    def progress(self, step: int) -> float:
        return max(step / self.steps, self.elapsed() / (60 * self.max_minutes) if self.max_minutes else 0.0)

    def __iter__(self):
        for step in range(self.start, self.steps):
            p = self.progress(step)
            if self.max_minutes is not None and p >= 1.0 and step > self.start:
                self.stopped_by = "max_minutes"
                break
            yield step, p
            self.done = step + 1
            self.bar.update(1)
        self.bar.close()
