"""Is the codec's gap on new voices a matter of capacity or of generalisation?

`codec eval` scores voices the codec never heard. This study scores, with the same measures and beside Codec2-3200,
clips of the training speakers' own recordings (heard in training) and the held-out test speakers' clips of
`codec eval` (the same clips), for one kind of voice (the real speech mixed into the corpus by default). If the codec beats Codec2 on
the voices it heard and loses on the ones it did not, the gap is generalisation (more voices, augmentation), not
capacity (a bigger or longer-trained decoder).

    python scripts/codec_heard_voices.py CODEC_RUN CORPUS_DIR OUT.json [--source real|synthetic] [--clips 28]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.codec.config import PRESETS, EvalConfig
from workbench.codec.evaluate import Clip, corpus_clips, evaluate_set, pick_clips
from workbench.codec.train import load_codec
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json
from workbench.data.loaders import open_dataset


def heard_clips(corpus: str | Path, n: int, seconds: float, source: str) -> list[Clip]:
    """`n` clips of `seconds` from the train split's recordings of one source, at 30% and 70% of each recording,
    spread over the recordings (so over the speakers)."""
    train = open_dataset(corpus, split="train")
    recs = sorted((r for r in train.recordings if r.source == source), key=lambda r: r.id)
    if not recs:
        raise UserError(f"{corpus}: no {source} training recordings")
    return pick_clips([(f"{r.id}@{s:.0f}s", lambda r=r, s=s: r.load(s, seconds), r.speaker) for r in recs
                       for s in (0.3 * r.duration, 0.7 * r.duration) if s + seconds <= r.duration], n)


def study(codec, corpus: str | Path, source: str, clips: int, cfg: EvalConfig) -> dict:
    out, tests = {}, cfg.real_test_clips if source == "real" else cfg.test_clips  # `codec eval`'s own clips
    for name, chosen in ((f"{source}-train (heard)", heard_clips(corpus, clips, cfg.clip_seconds, source)),
                         (f"{source}-test (new)", corpus_clips(corpus, tests, cfg.clip_seconds, source))):
        rows, notes, by_speaker = evaluate_set(codec, chosen, name, [codec.cfg.num_quantizers], cfg,
                                               systems=("codec2-3200",))
        out[name] = {"results": rows, "by_speaker": by_speaker, "notes": notes}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("codec"), p.add_argument("corpus"), p.add_argument("out")
    p.add_argument("--source", default="real", choices=("real", "synthetic"))
    p.add_argument("--clips", type=int, default=28, help="clips of the heard voices (the new voices: codec eval's)")
    p.add_argument("--preset", default="laptop", help="whose `codec eval` settings (clip length, chunks) to use")
    args = p.parse_args()
    if args.clips < 1:
        p.error("--clips must be at least 1")
    try:
        codec, _ = load_codec(args.codec, "cpu")
        result = study(codec, args.corpus, args.source, args.clips, PRESETS[args.preset].eval)
    except (UserError, FileNotFoundError, ValueError) as err:  # no checkpoint, no corpus: one line
        p.error(str(err))
    for name, part in result.items():
        for r in part["results"]:
            print(f"{name:>24}: {r['system']:<11} PESQ-WB {r['pesq']} STOI {r['stoi']} ({r['clips']} clips)")
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
