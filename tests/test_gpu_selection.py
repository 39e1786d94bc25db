"""Where no CUDA device is visible, asking for the GPU checks fails loudly instead of skipping everything and
reporting success: `pytest -m gpu` (what `make test-gpu` runs) exits non-zero with one clear line, and
scripts/gpu_check.sh exits non-zero at once, writing nothing. Run on any machine: CUDA_VISIBLE_DEVICES=""
hides a GPU that may be there."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_GPU = "no CUDA device visible: make test-gpu needs a GPU"


def hidden_gpu_env() -> dict:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def pytest_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env=hidden_gpu_env(), capture_output=True, text=True, timeout=300)


def test_selecting_gpu_tests_without_a_gpu_fails_with_one_message():
    done = pytest_run("-m", "gpu", "tests/test_ops.py", "tests/test_gpu_lm.py")
    assert done.returncode not in (0, 5), done.stdout[-2000:]  # neither "passed" nor "nothing collected"
    assert NO_GPU in done.stdout + done.stderr
    assert " passed" not in done.stdout and " skipped" not in done.stdout  # stopped before running anything


def test_cpu_selections_are_not_affected():
    """The same files without -m gpu (the default deselects gpu tests): no message, a normal pass."""
    done = pytest_run("tests/test_ops.py", "-k", "reference_gradcheck")
    assert done.returncode == 0, done.stdout[-2000:]
    assert NO_GPU not in done.stdout + done.stderr and "1 passed" in done.stdout


def test_gpu_check_script_exits_at_once_without_a_gpu(tmp_path):
    reports = tmp_path / "gpu"
    start = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**hidden_gpu_env(), "GPU_REPORTS": str(reports),
                                                       "PY": sys.executable})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device visible" in lines[0], done.stderr
    assert done.stdout == "" and not reports.exists()
    assert time.monotonic() - start < 60  # one interpreter start, nothing built or run
