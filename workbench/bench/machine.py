"""What every benchmark records about where it ran, so figures from different machines are never mixed up."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cpu_name": _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        # on a shared machine the figures depend on what else runs: compare only ratios measured in one run
        "load_average": list(os.getloadavg()),
    }
    if torch.cuda.is_available():
        info["gpu_name"] = torch.cuda.get_device_name()
        info["cuda_version"] = torch.version.cuda
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
