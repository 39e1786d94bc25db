"""Devices, precision and the torchrun process group: one place for what every trainer and decoder asks.

Under ``torchrun --nproc_per_node N`` (one node) or ``--nnodes M --rdzv-endpoint host:port`` (several) each
process joins the group with NCCL on GPUs (each process on ``cuda:LOCAL_RANK``, set before the group is made
so collectives never land on GPU 0 of every process) and gloo on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Denormal floats (below ~1.2e-38) cost an x86 CPU ~100x per operation, and training makes them (ELU and sigmoid of
# large negative pre-activations, Adam's decaying moments): the laptop codec slowed from 12.8 to 7.7 steps/s over
# 12 minutes, and its late checkpoint trains 2.5x faster with them flushed to zero. The flag is per thread and
# torch's OpenMP workers copy it when they are started, so it is set on import, before the first parallel op;
# values that small are zero to every model here. (No effect on GPUs, which flush by default in the kernels we use.)
torch.set_flush_denormal(True)


def pick_device(device: str | torch.device | None = None, local_rank: int = 0) -> torch.device:
    """`device` if given, else this process's GPU when there is one, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively: a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX tiles (without
    them a CPU emulates bf16 and autocast only adds conversions)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        return any(bool(getattr(cpu, probe, lambda: False)())
                   for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


def uses_bf16(device: torch.device, precision: str = "auto") -> bool:
    """Whether `precision` (one of `workbench.core.config.PRECISIONS`) autocasts to bf16 on `device`."""
    if precision == "native":
        return native_bf16(device)
    return precision == "bf16" or (precision == "auto" and device.type == "cuda" and native_bf16(device))


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast where `precision` asks for it on `device` (`uses_bf16`); weights stay fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, precision))


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | torch.device | None = None) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1); returns (info, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device, local_rank)
    if world == 1:
        return DistInfo(), device
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                **({"device_id": device} if device.type == "cuda" else {}))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank), device


def finish_distributed(synchronize: bool = True) -> None:
    """Leave the process group (what torchrun expects before a process exits). After a run that finished,
    `synchronize` first waits for every rank: a rank that tears gloo down while its peer still has a receive
    pending aborts the process ("terminate called without an active exception"). After an error, no wait: the
    peers may never arrive."""
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()
