"""Spoken-LM zero-shot probes (`python -m workbench lm probes`): does the LM prefer the real item of a pair?

Each probe audio is tokenized with the tokenizer the LMs were trained on (`workbench.tokenizer`, windowed as
for the corpus), each pair is scored by each LM (`workbench.lm.score.score_pair`: the log-likelihood of the
tokens after the pair's common prefix, per-token mean by default, the sum beside it), and a set's accuracy is the
share of pairs whose real item scores higher (a tie counts half), with its 95% Wilson interval
(`workbench.eval.stats.share_interval`), per set, per category (frequency band, syntactic type), per voice and,
for the long-context story sets, per context length. Chance is 0.5. Writes `probes.json` (atomically, into the
report folder).

Sets are found under the items folder by layout, so the public sets score the same way as ours:

- ZeroSpeech 2021 lexical / syntactic (a folder with gold.csv: id, filename, correct, [voice, frequency | type]
  and <filename>.wav beside it): the rows of one (id, voice) are paired, real with changed;
- spoken StoryCloze (a folder of <id>_correct.wav / <id>_incorrect.wav, or <id>/correct.wav and
  <id>/incorrect.wav; any of wav, flac, ogg, mp3). An optional set.json says the kind and context length
  (our long-context sets) and items.jsonl the voice of each item.

Our own sets are built by `workbench.data.probes` (`lm probes build`).

    lm probes build --preset laptop [--items DIR] [--sets lexical story]           -> data/build/probes/<preset>
    lm probes --preset laptop [--runs G T] [--items DIR] [--tokenizer DIR] --json  -> probes.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from workbench.core.cli import add_output_args, emit
from workbench.core.errors import UserError
from workbench.core.paths import BUILD, lm_run_dir, tokenizer_dir
from workbench.eval.stats import share_interval

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
CORRECT, INCORRECT = "_correct", "_incorrect"
NORMALISATION_NOTE = (
    "each member's score is the log-likelihood (nats, log-softmax over the LM's vocabulary) of its tokens after "
    "the longest token prefix the two members share, scored from the state after that prefix (the shared "
    "prefix adds the same to both sums); 'mean' divides by the number of scored tokens, 'sum' does not; the "
    "first token of a sequence is never scored (no BOS). Accuracy: share of pairs whose real member scores "
    "higher, a tie counting one half; 95% Wilson score interval.")


def probes_dir(preset: str) -> Path:
    """Where `lm probes build` writes a preset's probe sets: data/build/probes/<preset>."""
    return BUILD / "probes" / preset


# ---------------------------------------------------------------------------------------------- sets


@dataclass(frozen=True)
class Pair:
    id: str
    correct: Path
    incorrect: Path
    voice: str | None = None
    category: str | None = None  # lexical: frequency band; syntactic: type


@dataclass(frozen=True)
class ProbeSet:
    name: str  # the folder, relative to the items root ("lexical/dev", "long_story/ctx-0060s")
    kind: str  # lexical | syntactic | story | long_story | pairs
    layout: str  # zerospeech | storycloze
    pairs: tuple[Pair, ...]
    context_seconds: float | None = None


def _audio_file(folder: Path, stem: str, what: str) -> Path:
    path = folder / stem
    if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file():
        return path
    for ext in AUDIO_EXTENSIONS:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    raise UserError(f"{what}: no audio file {folder / stem}.wav (or .flac/.ogg/.mp3)")


def read_zerospeech(folder: str | os.PathLike, name: str | None = None) -> ProbeSet:
    """A ZeroSpeech 2021 lexical or syntactic set: gold.csv (id, filename, correct, optional voice and
    frequency/type) and the audio beside it. Within one (id, voice) the real and changed rows are paired in
    order, as the challenge's own evaluation does."""
    folder = Path(folder)
    gold = folder / "gold.csv"
    try:
        with gold.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{gold}: cannot read it ({err})") from None
    columns = set(rows[0]) if rows else set()
    missing = {"id", "filename", "correct"} - columns
    if missing:
        raise UserError(f"{gold}: not a ZeroSpeech gold file, columns {sorted(missing)} are missing")
    parts = {p.lower() for p in folder.parts}
    if "frequency" in columns or "lexical" in parts:
        kind, category = "lexical", "frequency"
    elif "type" in columns or "syntactic" in parts:
        kind, category = "syntactic", "type"
    else:
        kind, category = "pairs", None
    groups: dict[tuple[str, str], dict[int, list[dict]]] = defaultdict(lambda: {0: [], 1: []})
    for n, row in enumerate(rows, 2):
        try:
            label = int(float(row["correct"]))
        except (TypeError, ValueError):
            raise UserError(f"{gold}:{n}: correct must be 1 or 0, got {row['correct']!r}") from None
        if label not in (0, 1):
            raise UserError(f"{gold}:{n}: correct must be 1 or 0, got {row['correct']!r}")
        groups[(row["id"], row.get("voice") or "")][label].append(row)
    pairs = []
    for (pid, voice), by_label in groups.items():
        if len(by_label[1]) != len(by_label[0]):
            raise UserError(f"{gold}: item {pid!r}{f' ({voice})' if voice else ''} has {len(by_label[1])} real and "
                            f"{len(by_label[0])} changed rows; each real one needs its changed one")
        for k, (good, bad) in enumerate(zip(by_label[1], by_label[0])):
            pairs.append(Pair(pid if k == 0 else f"{pid}#{k}", _audio_file(folder, good["filename"], str(gold)),
                              _audio_file(folder, bad["filename"], str(gold)), voice or None,
                              good.get(category) if category else None))
    if not pairs:
        raise UserError(f"{gold}: no pairs")
    return ProbeSet(name or folder.name, kind, "zerospeech", tuple(pairs))


def _storycloze_stems(folder: Path) -> dict[str, dict[str, Path]]:
    found: dict[str, dict[str, Path]] = defaultdict(dict)
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
            stem = path.stem
            for label in (CORRECT, INCORRECT):
                if stem.lower().endswith(label):
                    found[stem[: -len(label)]][label] = path
        elif path.is_dir():  # <id>/correct.wav + <id>/incorrect.wav
            for child in sorted(path.iterdir()):
                if child.suffix.lower() in AUDIO_EXTENSIONS and child.stem.lower() in ("correct", "incorrect"):
                    found[path.name]["_" + child.stem.lower()] = child
    return found


def read_storycloze(folder: str | os.PathLike, name: str | None = None) -> ProbeSet:
    """A spoken-StoryCloze set: per item a real and a changed audio (see the module docstring)."""
    folder = Path(folder)
    stems = _storycloze_stems(folder)
    meta: dict[str, Any] = {}
    if (folder / "set.json").is_file():
        try:
            meta = json.loads((folder / "set.json").read_text())
        except ValueError as err:
            raise UserError(f"{folder / 'set.json'}: not JSON ({err})") from None
    voices: dict[str, str] = {}
    if (folder / "items.jsonl").is_file():
        for line in (folder / "items.jsonl").read_text().splitlines():
            if line.strip():
                try:
                    item = json.loads(line)
                except ValueError:
                    raise UserError(f"{folder / 'items.jsonl'}: a line is not JSON") from None
                if isinstance(item, dict) and "id" in item and item.get("voice"):
                    voices[str(item["id"])] = str(item["voice"])
    pairs = []
    for pid, files in sorted(stems.items()):
        if set(files) != {CORRECT, INCORRECT}:
            have = next(iter(files.values()))
            raise UserError(f"{have}: its {'in' if CORRECT in files else ''}correct partner is missing")
        pairs.append(Pair(pid, files[CORRECT], files[INCORRECT], voices.get(pid)))
    if not pairs:
        raise UserError(f"{folder}: no <id>_correct / <id>_incorrect audio files")
    context = meta.get("context_seconds")
    return ProbeSet(name or folder.name, str(meta.get("kind", "story")), "storycloze", tuple(pairs),
                    float(context) if context is not None else None)


def discover(root: str | os.PathLike, log: Callable[[str], None] | None = None) -> list[ProbeSet]:
    """Every probe set under `root` (itself included), by layout, sorted by name. A gold.csv that pairs nothing
    (ZeroSpeech's semantic set: no id / correct columns) is passed over, with a note to `log`; a folder below the
    root with its own items.json is another build (the learning curves' short sets), not part of this one."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder of probe sets")
    sets = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not (here / d / "items.json").is_file())
        name = here.relative_to(root).as_posix()
        name = root.name if name == "." else name
        if "gold.csv" in files:
            with (here / "gold.csv").open(newline="") as f:
                header = set(next(csv.reader(f), []))
            if {"id", "filename", "correct"} <= header:
                sets.append(read_zerospeech(here, name))
            elif log:
                log(f"{here / 'gold.csv'}: no id/filename/correct columns (not a pair set); skipped")
        elif _storycloze_stems(here):
            sets.append(read_storycloze(here, name))
            dirs.clear()  # <id>/correct.wav items are this set's, not sets of their own
    if not sets:
        raise UserError(f"{root}: no probe sets (folders with a gold.csv, or <id>_correct/<id>_incorrect audio); "
                        "build ours: python -m workbench lm probes build")
    return sorted(sets, key=lambda s: s.name)


def limit(sets: Sequence[ProbeSet], max_pairs: int | None) -> list[ProbeSet]:
    """The first `max_pairs` pairs of each set (all of them for None)."""
    if max_pairs is None:
        return list(sets)
    return [ProbeSet(s.name, s.kind, s.layout, s.pairs[:max_pairs], s.context_seconds) for s in sets]


# ---------------------------------------------------------------------------------------------- tokens


def tokenize_sets(tokenizer, sets: Iterable[ProbeSet], progress: bool = True) -> dict[Path, np.ndarray]:
    """Every audio file of the sets as the tokenizer's units (windowed, as the corpus is encoded for the LM). The two
    members of a pair are levelled by one gain (`Tokenizer.gain` over both): a pair is one recording session, and
    per-file gains would give the audio the members share different units (a file in several pairs keeps the gain
    of its first)."""
    from tqdm.auto import tqdm

    from workbench.core.audio import AudioError
    from workbench.tokenizer.windowed import AudioSource, tokenize_windowed

    pairs = sorted({(pair.correct, pair.incorrect) for s in sets for pair in s.pairs})
    out, gains = {}, {}
    for members in tqdm(pairs, desc="tokenizing probes", unit="pair", disable=not progress):
        try:
            sources = {path: AudioSource(path) for path in members if path not in out}
            if not sources:
                continue
            known = [gains[path] for path in members if path in gains]
            gain = known[0] if known else tokenizer.gain(*sources.values())
            for path, source in sources.items():
                out[path] = tokenize_windowed(tokenizer, source, gain=gain).astype(np.int64)
                gains[path] = gain
        except AudioError as err:
            raise UserError(str(err)) from None
    return out


# ---------------------------------------------------------------------------------------------- scoring


def _share(outcomes: Sequence[float]) -> dict[str, Any]:
    return share_interval(float(sum(outcomes)), len(outcomes))


def score_sets(model, sets: Sequence[ProbeSet], tokens: dict[Path, np.ndarray], *, chunk: int = 1024,
               precision: str = "fp32", normalisation: str = "mean", progress: bool = True, desc: str = "scoring"
               ) -> dict[str, Any]:
    """One model over the sets: per set accuracy (by `normalisation`, and under the other one), per category and
    per voice, ties and the mean per-token margin of the real member."""
    from tqdm.auto import tqdm

    from workbench.core import progress as progress_log
    from workbench.lm.score import NORMALISATIONS, score_pair

    other = next(n for n in NORMALISATIONS if n != normalisation)
    total = sum(len(s.pairs) for s in sets)
    bar = tqdm(total=total, desc=desc, unit="pair", disable=not progress)
    started, done = time.perf_counter(), 0
    results: dict[str, Any] = {}
    for s in sets:
        main, alt, margins, skipped = [], [], [], 0
        by_category, by_voice = defaultdict(list), defaultdict(list)
        for pair in s.pairs:
            a, b = tokens[pair.correct], tokens[pair.incorrect]
            done += 1
            bar.update(1)
            progress_log.report("lm probes", done, total, "pair", time.perf_counter() - started, note=desc)
            if len(a) < 2 or len(b) < 2:
                skipped += 1
                continue
            score = score_pair(model, a, b, chunk=chunk, precision=precision)
            main.append(score.outcome(normalisation))
            alt.append(score.outcome(other))
            margins.append(score.correct.mean - score.incorrect.mean)
            if pair.category:
                by_category[pair.category].append(main[-1])
            if pair.voice:
                by_voice[pair.voice].append(main[-1])
        results[s.name] = {
            "kind": s.kind, "context_seconds": s.context_seconds, "pairs": len(main), "skipped": skipped,
            "accuracy": _share(main), f"accuracy_{other}": _share(alt),
            "ties": int(sum(o == 0.5 for o in main)),
            "mean_margin_nats_per_token": float(np.mean(margins)) if margins else None,
            "by_category": {k: _share(v) for k, v in sorted(by_category.items())},
            "by_voice": {k: _share(v) for k, v in sorted(by_voice.items())},
        }
    bar.close()
    return results


def by_context(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The long-context story sets of one model's results, by context length."""
    rows = [{"context_seconds": r["context_seconds"], "set": name, "accuracy": r["accuracy"]}
            for name, r in results.items() if r["kind"] == "long_story" and r["context_seconds"] is not None]
    return sorted(rows, key=lambda r: r["context_seconds"])


# ---------------------------------------------------------------------------------------------- runs


def _tokens_meta(tokens_dir: str | Path) -> dict[str, Any]:
    path = Path(tokens_dir) / "tokens.json"
    if (Path(tokens_dir) / "SYNTHETIC").exists():
        return {"synthetic": True}
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def load_runs(runs: Sequence[str | Path], device: str | None = None, preset: str = "laptop"
              ) -> dict[str, tuple[Any, dict, Path]]:
    """name (griffin, transformer, ...) -> (model, checkpoint meta, run dir) for each trained run."""
    from workbench.core.device import pick_device
    from workbench.lm.model import load_model

    out: dict[str, tuple[Any, dict, Path]] = {}
    dev = pick_device(device)
    for run in map(Path, runs):
        if not (run / "checkpoint.json").is_file():
            model = run.name if run.name in ("griffin", "transformer") else "griffin"
            out = "" if run == lm_run_dir(preset, model) else f" --out {run}"
            raise UserError(f"no trained LM in {run}; train it: python -m workbench lm train --preset {preset} "
                            f"--model {model}{out}")
        model, meta = load_model(run, dev)
        name = meta["model"] if meta["model"] not in out else f"{meta['model']}-{len(out)}"
        out[name] = (model, meta, run)
    return out


def resolve_tokenizer(preset: str, metas: Sequence[dict], tokenizer: str | Path | None = None):
    """The tokenizer whose units the LMs were trained on: `tokenizer`, else runs/tokenizer/<preset>/<kind> for the
    kind the runs' tokens.json names. Its fingerprint must be the one in the runs' tokens.json."""
    from workbench.tokenizer.model import Tokenizer, TokenizerError, fingerprint

    infos = [(_tokens_meta(m.get("tokens", "")), m.get("tokens")) for m in metas]
    for info, where in infos:
        if info.get("synthetic"):
            raise UserError(f"the LM was trained on SYNTHETIC tokens ({where}), not on speech: probes need an LM "
                            f"trained on a tokenizer's units (python -m workbench tokenizer encode, then lm train)")
    prints = {info.get("fingerprint") for info, _ in infos} - {None}
    if len(prints) > 1:
        raise UserError("the LMs were trained on units of different tokenizers "
                        f"({', '.join(str(w) for _, w in infos)}); score them separately")
    if tokenizer is None:
        kinds = {info.get("tokenizer") for info, _ in infos} - {None}
        if not kinds:
            raise UserError(f"{infos[0][1]}: its tokens.json does not name the tokenizer; give --tokenizer DIR")
        tokenizer = tokenizer_dir(preset, kinds.pop())
    try:
        tok = Tokenizer.load(tokenizer)
    except TokenizerError as err:
        raise UserError(str(err)) from None
    if prints and fingerprint(tok) not in prints:
        raise UserError(f"{tokenizer} is not the tokenizer the LMs were trained on (fingerprint "
                        f"{fingerprint(tok)} vs {prints.pop()}); give the right one with --tokenizer")
    return tok, Path(tokenizer)


def run_probes(preset: str, *, runs: Sequence[str | Path] | None = None, items: str | Path | None = None,
               tokenizer: str | Path | None = None, device: str | None = None, build_missing: bool = True,
               max_pairs: int | None = None, normalisation: str = "mean", progress: bool = True,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the probe sets under `items` (default: ours for the preset, built first where missing) with each
    trained LM of `runs` (default: the preset's Griffin and Transformer runs). Returns probes.json's payload."""
    from workbench.core import validate
    from workbench.lm.config import TOKENS_PER_SECOND
    from workbench.tokenizer.model import fingerprint

    validate.count("--max-pairs", max_pairs, 1, optional=True)
    if normalisation not in ("mean", "sum"):
        raise UserError(f"--normalisation must be mean or sum, got {normalisation!r}")
    runs = list(runs) if runs else [lm_run_dir(preset, m) for m in ("griffin", "transformer")]
    models = load_runs(runs, device, preset)  # checked (and loaded) before anything is built or tokenized
    tok, tok_path = resolve_tokenizer(preset, [meta for _, meta, _ in models.values()], tokenizer)
    for name, (model, _, run) in models.items():
        if tok.num_units > model.config.vocab_size:
            raise UserError(f"{run}: its vocabulary ({model.config.vocab_size}) is smaller than the tokenizer's "
                            f"{tok.num_units} units")
    if items is None:
        items = probes_dir(preset)
        if not (Path(items) / "items.json").is_file():
            if not build_missing:
                raise UserError(f"no probe sets in {items}; build them: python -m workbench lm probes build "
                                f"--preset {preset}")
            build_sets(preset, items, progress=progress, log=log)
    sets = limit(discover(items, log), max_pairs)
    tokens = tokenize_sets(tok, sets, progress=progress)
    payload: dict[str, Any] = {
        "preset": preset, "items": str(items), "chance": 0.5, "normalisation": normalisation,
        "normalisation_note": NORMALISATION_NOTE,
        "tokenizer": {"path": str(tok_path), "kind": tok.kind, "num_units": tok.num_units,
                      "fingerprint": fingerprint(tok)},
        "sets": {s.name: {"kind": s.kind, "layout": s.layout, "pairs": len(s.pairs),
                          "context_seconds": s.context_seconds} for s in sets},
        "models": {},
    }
    for name, (model, meta, run) in models.items():
        started = time.perf_counter()
        window = int(meta.get("train_config", {}).get("window_tokens", 1024))
        results = score_sets(model, sets, tokens, chunk=max(window, 64), normalisation=normalisation,
                             progress=progress, desc=f"scoring ({name})")
        payload["models"][name] = {
            "run": str(run), "steps": meta.get("step"), "parameters": meta.get("parameters", {}).get("total"),
            "train_window_s": window / TOKENS_PER_SECOND, "seconds": round(time.perf_counter() - started, 2),
            "sets": results, "by_context": by_context(results),
        }
    return payload


CURVE_KINDS = ("lexical", "syntactic", "story")  # short items: cheap enough to score at every snapshot


def learning_curves(preset: str, *, runs: Sequence[str | Path] | None = None, items: str | Path | None = None,
                    tokenizer: str | Path | None = None, device: str | None = None, max_pairs: int | None = None,
                    normalisation: str = "mean", progress: bool = True, log: Callable[[str], None] = print
                    ) -> dict[str, Any]:
    """Probe accuracy against training minutes: every LM of `runs` at each of its learning-curve snapshots
    (`TrainConfig.snapshots`) and finished, scored on the short sets (lexical, syntactic, story; by default built
    alone into data/build/probes/<preset>/short; the long-context sets are scored on the finished models by
    `run_probes`). A run without snapshots is one point."""
    from workbench.lm.model import snapshot_models

    runs = list(runs) if runs else [lm_run_dir(preset, m) for m in ("griffin", "transformer")]
    models = load_runs(runs, device, preset)
    tok, _ = resolve_tokenizer(preset, [meta for _, meta, _ in models.values()], tokenizer)
    items = Path(items) if items else probes_dir(preset) / "short"
    if not (items / "items.json").is_file() and items == probes_dir(preset) / "short":
        # the short sets only: the long-context ones (minutes of audio per item) are `lm probes`' own study
        build_sets(preset, items, sets=CURVE_KINDS, progress=progress, log=log)
    sets = [s for s in limit(discover(items, log), max_pairs) if s.kind in CURVE_KINDS]
    if not sets:
        raise UserError(f"{items}: no lexical, syntactic or story set to draw learning curves from")
    tokens = tokenize_sets(tok, sets, progress=progress)
    curves: dict[str, list[dict[str, Any]]] = {}
    for name, (_, meta, run) in models.items():
        window = int(meta.get("train_config", {}).get("window_tokens", 1024))
        curves[name] = []
        for point, model in snapshot_models(run, device or "cpu"):
            log(f"{name}: scoring the model at {100 * point['mark']:.0f}% of its training (step {point['step']})")
            results = score_sets(model, sets, tokens, chunk=max(window, 64), normalisation=normalisation,
                                 progress=False)
            elapsed = point.get("elapsed_s")
            curves[name].append({"mark": point["mark"], "step": point["step"],
                                 "minutes": None if elapsed is None else round(elapsed / 60, 3),
                                 "sets": {k: r["accuracy"] for k, r in results.items()}})
    return {"preset": preset, "items": str(items), "chance": 0.5, "normalisation": normalisation,
            "sets": {s.name: len(s.pairs) for s in sets}, "models": curves}


def curve_figure(curves: dict[str, Any]):
    """Accuracy against training minutes, one panel per set, a line per model with its 95% Wilson band; the
    dotted line is chance."""
    from plotly.subplots import make_subplots

    names = list(curves["sets"])
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"{n} ({curves['sets'][n]} pairs)" for n in names],
                        shared_yaxes=True)
    colours = {"griffin": "31, 119, 180", "transformer": "214, 39, 40"}
    for col, set_name in enumerate(names, 1):
        for model, points in curves["models"].items():
            rgb = colours.get(model, "100, 100, 100")
            x = [p["minutes"] if p["minutes"] is not None else p["mark"] for p in points]
            acc = [p["sets"][set_name] for p in points]
            fig.add_scatter(x=x + x[::-1], y=[a["high"] for a in acc] + [a["low"] for a in acc][::-1], fill="toself",
                            fillcolor=f"rgba({rgb}, 0.15)", line=dict(width=0), hoverinfo="skip", showlegend=False,
                            row=1, col=col)
            fig.add_scatter(x=x, y=[a["share"] for a in acc], mode="lines+markers", line=dict(color=f"rgb({rgb})"),
                            name=model, showlegend=col == 1, row=1, col=col)
        fig.add_hline(y=0.5, line_dash="dot", line_color="grey", row=1, col=col)
    fig.update_xaxes(title_text="training minutes")
    fig.update_yaxes(title_text="accuracy (real item preferred)", range=[0, 1], row=1, col=1)
    fig.update_layout(title="Zero-shot probes while the LMs learn (chance 0.5)", height=380)
    return fig


def build_sets(preset: str, out: str | Path | None = None, sets: Sequence[str] | None = None,
               progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the preset's probe sets (workbench.data.probes) into `out` (default data/build/probes/<preset>)."""
    from workbench.data.probes import PRESETS, SETS, build_probes, probe_config

    if preset not in PRESETS:
        raise UserError(f"no probe sets are defined for preset {preset!r} (presets: {', '.join(PRESETS)}); "
                        "give --items DIR")
    out = Path(out) if out else probes_dir(preset)
    log(f"building the {preset} probe sets into {out} ...")
    return build_probes(probe_config(preset), out, sets=tuple(sets or SETS), progress=progress, log=log)


# ---------------------------------------------------------------------------------------------- command


def _fmt(acc: dict[str, Any]) -> str:
    if acc.get("share") is None:
        return "-"
    return f"{acc['share']:.2f} [{acc['low']:.2f}, {acc['high']:.2f}]"


def summary(payload: dict[str, Any]) -> str:
    names = list(payload["models"])
    lines = [f"probes in {payload['items']} (chance 0.50; {payload['normalisation']} log-likelihood; 95% Wilson)"]
    for set_name, info in payload["sets"].items():
        scores = "  ".join(f"{m} {_fmt(payload['models'][m]['sets'][set_name]['accuracy'])}" for m in names)
        lines.append(f"  {set_name} ({info['kind']}, {info['pairs']} pairs): {scores}")
    for model, points in (payload.get("learning_curves") or {}).get("models", {}).items():
        lines.append(f"  learning curve, {model}: " + "; ".join(
            f"{p['minutes'] if p['minutes'] is not None else '?'} min " +
            " ".join(f"{k.split('/')[0]} {_fmt(a)}" for k, a in p["sets"].items()) for p in points))
    return "\n".join(lines)


def cmd_probes(args) -> None:
    log = (lambda m: None) if args.json else (lambda m: print(m, flush=True))
    if args.action == "build":
        result = build_sets(args.preset, args.items, args.sets, progress=not args.json, log=log)
        emit(args, result, lambda r: f"probe sets in {r['path']}: {json.dumps(r['counts'])}")
        return
    payload = run_probes(args.preset, runs=args.runs, items=args.items, tokenizer=args.tokenizer,
                         device=args.device, build_missing=not args.no_build, max_pairs=args.max_pairs,
                         normalisation=args.normalisation, progress=not args.json, log=log)
    if args.curves:
        payload["learning_curves"] = learning_curves(
            args.preset, runs=args.runs, items=args.items, tokenizer=args.tokenizer, device=args.device,
            max_pairs=args.max_pairs, normalisation=args.normalisation, progress=not args.json, log=log)
    emit(args, payload, summary, report_name="probes.json")


def register_under(subparsers) -> None:
    """Add `probes` to the `lm` command (it spans stages, so it lives here, not in workbench.lm.cli)."""
    from workbench.data.probes import SETS
    from workbench.lm.config import PRESETS

    lm = subparsers.choices.get("lm")
    if lm is None:
        raise RuntimeError("the lm command must be registered before lm probes")
    sub = next(a for a in lm._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.add_parser("probes", help="zero-shot probes: lexical, syntactic, story and long-context story pairs "
                       "scored by each LM's likelihood (probes.json); `lm probes build` synthesizes our sets")
    p.add_argument("action", nargs="?", default="score", choices=("score", "build"),
                   help="score (default) the sets with the LMs, or build our sets")
    p.add_argument("--preset", default="laptop", choices=PRESETS)
    p.add_argument("--runs", nargs="+", default=None, help="LM run directories (default: the preset's griffin "
                   "and transformer runs in runs/lm/<preset>)")
    p.add_argument("--items", default=None, help="folder of probe sets, ours or public ones (default "
                   "data/build/probes/<preset>, built first if missing); with build: where to write")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the one named by the runs' "
                   "tokens.json, in runs/tokenizer/<preset>/<kind>)")
    p.add_argument("--sets", nargs="+", default=None, choices=SETS, help="build only these sets")
    p.add_argument("--max-pairs", type=int, default=None, help="score only the first N pairs of each set")
    p.add_argument("--normalisation", default="mean", choices=("mean", "sum"),
                   help="decide each pair by the per-token mean (default) or the summed log-likelihood")
    p.add_argument("--no-build", action="store_true", help="fail instead of building missing sets")
    p.add_argument("--curves", action="store_true", help="also score each LM's learning-curve snapshots on the "
                   "short sets (probes.json's learning_curves: accuracy against training minutes)")
    p.add_argument("--device", default=None)
    add_output_args(p)
    p.set_defaults(func=cmd_probes)
