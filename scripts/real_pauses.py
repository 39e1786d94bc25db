"""Where do the real recordings' long pauses lie: at the joins of LibriSpeech utterances, or inside them?

The corpus joins each chapter's consecutive utterances back to back into one long-form recording
(`workbench.data.loaders.join_chapter`, no gap added). The eighth timed run's Griffin stream held a pause unit for
minutes (main README, "Long-form generation"); trimming silence at the joins would only help if the long pauses
are there. This study measures, with the frame energy detector the codec's level uses (`core.audio.speech_frames`:
20 ms frames; silent = 35 dB below the utterance's loudest 5%), each utterance's leading and trailing silence, so the silence at every join (one
utterance's tail plus the next one's head), and the pauses inside utterances.

    python scripts/real_pauses.py [LIBRISPEECH_DIR] [--out pauses.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from workbench.core.audio import LEVEL_FRAME_RATE, speech_frames
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json
from workbench.data.loaders import MINI_LIBRISPEECH, chapter_runs, open_dataset


def runs_of(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a boolean sequence."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def measure(root) -> dict:
    joins, inside, seconds = [], [], 0.0
    for run in chapter_runs(open_dataset(root)):
        edges = []
        for rec in run:
            frames = speech_frames(rec.load())
            if frames is None:
                continue
            silent = ~frames[1]
            speech = np.flatnonzero(~silent)
            edges.append((speech[0] / LEVEL_FRAME_RATE, (len(silent) - 1 - speech[-1]) / LEVEL_FRAME_RATE))
            inside += [n / LEVEL_FRAME_RATE for n in runs_of(silent[speech[0]: speech[-1] + 1])]
            seconds += len(silent) / LEVEL_FRAME_RATE
        joins += [tail + head for (_, tail), (head, _) in zip(edges, edges[1:])]
    if not joins or not inside:
        raise UserError(f"{root}: no run of consecutive utterances with speech to measure")
    joins, inside = np.array(joins), np.array(inside)

    def over(values: np.ndarray, limit: float) -> dict:
        long = values[values > limit]
        return {"count": int(len(long)), "seconds": round(float(long.sum()), 1)}

    return {"hours": round(seconds / 3600, 2), "joins": int(len(joins)),
            "join_seconds": {"median": round(float(np.median(joins)), 2), "p90": round(float(np.percentile(joins, 90)), 2),
                             "max": round(float(joins.max()), 2)},
            "joins_over_1s": over(joins, 1.0), "pauses_inside_over_1s": over(inside, 1.0),
            "pauses_inside_over_2s": over(inside, 2.0), "longest_pause_inside": round(float(inside.max()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(MINI_LIBRISPEECH))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    try:
        result = measure(args.root)
    except (UserError, FileNotFoundError, ValueError) as err:  # not a LibriSpeech folder, no speech: one line
        parser.error(str(err))
    print(json.dumps(result, indent=1))
    if args.out:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
