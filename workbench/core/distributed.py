"""Scale-out on PyTorch's own engine: FSDP2 sharding, activation checkpointing and `torch.compile` per block,
and sharded checkpoints (`torch.distributed.checkpoint`, DCP) -- what `workbench.core.train.fit` uses when a
stage's TrainConfig asks for it (the LM's does: ``parallel``, ``activation_checkpointing``, ``compile``).

- `prepare_blocks`: activation checkpointing (recompute the block in the backward pass instead of keeping its
  activations) and/or `torch.compile` of each unit's forward. Both replace the unit's ``forward`` attribute,
  so parameter names and state dicts stay what they were (no ``_checkpoint_wrapped_module.`` / ``_orig_mod.``
  prefixes): a checkpoint loads whatever the options were. The RG-LRU extension is not a registered custom
  op, so dynamo breaks the graph around it (the blocks compile in pieces; the numbers do not change).
- `shard`: `fully_shard` each unit (the LM's residual blocks), then the root (embedding, final norm). Each
  process keeps 1/N of every parameter, gradient and AdamW moment; a unit's full weights exist only while it
  runs. Gradients are reduce-scattered (averaged) after every micro-batch, like DDP's all-reduce.
- `one_process_group`: FSDP needs a process group even in one process (`python -m workbench lm train
  --parallel fsdp` without torchrun): an in-memory one for the duration.
- sharded checkpoints (`save_sharded`, `load_sharded`): ``checkpoints/step-XXXXXXX/sharded/`` holds the model
  and optimizer as DCP shards (one file per process, any number of processes can load them: resharding is
  DCP's), beside ``state.pt`` (RNG, clock, budget: rank 0's) and ``config.json``; ``checkpoint.json`` is
  rewritten last, by rank 0, once every shard is on disk. The run folder must be on a filesystem every process
  sees (one node: any folder; several: a shared one). The final checkpoint of a run also gets the gathered
  ``model.safetensors``, so `workbench.lm.model.load_model` reads a finished FSDP run as it reads any other.
- `gather_checkpoint`: one process, no process group: a sharded checkpoint (a run cut short, or any step)
  becomes a run folder with one ``model.safetensors`` + ``config.json`` (``python -m workbench.core.distributed
  gather RUN OUT``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from workbench.core.errors import UserError
from workbench.core.io import atomic_path, atomic_write_json

PARALLEL = ("ddp", "fsdp")
SHARDED_DIR = "sharded"  # the DCP folder inside a checkpoint folder


def scale_problems(parallel: str, activation_checkpointing: bool, compile: bool) -> list[str]:
    """What is wrong with these settings (for a TrainConfig's __post_init__)."""
    problems = []
    if parallel not in PARALLEL:
        problems.append(f"parallel must be one of {', '.join(PARALLEL)} (got {parallel!r})")
    for name, value in (("activation_checkpointing", activation_checkpointing), ("compile", compile)):
        if not isinstance(value, bool):
            problems.append(f"{name} must be true or false (got {value!r})")
    return problems


# ---------------------------------------------------------------- blocks: checkpointing, compile, sharding

def prepare_blocks(units: Iterable[nn.Module], *, activation_checkpointing: bool = False,
                   compile: bool = False) -> None:
    """Recompute each unit in the backward pass and/or compile its forward (in place; names unchanged)."""
    for unit in units:
        forward = unit.forward
        if activation_checkpointing:
            forward = _checkpointed(forward)
        if compile:
            forward = torch.compile(forward)
        if activation_checkpointing or compile:
            unit.forward = forward


def _checkpointed(forward):
    from torch.utils.checkpoint import checkpoint

    def run(*args, **kwargs):
        if not torch.is_grad_enabled():  # evaluation and decoding: nothing to save, nothing to recompute
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


def shard(model: nn.Module, units: Iterable[nn.Module], device: torch.device | str | None = None) -> nn.Module:
    """FSDP2: `fully_shard` each unit, then the root, over all processes on `device`'s type (default: where
    the model's parameters are; FSDP's own default would be CUDA whenever a GPU is visible, even for a model
    trained on the CPU). Needs a process group (`one_process_group` in one process). The model is changed in
    place (its parameters become DTensor shards) and returned."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if not dist.is_initialized():
        raise RuntimeError("shard() needs a process group: run under torchrun or inside one_process_group()")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for unit in list(units):
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_norm(norm: torch.Tensor) -> torch.Tensor:
    """A norm from clip_grad_norm_ over DTensor gradients is a DTensor: its full (replicated) value."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


@contextmanager
def one_process_group(device: torch.device) -> Iterator[None]:
    """A one-process group (in memory, no ports) while none exists: FSDP shards over it (a world of 1)."""
    if dist.is_initialized():
        yield
        return
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda and device.index is None:  # NCCL binds the group to one GPU: name it
        device = torch.device("cuda", torch.cuda.current_device())
    dist.init_process_group("nccl" if cuda else "gloo", store=dist.HashStore(), rank=0, world_size=1,
                            **({"device_id": device} if cuda else {}))
    try:
        yield
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- sharded checkpoints

def save_sharded(run_dir: str | Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                 state: dict[str, Any], config: dict[str, Any], *, main: bool, full_weights: bool = False,
                 keep: int = 2) -> Path:
    """Every process calls this (it is collective). Rank 0 (`main`) writes state.pt, config.json and, last,
    the checkpoint.json pointer; with `full_weights` also the gathered model.safetensors."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"step-{step:07d}"
    if main and path.exists():  # a stale folder from an interrupted run: never mix its shards with these
        shutil.rmtree(path)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(path / SHARDED_DIR))
    full = None
    if full_weights:  # collective: every rank takes part, rank 0 keeps the (CPU) result
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if main:
        if full is not None:
            _write_safetensors(path / "model.safetensors", full, step)
        with atomic_path(path / "state.pt") as tmp:
            torch.save({**state, "step": step}, tmp)
        atomic_write_json(path / "config.json", {**config, "step": step, "sharded": SHARDED_DIR})
        atomic_write_json(run_dir / "checkpoint.json", {"step": step, "path": str(path.relative_to(run_dir))})
        for old in sorted((run_dir / "checkpoints").glob("step-*"))[:-keep]:
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return path


def load_sharded(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every process calls this: the model's and optimizer's shards from a sharded checkpoint folder, whatever
    the number of processes that wrote it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    folder = Path(path) / SHARDED_DIR
    if not (folder / ".metadata").is_file():
        raise UserError(f"{path} holds no sharded checkpoint ({folder} is missing): it was not trained with "
                        "parallel=fsdp; resume it with the settings it was trained with")
    model_sd, optim_sd = get_state_dict(model, optimizer)
    both = {"model": model_sd, "optimizer": optim_sd}
    dcp.load(both, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=both["model"], optim_state_dict=both["optimizer"])


def read_sharded_weights(path: str | Path, name: str = "model") -> dict[str, torch.Tensor]:
    """The full tensors of one saved state dict (`name`) of a sharded checkpoint folder, in one process."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    folder = Path(path) / SHARDED_DIR
    if not (folder / ".metadata").is_file():
        raise UserError(f"{path} holds no sharded checkpoint (no {folder / '.metadata'})")
    metadata = dcp.FileSystemReader(str(folder)).read_metadata()
    prefix = name + "."
    tensors = {key[len(prefix):]: torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
               for key, meta in metadata.state_dict_metadata.items()
               if key.startswith(prefix) and isinstance(meta, TensorStorageMetadata)}
    if not tensors:
        raise UserError(f"the sharded checkpoint {folder} has no {name!r} tensors")
    loaded = {name: tensors}
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process")
        dcp.load(loaded, checkpoint_id=str(folder), no_dist=True)
    return loaded[name]


def gather_checkpoint(run_dir: str | Path, out_dir: str | Path, *, checkpoint: str | Path | None = None) -> Path:
    """Gather the run's latest sharded checkpoint (or the checkpoint folder `checkpoint`) into a run folder
    `out_dir` holding model.safetensors + config.json (+ checkpoint.json), in one process. The result loads
    for inference (`workbench.lm.model.load_model(out_dir)`); it holds no optimizer, so it does not resume."""
    from workbench.core import checkpoint as ckpt

    path = Path(checkpoint) if checkpoint is not None else ckpt.latest_checkpoint(run_dir)
    config = ckpt.load_config(path)
    weights = read_sharded_weights(path, "model")
    out_dir = Path(out_dir)
    step = int(config.get("step", 0))
    target = out_dir / "checkpoints" / f"step-{step:07d}"
    _write_safetensors(target / "model.safetensors", weights, step)
    config = {k: v for k, v in config.items() if k != "sharded"}
    atomic_write_json(target / "config.json", {**config, "gathered_from": str(path)})
    atomic_write_json(out_dir / "checkpoint.json", {"step": step, "path": str(target.relative_to(out_dir))})
    return target


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor], step: int) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"step": str(step)})


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.core.distributed",
                                     description="tools for sharded (FSDP) runs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gather", help="a sharded checkpoint -> one model.safetensors + config.json")
    p.add_argument("run", help="the FSDP run folder (its latest checkpoint is gathered)")
    p.add_argument("out", help="the run folder to write (loads with workbench.lm.model.load_model)")
    p.add_argument("--checkpoint", default=None, help="a checkpoint folder to gather instead of the latest")
    args = parser.parse_args(argv)
    try:
        target = gather_checkpoint(args.run, args.out, checkpoint=args.checkpoint)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"gathered": str(target)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
