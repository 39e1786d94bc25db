"""`python -m workbench report [--reports DIR]`: one page, ``<reports>/index.html``, made from a run's JSON files.

The page puts the paper's claims beside this run's figures (a headline table; a row whose JSON is missing says
"not run"), draws every figure the notebooks draw from those files (plotly, its JavaScript embedded once, so the
page works offline and from a file:// URL), plays the .wav files the run left in the folder (relative links),
and lists the settings and the timings (run.json). A smoke run, or a run stopped half way, lacks most files: the
page shows what there is, and a figure whose data is malformed is one line saying why, never a broken page.
`reproduce` writes it at the end; the command writes it again for any report folder.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
from pathlib import Path
from typing import Any, Callable

from workbench.core.errors import UserError

PAGE = "index.html"
# The report files the page reads, in pipeline order (probes.json: written by a probing stage where there is one).
REPORT_FILES = ("run", "corpus", "tokenizer", "scan", "lm", "codec", "acoustic", "extrapolation", "decode", "probes")

# Known audio files -> label, in the order they are shown; any other .wav in the folder follows, under its name.
AUDIO_LABELS = {
    "extrapolation-prompt.wav": "prompt",
    "extrapolation-griffin.wav": "Griffin continuation, from minute 0",
    "extrapolation-griffin_end.wav": "Griffin continuation, its last minute",
    "extrapolation-transformer.wav": "Transformer continuation, from minute 0",
    "extrapolation-transformer_end.wav": "Transformer continuation, its last minute",
    "extrapolation-ground_truth.wav": "the real continuation",
}


# ------------------------------------------------------------------------------------------------ data


def load_reports(reports: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """(name -> payload, name -> why unreadable) for the REPORT_FILES present in `reports`."""
    data, broken = {}, {}
    for name in REPORT_FILES:
        path = Path(reports) / f"{name}.json"
        if not path.is_file():
            continue
        try:
            data[name] = json.loads(path.read_text())
        except (OSError, ValueError) as err:  # a torn or hand-edited file: say so, draw the rest
            broken[name] = f"{path.name} is not readable JSON ({err})"
    return data, broken


def _get(obj: Any, *keys: Any) -> Any:
    """obj[k0][k1]... or None where any step is missing."""
    for k in keys:
        try:
            obj = obj[k]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def _num(x: Any, digits: int = 3) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{digits}f}" if isinstance(x, float) else f"{x:,}"


def _bins(entry: dict | None, key: str) -> list[float]:
    return [b[key] for b in (entry or {}).get("measures") or [] if isinstance(b.get(key), (int, float))]


def _run_row(model: str | None, m: dict, key: str, fmt: Callable[[float], str]) -> str | None:
    values = _bins(m, key)
    if not values:
        return None
    text = f"{fmt(values[0])} in the first bin → {fmt(values[-1])} in the last ({len(values)} bins)"
    return f"{model}: {text}" if model else text


def headline_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    """One row per claim: what the paper (or the workbench's target) says, this run's figure, and the file it
    comes from; "not run" where that file is missing."""
    rows = []

    def row(claim: str, paper: str, source: str, make: Callable[[Any], list[str]]) -> None:
        payload = data.get(source.split(".")[0])
        if payload is None:
            rows.append({"claim": claim, "paper": paper, "run": "not run", "source": source, "status": "missing"})
            return
        try:
            lines = [line for line in make(payload) if line]
        except Exception as err:  # noqa: BLE001 -- a malformed file is a row that says so, not a broken page
            lines = [f"unreadable: {type(err).__name__}: {err}"]
        rows.append({"claim": claim, "paper": paper, "run": "; ".join(lines) or "no figure in the file",
                     "source": source, "status": "ok" if lines else "empty"})

    def lm_rows(p):
        out = []
        for name, m in (p.get("models") or {}).items():
            out.append(f"{name}: NLL {_num(m.get('nll_within_train_window'))} within its {_num(m.get('train_window_s'), 0)} s "
                       f"training window, {_num(m.get('nll_beyond_train_window'))} beyond it "
                       f"(×{_num(m.get('extrapolation_factor'), 1)} the window)")
        return out

    def extrapolation_rows(p):
        out = []
        for name, m in (p.get("models") or {}).items():
            if "measures" not in m:
                out.append(f"{name}: {m.get('skipped', 'not generated')}")
                continue
            nll = _run_row(None, m, "nll", lambda v: f"NLL {v:.2f}")
            health = ("no collapse" if m.get("collapse_onset_s") is None else
                      f"collapse from {m['collapse_onset_s'] / 60:.1f} min")
            health += "; no loop" if m.get("loop_onset_s") is None else f"; loop from {m['loop_onset_s'] / 60:.1f} min"
            out.append(f"{name}: {_num(m.get('generated_s', 0) / 60, 1)} min, ×{_num(m.get('times_train_window'), 1)} "
                       f"its training window; {nll or 'no NLL'}; {health}")
        return out

    def collapse_rows(p):
        out = [_run_row(n, m, "stuck_share", lambda v: f"{v:.2f}") for n, m in (p.get("models") or {}).items()]
        if "ground_truth" in p:
            out.append(_run_row("real continuation", p["ground_truth"], "stuck_share", lambda v: f"{v:.2f}"))
        return out

    def speaker_rows(p):
        out = []
        for name, a in (p.get("audio") or {}).items():
            if not isinstance(a, dict):
                continue
            if a.get("status") != "ok":
                out.append(f"{name}: {a.get('status', '?')} ({a.get('reason', '')})")
                continue
            sims = [b.get("similarity") for b in a.get("speaker_similarity") or []]
            sims = [s for s in sims if isinstance(s, (int, float))]
            at = (a.get("offset_s") or 0) / 60
            if sims:
                out.append(f"{name} (from {at:.1f} min): {sims[0]:.2f} → {sims[-1]:.2f}")
        return out

    def decode_rows(p):
        t = p.get("targets") or {}
        out = [f"throughput ×{_num(p.get('throughput_ratio_16k'), 1)} (target ≥ {_num(t.get('throughput_ratio_16k_at_least'), 0)})",
               f"decode time per sample ×{_num(p.get('decode_time_ratio_16k'), 1)}",
               f"Griffin step latency 16k/128 ×{_num(p.get('griffin_latency_ratio_16k_vs_128'), 2)} "
               f"(target ≤ {_num(t.get('griffin_latency_ratio_16k_vs_128_at_most'), 1)})"]
        lengths = p.get("ratio_lengths") or {}
        if lengths:
            out.append(f"at {_num(lengths.get('long'))} vs {_num(lengths.get('short'))} tokens")
        return out

    def codec_rows(p):
        out = []
        for set_name in p.get("sets") or {}:
            rows_ = [r for r in p.get("results") or [] if r.get("set") == set_name]
            ours = [r for r in rows_ if r.get("system") == "ours"]
            best = max(ours, key=lambda r: r.get("n_q") or 0) if ours else None
            parts = [f"ours {_num(best.get('pesq'), 2)} at {_num(best.get('kbps'), 1)} kbps"] if best else []
            parts += [f"{r['system']} {_num(r.get('pesq'), 2)}" for r in rows_ if r.get("system") in ("codec2-3200", "opus-6k")]
            out.append(f"{set_name}: " + ", ".join(parts))
        return out

    def tokenizer_rows(p):
        learned, base = p.get("learned") or {}, p.get("mfcc_kmeans") or {}
        gain = _get(p, "learned_vs_baseline", "pnmi_gain")
        out = [f"PNMI learned {_num(learned.get('pnmi'))} vs MFCC k-means {_num(base.get('pnmi'))}"
               + (f" ({gain:+.0%})" if isinstance(gain, (int, float)) else "")]
        red = _get(p, "learned_vs_baseline", "edit_distance_reduction")
        if isinstance(red, (int, float)):
            out.append(f"cross-voice edit distance {red:.0%} lower")
        return out

    def acoustic_rows(p):
        return [f"speaker similarity to the prompt {_num(p.get('spkr_sim_prompt'), 2)} vs to the other speaker "
                f"{_num(p.get('spkr_sim_other'), 2)}; WER {_num(p.get('wer'), 2)} (original {_num(p.get('wer_original'), 2)})"]

    def probe_rows(p):
        return [f"{k}: {_num(v)}" for k, v in _scalars(p)[:8]]

    row("Extrapolation: NLL by position", "Trained on short crops, SpeechSSM (Griffin) stays flat far past its "
        "training length; the Transformer degrades beyond its window", "lm.json", lm_rows)
    row("Extrapolation: 16-minute generation", "SpeechSSM generates 16 minutes from a model trained on 4-minute "
        "crops without degenerating; the Transformer does not extrapolate", "extrapolation.json", extrapolation_rows)
    row("Collapse: stuck share per bin", "A healthy stream is never held on single units (real speech ≈ 0); "
        "collapse from 0.25", "extrapolation.json", collapse_rows)
    row("Speaker similarity over time", "SpeechSSM keeps the prompt's voice for the whole generation",
        "extrapolation.json", speaker_rows)
    row("Decode throughput at 16k tokens", "Constant-memory decoding: Griffin's throughput under a memory budget "
        "is many times the Transformer's at 16k tokens, its step cost flat", "decode.json", decode_rows)
    row("Codec vs Codec2 / Opus (PESQ-WB)", "The workbench's codec at 3 kbps matches Codec2-3200 and Opus-6k",
        "codec.json", codec_rows)
    row("SoundStorm in the prompt's voice", "The acoustic stage speaks in the prompt's voice, keeps the words",
        "acoustic.json", acoustic_rows)
    row("Tokenizer: learned vs MFCC k-means", "Learned speaker-invariant units beat the MFCC k-means baseline "
        "(target: ≥ 20% higher PNMI, lower cross-voice edit distance)", "tokenizer.json", tokenizer_rows)
    if "probes" in data:
        row("Probes", "What the units and states encode", "probes.json", probe_rows)
    return rows


def _scalars(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    """(dotted key, number) for every number in a nested payload, in order."""
    out: list[tuple[str, float]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _scalars(v, f"{prefix}{k}.")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out.append((prefix.rstrip("."), obj))
    return out


# --------------------------------------------------------------------------------------------- figures


def _corpus_figure(p):
    import plotly.graph_objects as go

    splits = p["splits"]
    fig = go.Figure(go.Bar(x=list(splits), y=[s["hours"] for s in splits.values()],
                           text=[f"{s['recordings']} chapters" for s in splits.values()]))
    fig.update_layout(title=f"SynthBooks-Long: {p.get('hours', 0):.2f} h by split", yaxis_title="hours", height=320)
    return fig


def _lm_figure(p):
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, m in p["models"].items():
        bins = m["nll_by_time"]
        fig.add_scatter(x=[(b["from_s"] + b["to_s"]) / 2 for b in bins], y=[b["nll"] for b in bins],
                        mode="lines+markers", name=name)
    windows = {m["train_window_s"] for m in p["models"].values()}
    for w in windows:
        fig.add_vline(x=w, line_dash="dash", annotation_text="training window")
    fig.update_layout(title="Per-position NLL on whole held-out recordings", xaxis_title="seconds into the recording",
                      yaxis_title=f"NLL ({p.get('bin_seconds', '?')} s bins)", height=380)
    return fig


def _tokenizer_figure(p):
    from workbench.tokenizer.notebook import metrics_figure

    return metrics_figure({name: r for name, r in p.items() if isinstance(r, dict)})


def figure_specs() -> list[tuple[str, str, Callable[[dict[str, Any]], Any]]]:
    """(report file, caption, payload -> plotly figure): every figure the page draws, in pipeline order. The
    stages' own figure functions where they take the JSON payload, so the page draws what the notebooks draw."""

    def lazy(module: str, name: str, *args: Any) -> Callable[[dict[str, Any]], Any]:
        def make(payload):
            import importlib

            return getattr(importlib.import_module(module), name)(payload, *args)
        return make

    X = "workbench.pipeline.extrapolate"
    return [
        ("corpus", "00 · the corpus by split", _corpus_figure),
        ("tokenizer", "01 · tokenizers: phone information and speaker invariance", _tokenizer_figure),
        ("scan", "02 · the RG-LRU scan against the copy ceiling", lazy("workbench.ops.notebook", "bandwidth_figure")),
        ("lm", "03 · NLL by position: extrapolation past the training window", _lm_figure),
        ("codec", "04 · codec PESQ against bitrate", lazy("workbench.codec.notebook", "comparison_plot", "pesq")),
        ("codec", "04 · codec STOI against bitrate", lazy("workbench.codec.notebook", "comparison_plot", "stoi")),
        ("acoustic", "04 · SoundStorm: speaker similarity and WER", lazy("workbench.acoustic.notebook", "summary_table")),
        ("extrapolation", "05 · NLL under Griffin per bin",
         lazy(X, "measure_figure", "nll", "Plausibility: NLL per bin", "NLL")),
        ("extrapolation", "05 · stuck share per bin (collapse)",
         lazy(X, "measure_figure", "stuck_share", "Collapse: share held on single units", "stuck share")),
        ("extrapolation", "05 · repeat rate per bin (loops)",
         lazy(X, "measure_figure", "repeat_rate", "Loops: repeat rate", "repeat rate")),
        ("extrapolation", "05 · unit entropy per bin",
         lazy(X, "measure_figure", "entropy_bits", "Unit entropy", "bits")),
        ("extrapolation", "05 · decode state size while generating", lazy(X, "cache_figure")),
        ("extrapolation", "05 · decode speed while generating", lazy(X, "speed_figure")),
        ("extrapolation", "05 · the units at the end of each continuation", lazy(X, "tokens_figure")),
        ("extrapolation", "05 · SC-L (with its floor), speaker similarity and naturalness over time",
         lazy(X, "audio_figure")),
        ("extrapolation", "05 · speaker similarity over the set",
         lazy(X, "measure_figure", "similarity", "Speaker similarity to the prompt", "cosine", "speaker_similarity")),
        ("extrapolation", "05 · naturalness proxy over the set (DNSMOS OVRL, not human N-MOS-T)",
         lazy(X, "measure_figure", "ovrl", "Naturalness proxy (DNSMOS OVRL)", "MOS 1-5", "naturalness")),
        ("decode", "06 · decode time per sample (paper Fig. 7)", lazy("workbench.bench.decode", "decode_time_figure")),
        ("decode", "06 · Griffin's speed-up (paper Fig. 8)", lazy("workbench.bench.decode", "speedup_figure")),
        ("decode", "06 · decode memory against length", lazy("workbench.bench.decode", "memory_figure")),
    ]


def build_figures(data: dict[str, Any]) -> list[dict[str, Any]]:
    """[{source, caption, figure | None, error | None}] for the files present; a figure that cannot be drawn
    from its file carries the reason instead."""
    out = []
    for source, caption, make in figure_specs():
        if source not in data:
            continue
        try:
            fig = make(data[source])
            if fig is None or not getattr(fig, "data", None):
                out.append({"source": source, "caption": caption, "figure": None, "error": "nothing to draw"})
                continue
            out.append({"source": source, "caption": caption, "figure": fig, "error": None})
        except Exception as err:  # noqa: BLE001 -- partial/malformed payloads: say why, draw the rest
            out.append({"source": source, "caption": caption, "figure": None,
                        "error": f"{type(err).__name__}: {err}"})
    return out


# ------------------------------------------------------------------------------------------------ audio


def audio_files(reports: str | os.PathLike, data: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(label, relative src) of every .wav in the report folder (and its subfolders), the known ones first; and,
    where extrapolation.json names the held-out recording's audio and it is on this disk, its prompt and real
    continuation (the same file, cut by a media fragment ``#t=from,to``)."""
    root = Path(reports)
    found = sorted(p for p in root.rglob("*.wav") if p.is_file() and not p.name.startswith("."))
    rel = {p.relative_to(root).as_posix(): p for p in found}
    known = [(label, name) for name, label in AUDIO_LABELS.items() if name in rel]
    rest = [(name.rsplit(".", 1)[0], name) for name in rel if name not in AUDIO_LABELS]
    source = _get(data, "extrapolation", "audio", "ground_truth", "audio")
    prompt_s = _get(data, "extrapolation", "prompt", "seconds")
    truth_s = _get(data, "extrapolation", "audio", "ground_truth", "seconds")
    held_out = []
    if isinstance(source, str) and isinstance(prompt_s, (int, float)) and Path(source).is_file():
        src = Path(os.path.relpath(Path(source).resolve(), root.resolve())).as_posix()
        if "extrapolation-prompt.wav" not in rel:
            held_out.append(("prompt (the held-out recording's first seconds)", f"{src}#t=0,{prompt_s:g}"))
        if "extrapolation-ground_truth.wav" not in rel and isinstance(truth_s, (int, float)):
            held_out.append(("the real continuation", f"{src}#t={prompt_s:g},{prompt_s + truth_s:g}"))
    return held_out + known + rest


# ------------------------------------------------------------------------------------------------- page

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ccc;padding:.4rem .6rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}tr.missing td.run{color:#999;font-style:italic}td.source{font-family:monospace;white-space:nowrap}
.figure{margin:1.5rem 0}.note{color:#a33}.players{display:flex;flex-wrap:wrap;gap:1rem}.players div{min-width:320px}
details{margin:.3rem 0}pre{background:#f7f7f7;padding:.5rem;overflow:auto;font-size:.85em}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def render_page(reports: str | os.PathLike, data: dict[str, Any], broken: dict[str, str]) -> str:
    from plotly.offline import get_plotlyjs

    run = data.get("run") or {}
    title = f"SpeechSSM Workbench report: {Path(reports).resolve().name}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{STYLE}</style>",
             f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>{_e(title)}</h1>",
             f"<p>Preset <b>{_e(run.get('preset', 'unknown'))}</b>; report files: "
             f"{_e(', '.join(f'{n}.json' for n in REPORT_FILES if n in data) or 'none')}.</p>"]
    for name, why in broken.items():
        parts.append(f"<p class='note'>{_e(why)}</p>")

    parts.append("<h2>Headline: the paper's claims beside this run</h2><table id='headline'>"
                 "<tr><th>claim</th><th>paper / target</th><th>this run</th><th>from</th></tr>")
    for r in headline_rows(data):
        parts.append(f"<tr class='{r['status']}'><td>{_e(r['claim'])}</td><td>{_e(r['paper'])}</td>"
                     f"<td class='run'>{_e(r['run'])}</td><td class='source'>{_e(r['source'])}</td></tr>")
    parts.append("</table>")

    players = audio_files(reports, data)
    parts.append("<h2>Listen</h2>")
    if players:
        parts.append("<div class='players'>")
        for label, src in players:
            parts.append(f"<div><b>{_e(label)}</b><br><audio controls preload='none' src='{_e(src)}'></audio>"
                         f"<br><small>{_e(src)}</small></div>")
        parts.append("</div>")
    else:
        parts.append("<p>No audio in this run (the continuations are rendered by notebook 05 when the acoustic "
                     "stage is trained).</p>")

    parts.append("<h2>Figures</h2>")
    figures = build_figures(data)
    if not figures:
        parts.append("<p>No figures: none of the notebooks' report files is in this folder.</p>")
    for i, f in enumerate(figures):
        parts.append(f"<div class='figure'><h3>{_e(f['caption'])} <small>({_e(f['source'])}.json)</small></h3>")
        if f["figure"] is not None:
            parts.append(f["figure"].to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{i}",
                                             config={"responsive": True, "displaylogo": False}))
        else:
            parts.append(f"<p class='note'>not drawn: {_e(f['error'])}</p>")
        parts.append("</div>")

    parts.append("<h2>Timings</h2>")
    timings = run.get("notebooks") or {}
    if timings:
        parts.append("<table id='timings'><tr><th>notebook</th><th>seconds</th><th>expected (budget)</th></tr>")
        expected = run.get("expected_minutes") or {}
        for name, seconds in timings.items():
            exp = expected.get(name)
            parts.append(f"<tr><td>{_e(name)}</td><td>{_e(_num(seconds, 1))}</td>"
                         f"<td>{_e('' if exp is None else f'{exp:g} min')}</td></tr>")
        parts.append(f"<tr><th>total</th><th>{_e(_num(run.get('total_seconds'), 1))}</th><th></th></tr></table>")
        machine = {k: run[k] for k in ("python", "torch", "machine", "cpus", "cuda", "started", "finished") if k in run}
        parts.append(f"<p>{_e(', '.join(f'{k} {v}' for k, v in machine.items()))}</p>")
    else:
        parts.append("<p>No run.json: this folder was not written by <code>python -m workbench reproduce</code>.</p>")
    settings = run.get("settings") or {}
    if settings:
        parts.append("<h2>Settings</h2>")
        for stage, cfg in settings.items():
            parts.append(f"<details><summary>{_e(stage)}</summary><pre>{_e(json.dumps(cfg, indent=1))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report_page(reports_dir: str | os.PathLike) -> Path:
    """Write ``<reports_dir>/index.html`` from the JSON files there (atomically) and return its path."""
    from workbench.core.io import atomic_write_text

    reports = Path(reports_dir)
    if not reports.is_dir():
        raise UserError(f"no report folder {reports}: run python -m workbench reproduce first (or pass --reports)")
    data, broken = load_reports(reports)
    return atomic_write_text(reports / PAGE, render_page(reports, data, broken))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the run's report page (index.html) from its JSON files")
    p.add_argument("--reports", default="reports/latest", help="report folder (default reports/latest)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = write_report_page(args.reports)
    print(f"wrote {path} (open it in a browser; it works offline)")
    return 0
