"""Presets: every stage keeps its settings in a dataclass and names three scales of it.

- ``smoke``: seconds, for tests and CI;
- ``laptop``: the default, minutes on 2 CPU cores;
- ``paper``: the documented scale of the paper, for GPU clusters.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

T = TypeVar("T")

PRESET_NAMES = ("smoke", "laptop", "paper")


def pick_preset(presets: Mapping[str, T], name: str, what: str) -> T:
    """Return ``presets[name]`` or raise a clear error listing the choices."""
    from workbench.cli import UserError

    if name not in presets:
        raise UserError(f"unknown {what} preset {name!r}; choose one of: {', '.join(presets)}")
    return presets[name]


def override(config: T, **changes: Any) -> T:
    """A copy of a config dataclass with some fields changed; unknown names are an error, not ignored."""
    from workbench.cli import UserError

    names = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(changes) - names)
    if unknown:
        raise UserError(f"{type(config).__name__} has no field(s) {unknown}; fields: {sorted(names)}")
    return dataclasses.replace(config, **{k: v for k, v in changes.items()})  # type: ignore[type-var]


class DictConfig:
    """Mixin for config dataclasses saved in checkpoints as JSON: `to_dict`, and `from_dict` turning JSON's lists
    back into tuples."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
