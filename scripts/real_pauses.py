"""Where do the real recordings' long pauses lie: at the joins of LibriSpeech utterances, or inside them?

The corpus joins each chapter's consecutive utterances back to back into one long-form recording
(`workbench.data.loaders.join_chapter`, no gap added). The eighth timed run's Griffin stream held a pause unit for
minutes (main README, "Long-form generation"); trimming silence at the joins would only help if the long pauses
are there. This study measures, with a frame energy detector (20 ms frames; silent = 35 dB below the utterance's
95th-percentile frame), each utterance's leading and trailing silence, so the silence at every join (one
utterance's tail plus the next one's head), and the pauses inside utterances.

    python scripts/real_pauses.py [LIBRISPEECH_DIR] [--out pauses.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from workbench.core.io import atomic_write_json
from workbench.data.loaders import MINI_LIBRISPEECH, chapter_runs, open_dataset

FRAME_RATE = 50  # frames per second
SILENCE_DB = 35.0  # below the utterance's loud frames


def silent_frames(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """True for each 20 ms frame at least SILENCE_DB below the utterance's 95th-percentile frame energy."""
    hop = sample_rate // FRAME_RATE
    n = len(audio) // hop
    energy = 10 * np.log10(np.square(audio[: n * hop].reshape(n, hop)).mean(1) + 1e-10)
    return energy < np.percentile(energy, 95) - SILENCE_DB


def runs_of(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a boolean sequence."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def measure(root) -> dict:
    joins, inside, seconds = [], [], 0.0
    for run in chapter_runs(open_dataset(root)):
        edges = []
        for rec in run:
            silent = silent_frames(rec.load())
            speech = np.flatnonzero(~silent)
            if len(speech) == 0:
                continue
            edges.append((speech[0] / FRAME_RATE, (len(silent) - 1 - speech[-1]) / FRAME_RATE))
            inside += [n / FRAME_RATE for n in runs_of(silent[speech[0]: speech[-1] + 1])]
            seconds += len(silent) / FRAME_RATE
        joins += [tail + head for (_, tail), (head, _) in zip(edges, edges[1:])]
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
    result = measure(args.root)
    print(json.dumps(result, indent=1))
    if args.out:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
