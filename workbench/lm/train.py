"""Training: AdamW, warmup + cosine, gradient clipping and accumulation, bf16 autocast where supported,
periodic eval, JSONL metrics, atomic checkpoints with exact resume, a wall-clock budget, and DDP via torchrun.

Run directory layout:

    OUT/metrics.jsonl                     one JSON object per logged step / eval
    OUT/summary.json                      the last run's summary
    OUT/checkpoint.json                   {"step": s, "path": "checkpoints/step-000000s"}: the latest complete one
    OUT/checkpoints/step-XXXXXXX/         model.safetensors, optimizer.pt (optimizer, scheduler, RNG), config.json

Every file is written through `workbench.io.atomic_path` and the pointer `checkpoint.json` last, so an
interrupted save leaves the previous checkpoint in force. Batches are drawn from an RNG seeded by (seed, step),
so a resumed run sees the same data as an uninterrupted one, and on CPU reproduces its loss curve exactly.

Scale-out: under `torchrun --nproc_per_node N` each process takes its slice of the same global batch and DDP
averages gradients; the loss is normalised by the global number of target tokens, so N processes compute the
same update as one process at the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from workbench.cli import UserError
from workbench.io import atomic_path, atomic_write_json
from workbench.lm.config import TOKENS_PER_SECOND, ModelConfig, TrainConfig
from workbench.lm.data import Batch, TokenCorpus, sample_batch
from workbench.lm.model import SpeechLM, build_model, count_parameters

KEEP_CHECKPOINTS = 2
EVAL_SEED = 1_000_003  # the held-out batches are fixed for a run: drawn once from (seed, EVAL_SEED)


def pick_device(device: str | None = None, local_rank: int = 0) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on devices that support it ("auto"), always ("bf16"), or never ("fp32")."""
    enabled = precision == "bf16" or (precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Linear warmup to 1, then cosine decay to min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    # decay matrices and embeddings only; norms, biases and the RG-LRU's a_param are left alone
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)


def nll_sum(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Summed next-token NLL over the batch's loss mask (targets inside the same recording)."""
    logits, _ = model(batch.tokens, batch.resets)
    nll = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="none")
    return (nll * batch.mask.flatten()).sum()


def check_vocab(batch: Batch, vocab_size: int) -> None:
    top = int(torch.maximum(batch.tokens.max(), batch.targets.max()))
    if top >= vocab_size or int(batch.tokens.min()) < 0:
        raise UserError(f"token id {top} does not fit the model's vocabulary of {vocab_size}; "
                        "pass a larger --vocab-size")


# ------------------------------------------------------------------------------------------ checkpoints


def latest_checkpoint(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    pointer = run_dir / "checkpoint.json"
    if not pointer.is_file():
        raise UserError(f"no checkpoint in {run_dir} (expected {pointer}); train first: python -m workbench lm train")
    path = run_dir / json.loads(pointer.read_text())["path"]
    if not (path / "config.json").is_file():
        raise UserError(f"checkpoint {path} named by {pointer} is missing or incomplete")
    return path


def save_checkpoint(run_dir: Path, model: SpeechLM, optimizer, scheduler, step: int, meta: dict) -> Path:
    path = run_dir / "checkpoints" / f"step-{step:07d}"
    with atomic_path(path / "model.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp),
                  metadata={"step": str(step)})
    with atomic_path(path / "optimizer.pt") as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(), "step": step}, tmp)
    atomic_write_json(path / "config.json", {**meta, "step": step})
    atomic_write_json(run_dir / "checkpoint.json", {"step": step, "path": str(path.relative_to(run_dir))})
    for old in sorted((run_dir / "checkpoints").glob("step-*"))[:-KEEP_CHECKPOINTS]:
        if old != path:
            shutil.rmtree(old, ignore_errors=True)
    return path


def checkpoint_meta(run_dir: str | Path) -> dict:
    """The latest checkpoint's config.json: model/train configs, tokens, step, parameter counts."""
    return json.loads((latest_checkpoint(run_dir) / "config.json").read_text())


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[SpeechLM, dict]:
    """The latest checkpoint's model (eval mode) and its config.json contents."""
    path = latest_checkpoint(run_dir)
    meta = json.loads((path / "config.json").read_text())
    model = build_model(ModelConfig.from_dict(meta["model_config"]))
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.to(device).eval(), meta


# --------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0


def init_distributed(device: torch.device | None = None) -> DistInfo:
    """Join the torchrun process group if launched by torchrun (WORLD_SIZE > 1); else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    if not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and (device is None or device.type == "cuda")
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _truncate_metrics(path: Path, step: int) -> None:
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep))


def train(out_dir: str | Path, model_config: ModelConfig, train_config: TrainConfig, tokens_dir: str | Path, *,
          resume: bool = False, device: str | None = None, progress: bool | None = None,
          preset: str | None = None, tensorboard: bool = False) -> dict:
    """Train (or, with resume, continue training) a model into `out_dir`; returns the run summary.

    On resume the checkpoint's configs must equal the given ones except `steps` and `max_minutes`, which may
    be changed to extend a run (changing `steps` also stretches the cosine schedule from there on). With
    `tensorboard` (needs the optional tensorboard package) metrics also go to OUT/tensorboard."""
    from tqdm.auto import tqdm

    cfg, out_dir = train_config, Path(out_dir)
    info = init_distributed(torch.device(device) if device else None)
    device = pick_device(device, info.local_rank)
    main = info.rank == 0
    if cfg.batch_size % info.world:
        raise UserError(f"batch size {cfg.batch_size} is not divisible by {info.world} processes")
    per_rank = cfg.batch_size // info.world
    micro = cfg.micro_batch or per_rank
    if per_rank % micro:
        raise UserError(f"per-process batch {per_rank} is not divisible by micro batch {micro}")

    corpus = TokenCorpus(tokens_dir)
    train_recs, held_out = corpus.split("train"), corpus.split(corpus.held_out_split())
    meta = {"model": model_config.kind, "preset": preset, "tokens": str(tokens_dir), "synthetic": corpus.synthetic,
            "model_config": model_config.to_dict(), "train_config": cfg.to_dict(),
            "parameters": count_parameters(model_config)}

    torch.manual_seed(cfg.seed)
    model = build_model(model_config).to(device)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, cfg))
    start_step = 0
    if resume:
        ckpt = latest_checkpoint(out_dir)
        saved = json.loads((ckpt / "config.json").read_text())
        mine = {**cfg.to_dict(), "steps": None, "max_minutes": None}
        theirs = {**TrainConfig.from_dict(saved["train_config"]).to_dict(), "steps": None, "max_minutes": None}
        if saved["model_config"] != json.loads(json.dumps(model_config.to_dict())) or mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs[k])
            raise UserError(f"cannot resume {out_dir}: its checkpoint was trained with different settings "
                            f"({'model config' if not diff else ', '.join(diff)})")
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        state = torch.load(ckpt / "optimizer.pt", map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):  # the lr for this run's `steps`
            group["lr"] = base * lr_factor(cfg, scheduler.last_epoch)
        torch.set_rng_state(state["torch_rng"])
        start_step = state["step"]
    elif (out_dir / "checkpoint.json").exists():  # every rank checks, so none waits for a failed peer
        raise UserError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    ddp = torch.nn.parallel.DistributedDataParallel(model) if info.world > 1 else model

    metrics_path = out_dir / "metrics.jsonl"
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _truncate_metrics(metrics_path, start_step)
    eval_batch = sample_batch(corpus, held_out, np.random.default_rng([cfg.seed, EVAL_SEED]),
                              cfg.eval_batches * cfg.batch_size, cfg.window_tokens)

    def evaluate() -> float:
        model.eval()
        total = torch.zeros((), device=device)
        with torch.no_grad():
            for i in range(0, eval_batch.tokens.shape[0], micro):
                with autocast(device, cfg.precision):
                    total += nll_sum(model, eval_batch.rows(slice(i, i + micro)).to(device))
        model.train()
        return total.item() / max(1, int(eval_batch.mask.sum()))

    writer = None
    if tensorboard and main:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard needs the optional tensorboard package (pip install tensorboard)") from None
        writer = SummaryWriter(str(out_dir / "tensorboard"))

    def log(record: dict) -> None:
        with metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items() if writer else ():
            if key != "step":
                writer.add_scalar(key, value, record["step"])

    t0 = time.monotonic()
    stopped_by, loss, eval_loss, step = "steps", float("nan"), None, start_step
    show = (sys.stderr.isatty() if progress is None else progress) and main
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not show, desc=f"{model_config.kind}", leave=False)
    model.train()
    for step in range(start_step, cfg.steps):
        over = torch.tensor(float(cfg.max_minutes is not None and time.monotonic() - t0 > 60 * cfg.max_minutes),
                            device=device)
        if info.world > 1:  # rank 0's clock decides for everyone
            dist.broadcast(over, 0)
        if over.item():
            stopped_by = "max_minutes"
            break
        batch = sample_batch(corpus, train_recs, np.random.default_rng([cfg.seed, step]), cfg.batch_size,
                             cfg.window_tokens)
        check_vocab(batch, model_config.vocab_size)
        n_valid = max(1, int(batch.mask.sum()))
        local = batch.rows(slice(info.rank * per_rank, (info.rank + 1) * per_rank)).to(device)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=device)
        for j in range(0, per_rank, micro):
            last = j + micro >= per_rank
            with (nullcontext() if last or info.world == 1 else ddp.no_sync()):
                with autocast(device, cfg.precision):
                    part = nll_sum(ddp, local.rows(slice(j, j + micro)))
                (part * info.world / n_valid).backward()  # DDP divides by world: the global mean over tokens
            loss_sum += part.detach()
        if info.world > 1:
            dist.all_reduce(loss_sum)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        loss = loss_sum.item() / n_valid
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if main and (done % cfg.log_every == 0 or done == cfg.steps or done == start_step + 1):
            log({"step": done, "loss": loss, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                 "tokens": done * cfg.batch_size * cfg.window_tokens, "elapsed_s": time.monotonic() - t0})
        if main and (done % cfg.eval_every == 0 or done == cfg.steps):
            eval_loss = evaluate()
            log({"step": done, "eval_loss": eval_loss, "elapsed_s": time.monotonic() - t0})
        if main and done % cfg.checkpoint_every == 0:
            save_checkpoint(out_dir, model, optimizer, scheduler, done, meta)
        if info.world > 1:
            dist.barrier()
        step = done
    bar.close()

    summary = None
    if main:
        if eval_loss is None or stopped_by == "max_minutes":
            eval_loss = evaluate()
            log({"step": step, "eval_loss": eval_loss, "elapsed_s": time.monotonic() - t0})
        save_checkpoint(out_dir, model, optimizer, scheduler, step, meta)
        summary = {"run": str(out_dir), "model": model_config.kind, "preset": preset, "tokens": str(tokens_dir),
                   "synthetic_tokens": corpus.synthetic, "parameters": meta["parameters"]["total"],
                   "steps": step, "resumed_from": start_step if resume else None, "stopped_by": stopped_by,
                   "train_loss": loss, "eval_loss": eval_loss, "elapsed_s": round(time.monotonic() - t0, 2),
                   "window_tokens": cfg.window_tokens, "window_seconds": cfg.window_tokens / TOKENS_PER_SECOND,
                   "device": str(device), "processes": info.world}
        atomic_write_json(out_dir / "summary.json", summary)
        if writer:
            writer.close()
    if info.world > 1:
        dist.barrier()
    return summary or {}


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []
