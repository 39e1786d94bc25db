"""What notebook 04 shows of SoundStorm, so the notebook only calls: train-or-load (tokenizer and acoustic model),
the prompt, the semantic tokens, the level-by-level decoding picture, players, the listening page and the evaluation
table."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import numpy as np

from workbench.acoustic.config import PRESETS
from workbench.acoustic.decode import DecodeTrace
from workbench.acoustic.synthesize import Synthesizer
from workbench.acoustic.train import default_paths, train
from workbench.codec.stream import reconstruct
from workbench.core import reuse
from workbench.core.audio import SAMPLE_RATE
from workbench.core.config import override, pick_preset
from workbench.core.device import pick_device
from workbench.core.plots import log_mel
from workbench.core.train import read_metrics
from workbench.tokenizer.config import PRESETS as TOKENIZER_PRESETS
from workbench.tokenizer.train import train_or_load as tokenizers_train_or_load


def train_or_load(preset: str, corpus_dir: Path, codec_dir: str | Path, tokenizer_dir: str | Path | None = None,
                  acoustic_dir: str | Path | None = None, pairs_dir: str | Path | None = None,
                  max_minutes: float | None = None, device: str | None = None) -> Synthesizer:
    """The SoundStorm in `acoustic_dir` (default runs/acoustic/<preset>) with its codec and tokenizer, training
    what is missing first: the tokenizer (the preset's `tokenizer train`), then SoundStorm on this codec."""
    paths = default_paths(preset)
    tokenizer_dir = Path(tokenizer_dir or paths["tokenizer"])
    if not (tokenizer_dir / "tokenizer.json").is_file():  # the preset's tokenizers, as notebook 01 trains them
        tokenizers_train_or_load(corpus_dir, pick_preset(TOKENIZER_PRESETS, preset, "tokenizer"), tokenizer_dir.parent,
                      log=lambda m: None)
    run = Path(acoustic_dir or paths["run"])
    config = pick_preset(PRESETS, preset, "acoustic")
    if max_minutes:
        config = dataclasses.replace(config, train=override(config.train, max_minutes=max_minutes))
    parts = {"config": config.to_dict(), "corpus": reuse.input_fingerprint(corpus_dir),
             "codec": reuse.input_fingerprint(codec_dir), "tokenizer": reuse.input_fingerprint(tokenizer_dir),
             "code": reuse.code_version("workbench.acoustic.train")}
    reuse.make(run, parts, lambda resume: train(run, config, corpus_dir, codec_dir, tokenizer_dir,
                                                pairs_dir or run / "pairs", resume=resume, device=device,
                                                progress=False, preset_name=preset),
               what="SoundStorm", resumable=lambda d: (d / "checkpoint.json").is_file())
    return Synthesizer.load(run, codec_dir, tokenizer_dir, device=pick_device(device))


def training_curve(run: str | Path):
    import plotly.graph_objects as go

    rows = read_metrics(run)
    fig = go.Figure()
    for key, name, mode in (("loss", "train masked loss", "lines"), ("eval_loss", "held-out masked loss", "lines+markers")):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode=mode, name=name))
    fig.update_layout(title="SoundStorm training (cross-entropy on masked tokens)", xaxis_title="step", height=330)
    return fig


def prompt_and_tokens_figure(prompt_audio: np.ndarray, semantic: np.ndarray, semantic_rate: float):
    """The prompt's log-mel spectrogram above the clip's semantic tokens (one dot per token)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    spec = log_mel(prompt_audio)
    fig = make_subplots(rows=2, cols=1, subplot_titles=("speaker prompt (log-mel)", "semantic tokens of the clip"),
                        vertical_spacing=0.15)
    fig.add_trace(go.Heatmap(z=spec, x=np.arange(spec.shape[1]) * 0.01, colorscale="Viridis", showscale=False), 1, 1)
    fig.add_trace(go.Scatter(x=np.arange(len(semantic)) / semantic_rate, y=semantic, mode="markers",
                             marker=dict(size=4, color=semantic, colorscale="Turbo"), showlegend=False), 2, 1)
    fig.update_xaxes(title_text="seconds", row=2, col=1)
    fig.update_yaxes(title_text="token id", row=2, col=1)
    fig.update_layout(height=520)
    return fig


def decoding_figure(trace: DecodeTrace, prompt_frames: int, levels: int, item: int = 0, frame_rate: float = 50.0):
    """Rows: forward passes (level, iteration); columns: frames of the first window; colour: how many levels are
    decided at that frame after the pass. The prompt is decided from the start; level 0 fills in over its
    iterations, most confident frames first; each finer level then fills in one pass."""
    import plotly.graph_objects as go

    z = np.stack([f[item].numpy() for f in trace.levels_fixed])
    labels = [f"level {q} · iteration {i + 1}" for q, i in trace.passes]
    fig = go.Figure(go.Heatmap(z=z, x=np.arange(z.shape[1]) / frame_rate, y=labels, colorscale="Blues", zmin=0,
                               zmax=levels, colorbar=dict(title="levels<br>fixed")))
    fig.add_vline(x=prompt_frames / frame_rate, line_color="firebrick", annotation_text="end of prompt")
    fig.update_layout(title="iterative decoding, level by level (first window)", xaxis_title="seconds",
                      yaxis=dict(autorange="reversed"), height=150 + 18 * len(labels))
    return fig


def summary_table(payload: dict):
    import plotly.graph_objects as go

    keys = ["spkr_sim_prompt", "spkr_sim_other", "spkr_sim_gap", "spkr_sim_swap_prompt", "spkr_sim_swap_source",
            "spkr_sim_codec", "spkr_sim_codec_other", "spkr_sim_original", "spkr_sim_original_other",
            "wer", "wer_codec", "wer_original", "realtime_factor"]
    values = ["-" if payload[k] is None else f"{payload[k]:.3f}" for k in keys]  # None: nothing measurable
    fig = go.Figure(go.Table(header=dict(values=["measure", "value"]), cells=dict(values=[keys, values])))
    fig.update_layout(title=f"acoustic eval: {payload['clips']} clips of held-out speakers", height=80 + 24 * len(keys))
    return fig


def listening_set(synth: Synthesizer, clip, voice: str = "own", levels: int | None = None, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """What the explorer plays for one held-out `clip`: the original, the codec's reconstruction at `levels`
    (all by default), the prompt and SoundStorm's resynthesis of the clip's semantic tokens in that prompt's
    voice (`voice`: "own" -- another stretch of the clip's speaker -- or "other": the other held-out speaker)."""
    if voice not in ("own", "other"):
        raise ValueError(f"voice must be 'own' or 'other', got {voice!r}")
    levels = synth.levels if levels is None else int(levels)
    if not 1 <= levels <= synth.codec.cfg.num_quantizers:
        raise ValueError(f"levels must be 1..{synth.codec.cfg.num_quantizers}, got {levels}")
    prompt, speaker = (clip.prompt, clip.speaker) if voice == "own" else (clip.other_prompt, clip.other_speaker)
    n = len(clip.audio)
    resynthesis = synth.synthesize(synth.semantic_tokens(clip.audio), synth.prompt(prompt), seed=seed)[:n]
    return {"original": clip.audio,
            f"codec, {synth.codec.cfg.kbps(levels):.1f} kbps": reconstruct(synth.codec, clip.audio, levels),
            f"prompt ({speaker})": prompt, f"SoundStorm in {speaker}'s voice": resynthesis}


def listening_rows(synth: Synthesizer, clips: list, seed: int = 0) -> list[dict]:
    """Notebook 04's listening page, one row per held-out clip: the original, the codec's reconstruction (the
    ceiling), SoundStorm's resynthesis of the clip's semantic tokens with a prompt of its own speaker ("same
    prompt") and with a prompt of the other held-out speaker ("swapped prompt"), all of the clip's length."""
    rows = []
    for clip in clips:
        n, semantic = len(clip.audio), synth.semantic_tokens(clip.audio)
        rows.append({"clip": clip.id, "speaker": clip.speaker, "other_speaker": clip.other_speaker, "text": clip.text,
                     "audio": {"original": clip.audio, "codec": reconstruct(synth.codec, clip.audio),
                               "same prompt": synth.synthesize(semantic, synth.prompt(clip.prompt), seed)[:n],
                               "swapped prompt": synth.synthesize(semantic, synth.prompt(clip.other_prompt), seed)[:n]}})
    return rows


def listening_page(rows: list[dict]):
    """`listening_rows` as one HTML table: a row per clip (its speakers and words), a player per column."""
    from IPython.display import HTML, Audio

    columns = list(rows[0]["audio"]) if rows else []
    head = "<tr><th>clip</th>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    body = "".join(
        f"<tr><td style='max-width:16em'><b>{r['clip']}</b><br>voice {r['speaker']}, swapped to "
        f"{r['other_speaker']}<br><i>{html.escape(r['text'])}</i></td>"
        + "".join(f"<td>{Audio(np.asarray(r['audio'][c], dtype=np.float32), rate=SAMPLE_RATE, normalize=True)._repr_html_()}</td>"
                  for c in columns) + "</tr>" for r in rows)
    return HTML(f"<table>{head}{body}</table>")


def synthesis_explorer(synth: Synthesizer, clips: list):
    """Pick a held-out clip, the prompt's voice, the codec's bitrate and a seed, then "synthesize": plays the
    `listening_set` side by side with the clip's semantic tokens. None without ipywidgets; under papermill the
    static players above stand in for it (it draws only on request, so a headless run never waits on it)."""
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        return None
    from workbench.core.plots import audio_player

    by_id = {c.id: c for c in clips}

    def draw(clip: str, voice: str, levels: int, seed: int) -> None:
        item = by_id[clip]
        print(f"{item.id} ({item.speaker}): {item.text!r}")
        sounds = listening_set(synth, item, voice, levels, seed)
        players = []
        for name, audio in sounds.items():
            out = widgets.Output()
            with out:
                print(name)
                display(audio_player(audio))
            players.append(out)
        display(widgets.HBox(players))

    return widgets.interactive(
        draw, {"manual": True, "manual_name": "synthesize"},
        clip=widgets.Dropdown(options=list(by_id), description="clip"),
        voice=widgets.ToggleButtons(options=["own", "other"], description="prompt voice"),
        levels=widgets.IntSlider(value=synth.levels, min=1, max=synth.codec.cfg.num_quantizers,
                                 description="codec levels"),
        seed=widgets.IntText(value=0, description="seed"))
