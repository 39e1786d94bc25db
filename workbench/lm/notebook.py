"""What notebook 03 shows: the two models' training curves and their per-position NLL far beyond the training
window, as plotly figures, and one-line summaries of runs and of the extrapolation figures."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import plotly.graph_objects as go
import torch

from workbench.core.train import read_metrics
from workbench.lm.config import TOKENS_PER_SECOND
from workbench.lm.evaluate import per_second


def run_line(name: str, summary: dict) -> str:
    s = summary
    how = "reused" if s.get("reused") else f"{s['steps']} steps ({s['stopped_by']}) in {s['elapsed_s']:.0f}s"
    return (f"{name}: {s['parameters']:,} parameters, {how}, window {s['window_seconds']:.0f}s: "
            f"train loss {s['train_loss']:.3f}, eval loss {s['eval_loss']:.3f}")


def training_figure(runs: Mapping[str, str | Path]) -> go.Figure:
    """Training loss (every logged step) and held-out loss (each evaluation) of each run."""
    fig = go.Figure()
    for name, run in runs.items():
        metrics = read_metrics(run)
        train_pts = [m for m in metrics if "loss" in m]
        eval_pts = [m for m in metrics if "eval_loss" in m]
        fig.add_scatter(x=[m["step"] for m in train_pts], y=[m["loss"] for m in train_pts], name=f"{name} train")
        fig.add_scatter(x=[m["step"] for m in eval_pts], y=[m["eval_loss"] for m in eval_pts],
                        name=f"{name} held-out", mode="markers+lines")
    fig.update_layout(title="Training loss (NLL per token, nats)", xaxis_title="step", yaxis_title="NLL")
    return fig


def position_figure(curves: Mapping[str, torch.Tensor], window_tokens: int, recordings: int) -> go.Figure:
    """Per-position NLL (1 s means) of each model; the dashed line marks the training window."""
    fig = go.Figure()
    for name, curve in curves.items():
        t, nll = per_second(curve)
        fig.add_scatter(x=t, y=nll, name=name)
    fig.add_vline(x=window_tokens / TOKENS_PER_SECOND, line_dash="dash", annotation_text="training window")
    fig.update_layout(title=f"Per-position NLL, {recordings} held-out recordings",
                      xaxis_title="seconds into the recording", yaxis_title="NLL (1 s means)")
    return fig


def extrapolation_lines(payload: dict) -> list[str]:
    """Within / beyond the training window and the NLL per time bin, per model (from `evaluate_runs`)."""
    lines = []
    for name, m in payload["models"].items():
        lines.append(f"{name}: within the training window {m['nll_within_train_window']:.3f}, beyond it "
                     f"{m['nll_beyond_train_window']:.3f} (x{m['extrapolation_factor']} the window)")
        lines.append("   " + "  ".join(f"{b['from_s']:.0f}-{b['to_s']:.0f}s: {b['nll']:.3f}" for b in m["nll_by_time"]))
    return lines
