"""Do the semantic units depend on how loud the speech was recorded?

The tokenizer reads log-mel frames normalised by its training set's mean and spread, so a recording 12 dB quieter
shifts every input frame by the same amount; a speaker-invariant unit should not move with it. (Tokenizers with
`input_level_db`, the default since 2026-12-06, scale every input to one speech level first: for them this study
checks that the levelling holds, clipped peaks aside.) This study encodes
`codec eval`'s clips (held-out synthetic and real test speakers) at their own level and scaled by fixed offsets,
and reports the share of 25 Hz units that stay the same, for the learned tokenizer and the MFCC k-means baseline.

    python scripts/tokenizer_level_study.py CORPUS_DIR OUT.json [--preset laptop] [--offsets -12,-6,6] [--clips 18]
"""

from __future__ import annotations

import argparse

import numpy as np

from workbench.codec.evaluate import corpus_clips
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json
from workbench.core.paths import tokenizer_dir
from workbench.eval.stats import mean_interval
from workbench.tokenizer.model import Tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus"), p.add_argument("out")
    p.add_argument("--preset", default="laptop")
    p.add_argument("--offsets", default="-12,-6,6", help="dB offsets applied to every clip")
    p.add_argument("--clips", type=int, default=18)
    args = p.parse_args()
    offsets = [float(x) for x in args.offsets.split(",")]
    try:
        sets = {"synthetic-test": corpus_clips(args.corpus, args.clips, 8.0),
                "real-test": corpus_clips(args.corpus, args.clips, 8.0, "real")}
    except (UserError, FileNotFoundError, ValueError) as err:  # not a corpus folder
        p.error(str(err))
    sets = {name: clips for name, clips in sets.items() if clips}  # a corpus without real speech has no real set
    result = {}
    for kind in ("learned", "mfcc_kmeans"):
        try:  # a tokenizer not trained at this preset: one line
            tok = Tokenizer.load(tokenizer_dir(args.preset, kind))
        except (UserError, FileNotFoundError, ValueError) as err:
            p.error(str(err))
        for name, clips in sets.items():
            own = [tok.units(c.audio).numpy() for c in clips]
            same = {f"{o:+g} dB": mean_interval([
                float(np.mean(tok.units(np.clip(c.audio * 10 ** (o / 20), -1, 1)).numpy() == u))
                for c, u in zip(clips, own)]) for o in offsets}
            result.setdefault(kind, {})[name] = {"clips": len(clips), "same_units": same}
            print(kind, name, {k: round(v["mean"], 3) for k, v in same.items()})
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
