"""The CUDA source compiles and links wherever a CUDA toolkit is installed, GPU or not.

The first build takes ~1-2 minutes on 2 cores; it is cached under .cache/torch_extensions (keyed on the
sources, flags, architectures and torch version), so later runs only import it. Correctness on a GPU is in
test_ops.py (marked `gpu`).
"""

from __future__ import annotations

import subprocess

import pytest
import torch

from workbench.ops import build

pytestmark = pytest.mark.skipif(build.find_cuda_home() is None or torch.version.cuda is None,
                                reason="needs nvcc and a CUDA build of torch")


def test_cuda_extension_builds_and_links() -> None:
    ext = build.load_extension("cuda")
    assert callable(ext.forward) and callable(ext.backward) and callable(ext.auto_chunks)
    assert ext.checkpoint_every == 16


def test_cuda_binary_targets_a100_and_h100_without_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("with a GPU the build targets the GPU's own architecture")
    assert build.cuda_arch_list() == build.DEFAULT_CUDA_ARCHS == "8.0;9.0"
    ext = build.load_extension("cuda")
    ninja = (build.cache_root() / build.build_name(build.CUDA_SPEC) / "build.ninja").read_text()
    for arch in ("80", "90"):
        assert f"arch=compute_{arch},code=sm_{arch}" in ninja
    cuobjdump = build.find_cuda_home() / "bin" / "cuobjdump"
    if cuobjdump.exists():  # not in every toolkit install; when there, check the binary itself
        listing = subprocess.run([str(cuobjdump), "--list-elf", ext.__file__], capture_output=True, text=True,
                                 check=True).stdout
        assert "sm_80" in listing and "sm_90" in listing
