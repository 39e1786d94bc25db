"""`codec eval`: our codec at every quantizer-dropout level vs Codec2-3200, Opus-6k and the identity, on the
held-out synthetic test speakers and on real speech; plus encode/decode speed.

Test sets are fixed lists of clips: `clip_seconds` windows cut back to back from the synthetic test segments
(held-out speakers) and spread evenly over them, and the first `clip_seconds` of each real-speech file whose
speaker the corpus does not hold (its extra voices included: those the codec heard are not "other" voices). Clips
that are near-silent are skipped (PESQ needs speech). Every system codes the same clips; figures are means over
clips. Our codec encodes each clip once at all levels and decodes every prefix (RVQ's levels are nested).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workbench.codec import baselines
from workbench.codec.config import EvalConfig
from workbench.codec.metrics import align, measure
from workbench.codec.model import Codec
from workbench.codec.stream import decode_long, encode_long, level_gain
from workbench.core.audio import SAMPLE_RATE, AudioConversionWarning
from workbench.data.loaders import corpus_speakers, open_dataset, real_speaker_of
from workbench.eval.stats import mean_interval

MIN_PEAK = 0.01  # a clip quieter than this (-40 dBFS peak) is skipped: nothing to measure


@dataclass
class Clip:
    id: str
    audio: np.ndarray
    speaker: str | None = None


def corpus_clips(corpus_dir: str | Path, n: int, seconds: float, source: str = "synthetic") -> list[Clip]:
    """`n` windows of `seconds` spread evenly over the corpus's test segments (held-out speakers) of one source:
    the "synthetic" chapters or the "real" speech mixed in (none: [])."""
    data = open_dataset(corpus_dir, split="test-segments")
    windows = [(r, s) for r, s, e in data.contiguous_segments(seconds)
               if e - s >= seconds - 1e-6 and r.source == source]
    return pick_clips([(f"{r.id}@{s:.0f}s", lambda r=r, s=s: r.load(s, seconds), r.speaker) for r, s in windows], n)


def real_clips(folder: str | Path, n: int, seconds: float, exclude: set[str] = frozenset()) -> list[Clip]:
    """The first `seconds` of up to `n` audio files (any format the loaders read) whose speaker is not in
    `exclude` (voices the codec heard: `corpus_speakers`), spread evenly over them; other sample rates are
    resampled to 16 kHz (expected here, so not warned about)."""
    data = open_dataset(folder, kind="folder", skip_bad=True)
    files = [r for r in sorted(data.recordings, key=lambda r: str(r.audio)) if real_speaker_of(r.audio) not in exclude]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioConversionWarning)
        return pick_clips([(r.id, lambda r=r: r.load(0, seconds), real_speaker_of(r.audio)) for r in files], n)


def pick_clips(candidates: list, n: int) -> list[Clip]:
    """Up to `n` clips from (id, load, speaker) candidates, evenly spaced over them; a silent clip is replaced by
    a spare."""
    order = np.linspace(0, len(candidates) - 1, len(candidates)).round().astype(int)
    if len(candidates) > n:  # evenly spaced first, the rest as spares for skipped (silent) clips
        first = np.unique(np.linspace(0, len(candidates) - 1, n).round().astype(int))
        order = np.concatenate([first, np.setdiff1d(order, first)])
    clips = []
    for i in order:
        cid, load, speaker = candidates[i]
        audio = load()
        if np.abs(audio).max() >= MIN_PEAK:
            clips.append(Clip(cid, audio, speaker))
        if len(clips) == n:
            break
    return clips


def mean_over(rows: list[dict], key: str) -> float | None:
    """The mean of `key` over `rows`, NaNs (e.g. PESQ of a clip without speech) left out; None if none is left."""
    values = [r[key] for r in rows if not math.isnan(r[key])]
    return round(float(np.mean(values)), 4) if values else None


def paired_gap(ours: list[dict], theirs: list[dict], key: str) -> dict:
    """Ours minus theirs on the same clips (lists in clip order), as a mean with its 95% t interval over the clips
    where both are defined: {"mean", "low", "high", "n"}."""
    return {k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in mean_interval([a[key] - b[key] for a, b in zip(ours, theirs, strict=True)]).items()}


def evaluate_set(codec: Codec, clips: list[Clip], set_name: str, levels: list[int], cfg: EvalConfig,
                 systems: tuple[str, ...] = ("codec2-3200", "opus-6k", "opus-8k", "identity"), progress: bool = False
                 ) -> tuple[list[dict], list[str], list[dict]]:
    """One row per (system, bitrate) with mean PESQ / STOI / mel distance over `clips`; notes on skips; and the
    same per speaker of the clips (the per-voice table)."""
    from tqdm.auto import tqdm

    per: dict[tuple, list[dict]] = {}
    rates: dict[tuple, tuple[float, float]] = {}
    notes = []
    usable = []
    for name in systems:
        missing = baselines.missing_tools(name)
        if missing:
            notes.append(f"{name} skipped: {', '.join(missing)} not installed")
        else:
            usable.append(name)
    for clip in tqdm(clips, desc=f"eval {set_name}", disable=not progress, leave=False):
        gain = level_gain(codec, clip.audio)  # the clip's level is sent beside the codes: its own level back
        for n_q in levels:
            # coded at each rate: a beam search for six levels does not pick the best first three
            codes = encode_long(codec, clip.audio, n_q, cfg.chunk_seconds)
            out = decode_long(codec, codes, cfg.chunk_seconds)[: len(clip.audio)].numpy() / gain
            key = ("ours", n_q)
            per.setdefault(key, []).append({**measure(clip.audio, out), "speaker": clip.speaker})
            rates[key] = (codec.cfg.kbps(n_q), codec.cfg.kbps(n_q))
        for name in usable:
            out, kbps, kbps_file = baselines.BASELINES[name](clip.audio)
            out, _ = align(clip.audio, out)
            per.setdefault((name, None), []).append({**measure(clip.audio, out), "speaker": clip.speaker})
            old = rates.get((name, None), (kbps, 0.0))
            rates[(name, None)] = (kbps, old[1] + kbps_file / len(clips))
    rows = []
    top = per.get(("ours", max(levels)), [])
    for (system, n_q), measured in per.items():
        kbps, kbps_file = rates[(system, n_q)]
        row = {"set": set_name, "system": system, "n_q": n_q, "kbps": round(kbps, 3),
               "kbps_file": round(kbps_file, 3), "pesq": mean_over(measured, "pesq"),
               "stoi": mean_over(measured, "stoi"), "mel_distance": mean_over(measured, "mel_distance"),
               "clips": len(measured), "pesq_undefined": sum(math.isnan(m["pesq"]) for m in measured)}
        if system not in ("ours", "identity"):  # "above Codec2" needs the clips' spread, not two means
            row["ours_pesq_gap"] = paired_gap(top, measured, "pesq")
        rows.append(row)
    by_speaker = [{"set": set_name, "speaker": speaker, "system": system, "n_q": n_q,
                   **{k: mean_over(group, k) for k in ("pesq", "stoi", "mel_distance")}, "clips": len(group)}
                  for (system, n_q), measured in per.items()
                  for speaker in sorted({str(m["speaker"]) for m in measured})
                  for group in [[m for m in measured if str(m["speaker"]) == speaker]]]
    return rows, notes, by_speaker


def measure_speed(codec: Codec, audio: np.ndarray, chunk_seconds: float) -> dict:
    """Encode and decode `audio` (all levels) once to warm up, then time one pass of each: x real time."""
    seconds = len(audio) / SAMPLE_RATE
    encode_long(codec, audio[: SAMPLE_RATE], None, chunk_seconds)
    t0 = time.perf_counter()
    codes = encode_long(codec, audio, None, chunk_seconds)
    t1 = time.perf_counter()
    decode_long(codec, codes, chunk_seconds)
    t2 = time.perf_counter()
    return {"seconds": round(seconds, 2), "encode_x_realtime": round(seconds / (t1 - t0), 1),
            "decode_x_realtime": round(seconds / (t2 - t1), 1), "device": str(next(codec.parameters()).device),
            "threads": torch.get_num_threads(), "chunk_seconds": chunk_seconds}


def evaluate(codec: Codec, cfg: EvalConfig, corpus_dir: str | Path | None, real_dir: str | Path | None,
             progress: bool = False) -> dict:
    """The codec.json payload: rows for every set x system x bitrate, set descriptions, speed, notes."""
    levels = list(range(1, codec.cfg.num_quantizers + 1))
    sets, rows, notes, speed, by_speaker = {}, [], [], None, []
    heard = corpus_speakers(corpus_dir) if corpus_dir is not None else set()  # not "other" real voices
    for name, source, make in (
            ("synthetic-test", corpus_dir, lambda p: corpus_clips(p, cfg.test_clips, cfg.clip_seconds)),
            ("real-test", corpus_dir, lambda p: corpus_clips(p, cfg.real_test_clips, cfg.clip_seconds, "real")),
            ("real-speech", real_dir, lambda p: real_clips(p, cfg.real_clips, cfg.clip_seconds, heard))):
        if source is None or not Path(source).is_dir():
            notes.append(f"{name} skipped: no folder {source}")
            continue
        clips = make(source)
        if not clips:
            notes.append(f"{name} skipped: no clip in {source} has speech" + (
                " (the corpus mixes in no real speech)" if name == "real-test" else ""))
            continue
        sets[name] = {"source": str(source), "clips": len(clips),
                      "seconds": round(sum(len(c.audio) for c in clips) / SAMPLE_RATE, 1),
                      "speakers": sorted({str(c.speaker) for c in clips})}
        set_rows, set_notes, set_speakers = evaluate_set(codec, clips, name, levels, cfg, progress=progress)
        rows += set_rows
        by_speaker += set_speakers
        notes += [n for n in set_notes if n not in notes]
        if speed is None:  # timed on the first set's audio
            audio = np.concatenate([c.audio for c in clips])
            reps = math.ceil(cfg.speed_seconds * SAMPLE_RATE / len(audio))
            speed = measure_speed(codec, np.tile(audio, reps)[: int(cfg.speed_seconds * SAMPLE_RATE)], cfg.chunk_seconds)
    notes.append("codec2-3200: 16 kHz input resampled to 8 kHz for c2enc/c2dec (raw s16) and back up to 16 kHz; "
                 "delays of Codec2/Opus are removed by cross-correlation before STOI and mel distance")
    return {"model": {"kbps_levels": {n: codec.cfg.kbps(n) for n in levels}, "causal": codec.cfg.causal,
                      "rvq_beam": codec.cfg.rvq_beam, "frame_rate": codec.cfg.frame_rate, "codebook_size": codec.cfg.codebook_size},
            "sets": sets, "results": rows, "by_speaker": by_speaker, "speed": speed, "notes": notes}


def voice_table(payload: dict, max_kbps: float = 3.2) -> list[dict]:
    """Per speaker: PESQ of our codec at its highest bitrate <= `max_kbps` beside each baseline's, worst first."""
    ours = [r for r in payload["results"] if r["system"] == "ours" and r["kbps"] <= max_kbps + 1e-9]
    if not ours:
        return []
    best = max(ours, key=lambda r: r["kbps"])
    n_q = best["n_q"]
    table: dict[tuple, dict] = {}
    for r in payload.get("by_speaker", []):
        if r["system"] == "identity" or (r["system"] == "ours" and r["n_q"] != n_q):
            continue
        row = table.setdefault((r["set"], r["speaker"]),
                               {"set": r["set"], "speaker": r["speaker"], "clips": r["clips"]})
        row["ours" if r["system"] == "ours" else r["system"]] = r["pesq"]
    rows = [dict(row, kbps=best["kbps"]) for row in table.values()]
    return sorted(rows, key=lambda r: (r["set"], r.get("ours") if r.get("ours") is not None else -1.0))


def summary_table(payload: dict) -> str:
    lines = [f"{'set':15s} {'system':12s} {'n_q':>3s} {'kbps':>6s} {'PESQ':>6s} {'STOI':>6s} {'mel':>6s}"]
    for r in payload["results"]:
        f = lambda v: f"{v:6.3f}" if v is not None else "   n/a"  # noqa: E731
        lines.append(f"{r['set']:15s} {r['system']:12s} {r['n_q'] or '':>3} {r['kbps']:6.2f} {f(r['pesq'])} "
                     f"{f(r['stoi'])} {f(r['mel_distance'])}")
    if payload.get("speed"):
        s = payload["speed"]
        lines.append(f"speed: encode {s['encode_x_realtime']}x, decode {s['decode_x_realtime']}x real time "
                     f"({s['device']}, {s['threads']} threads)")
    for r in payload["results"]:
        gap = r.get("ours_pesq_gap")
        if gap and gap["low"] is not None:
            lines.append(f"PESQ of ours at {max(payload['model']['kbps_levels'].values()):.2f} kbps minus {r['system']} "
                         f"on {r['set']}: {gap['mean']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] (95%, "
                         f"{gap['n']} clips, paired)")
    voices = voice_table(payload)
    if voices:
        systems = [k for k in ("codec2-3200", "opus-6k", "opus-8k") if any(k in v for v in voices)]
        lines.append(f"PESQ per voice (ours at {voices[0]['kbps']:.2f} kbps): "
                     f"{'set':15s} {'speaker':18s} {'ours':>6s} " + " ".join(f"{k:>11s}" for k in systems))
        f = lambda v: f"{v:6.3f}" if v is not None else "   n/a"  # noqa: E731
        for v in voices:
            lines.append(f"{'':>38s}{v['set']:15s} {v['speaker']:18s} {f(v.get('ours'))} "
                         + " ".join(f"{f(v.get(k)):>11s}" for k in systems))
    lines += [f"note: {n}" for n in payload["notes"]]
    return "\n".join(lines)
