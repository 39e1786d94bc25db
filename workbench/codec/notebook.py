"""What notebook 04 shows of the codec, so the notebook only calls: train-or-load, the training curve, one
clip coded at every bitrate (players + spectrograms), and the comparison table and plot from codec.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.codec import baselines
from workbench.codec.config import PRESETS, CodecPreset
from workbench.codec.metrics import align
from workbench.codec.model import Codec
from workbench.codec.stream import reconstruct
from workbench.codec.train import load_codec, train
from workbench.core import reuse
from workbench.core.audio import SAMPLE_RATE
from workbench.core.config import override, pick_preset
from workbench.core.device import pick_device
from workbench.core.paths import codec_dir as default_codec_dir
from workbench.core.paths import corpus_dir as default_corpus_dir
from workbench.core.plots import log_mel
from workbench.core.train import read_metrics
from workbench.data.corpus import build_preset


def corpus_for(preset: str, corpus_dir: str | Path | None = None) -> Path:
    """`corpus_dir`, else data/build/<preset>, building the SynthBooks-Long corpus there if it is missing."""
    path = Path(corpus_dir or default_corpus_dir(preset))
    if not (path / "manifest.jsonl").is_file():
        build_preset(preset, path, progress=False)
    return path


def train_or_load(preset: str, corpus_dir: Path, codec_dir: str | Path | None = None,
                  max_minutes: float | None = None, device: str | None = None) -> tuple[Codec, dict, Path]:
    """The codec in `codec_dir` (default runs/codec/<preset>): reused if it was made from these settings, this
    code and this corpus, resumed if that run was interrupted, else trained there (`workbench.core.reuse`)."""
    config: CodecPreset = pick_preset(PRESETS, preset, "codec")
    run = Path(codec_dir or default_codec_dir(preset))
    cfg = override(config.train, max_minutes=max_minutes) if max_minutes else config.train
    parts = {"model": config.model.to_dict(), "train": cfg.to_dict(), "corpus": reuse.input_fingerprint(corpus_dir),
             "code": reuse.code_version("workbench.codec.train")}
    reuse.make(run, parts, lambda resume: train(run, config.model, cfg, corpus_dir, resume=resume, device=device,
                                                progress=False, preset=preset),
               what="the codec", resumable=lambda d: (d / "checkpoint.json").is_file())
    codec, meta = load_codec(run, pick_device(device))
    return codec, meta, run


def training_curve(run: str | Path):
    import plotly.graph_objects as go

    rows = read_metrics(run)
    fig = go.Figure()
    for key in ("mel", "magnitude", "adv", "feat", "disc"):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", name=key))
    evals = [(r["step"], r["eval_mel"]) for r in rows if "eval_mel" in r]
    if evals:
        fig.add_trace(go.Scatter(x=[e[0] for e in evals], y=[e[1] for e in evals], mode="markers",
                                 name="held-out mel", marker=dict(size=10)))
    fig.update_layout(title="codec training losses", xaxis_title="step", yaxis_title="loss", height=350)
    return fig


def examples(codec: Codec, clip: np.ndarray) -> dict[str, np.ndarray]:
    """The clip as heard through our codec at every level and through the baselines (aligned)."""
    out = {"original": clip}
    for n_q in range(1, codec.cfg.num_quantizers + 1):
        out[f"ours {codec.cfg.kbps(n_q):.1f} kbps"] = reconstruct(codec, clip, n_q)
    for name in ("codec2-3200", "opus-6k"):
        if not baselines.missing_tools(name):
            out[name] = align(clip, baselines.BASELINES[name](clip)[0])[0]
    return out


def spectrogram_grid(signals: dict[str, np.ndarray]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(signals)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.02)
    for i, name in enumerate(names, 1):
        spec = log_mel(signals[name])
        fig.add_trace(go.Heatmap(z=spec, x=np.arange(spec.shape[1]) * 0.01, colorscale="Viridis", showscale=False,
                                 zmin=-11, zmax=float(spec.max())), i, 1)
    fig.update_layout(height=170 * len(names), title="log-mel spectrograms", margin=dict(t=60, l=40, r=20, b=40))
    return fig


def comparison_table(payload: dict):
    import plotly.graph_objects as go

    rows = payload["results"]
    cols = ["set", "system", "n_q", "kbps", "pesq", "stoi", "mel_distance", "clips"]
    cells = [[r[c] if r[c] is not None else "" for r in rows] for c in cols]

    def gap(r: dict) -> str:  # ours at the top rate minus this system, paired over the same clips
        g = r.get("ours_pesq_gap")
        return "" if not g or g["low"] is None else f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"

    cells.append([gap(r) for r in rows])
    fig = go.Figure(go.Table(header=dict(values=cols + ["ours - this, PESQ (95%)"]), cells=dict(values=cells)))
    fig.update_layout(title="codec comparison (PESQ wide-band, STOI, mel distance; means over clips; ours at the "
                            "top rate minus each baseline, paired over the clips)",
                      height=80 + 24 * len(rows))
    return fig


def comparison_plot(payload: dict, measure: str = "pesq"):
    """`measure` against bitrate: our codec's levels as a line, baselines as points, one panel per test set."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    sets = list(payload["sets"])
    fig = make_subplots(rows=1, cols=len(sets), subplot_titles=sets, shared_yaxes=True)
    colours = {"ours": "royalblue", "codec2-3200": "firebrick", "opus-6k": "darkorange"}
    for i, s in enumerate(sets, 1):
        rows = [r for r in payload["results"] if r["set"] == s and r["system"] != "identity"]
        for system, colour in colours.items():
            pts = [r for r in rows if r["system"] == system]
            if pts:
                fig.add_trace(go.Scatter(x=[r["kbps"] for r in pts], y=[r[measure] for r in pts], name=system,
                                         mode="lines+markers" if system == "ours" else "markers",
                                         marker=dict(size=11, color=colour), showlegend=i == 1), 1, i)
        fig.update_xaxes(title_text="kbps", row=1, col=i)
    fig.update_yaxes(title_text=measure, row=1, col=1)
    fig.update_layout(title=f"{measure} vs bitrate", height=380)
    return fig


def audio_players(signals: dict[str, np.ndarray]):
    """One HTML block of labelled players (IPython's Audio rendered side by side)."""
    from IPython.display import HTML, Audio

    items = [f"<div style='margin:4px'><b>{name}</b><br>"
             f"{Audio(np.asarray(x, dtype=np.float32), rate=SAMPLE_RATE, normalize=True)._repr_html_()}</div>"
             for name, x in signals.items()]
    return HTML("<div style='display:flex;flex-wrap:wrap'>" + "".join(items) + "</div>")
