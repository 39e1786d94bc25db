"""Measure tokenizers on a built corpus (held-out speakers only) and on real speech; `tokenizer eval`'s engine.

Every figure comes from audio on disk through windowed tokenization, so `realtime_factor` (audio seconds per
wall-clock second, higher is faster) is end-to-end: file reading and decoding, resampling where needed,
features, encoder and k-means assignment, at `config.threads` CPU threads.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from workbench.core.audio import AudioConversionWarning
from workbench.data.loaders import AUDIO_SUFFIXES, open_dataset
from workbench.tokenizer import metrics as M
from workbench.tokenizer.windowed import AudioSource, tokenize_windowed

# the fixture clips, and the optional larger real-speech set beside the repository
REPO = Path(__file__).resolve().parents[2]
REAL_SPEECH_DIRS = (REPO / "tests" / "fixtures" / "real-speech", REPO.parent / "shared" / "data" / "real-speech")


def tokenize_sources(tokenizer, sources: Iterable[AudioSource]) -> tuple[list[np.ndarray], float, float]:
    """Units for each source, total audio seconds and wall seconds spent (including reading the audio)."""
    torch.set_num_threads(tokenizer.config.threads)
    units, seconds, wall = [], 0.0, 0.0
    for source in sources:
        started = time.perf_counter()
        units.append(tokenize_windowed(tokenizer, source))
        wall += time.perf_counter() - started
        seconds += source.seconds
    return units, seconds, wall


def heldout_recordings(corpus_dir) -> list:
    corpus = open_dataset(corpus_dir)
    return [r for r in corpus.recordings if r.split in ("dev", "test")]


def phone_figures(tokenizer, corpus_dir) -> dict[str, Any]:
    """PNMI/purity (pauses excluded; PNMI with pauses too), usage, bitrate and speed on the dev+test chapters."""
    recordings = heldout_recordings(corpus_dir)
    timed_sources = []
    wall = 0.0
    for r in recordings:  # opening a file is part of encoding it
        started = time.perf_counter()
        timed_sources.append(AudioSource.of(r))
        wall += time.perf_counter() - started
    units, seconds, tok_wall = tokenize_sources(tokenizer, timed_sources)
    labels = [M.frame_labels(r.alignment_data()["phones"], len(u)) for r, u in zip(recordings, units)]
    flat_u, flat_l = np.concatenate(units), [lab for ls in labels for lab in ls]
    phones = M.phone_stats(flat_u, flat_l)
    return {
        "pnmi": phones["pnmi"], "phone_purity": phones["phone_purity"], "cluster_purity": phones["cluster_purity"],
        "pnmi_with_pauses": M.phone_stats(flat_u, flat_l, exclude=())["pnmi"],
        "scored_frames": phones["frames"], "phone_classes": phones["phones"],
        **M.usage(flat_u, tokenizer.num_units), **M.dedup_bitrate(units, tokenizer.num_units),
        "realtime_factor": seconds / (wall + tok_wall), "heldout_hours": seconds / 3600,
        "heldout_speakers": sorted({r.speaker for r in recordings}),
    }


def parallel_edit_distances(tokenizer, corpus_dir) -> dict[str, Any]:
    """Cross-voice unit edit distance per parallel sentence (reference: the first held-out voice, sorted)."""
    corpus_dir = Path(corpus_dir)
    path = corpus_dir / "parallel.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the corpus has no parallel set")
    by_sentence: dict[int, dict[str, Path]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        row = json.loads(line)
        by_sentence[row["sentence_index"]][row["speaker"]] = corpus_dir / row["audio"]
    speakers = sorted({s for v in by_sentence.values() for s in v})
    if len(speakers) < 2:
        raise ValueError(f"{path}: the parallel set needs two voices, found {speakers}")
    ref, other = speakers[:2]
    distances = []
    for k in sorted(by_sentence):
        pair = by_sentence[k]
        if ref in pair and other in pair:
            (a, b), _, _ = tokenize_sources(tokenizer, [AudioSource(pair[ref]), AudioSource(pair[other])])
            distances.append(M.unit_edit_distance(a, b))
    return {"unit_edit_distance": float(np.mean(distances)), "pairs": len(distances), "voices": [ref, other],
            "per_sentence": distances}


def real_speech_files(dirs: Sequence[Path] = REAL_SPEECH_DIRS) -> list[Path]:
    return [p for d in dirs if Path(d).is_dir() for p in sorted(Path(d).rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES]


def real_speech_figures(tokenizer, files: Sequence[Path]) -> dict[str, Any] | None:
    """Usage and speed on real recordings (no alignments: no PNMI); None if there are none."""
    if not files:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioConversionWarning)  # 22.05 kHz / stereo clips are converted
        started = time.perf_counter()
        sources = [AudioSource(p) for p in files]
        open_wall = time.perf_counter() - started
        units, seconds, wall = tokenize_sources(tokenizer, sources)
    flat = np.concatenate(units)
    return {"clips": len(files), "seconds": seconds, **M.usage(flat, tokenizer.num_units),
            **M.dedup_bitrate(units, tokenizer.num_units), "realtime_factor": seconds / (wall + open_wall),
            "folders": sorted({str(p.parent) for p in files})}


def evaluate(tokenizer, corpus_dir, real_speech: Sequence[Path] | None = None) -> dict[str, Any]:
    """All figures for one tokenizer (the JSON object `tokenizer eval` writes per tokenizer); `real_speech`:
    folders of real recordings (default REAL_SPEECH_DIRS)."""
    parallel = parallel_edit_distances(tokenizer, corpus_dir)
    out = {"kind": tokenizer.kind, "num_units": tokenizer.num_units, **phone_figures(tokenizer, corpus_dir),
           "unit_edit_distance": parallel["unit_edit_distance"], "parallel_pairs": parallel["pairs"],
           "parallel_voices": parallel["voices"],
           "real_speech": real_speech_figures(tokenizer, real_speech_files(real_speech or REAL_SPEECH_DIRS)),
           "threads": tokenizer.config.threads}
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def compare(results: dict[str, dict[str, Any]], baseline: str = "mfcc_kmeans", learned: str = "learned") -> dict[str, Any]:
    """Relative improvement of the learned tokenizer over the baseline (the issue's target: >= 20% on both)."""
    if baseline not in results or learned not in results:
        return {}
    b, l = results[baseline], results[learned]
    return {"pnmi_gain": round(l["pnmi"] / b["pnmi"] - 1, 4) if b["pnmi"] else None,
            "edit_distance_reduction": round(1 - l["unit_edit_distance"] / b["unit_edit_distance"], 4)
            if b["unit_edit_distance"] else None}


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    """The headline figures as a text table (CLI summary, notebook)."""
    lines = [f"{'tokenizer':14s} {'PNMI':>6s} {'purity':>6s} {'UED':>6s} {'ppl':>7s} {'used':>5s} {'bits/s':>7s} "
             f"{'xRT':>7s} {'real ppl':>8s} {'real xRT':>8s}"]
    for name, r in results.items():
        if "pnmi" in r:
            real = r.get("real_speech") or {}
            lines.append(f"{name:14s} {r['pnmi']:6.3f} {r['phone_purity']:6.3f} {r['unit_edit_distance']:6.3f} "
                         f"{r['usage_perplexity']:7.1f} {r['fraction_used']:5.2f} {r['bitrate_dedup_entropy']:7.1f} "
                         f"{r['realtime_factor']:7.0f} {real.get('usage_perplexity', float('nan')):8.1f} "
                         f"{real.get('realtime_factor', float('nan')):8.0f}")
    if results.get("learned_vs_baseline"):
        lines.append(f"learned vs baseline: {json.dumps(results['learned_vs_baseline'])}")
    return "\n".join(lines)
