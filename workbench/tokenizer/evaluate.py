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
from workbench.data.loaders import REAL_SPEECH_DIRS, open_dataset, real_speech_files
from workbench.tokenizer import metrics as M
from workbench.tokenizer.windowed import AudioSource, tokenize_windowed


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


def heldout_recordings(corpus_dir, source: str = "synthetic", splits: tuple[str, ...] = ("dev", "test")) -> list:
    """The corpus's held-out recordings of one source ("synthetic" chapters, or "real" speech mixed in)."""
    corpus = open_dataset(corpus_dir)
    return [r for r in corpus.recordings if r.split in splits and r.source == source]


def phone_figures(tokenizer, corpus_dir) -> dict[str, Any]:
    """PNMI/purity (pauses excluded; PNMI with pauses too), usage, bitrate and speed on the synthetic dev+test
    chapters."""
    return phone_figures_of(tokenizer, heldout_recordings(corpus_dir))


def corpus_real_phone_figures(tokenizer, corpus_dir) -> dict[str, Any] | None:
    """`phone_figures_of` on the real test speakers mixed into the corpus (aligned when it was built); None if it
    has none. Time outside the aligned utterances holds no phone and is not scored."""
    recordings = [r for r in heldout_recordings(corpus_dir, "real", ("test",)) if r.alignment is not None]
    if not recordings:
        return None
    return {**phone_figures_of(tokenizer, recordings), "dataset": str(corpus_dir), "split": "test"}


def phone_figures_of(tokenizer, recordings: Sequence[Any]) -> dict[str, Any]:
    """`phone_figures` on any aligned recordings (synthetic chapters, or real utterances aligned by
    `workbench.data.align`), with PNMI and phone purity per speaker ("by_speaker")."""
    if not recordings:
        raise ValueError("no recordings to score")
    if missing := [r.id for r in recordings if r.alignment is None]:
        raise ValueError(f"{len(missing)} recording(s) have no phone alignment, e.g. {missing[0]} "
                         "(real speech: python -m workbench data align --dataset DIR)")
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
        "by_speaker": _by_speaker(recordings, units, labels),
    }


def _by_speaker(recordings: Sequence[Any], units: list[np.ndarray], labels: list[list[str]]) -> dict[str, Any]:
    """PNMI and phone purity per speaker: which voices the units serve worst (the per-voice tables)."""
    out = {}
    for speaker in sorted({r.speaker for r in recordings}):
        idx = [i for i, r in enumerate(recordings) if r.speaker == speaker]
        stats = M.phone_stats(np.concatenate([units[i] for i in idx]), [lab for i in idx for lab in labels[i]])
        out[speaker] = {"pnmi": round(stats["pnmi"], 4), "phone_purity": round(stats["phone_purity"], 4),
                        "frames": stats["frames"], "recordings": len(idx)}
    return out


def real_phone_figures(tokenizer, dataset_dir, split: str = "test", alignments=None, dev: int = 3,
                       test: int = 3) -> dict[str, Any]:
    """`phone_figures_of` on the `split` speakers of a real, aligned LibriSpeech-layout corpus (speakers split by
    `workbench.data.loaders.speaker_split`, so the same speakers every time), e.g. mini-LibriSpeech's 3 test
    speakers. Utterances the aligner skipped are left out (and counted)."""
    from workbench.core.errors import UserError
    from workbench.data.loaders import speaker_split

    for name, folder in (("--real-aligned", dataset_dir), ("--real-alignments", alignments)):
        if folder is not None and not Path(folder).is_dir():
            raise UserError(f"{name} {folder}: no such folder")
    dataset = open_dataset(dataset_dir, alignments=alignments)
    chosen = speaker_split(dataset, dev=dev, test=test)
    recordings = [r for r in chosen.apply(dataset).recordings if r.split == split]
    aligned = [r for r in recordings if r.alignment is not None]
    if not aligned:
        raise ValueError(f"{dataset_dir}: none of the {len(recordings)} {split} utterances has a phone alignment "
                         f"(python -m workbench data align --dataset {dataset_dir})")
    return {**phone_figures_of(tokenizer, aligned), "dataset": str(dataset_dir), "split": split,
            "unaligned_skipped": len(recordings) - len(aligned)}


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


def evaluate(tokenizer, corpus_dir, real_speech: Sequence[Path] | None = None, real_aligned=None,
             real_alignments=None) -> dict[str, Any]:
    """All figures for one tokenizer (the JSON object `tokenizer eval` writes per tokenizer); `real_speech`:
    folders of real recordings (default REAL_SPEECH_DIRS); "real_phones": the phone figures on the real test
    speakers of the corpus (if it mixes real speech in), or of `real_aligned`, an aligned LibriSpeech-layout corpus.""" 
    parallel = parallel_edit_distances(tokenizer, corpus_dir)
    out = {"kind": tokenizer.kind, "num_units": tokenizer.num_units, **phone_figures(tokenizer, corpus_dir),
           "unit_edit_distance": parallel["unit_edit_distance"], "parallel_pairs": parallel["pairs"],
           "parallel_voices": parallel["voices"],
           "real_speech": real_speech_figures(tokenizer, real_speech_files(real_speech or REAL_SPEECH_DIRS)),
           "threads": tokenizer.config.threads}
    # the real test speakers: of the corpus where it mixes real speech in, else of a named aligned corpus
    real = (real_phone_figures(tokenizer, real_aligned, alignments=real_alignments) if real_aligned is not None
            else corpus_real_phone_figures(tokenizer, corpus_dir))
    if real is not None:
        out["real_phones"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in real.items()}
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def compare(results: dict[str, dict[str, Any]], baseline: str = "mfcc_kmeans", learned: str = "learned") -> dict[str, Any]:
    """Relative improvement of the learned tokenizer over the baseline (the issue's target: >= 20% on both)."""
    if baseline not in results or learned not in results:
        return {}
    b, l = results[baseline], results[learned]
    out = {"pnmi_gain": round(l["pnmi"] / b["pnmi"] - 1, 4) if b["pnmi"] else None,
           "edit_distance_reduction": round(1 - l["unit_edit_distance"] / b["unit_edit_distance"], 4)
           if b["unit_edit_distance"] else None}
    if "real_phones" in b and "real_phones" in l and b["real_phones"]["pnmi"]:  # issue 14's target: >= 1.3x
        out["real_pnmi_ratio"] = round(l["real_phones"]["pnmi"] / b["real_phones"]["pnmi"], 4)
    return out


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
    for name, r in results.items():
        real = r.get("real_phones") if isinstance(r, dict) else None
        if real:
            lines.append(f"{name} on real {real['split']} speakers: PNMI {real['pnmi']:.3f}, purity "
                         f"{real['phone_purity']:.3f}; by speaker: "
                         + ", ".join(f"{spk} {v['pnmi']:.3f}" for spk, v in real["by_speaker"].items()))
    if results.get("learned_vs_baseline"):
        lines.append(f"learned vs baseline: {json.dumps(results['learned_vs_baseline'])}")
    return "\n".join(lines)
