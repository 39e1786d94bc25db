"""What the SSM primer notebook (notebooks/02_ssm_primer.ipynb) computes and draws, so that it stays thin.

Everything here runs the real op (`workbench.ops.rglru`) or the reference's `gates()`; nothing re-derives
the recurrence. Figures are plotly; the interactive explorer uses ipywidgets and degrades to nothing (the
notebook also draws the default figure statically) where widgets cannot run, e.g. under papermill.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F

from workbench.ops import rglru
from workbench.ops.reference import C, gates


@dataclasses.dataclass(frozen=True)
class GateSetting:
    """One channel's parameters: Lambda (a_param = -Lambda), the constant c, and constant gate pre-activations."""

    lam: float = 4.0
    c: float = C
    gate_a: float = 0.0
    gate_x: float = 0.0


def a_param_for(setting: GateSetting) -> torch.Tensor:
    """The op's (d,) a_param for one channel: c softplus(-Lambda) = C softplus(a_param), so the op's fixed
    C = 8 acts like the setting's c (for c = 8 this is just -Lambda)."""
    target = setting.c / C * F.softplus(torch.tensor(-setting.lam, dtype=torch.float64))
    return (torch.log(torch.expm1(target)) if target < 20 else target).float().reshape(1)


def decay(setting: GateSetting) -> float:
    """a = sigmoid(Lambda) ** (c * sigmoid(gate_a)), computed by the reference's gates()."""
    a, _ = gates(torch.tensor([setting.gate_a]), torch.tensor([setting.gate_x]), a_param_for(setting))
    return float(a[0])


def effective_memory(a: float) -> float:
    """Steps until an input's contribution decays by 1/e: -1 / ln a (inf for a = 1, 0 for a = 0)."""
    if a <= 0.0:
        return 0.0
    return math.inf if a >= 1.0 else -1.0 / math.log(a)


def impulse_response(setting: GateSetting, steps: int = 200) -> dict[str, Any]:
    """h_t after a unit input at t = 0 and nothing after, computed by the op itself (constant gates)."""
    x = torch.zeros(1, steps, 1)
    x[0, 0, 0] = 1.0
    y, _ = rglru(x, torch.full_like(x, setting.gate_a), torch.full_like(x, setting.gate_x), a_param_for(setting))
    a = decay(setting)
    return {"t": list(range(steps)), "h": y[0, :, 0].tolist(), "a": a, "memory": effective_memory(a)}


def impulse_figure(settings: list[GateSetting] | None = None, steps: int = 200):
    """Impulse responses of a few channels on one plot, each labelled with its a and memory length."""
    import plotly.graph_objects as go

    settings = settings or [GateSetting(lam=lam) for lam in (1.0, 4.0, 7.0)]
    fig = go.Figure()
    for s in settings:
        r = impulse_response(s, steps)
        fig.add_trace(go.Scatter(x=r["t"], y=r["h"], mode="lines",
                                 name=f"Λ={s.lam:g}, c={s.c:g}, gates=({s.gate_a:g}, {s.gate_x:g}): "
                                      f"a={r['a']:.4f}, memory≈{r['memory']:.1f} steps"))
    fig.update_layout(title="RG-LRU impulse response h_t to a unit input at t = 0", xaxis_title="t",
                      yaxis_title="h_t", legend=dict(yanchor="top", y=0.99, xanchor="right", x=0.99))
    return fig


def impulse_explorer(steps: int = 200):
    """Sliders for Lambda, c and the two gates redrawing the impulse response; None where ipywidgets is missing."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None

    def draw(lam: float, c: float, gate_a: float, gate_x: float) -> None:
        impulse_figure([GateSetting(lam, c, gate_a, gate_x)], steps).show()

    sliders = dict(
        lam=widgets.FloatSlider(value=4.0, min=-2.0, max=12.0, step=0.1, description="Λ"),
        c=widgets.FloatSlider(value=C, min=0.5, max=16.0, step=0.5, description="c"),
        gate_a=widgets.FloatSlider(value=0.0, min=-6.0, max=6.0, step=0.1, description="gate_a"),
        gate_x=widgets.FloatSlider(value=0.0, min=-6.0, max=6.0, step=0.1, description="gate_x"),
    )
    return widgets.interactive(draw, **sliders)


def memory_costs(lengths: list[int], d: int = 2560, bytes_per_value: int = 2) -> dict[str, list[float]]:
    """Bytes a model must keep to produce the next token after `t` tokens, per layer of width d:
    the recurrence keeps its state (d values, fp32); a long convolution (kernel as long as the context) and
    attention keep the context (t * d inputs, or 2 t d keys and values)."""
    return {
        "t": list(lengths),
        "recurrence (RG-LRU state)": [4.0 * d for _ in lengths],
        "long convolution (input history)": [float(t * d * bytes_per_value) for t in lengths],
        "attention (KV cache)": [float(2 * t * d * bytes_per_value) for t in lengths],
    }


def memory_cost_figure(lengths: list[int] | None = None, d: int = 2560):
    import plotly.graph_objects as go

    costs = memory_costs(lengths or [2 ** k for k in range(6, 21)], d)
    fig = go.Figure()
    for name, values in costs.items():
        if name != "t":
            fig.add_trace(go.Scatter(x=costs["t"], y=values, mode="lines+markers", name=name))
    fig.update_layout(title=f"Memory to generate the next token, one layer of width {d}", xaxis_type="log",
                      yaxis_type="log", xaxis_title="tokens so far (t)", yaxis_title="bytes")
    return fig


def bandwidth_figure(payload: dict[str, Any]):
    """Achieved GB/s of each backend against the copy ceiling, from a `bench scan` payload."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for key in ("cpu", "gpu"):
        section = payload.get(key)
        if not section:
            continue
        names, fwd, bwd = [], [], []
        for name, r in section["backends"].items():
            if "error" not in r:
                names.append(f"{key}: {name}")
                fwd.append(r["fwd_gbps"])
                bwd.append(r["bwd_gbps"])
        names.append(f"{key}: copy_ ceiling")
        fwd.append(section["copy_gbps"])
        bwd.append(section["copy_gbps"])
        fig.add_trace(go.Bar(name=f"{key} forward", x=names, y=fwd))
        fig.add_trace(go.Bar(name=f"{key} backward", x=names, y=bwd))
    fig.update_layout(barmode="group", title="RG-LRU scan: achieved bandwidth vs the copy ceiling",
                      yaxis_title="GB/s (bytes the op must move / time)")
    return fig
