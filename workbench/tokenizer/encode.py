"""Encode a corpus into unit files for the language model.

Output layout (what workbench.lm reads):

    DIR/manifest.jsonl   one line per recording: {"id", "split", "path", "num_tokens", "speaker"}
    DIR/<path>           <split>/<id>.npy, a 1-D int32 array of units at 25 tokens/s
    DIR/tokens.json      which tokenizer (kind, K, fingerprint), corpus, hours, encode speed

Every file is written atomically and the manifest last. Re-running with the same tokenizer keeps the unit files
already written (resumable); a different tokenizer (other fingerprint) starts over. A recording that cannot be
encoded (unreadable, NaN, all silence) stops the run with an AudioError naming it, and what this run wrote is
removed again (no ``tokens.json {"complete": false}`` is left behind); an interrupted run (Ctrl-C, a kill)
keeps its files for the next run to reuse.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from workbench.core.audio import SILENCE_PEAK, AudioError
from workbench.core.io import atomic_path, atomic_write_json, atomic_write_text
from workbench.core.reuse import input_fingerprint, write_stamp
from workbench.data.loaders import open_dataset
from workbench.tokenizer.model import Tokenizer, fingerprint
from workbench.tokenizer.windowed import AudioSource, tokenize_windowed


def encode_corpus(tokenizer: Tokenizer, corpus_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  splits: Sequence[str] | None = None, progress: bool = True) -> dict[str, Any]:
    from tqdm.auto import tqdm

    torch.set_num_threads(tokenizer.config.threads)
    out = Path(out_dir)
    dataset = open_dataset(corpus_dir)
    recordings = [r for r in dataset.recordings if not splits or (r.split or "all") in splits]
    if not recordings:
        raise ValueError(f"{corpus_dir}: no recordings in split(s) {list(splits or [])}")
    print_ = fingerprint(tokenizer)
    meta_path = out / "tokens.json"
    reuse = _fingerprint_of(meta_path) == print_
    written: list[Path] = []
    if not reuse:  # claim the folder first: files left by an interrupted run are then known to be this tokenizer's
        if (out / "manifest.jsonl").exists():  # another tokenizer's manifest: its units are about to be replaced
            (out / "manifest.jsonl").unlink()
        atomic_write_json(meta_path, {"fingerprint": print_, "complete": False})
        written.append(meta_path)
    rows, seconds, wall, reused = [], 0.0, 0.0, 0
    try:
        for rec in tqdm(recordings, desc=f"encoding ({tokenizer.kind})", unit="recording", disable=not progress):
            split = rec.split or "all"
            rel = Path(split) / f"{rec.id}.npy"
            if reuse and (out / rel).exists():
                units = np.load(out / rel)
                reused += 1
            else:
                started = time.perf_counter()
                source = AudioSource.of(rec)
                units = tokenize_windowed(tokenizer, source).astype(np.int32)
                if source.peak < SILENCE_PEAK:  # every sample was read: no second pass over the file
                    raise AudioError(f"{rec.audio}: is all silence (peak below {SILENCE_PEAK:g}); there is "
                                     "nothing to encode")
                wall += time.perf_counter() - started
                seconds += rec.duration
                with atomic_path(out / rel) as tmp:
                    np.save(tmp, units)
                written.append(out / rel)
            rows.append({"id": rec.id, "split": split, "path": str(rel), "num_tokens": int(len(units)),
                         "speaker": rec.speaker})
    except Exception:  # a bad file: take back what this run wrote (an interrupt keeps it, to resume)
        for path in reversed(written):
            path.unlink(missing_ok=True)
        for folder in sorted({p.parent for p in written} | {out}, key=lambda d: len(d.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    summary = {
        "tokenizer": tokenizer.kind, "num_units": tokenizer.num_units, "fingerprint": print_, "token_rate_hz": 25.0,
        "corpus": str(corpus_dir), "recordings": len(rows), "reused": reused,
        "hours": round(sum(r["num_tokens"] for r in rows) / 25 / 3600, 4),
        "splits": {s: sum(r["split"] == s for r in rows) for s in sorted({r["split"] for r in rows})},
        "encode_seconds": round(wall, 2), "realtime_factor": round(seconds / wall, 1) if wall else None,
        "out": str(out), "complete": True,
    }
    atomic_write_json(meta_path, summary)
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    # what downstream reuse reads (`workbench.core.reuse.input_fingerprint`): these units of this corpus
    write_stamp(out, {"tokenizer": print_, "corpus": input_fingerprint(corpus_dir),
                      "splits": sorted(splits) if splits else None}, finished=True)
    return summary


def _fingerprint_of(meta_path: Path) -> str | None:
    """The fingerprint a token folder's tokens.json records (None: no file, or not one this module wrote)."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return meta.get("fingerprint") if isinstance(meta, dict) else None

