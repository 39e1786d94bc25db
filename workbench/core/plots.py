"""Figures shared by the notebooks and the demo (plotly), so notebooks only call and show."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from workbench.core.audio import SAMPLE_RATE


def log_mel(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, n_mels: int = 80, hop: int = 160) -> np.ndarray:
    """(n_mels, frames) log-mel spectrogram, 10 ms hop: what the eye (and most speech models) read."""
    import torch
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=400, hop_length=hop, n_mels=n_mels)
    return torch.log(mel(torch.from_numpy(np.ascontiguousarray(audio))) + 1e-5).numpy()


def waveform_with_words(audio: np.ndarray, words: Sequence[Sequence[Any]], sample_rate: int = SAMPLE_RATE,
                        title: str = "", max_points: int = 20_000):
    """Waveform (top) and log-mel spectrogram (bottom) with each aligned word marked over both."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    step = max(1, len(audio) // max_points)
    t = np.arange(0, len(audio), step) / sample_rate
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.35, 0.65], vertical_spacing=0.04)
    fig.add_trace(go.Scatter(x=t, y=audio[::step], mode="lines", line=dict(width=0.6), name="waveform"), 1, 1)
    spec = log_mel(audio, sample_rate)
    fig.add_trace(go.Heatmap(z=spec, x=np.arange(spec.shape[1]) * 0.01, colorscale="Viridis", showscale=False,
                             name="log-mel"), 2, 1)
    for k, (word, start, end) in enumerate(words):
        fig.add_vrect(x0=start, x1=end, fillcolor="orange" if k % 2 else "royalblue", opacity=0.12, line_width=0,
                      row=1, col=1)
        fig.add_annotation(x=(start + end) / 2, y=1.02, yref="y domain", text=word, showarrow=False,
                           font=dict(size=10), row=1, col=1)
    fig.update_layout(title=title, height=450, showlegend=False, margin=dict(t=60, l=40, r=20, b=40))
    fig.update_xaxes(title_text="seconds", row=2, col=1)
    fig.update_yaxes(title_text="mel bin", row=2, col=1)
    return fig


def audio_player(audio: np.ndarray, sample_rate: int = SAMPLE_RATE):
    """An inline player for a notebook cell."""
    from IPython.display import Audio

    return Audio(np.asarray(audio, dtype=np.float32), rate=sample_rate, normalize=True)
