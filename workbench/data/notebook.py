"""Tables and figures that describe a built corpus (used by notebooks/00_corpus.ipynb)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from workbench.data.loaders import SpeechDataset


def hours_by_speaker(dataset: SpeechDataset) -> dict[str, dict[str, float]]:
    """{split: {speaker: hours}}."""
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in dataset.recordings:
        table[r.split or "all"][r.speaker or "?"] += r.duration / 3600
    return {s: dict(v) for s, v in table.items()}


def speaker_figure(dataset: SpeechDataset):
    import plotly.graph_objects as go

    table = hours_by_speaker(dataset)
    speakers = sorted({sp for row in table.values() for sp in row})
    fig = go.Figure([go.Bar(name=split, x=speakers, y=[row.get(sp, 0.0) for sp in speakers])
                     for split, row in sorted(table.items())])
    fig.update_layout(barmode="stack", title="Hours read by each speaker", yaxis_title="hours", height=350)
    return fig


def duration_figure(dataset: SpeechDataset, segments: SpeechDataset | None = None):
    import plotly.graph_objects as go

    fig = go.Figure()
    for split in sorted({r.split for r in dataset.recordings}):
        fig.add_trace(go.Histogram(x=[r.duration / 60 for r in dataset.recordings if r.split == split],
                                   name=f"{split} chapters", opacity=0.7, nbinsx=30))
    if segments is not None:
        fig.add_trace(go.Histogram(x=[r.duration / 60 for r in segments.recordings], name="dev/test segments",
                                   opacity=0.7, nbinsx=30))
    fig.update_layout(barmode="overlay", title="Recording lengths", xaxis_title="minutes", yaxis_title="count",
                      height=350)
    return fig


def speaking_rate(dataset: SpeechDataset) -> dict[str, Any]:
    """Words per minute per speaker, from the alignments."""
    words: dict[str, float] = defaultdict(float)
    minutes: dict[str, float] = defaultdict(float)
    for r in dataset.recordings:
        words[r.speaker or "?"] += r.extra.get("num_words", 0)
        minutes[r.speaker or "?"] += r.duration / 60
    return {sp: round(words[sp] / minutes[sp], 1) for sp in sorted(words) if minutes[sp] > 0}
