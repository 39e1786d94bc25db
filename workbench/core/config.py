"""Settings: every stage keeps them in frozen dataclasses deriving from `Config`, and names three scales of them.

- ``smoke``: seconds, for tests and CI;
- ``laptop``: the default, minutes on 2 CPU cores;
- ``paper``: the documented scale of the paper, for GPU clusters.

A stage may add extra sizes (the LM's ``small``), but these three exist in every stage, so
``reproduce --preset paper`` finds what each notebook needs.

`Config` is the one way a settings object becomes JSON and comes back: `to_dict()` writes the fields and the
format version, `from_dict()` reads them back (lists become tuples, nested configs are rebuilt) and refuses
fields it does not know with one line that names them, so a checkpoint from another version of the workbench
is never half-understood.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, Mapping, TypeVar

from workbench.core.errors import UserError

T = TypeVar("T")
C = TypeVar("C", bound="Config")

PRESET_NAMES = ("smoke", "laptop", "paper")
# "auto": bf16 autocast on GPUs that support it, else fp32 (what decoding asks: at batch 1 a CPU step is Python
# overhead, not arithmetic); "native": bf16 wherever the hardware computes it natively, CPUs with AVX512-BF16 or AMX
# included (what a compute-bound CPU trainer asks: 4.3x the fp32 matmul throughput on this project's 2-core EPYC);
# "fp32" / "bf16": never / always.
PRECISIONS = ("auto", "native", "fp32", "bf16")
# Bumped when a config's JSON changes meaning; configs without the key were written before versioning (0).
FORMAT_VERSION = 1
FORMAT_KEY = "format_version"


class Config:
    """Base of every settings dataclass: JSON in and out the same way everywhere."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {FORMAT_KEY: FORMAT_VERSION}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Config) else _plain(value)
        return out

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any], *, what: str | None = None) -> C:
        """Rebuild from `to_dict()` output (or an older, unversioned dict with the same fields)."""
        d = dict(d)
        version = d.pop(FORMAT_KEY, 0)
        what = what or cls.__name__
        if version > FORMAT_VERSION:
            raise UserError(f"{what} was written by a newer workbench (format {version} > {FORMAT_VERSION}); "
                            "upgrade the workbench to read it")
        hints = _field_types(cls)
        unknown = sorted(set(d) - set(hints))
        if unknown:
            raise UserError(f"{what} has settings this workbench does not know ({', '.join(unknown)}; format "
                            f"{version}): retrain it with this version, or use the version that wrote it")
        kwargs = {}
        for name, value in d.items():
            nested = _config_class(hints[name])
            if nested is not None and isinstance(value, Mapping):
                kwargs[name] = nested.from_dict(value, what=f"{what}.{name}")
            else:
                kwargs[name] = _tuples(value)
        return cls(**kwargs)

    def replace(self: C, **changes: Any) -> C:
        return override(self, **changes)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _tuples(value: Any) -> Any:
    """JSON's lists back into the tuples that frozen configs hold."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name) for f in dataclasses.fields(cls)}


def _config_class(tp: Any) -> type[Config] | None:
    if isinstance(tp, type) and issubclass(tp, Config):
        return tp
    for arg in typing.get_args(tp):  # Optional[SomeConfig]
        if isinstance(arg, type) and issubclass(arg, Config):
            return arg
    return None


def pick_preset(presets: Mapping[str, T], name: str, what: str) -> T:
    """Return ``presets[name]`` or raise a clear error listing the choices."""
    if name not in presets:
        raise UserError(f"unknown {what} preset {name!r}; choose one of: {', '.join(presets)}")
    return presets[name]


def override(config: T, **changes: Any) -> T:
    """A copy of a config dataclass with some fields changed; unknown names are an error, not ignored, and the
    result is checked (its ``__post_init__``) so a setting out of range is one line naming it."""
    names = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(changes) - names)
    if unknown:
        raise UserError(f"{type(config).__name__} has no field(s) {unknown}; fields: {sorted(names)}")
    try:
        return dataclasses.replace(config, **changes)  # type: ignore[type-var]
    except ValueError as err:
        raise UserError(str(err)) from None


def changed_settings(current: Mapping[str, Any], saved: Mapping[str, Any], free: tuple[str, ...] = ()) -> list[str]:
    """Names of the settings that differ between two `to_dict()`s, leaving out `free` ones (and the version)."""
    keys = (set(current) | set(saved)) - set(free) - {FORMAT_KEY}
    return sorted(k for k in keys if _plain(current.get(k)) != _plain(saved.get(k)))
