"""What the tokenization notebook shows (plotly): units over a spectrogram, invariance, windowing; and, in
JupyterLab, an explorer to pick a recording and listen to what one unit sounds like across it."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from workbench.core.audio import SAMPLE_RATE
from workbench.tokenizer import features as feat
from workbench.tokenizer.config import FRAME, TOKEN_RATE


def units_figure(audio: np.ndarray, phones: Sequence[Sequence[Any]], units: dict[str, np.ndarray], title: str = "",
                 n_mels: int = 80):
    """Log-mel spectrogram with the phone alignment, and under it each tokenizer's units (one row each,
    a number per 40 ms frame, coloured by unit id; boundaries where the unit changes)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    spec = feat.log_mel(torch.from_numpy(np.ascontiguousarray(audio))[None], n_mels)[0].T.numpy()  # (M, 4T)
    rows = len(units)
    fig = make_subplots(rows=1 + rows, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.6] + [0.4 / max(rows, 1)] * rows)
    fig.add_trace(go.Heatmap(z=spec, x=np.arange(spec.shape[1]) * 0.01, colorscale="Viridis", showscale=False), 1, 1)
    for k, (label, start, end) in enumerate(phones):
        if label != "_":
            fig.add_vrect(x0=start, x1=end, line_width=0, fillcolor="white", opacity=0.08 if k % 2 else 0.0, row=1, col=1)
            fig.add_annotation(x=(start + end) / 2, y=1.0, yref="y domain", text=label, showarrow=False,
                               font=dict(size=10, color="white"), row=1, col=1)
    for r, (name, u) in enumerate(units.items(), start=2):
        t = (np.arange(len(u)) + 0.5) / TOKEN_RATE
        fig.add_trace(go.Heatmap(z=[u], x=t, y=[name], colorscale="Turbo", showscale=False,
                                 text=[[str(x) for x in u]], texttemplate="%{text}", textfont=dict(size=7),
                                 hovertemplate="%{y} t=%{x:.2f}s unit %{z}<extra></extra>"), r, 1)
    fig.update_layout(title=title, height=300 + 70 * rows, margin=dict(t=60, l=90, r=20, b=40))
    fig.update_xaxes(title_text="seconds", row=1 + rows, col=1)
    return fig


def training_figure(history: Sequence[dict[str, Any]]):
    """Masked-prediction loss (solid) and, when trained with it, the cross-speaker loss (dotted), and masked
    accuracy per step, one colour per HuBERT iteration."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (masked frames; dotted: voice B -> voice A)", "masked accuracy"))
    for it in sorted({h["iteration"] for h in history}):
        rows = [h for h in history if h["iteration"] == it]
        for col, key in ((1, "loss"), (2, "masked_accuracy")):
            fig.add_trace(go.Scatter(x=[h["step"] for h in rows], y=[h[key] for h in rows], mode="lines",
                                     name=f"iteration {it}", showlegend=col == 1, legendgroup=str(it)), 1, col)
        if any("parallel_loss" in h for h in rows):
            fig.add_trace(go.Scatter(x=[h["step"] for h in rows], y=[h.get("parallel_loss") for h in rows],
                                     mode="lines", line={"dash": "dot"}, name=f"iteration {it}, cross-speaker",
                                     legendgroup=str(it)), 1, 1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(title="Learned tokenizer training", height=330)
    return fig


def invariance_figure(per_sentence: dict[str, Sequence[float]], voices: Sequence[str]):
    """Box plot of the cross-voice unit edit distance per parallel sentence, one box per tokenizer."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Box(y=list(v), name=name, boxmean=True) for name, v in per_sentence.items()])
    fig.update_layout(title=f"Same sentence, two held-out voices ({' vs '.join(voices)}): unit edit distance "
                            "(lower = more speaker-invariant)", yaxis_title="normalised edit distance", height=380)
    return fig


def metrics_figure(results: dict[str, dict[str, Any]], keys: Sequence[str] = ("pnmi", "phone_purity",
                                                                               "unit_edit_distance")):
    """Grouped bars of the headline figures per tokenizer."""
    import plotly.graph_objects as go

    names = [n for n in results if "pnmi" in results[n]]
    fig = go.Figure([go.Bar(name=n, x=list(keys), y=[results[n][k] for k in keys]) for n in names])
    fig.update_layout(barmode="group", title="Phone information (higher is better) and cross-voice edit distance "
                                             "(lower is better)", height=350)
    return fig


def windows_figure(windows: Sequence[Any], total_frames: int, agreement: np.ndarray | None = None):
    """Each window as a bar (light: read, dark: the frames it contributes); below, where windowed units agree
    with whole-file units."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, w in enumerate(windows):
        for lo, hi, opacity, label in ((w.start, w.start + (windows[0].keep_to if len(windows) == 1 else
                                                              _length(windows)), 0.3, "read"),
                                       (w.keep_from, w.keep_to, 1.0, "kept")):
            fig.add_trace(go.Scatter(x=[lo / TOKEN_RATE, min(hi, total_frames) / TOKEN_RATE], y=[k, k], mode="lines",
                                     line=dict(width=14), opacity=opacity, name=f"window {k} {label}",
                                     showlegend=False))
    if agreement is not None:
        t = np.arange(len(agreement)) / TOKEN_RATE
        fig.add_trace(go.Scatter(x=t, y=np.where(agreement, -1, -1.5), mode="markers", marker=dict(size=3),
                                 name="windowed == whole-file (top) / differs (bottom)"))
    fig.update_layout(title="Windowed tokenization: overlapping windows merged at the middle of each overlap",
                      xaxis_title="seconds", yaxis_title="window", height=300)
    return fig


def _length(windows) -> int:
    return windows[1].start - windows[0].start + 2 * (windows[0].keep_to - windows[1].start)


def unit_audio(audio: np.ndarray, units: np.ndarray, unit: int, max_frames: int = 75, gap_s: float = 0.06
               ) -> np.ndarray:
    """The 40 ms frames of `audio` that carry `unit` (the first `max_frames`), each faded in and out and set
    apart by a short silence: what the unit sounds like in this recording. Empty if the unit does not occur."""
    frames = np.flatnonzero(np.asarray(units) == unit)[:max_frames]
    fade = np.hanning(2 * (FRAME // 8))
    ramp = np.concatenate([fade[: FRAME // 8], np.ones(FRAME - 2 * (FRAME // 8)), fade[FRAME // 8:]])
    gap = np.zeros(round(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces = []
    for f in frames:
        piece = audio[f * FRAME: (f + 1) * FRAME]
        if len(piece) == FRAME:
            pieces += [(piece * ramp).astype(np.float32), gap]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def recording_explorer(recordings: Sequence[Any], tokenizers: dict[str, Any], seconds: float = 6.0):
    """Pick a recording, a start time and a tokenizer: redraws the units over the spectrogram (without the
    phone labels of the static figure) and plays the excerpt; pick a unit: plays its frames (`unit_audio`). None without ipywidgets (the static figure stands in
    for it, as under papermill)."""
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        return None
    from workbench.core.plots import audio_player

    by_id = {r.id: r for r in recordings}

    def draw(recording: str, start: float, tokenizer: str, unit: int) -> None:
        rec = by_id[recording]
        start = min(start, max(0.0, rec.duration - seconds))
        audio = rec.load(start, min(seconds, rec.duration))
        units = {name: tok.units(audio).numpy() for name, tok in tokenizers.items()}
        # no phone labels here: a figure with one annotation per phone redraws for ~40 s inside a widget's output
        units_figure(audio, [], units, title=f"{rec.id} ({rec.speaker}) from {start:.1f} s").show()
        display(audio_player(audio))
        sound = unit_audio(audio, units[tokenizer], unit)
        print(f"unit {unit} of {tokenizer}: {len(sound) and int((units[tokenizer] == unit).sum())} frames here")
        if len(sound):
            display(audio_player(sound))

    first = next(iter(tokenizers.values()))
    # drawn on request ("Run Interact"), not when built: a headless run (papermill) never waits on it
    return widgets.interactive(
        draw, {"manual": True, "manual_name": "show"}, recording=widgets.Dropdown(options=list(by_id), description="recording"),
        start=widgets.FloatSlider(value=0.0, min=0.0, max=max(r.duration for r in recordings), step=0.5,
                                  description="start (s)"),
        tokenizer=widgets.Dropdown(options=list(tokenizers), description="tokenizer"),
        unit=widgets.IntSlider(value=0, min=0, max=first.num_units - 1, description="unit"))
