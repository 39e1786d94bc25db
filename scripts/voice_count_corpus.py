"""A study corpus with fewer or more training voices of one kind, for measuring what the number of voices buys.

Writes a corpus folder next to nothing it copies: every file of SOURCE is linked, only manifest.jsonl is rewritten.

- `--keep-every N`: keep every N-th training speaker of `--source` (sorted by name), and multiply the sampling
  weight of the kept recordings so that kind keeps its share of the crops (the number of voices changes, not how
  much of the batch they are);
- `--add FOLDER`: add every audio file of FOLDER as a one-file training recording of its own speaker (LibriSpeech
  names: the number before the first '-'), speakers the corpus already holds or `--exclude` names left out, weighted
  so the added files make `--share` of that kind's crops.

The codec README's voice-count figures: `--keep-every 2` (7 of the 14 real training voices) and `--add
../shared/data/real-speech/librispeech_train-clean-100_1utt_per_speaker --exclude 87,103,233,328` (the speakers
`codec eval` scores), then `codec train --corpus DST` and `codec eval --corpus SOURCE`.

    python scripts/voice_count_corpus.py SOURCE DST [--source real] (--keep-every N | --add FOLDER [--share 0.33])
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import soundfile as sf

from workbench.core.errors import UserError
from workbench.core.io import atomic_write_text

AUDIO = (".flac", ".wav")


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


def add_voices(rows: list[dict], source: str, folder: Path, exclude: set[str], share: float) -> list[dict]:
    """Rows plus one training recording per audio file of `folder` whose speaker is new, weighted to `share` of
    `source`'s crops."""
    if not 0 < share < 1:
        raise UserError(f"--share must be in (0, 1) (got {share})")
    if not _train_rows(rows, source):
        raise UserError(f"the corpus has no {source} training recordings to add voices beside")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    have = {r["speaker"] for r in rows} | exclude
    template = _train_rows(rows, source)[0]
    added = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in AUDIO):
        speaker = f"librispeech-{path.name.split('-')[0]}"
        if speaker not in have:
            added.append(dict(template, id=f"extra-{path.stem}", speaker=speaker, audio=str(path.resolve()),
                              duration=round(sf.info(str(path)).duration, 3), text="", num_words=0,
                              exact_alignment=False, alignment=f"unaligned-{path.stem}.json",  # audio only
                              book="extra", chapter=0))
            have.add(speaker)
    if not added:
        raise UserError(f"{folder}: no audio file of a speaker the corpus lacks ({', '.join(AUDIO)})")
    weight = share / (1 - share) * _mass(_train_rows(rows, source)) / sum(r["duration"] for r in added)
    return rows + [dict(r, sampling_weight=weight) for r in added]


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
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--keep-every", type=int)
    how.add_argument("--add", type=Path)
    p.add_argument("--exclude", default="", help="LibriSpeech speaker numbers not to add, comma-separated")
    p.add_argument("--share", type=float, default=1 / 3, help="share of the kind's crops the added files make")
    args = p.parse_args()
    manifest = args.src / "manifest.jsonl"
    if not manifest.is_file():
        p.error(f"{args.src}: not a corpus folder (no manifest.jsonl)")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    try:
        if args.keep_every is not None:
            rows = keep_every(rows, args.source, args.keep_every)
        else:
            exclude = {f"librispeech-{n}" for n in args.exclude.split(",") if n}
            rows = add_voices(rows, args.source, args.add, exclude, args.share)
    except UserError as err:
        p.error(str(err))
    write_corpus(args.src, args.dst, rows)
    train = _train_rows(rows, args.source)
    print(f"{args.dst}: {len({r['speaker'] for r in train})} {args.source} training voices, "
          f"{sum(r['duration'] for r in train) / 3600:.2f} h")


if __name__ == "__main__":
    main()
