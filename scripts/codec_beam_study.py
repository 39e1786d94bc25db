"""How much does the RVQ beam search buy over greedy coding, clip by clip?

`codec eval --rvq-beam B` gives each beam's mean PESQ; this study codes the same held-out clips (the corpus's
synthetic and real test segments, as `codec eval` picks them) with every beam width and reports each width's mean
PESQ-WB at the codec's top rate and its paired difference from the first width, with a 95% interval over clips.

    python scripts/codec_beam_study.py RUN_DIR CORPUS_DIR OUT.json [--beams 1,8,16,32,64] [--clips 54]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from workbench.codec.evaluate import Clip, corpus_clips
from workbench.codec.metrics import measure
from workbench.codec.model import Codec
from workbench.codec.stream import decode_long, encode_long, level_gain
from workbench.codec.train import load_codec
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json
from workbench.eval.stats import mean_interval


def beam_study(codec: Codec, sets: dict[str, list[Clip]], beams: list[int], chunk_seconds: float = 10.0) -> dict:
    """Per set and beam width: mean PESQ-WB at the top rate, and the paired gap to `beams[0]` over the clips."""
    out, config = {}, codec.cfg
    for name, clips in sets.items():
        pesq = {}
        for beam in beams:
            codec.cfg = dataclasses.replace(config, rvq_beam=beam)  # only the encoder's search reads it
            try:
                pesq[beam] = [measure(c.audio, decode_long(codec, encode_long(codec, c.audio, None, chunk_seconds),
                                                           chunk_seconds)[: len(c.audio)].numpy()
                                      / level_gain(codec, c.audio))["pesq"] for c in clips]
            finally:
                codec.cfg = config
        out[name] = {"clips": len(clips), "beams": {
            str(b): {"pesq": round(float(np.nanmean(v)), 4),
                     "minus_first": None if b == beams[0] else mean_interval(
                         [a - f for a, f in zip(v, pesq[beams[0]])])} for b, v in pesq.items()}}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run"), p.add_argument("corpus"), p.add_argument("out")
    p.add_argument("--beams", default="1,8,16,32,64", help="beam widths, comma-separated (the first is the reference)")
    p.add_argument("--clips", type=int, default=54, help="clips of 8 s per set")
    args = p.parse_args()
    try:
        beams = [int(b) for b in args.beams.split(",")]
        if not beams or min(beams) < 1 or args.clips < 1:
            raise UserError(f"--beams {args.beams} must be widths >= 1 and --clips >= 1")
        codec, _ = load_codec(args.run)
        sets = {s: clips for s, source in (("synthetic-test", "synthetic"), ("real-test", "real"))
                if (clips := corpus_clips(args.corpus, args.clips, 8.0, source))}
        if not sets:
            raise UserError(f"{args.corpus}: no test segment has speech")
        result = beam_study(codec, sets, beams)
    except (UserError, ValueError, FileNotFoundError) as err:
        p.error(str(err))
    for name, s in result.items():
        for b, row in s["beams"].items():
            gap = row["minus_first"]
            interval = "" if gap is None or gap["low"] is None else f" [{gap['low']:+.3f}, {gap['high']:+.3f}]"
            print(f"{name:>15} beam {b:>3}: PESQ {row['pesq']:.3f}"
                  + ("" if gap is None else f", minus beam {beams[0]}: {gap['mean']:+.3f}{interval}"))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
