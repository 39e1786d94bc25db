"""`workbench.core.device` on import: denormal floats are flushed to zero on every torch CPU thread."""

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
