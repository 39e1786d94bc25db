"""`workbench.core.device`: denormal floats flushed on every torch CPU thread (on import); where bf16 autocast runs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import workbench.core.device, torch
torch.set_num_threads(2)
x = torch.full((1 << 20,), 1e-39)  # a denormal float32 everywhere
print(int((x * 1.0 != 0).sum()), int((x.exp() * 1e-39 != 0).sum()))
"""


def test_denormals_are_flushed_on_every_thread():
    """A product that would stay denormal comes out zero in every chunk of a parallel op: the flag reached the
    OpenMP workers, not only the main thread (a fresh process, as a stage starts)."""
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", "0"], done.stdout


def test_precision_names_say_where_bf16_autocast_runs(monkeypatch):
    """"native" follows the hardware (a CPU with AVX512-BF16 or AMX counts), "auto" autocasts on GPUs only (a CPU
    decoding at batch 1 stays fp32), "bf16" / "fp32" always / never; and the context manager does what it says."""
    import torch

    from workbench.core import device as dev

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(dev, "native_bf16", lambda d, native=native: native)
        assert dev.uses_bf16(cpu, "native") is native and dev.uses_bf16(gpu, "native") is native
        assert dev.uses_bf16(cpu, "auto") is False and dev.uses_bf16(gpu, "auto") is native
        assert dev.uses_bf16(cpu, "bf16") is True and dev.uses_bf16(cpu, "fp32") is False
        with dev.autocast(cpu, "native"):
            y = torch.ones(2, 2) @ torch.ones(2, 2)
        assert y.dtype == (torch.bfloat16 if native else torch.float32)


def test_a_cpu_reports_native_bf16_from_its_instruction_set(monkeypatch):
    import torch

    from workbench.core.device import native_bf16

    for avx512_bf16, amx in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert native_bf16(torch.device("cpu")) is (avx512_bf16 or amx)
    assert native_bf16(torch.device("meta")) is False
