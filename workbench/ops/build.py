"""Building, caching and choosing the RG-LRU backends.

The native kernels live in ``kernels/`` and are compiled on first use with `torch.utils.cpp_extension`. Each
build goes to ``.cache/torch_extensions/<name>-<hash>`` (or under $TORCH_EXTENSIONS_DIR), keyed on the
sources, flags, target architectures and torch version, so editing a kernel rebuilds and nothing else does.

Backend choice, per call: ``cuda`` for CUDA tensors, ``cpu`` (C++/OpenMP) for CPU tensors, else the PyTorch
reference. $WORKBENCH_RGLRU_BACKEND (auto, cuda, cpu, reference) or the ``backend=`` argument overrides it.
In ``auto`` mode a backend that cannot serve a call (build failure, unsupported dtype) falls back to the
reference with one warning per reason (fp64, the gradcheck path, goes to the reference silently); an
explicitly requested backend that cannot serve a call is an error.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
KERNEL_DIR = REPO_ROOT / "kernels"
BACKEND_ENV = "WORKBENCH_RGLRU_BACKEND"
BACKENDS = ("auto", "cuda", "cpu", "reference")
DEFAULT_CUDA_ARCHS = "8.0;9.0"  # A100, H100; the build test compiles both

# dtypes each native backend has kernels for (inputs; the state is always fp32)
SUPPORTED_DTYPES = {
    "cpu": (torch.float32, torch.bfloat16),
    "cuda": (torch.float32, torch.bfloat16, torch.float16),
}


class RGLRUFallbackWarning(UserWarning):
    """A native RG-LRU backend was skipped and the PyTorch reference used instead."""


@dataclasses.dataclass(frozen=True)
class ExtensionSpec:
    """What to compile for one backend: sources (compiled) and headers (hashed) relative to kernels/."""

    backend: str
    sources: tuple[str, ...]
    headers: tuple[str, ...] = ("rglru_math.h",)
    cflags: tuple[str, ...] = ("-O3",)
    cuda_cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()


CPU_SPEC = ExtensionSpec(
    backend="cpu", sources=("rglru_cpu.cpp",), ldflags=("-fopenmp",),
    # -fno-math-errno: sqrtf may not set errno, so it vectorises; -fno-tree-pre: PRE otherwise folds the
    # clamp in exp_f into per-branch constants, leaving control flow that blocks vectorising the loops.
    cflags=("-O3", "-fopenmp", "-fno-math-errno", "-fno-tree-pre"),
)
CUDA_SPEC = ExtensionSpec(
    backend="cuda", sources=("rglru_cuda_binding.cpp", "rglru_cuda.cu"),
    cuda_cflags=("-O3", "--expt-relaxed-constexpr"),
)


def cache_root() -> Path:
    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or REPO_ROOT / ".cache" / "torch_extensions")


def find_cuda_home() -> Path | None:
    """$CUDA_HOME / $CUDA_PATH, else /usr/local/cuda, else the toolkit of the `nvcc` on PATH: the first that
    has both nvcc and the CUDA runtime library (an `nvcc` wrapper in /usr/local/bin makes torch guess
    /usr/local, which has no libcudart to link against)."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for candidate in candidates:
        if candidate and _is_toolkit(Path(candidate)):
            return Path(candidate)
    return None


def _is_toolkit(path: Path) -> bool:
    runtime = [*path.glob("lib*/libcudart.so*"), *path.glob("targets/*/lib/libcudart.so*")]
    return (path / "bin" / "nvcc").exists() and bool(runtime)


def cuda_arch_list() -> str:
    """$TORCH_CUDA_ARCH_LIST, else the visible GPUs' capabilities, else DEFAULT_CUDA_ARCHS."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{major}.{minor}" for major, minor in caps)
    return DEFAULT_CUDA_ARCHS


def _cuda_include_paths() -> list[str]:
    # pip's CUDA wheels ship headers ATen/cuda/CUDAContext.h needs (cusparse.h, ...) outside the toolkit
    site = Path(torch.__file__).resolve().parents[1] / "nvidia"
    return [str(p) for p in sorted(site.glob("cu*/include"))]


def build_name(spec: ExtensionSpec) -> str:
    """`rglru_<backend>_<hash>`: the hash covers everything that changes the binary."""
    digest = hashlib.sha256()
    for rel in spec.sources + spec.headers:
        digest.update(rel.encode() + b"\0" + (KERNEL_DIR / rel).read_bytes())
    digest.update(repr((spec, torch.__version__, torch.version.cuda)).encode())
    if spec.backend == "cuda":
        digest.update(cuda_arch_list().encode())
    return f"rglru_{spec.backend}_{digest.hexdigest()[:12]}"


@functools.cache
def load_extension(backend: str) -> ModuleType:
    """Compile (first use, ~1-2 min) or load from the cache the extension for `backend` ("cpu" or "cuda")."""
    spec = {"cpu": CPU_SPEC, "cuda": CUDA_SPEC}[backend]
    name = build_name(spec)
    kwargs, home = {}, None
    if backend == "cuda":
        home = find_cuda_home()
        if home is None:
            raise RuntimeError("no CUDA toolkit (nvcc) found; set CUDA_HOME")
        os.environ.setdefault("CUDA_HOME", str(home))
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", cuda_arch_list())
        kwargs = dict(extra_cuda_cflags=list(spec.cuda_cflags), extra_include_paths=_cuda_include_paths(),
                      with_cuda=True)
    cpp_extension = _import_cpp_extension()
    if backend == "cuda" and not _is_toolkit(Path(cpp_extension.CUDA_HOME or "/nonexistent")):
        cpp_extension.CUDA_HOME = str(home)  # torch guessed once, at import time
    build_dir = cache_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    if not any(build_dir.glob(f"{name}*.so")):
        print(f"rglru: building the {backend} extension into {build_dir} (first use only)", file=sys.stderr)
    return cpp_extension.load(
        name=name, sources=[str(KERNEL_DIR / s) for s in spec.sources], extra_cflags=list(spec.cflags),
        extra_ldflags=list(spec.ldflags), build_directory=str(build_dir), verbose=False, **kwargs,
    )


def _import_cpp_extension() -> ModuleType:
    # torch logs "No CUDA runtime is found" at import on GPU-less machines: noise for a CPU build
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension


_warned: set[str] = set()


def _fallback(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(f"rglru: {message}; using the PyTorch reference", RGLRUFallbackWarning, stacklevel=4)


def requested_backend(backend: str | None = None) -> str:
    choice = (backend or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if choice not in BACKENDS:
        source = "backend" if backend else BACKEND_ENV
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}, got {choice!r}")
    return choice


def resolve_backend(device: torch.device, dtype: torch.dtype, backend: str | None = None
                    ) -> tuple[str, ModuleType | None]:
    """(name, extension module or None for the reference) for a call on `device` with inputs of `dtype`."""
    choice = requested_backend(backend)
    if choice == "reference":
        return "reference", None
    native = "cuda" if device.type == "cuda" else "cpu" if device.type == "cpu" else None
    if choice != "auto" and choice != native:
        raise ValueError(f"rglru backend {choice!r} cannot run on {device.type} tensors")
    if native is None:
        _fallback(f"no native kernel for {device.type} tensors")
        return "reference", None
    if dtype not in SUPPORTED_DTYPES[native]:
        if choice != "auto":
            raise ValueError(f"rglru backend {native!r} has no {dtype} kernel; "
                             f"supported: {', '.join(str(d) for d in SUPPORTED_DTYPES[native])}")
        if dtype != torch.float64:  # fp64 is the reference's job (gradcheck): not a fallback worth a warning
            _fallback(f"the {native} backend has no {dtype} kernel")
        return "reference", None
    try:
        return native, load_extension(native)
    except Exception as err:  # a failed compile must not take the model down in auto mode
        if choice != "auto":
            raise RuntimeError(f"rglru: the {native} extension failed to build: {_first_line(err)}") from err
        _fallback(f"the {native} extension failed to build ({_first_line(err)})")
        return "reference", None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
