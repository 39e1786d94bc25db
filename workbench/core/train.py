"""The one training loop. The tokenizer, the LM, the codec and SoundStorm each describe *what* to train as a
`Task`; `fit` does the rest the same way for all of them:

- budgets: `steps`, cut short by `max_minutes` of wall-clock time (counted across resumes); at least one step;
- schedule: AdamW (weight decay on matrices and embeddings only), linear warmup over `warmup_steps`, then
  cosine decay to `min_lr_ratio` over progress = max(step / steps, elapsed / max_minutes), so a run stopped by
  its time budget still anneals;
- accumulation (the task's micro-batches), gradient clipping, bf16 autocast where the device supports it;
- DDP under torchrun: each process takes its share of the same global batch; rank 0's clock decides when
  the budget is spent; only rank 0 writes;
- exact resume: the batches of step s come from an RNG seeded by (seed, s), and the checkpoint holds the
  optimizer, the RNG state and the elapsed time, so a resumed run continues the uninterrupted one;
- a run folder: ``metrics.jsonl`` (a JSON record per logged step and evaluation; a torn last line is dropped
  on resume), ``summary.json`` and atomic checkpoints (`workbench.core.checkpoint`).

Resuming a finished run with the same budget says so and changes nothing; raising `steps` or `max_minutes`
continues it. A run folder written by an older workbench without the loop's state loads for inference and is
refused for resuming with one line; a setting added to a TrainConfig after a checkpoint was written counts as
its default there.

Scale-out (`workbench.core.distributed`): ``parallel = "fsdp"`` shards the task's `shard_units` and then the model with
FSDP2 instead of DDP (every process evaluates, since a sharded forward is collective; rank 0 still writes)
and checkpoints it with DCP (resuming exactly, under any number of processes); ``activation_checkpointing``
recomputes each unit in the backward pass; ``compile`` compiles each unit's forward.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
import torch.distributed as dist

from workbench.core import checkpoint as ckpt
from workbench.core import distributed
from workbench.core.config import FORMAT_KEY, FORMAT_VERSION, PRECISIONS, Config, changed_settings
from workbench.core.device import DistInfo, autocast, uses_bf16
from workbench.core.errors import UserError
from workbench.core.io import append_jsonl, atomic_path, atomic_write_json, read_jsonl, to_json
from workbench.core.progress import report as report_progress

EVAL_SEED = 1_000_003  # held-out batches are fixed for a run: drawn once from (seed, EVAL_SEED)
RESUMABLE = ("steps", "max_minutes")  # the settings a resumed run may change


@dataclass(frozen=True)
class TrainConfig(Config):
    """The loop's settings. Each stage's own TrainConfig derives from this and adds what its data needs."""

    steps: int = 1000
    max_minutes: float | None = None  # wall-clock budget; the run stops (and checkpoints) when it is spent
    batch_size: int = 8  # global batch, across processes and accumulation
    micro_batch: int | None = None  # rows per forward pass (accumulation); None: the whole per-process batch
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    log_every: int = 10
    eval_every: int = 0  # 0: evaluate only at the start and the end
    checkpoint_every: int = 100  # 0: only at the end
    # weights-only snapshots at 1/n, 2/n, ... (n-1)/n of the run's progress (steps or budget), kept in
    # snapshots/ for learning curves (the finished run is the last point); 0: none; not under fsdp
    snapshots: int = 0
    seed: int = 0
    precision: str = "auto"  # "auto" / "native" / "fp32" / "bf16": `workbench.core.config.PRECISIONS`
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    # scale-out (`workbench.core.distributed`, README "Scale-out"): "ddp" replicates the model in every process,
    # "fsdp" shards the task's `shard_units` (the LM's residual blocks) and the root with FSDP2, checkpoints by DCP
    parallel: str = "ddp"
    activation_checkpointing: bool = False  # recompute each shard unit in the backward pass
    compile: bool = False  # torch.compile each shard unit's forward

    def __post_init__(self):
        problems = []
        if not isinstance(self.steps, int) or self.steps < 1:
            problems.append(f"steps must be a whole number >= 1 (got {self.steps})")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            problems.append(f"max_minutes must be > 0 (got {self.max_minutes})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.micro_batch is not None and self.micro_batch < 1:
            problems.append(f"micro_batch must be >= 1 (got {self.micro_batch})")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number (got {self.lr})")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio})")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            problems.append("warmup_steps and weight_decay must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1) (got {self.betas})")
        if not 0 <= self.seed < 2**63:  # numpy's and torch's generators take no negative seed
            problems.append(f"seed must be in 0 .. 2**63 - 1 (got {self.seed})")
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip must be > 0 or None (got {self.grad_clip})")
        if min(self.log_every, self.eval_every, self.checkpoint_every, self.snapshots) < 0:
            problems.append("log_every, eval_every, checkpoint_every and snapshots must be >= 0")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be >= 1 (got {self.threads})")
        problems += distributed.scale_problems(self.parallel, self.activation_checkpointing, self.compile)
        if problems:
            raise ValueError(f"bad {type(self).__name__}: " + "; ".join(problems))


def micro_slices(batch_size: int, micro_batch: int | None, info: DistInfo) -> list[slice]:
    """This process's rows of a global batch of `batch_size`, in micro-batches of at most `micro_batch` rows."""
    if batch_size < info.world:
        raise UserError(f"batch_size {batch_size} is smaller than the {info.world} processes")
    lo, hi = info.rank * batch_size // info.world, (info.rank + 1) * batch_size // info.world
    size = micro_batch or hi - lo
    return [slice(s, min(s + size, hi)) for s in range(lo, hi, size)]


def lr_factor(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup to 1 over `warmup_steps`, then cosine decay to `min_lr_ratio` as progress goes 0 -> 1."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings only (norm scales, biases and the RG-LRU's a_param are
    left alone). With weight_decay 0 this is Adam."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    # the fused kernel updates every tensor in one pass: ~5x faster than the per-op path on a CPU (7 -> 1.3 ms a
    # step for the laptop codec's 1.9M parameters), the same update
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas, fused=fused)


class Task:
    """What a stage trains. Subclasses set `model` and implement `micro_batches`, `loss` and `evaluate`.

    `loss(model, micro)` returns (objective, stats): the objective is this micro-batch's share of the step's
    global mean loss (the shares of all micro-batches and processes add up to it); stats are floats averaged
    over the step's micro-batches. `model` is the task's model, wrapped in DDP across processes.
    """

    model: torch.nn.Module
    progress: float = 0.0  # the loop's progress of the current step (set before `micro_batches`), 0 -> 1

    def modules(self) -> dict[str, torch.nn.Module]:
        """What checkpoints hold (safetensors per name)."""
        return {"model": self.model}

    def micro_batches(self, step: int, rng: np.random.Generator, info: DistInfo) -> list[Any]:
        """This process's micro-batches of step `step`, drawn from `rng` (seeded by (seed, step))."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, micro: Any) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Held-out figures on fixed batches (the model is in eval mode, no gradients)."""
        return {}

    def after_step(self, step: int, lr_scale: float) -> dict[str, float]:
        """Updates beyond the model's optimizer step (a discriminator's); returns figures to log."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Extra state to checkpoint (another optimizer...)."""
        return {}

    def shard_units(self) -> list[torch.nn.Module]:
        """The modules that FSDP shards one by one, activation checkpointing recomputes and `compile` compiles
        (the LM's residual blocks); none by default (then fsdp shards the model as one unit)."""
        return []

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class Run:
    """Where and how `fit` writes: the run folder (None: nothing is written, records go to `on_record`)."""

    out_dir: Path | None
    identity: Mapping[str, Any]  # what a resumed run must share with the checkpoint (model config, data, ...)
    meta: Mapping[str, Any]  # more for config.json (preset, corpus, parameter counts, ...)
    resume: bool = False
    desc: str = "train"
    progress: bool | None = None  # a tqdm bar; None: when stderr is a terminal
    on_record: Callable[[dict], None] | None = None
    hint: str = ""  # the command that trains one, for "no checkpoint" errors
    tensorboard: bool = False  # also write the records to OUT/tensorboard (needs the tensorboard package)


def check_fresh_or_resumable(out_dir: Path, resume: bool, hint: str = "") -> None:
    """Refuse to overwrite a run folder unless resuming it (every rank checks, so none waits for a failed peer)."""
    if not resume and (out_dir / "checkpoint.json").exists():
        raise UserError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")


def fit(task: Task, cfg: TrainConfig, run: Run, *, device: torch.device, info: DistInfo = DistInfo()
        ) -> dict[str, Any]:
    """Train `task.model` under `cfg` into `run.out_dir`; returns the summary (also ``summary.json``)."""
    from tqdm.auto import tqdm

    out_dir = Path(run.out_dir) if run.out_dir is not None else None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = task.model
    sharded = cfg.parallel == "fsdp"
    if cfg.activation_checkpointing or cfg.compile:
        distributed.prepare_blocks(task.shard_units(), activation_checkpointing=cfg.activation_checkpointing,
                                   compile=cfg.compile)
    if sharded:
        if set(task.modules()) != {"model"}:
            raise UserError(f"parallel='fsdp' shards one model; this task checkpoints {sorted(task.modules())}")
        distributed.shard(model, task.shard_units(), device)  # before the optimizer: params become shards
    optimizer = make_optimizer(model, cfg)
    config_json = {**run.identity, **run.meta, "train_config": cfg.to_dict(), FORMAT_KEY: FORMAT_VERSION}

    start, elapsed_before = 0, 0.0
    if out_dir is not None:
        check_fresh_or_resumable(out_dir, run.resume)
        if run.resume:
            path = ckpt.latest_checkpoint(out_dir, run.hint)
            saved = ckpt.load_config(path)
            if not (path / "state.pt").is_file():
                raise UserError(f"{path} was written by an older workbench (no state.pt): it loads for inference "
                                f"but cannot be resumed; train a new run (without --resume) into another --out")
            _check_same_settings(out_dir, cfg, run.identity, saved)
            state = ckpt.load_state(path, device)
            if state.get("finished") and state.get("budget") == [cfg.steps, cfg.max_minutes]:
                summary = _read_summary(out_dir)
                print(f"{out_dir} finished at step {state['step']} with this budget; nothing to do "
                      "(raise --steps or --max-minutes to continue it)", file=sys.stderr)
                return {**summary, "already_finished": True}
            if sharded:
                distributed.load_sharded(path, model, optimizer)
            else:
                for name, module in task.modules().items():
                    ckpt.load_weights(path, name, module)
                optimizer.load_state_dict(state["optimizer"])
            task.load_state_dict(state.get("task", {}))
            torch.set_rng_state(state["torch_rng"].cpu())
            start, elapsed_before = int(state["step"]), float(state["elapsed_s"])
    wrapped = model
    if info.world > 1 and not sharded:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    metrics = out_dir / "metrics.jsonl" if out_dir is not None else None
    if metrics is not None and info.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _truncate_metrics(metrics, start)

    writer = _tensorboard(out_dir) if run.tensorboard and out_dir is not None and info.main else None

    def log(record: dict) -> None:
        record = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}
        if metrics is not None and info.main:
            append_jsonl(metrics, record)
        if run.on_record is not None:
            run.on_record(record)
        for key, value in record.items() if writer else ():
            if key != "step" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, record["step"])

    t0 = time.monotonic()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - t0

    def evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad(), autocast(device, cfg.precision):
            figures = task.evaluate()
        model.train()
        return figures

    def save(step: int, finished: bool) -> None:
        if out_dir is None or not (info.main or sharded):
            return
        state = {"torch_rng": torch.get_rng_state(), "elapsed_s": elapsed(), "task": task.state_dict(),
                 "finished": finished, "budget": [cfg.steps, cfg.max_minutes]}
        if sharded:  # collective: every process writes its shards (the optimizer's too), rank 0 the rest
            distributed.save_sharded(out_dir, step, model, optimizer, state, config_json, main=info.main,
                                     full_weights=finished)
            return
        state = {"optimizer": optimizer.state_dict(), **state}
        ckpt.save_checkpoint(out_dir, step, task.modules(), state, config_json)

    # learning-curve snapshots still to take (a resumed run keeps the ones it has)
    marks = [k / cfg.snapshots for k in range(1, cfg.snapshots)] if out_dir is not None and info.main else []
    if marks and sharded:  # each process holds a shard of the weights: no full snapshot without gathering them
        print("note: learning-curve snapshots are not taken under parallel='fsdp' (the checkpoints hold the run; "
              "python -m workbench.core.distributed gather makes one model of each)", file=sys.stderr)
        marks = []
    marks = [m for m in marks if not (ckpt.snapshot_path(out_dir, m) / "snapshot.json").is_file()]

    evaluates = info.main or sharded  # a sharded forward needs every process
    initial = None
    if start == 0 and evaluates:
        initial = evaluate()
        if initial and info.main:
            log({"step": 0, **initial, "elapsed_s": 0.0})

    show = (sys.stderr.isatty() if run.progress is None else run.progress) and info.main
    bar = tqdm(total=cfg.steps, initial=start, disable=not show, desc=run.desc, leave=False)
    stopped_by, step, record, final = "steps", start, {}, None
    model.train()
    for step in range(start, cfg.steps):
        progress = max(step / cfg.steps, elapsed() / (60 * cfg.max_minutes) if cfg.max_minutes else 0.0)
        stop = torch.tensor(float(progress >= 1.0 and step > start), device=device)
        if info.world > 1:  # rank 0's clock decides for everyone
            dist.broadcast(stop, 0)
        if stop.item():
            stopped_by = "max_minutes"
            break
        scale = lr_factor(cfg, step, progress)
        task.progress = progress
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * scale
        micros = task.micro_batches(step, np.random.default_rng([cfg.seed, step]), info)
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=device)
        stats: dict[str, float] = {}
        for j, micro in enumerate(micros):
            sync = j == len(micros) - 1 or info.world == 1 or sharded  # fsdp reduce-scatters every micro-batch
            with nullcontext() if sync else wrapped.no_sync():
                with autocast(device, cfg.precision):
                    objective, micro_stats = task.loss(wrapped, micro)
                (objective * info.world).backward()  # DDP (and FSDP) average gradients over processes: undo it
            total += objective.detach()
            for k, v in micro_stats.items():
                stats[k] = stats.get(k, 0.0) + float(v) / len(micros)
        if info.world > 1:
            dist.all_reduce(total)
        if sharded:  # DTensor gradients: clip_grad_norm_ reduces the norm over the shards
            grad_norm = distributed.full_norm(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                                              cfg.grad_clip or math.inf))
        else:
            grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip
                         else _grad_norm(model.parameters()))
        optimizer.step()
        extra = task.after_step(step, scale)
        done = step + 1
        record = {"loss": total.item(), **stats, **extra}
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if info.main:  # for `reproduce`'s terminal (a no-op unless $WORKBENCH_PROGRESS is set)
            report_progress(run.desc, done, cfg.steps, "step", elapsed(),
                            budget_s=60 * cfg.max_minutes if cfg.max_minutes else None, note=f"loss {record['loss']:.3f}")
        if cfg.log_every and (done % cfg.log_every == 0 or done == start + 1) or done == cfg.steps:
            log({"step": done, **record, "lr": cfg.lr * scale, "grad_norm": float(grad_norm),
                 "progress": round(progress, 4), "elapsed_s": round(elapsed(), 2)})
        if evaluates and cfg.eval_every and done % cfg.eval_every == 0 and done != cfg.steps:
            figures = evaluate()
            if info.main:
                log({"step": done, **figures, "elapsed_s": round(elapsed(), 2)})
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done != cfg.steps:
            save(done, finished=False)
        reached = max(done / cfg.steps, elapsed() / (60 * cfg.max_minutes) if cfg.max_minutes else 0.0)
        while marks and reached >= marks[0] and done != cfg.steps:
            ckpt.save_snapshot(out_dir, marks.pop(0), task.modules(),
                               {"step": done, "elapsed_s": round(elapsed(), 2), "progress": round(reached, 4),
                                "loss": record["loss"]})
        if info.world > 1:
            dist.barrier()
        step = done
    bar.close()

    summary: dict[str, Any] = {}
    if sharded:  # collective: every process evaluates and saves; rank 0 logs and summarises below
        final = evaluate()
        save(step, finished=True)
    if info.main:
        if not sharded:
            final = evaluate()
        if final:
            log({"step": step, **final, "elapsed_s": round(elapsed(), 2)})
        if not sharded:
            save(step, finished=True)
        summary = {"run": str(out_dir) if out_dir is not None else None, "steps": step, "stopped_by": stopped_by,
                   "resumed_from": start if run.resume else None, "elapsed_s": round(elapsed(), 2),
                   "device": str(device), "processes": info.world, "threads": torch.get_num_threads(),
                   "bf16": uses_bf16(device, cfg.precision),
                   "last": record, "initial_eval": initial, "final_eval": final}
    if writer is not None:
        writer.close()
    if info.world > 1:
        dist.barrier()
    return summary


def write_summary(out_dir: str | Path | None, summary: dict[str, Any]) -> dict[str, Any]:
    """Write a stage's summary (the loop's plus the stage's own figures) as strict JSON."""
    if out_dir is not None and summary:
        atomic_write_json(Path(out_dir) / "summary.json", summary)
    return summary


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The run's metrics.jsonl records (a torn last line dropped with a warning)."""
    return read_jsonl(Path(run_dir) / "metrics.jsonl")


def saved_train_config(cfg: TrainConfig, saved: Mapping[str, Any] | None) -> dict[str, Any]:
    """A checkpoint's train_config with the settings it predates filled in with their defaults (a field added
    to `type(cfg)` after the checkpoint was written: the run was trained with what the default means)."""
    if not saved:  # no train_config at all: nothing to fill in
        return {}
    filled = dict(saved)
    for f in dataclasses.fields(cfg):
        if f.name not in filled and f.default is not dataclasses.MISSING:
            filled[f.name] = _jsonable(f.default)
    return filled


def _check_same_settings(out_dir: Path, cfg: TrainConfig, identity: Mapping[str, Any], saved: dict) -> None:
    diff = changed_settings(cfg.to_dict(), saved_train_config(cfg, saved.get("train_config")), free=RESUMABLE)
    diff += [k for k in identity if _jsonable(identity[k]) != _jsonable(saved.get(k))]
    if diff:
        raise UserError(f"cannot resume {out_dir}: its checkpoint was trained with different settings "
                        f"({', '.join(sorted(diff))})")


def _jsonable(value: Any) -> Any:
    return json.loads(to_json(value, indent=None))


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop what was logged after the checkpoint we resume from (it will be logged again)."""
    if path.is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            keep = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(to_json(r, indent=None) + "\n" for r in keep))


def _read_summary(out_dir: Path) -> dict:
    path = out_dir / "summary.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"run": str(out_dir)}


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the optional tensorboard package (pip install tensorboard)") from None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _grad_norm(params: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())
