"""A study corpus with fewer training voices of one kind, for measuring what the number of voices buys.

Writes a corpus folder next to nothing it copies: every file of SOURCE is linked, only manifest.jsonl is rewritten.
`--keep-every N` keeps every N-th training speaker of `--source` (sorted by name) and multiplies the sampling
weight of the kept recordings so that kind keeps its share of the crops (the number of voices changes, not how
much of the batch they are). More voices are the corpus's own setting (`data build --extra-voices FOLDER`).

The codec README's voice-count figures: `--keep-every 2` (7 of the 14 real training voices), then `codec train
--corpus DST` and `codec eval --corpus SOURCE`.

    python scripts/voice_count_corpus.py SOURCE DST [--source real] --keep-every N
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.core.errors import UserError
from workbench.core.io import atomic_write_text


def _train_rows(rows: list[dict], source: str) -> list[dict]:
    return [r for r in rows if r["split"] == "train" and r.get("source", "synthetic") == source]


def _mass(rows: list[dict]) -> float:
    return sum(r["duration"] * r.get("sampling_weight", 1.0) for r in rows)


def keep_every(rows: list[dict], source: str, n: int) -> list[dict]:
    """Rows with only every n-th training speaker of `source`, the kept ones reweighted to the old crop share."""
    if n < 1:
        raise UserError(f"--keep-every must be at least 1 (got {n})")
    train = _train_rows(rows, source)
    if not train:
        raise UserError(f"the corpus has no {source} training recordings")
    speakers = sorted({r["speaker"] for r in train})
    kept = set(speakers[::n])
    out = [r for r in rows if r not in train or r["speaker"] in kept]
    scale = _mass(train) / _mass(_train_rows(out, source))
    return [dict(r, sampling_weight=r.get("sampling_weight", 1.0) * scale) if r in train else r for r in out]


def write_corpus(src: Path, dst: Path, rows: list[dict]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name != "manifest.jsonl" and not (dst / item.name).exists():
            (dst / item.name).symlink_to(item.resolve())
    atomic_write_text(dst / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path), p.add_argument("dst", type=Path)
    p.add_argument("--source", default="real", choices=("real", "synthetic"))
    p.add_argument("--keep-every", type=int, required=True)
    args = p.parse_args()
    manifest = args.src / "manifest.jsonl"
    if not manifest.is_file():
        p.error(f"{args.src}: not a corpus folder (no manifest.jsonl)")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    try:
        rows = keep_every(rows, args.source, args.keep_every)
    except UserError as err:
        p.error(str(err))
    write_corpus(args.src, args.dst, rows)
    train = _train_rows(rows, args.source)
    print(f"{args.dst}: {len({r['speaker'] for r in train})} {args.source} training voices, "
          f"{sum(r['duration'] for r in train) / 3600:.2f} h")


if __name__ == "__main__":
    main()
