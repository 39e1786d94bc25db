"""Does the codec's quality depend on the input's level, and does coding at one level (`input_level_db`) fix it?

Every crop the codec trains on is read at its recorded level, so it has heard the levels of its corpus and no
others; a louder or quieter voice is a new input in a way a classic codec (which codes a frame's energy apart)
never sees. This study codes `codec eval`'s clips (the held-out synthetic and real test speakers, and the other
real voices) at their own level and scaled by fixed offsets (the output scaled back, so PESQ compares like with
like), twice: with the codec as it codes (`ModelConfig.input_level_db`: none for a codec trained before it) and
with every input scaled to the training corpus's median speech level (`codec.data.corpus_speech_level_db`).
PESQ-WB at the codec's top rate, each condition paired against the clip at its own level, 95% intervals over clips.

    python scripts/codec_level_study.py CODEC_RUN CORPUS_DIR OUT.json [--offsets -12,-6,6] [--clips 18]
"""

from __future__ import annotations

import argparse

import numpy as np

from workbench.codec.config import PRESETS
from workbench.codec.data import corpus_speech_level_db, open_training_data
from workbench.codec.evaluate import corpus_clips, real_clips
from workbench.codec.metrics import pesq_wb
from workbench.codec.stream import reconstruct
from workbench.codec.train import load_codec
from workbench.core.audio import speech_level_db
from workbench.core.config import override
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json
from workbench.data.loaders import REAL_SPEECH_DIRS, corpus_speakers
from workbench.eval.stats import mean_interval


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("codec"), p.add_argument("corpus"), p.add_argument("out")
    p.add_argument("--offsets", default="-12,-6,6", help="dB offsets applied to every clip")
    p.add_argument("--clips", type=int, default=18)
    args = p.parse_args()
    try:  # no checkpoint, no corpus, a silent corpus: one line
        codec, _ = load_codec(args.codec, "cpu")
        target = corpus_speech_level_db(open_training_data(args.corpus)[0], seed=0)
    except (UserError, FileNotFoundError, ValueError) as err:
        p.error(str(err))
    cfg = PRESETS["laptop"].eval
    leveled = codec.__class__(override(codec.cfg, input_level_db=target))
    leveled.load_state_dict(codec.state_dict())
    leveled.eval()
    sets = {"synthetic-test": corpus_clips(args.corpus, args.clips, cfg.clip_seconds),
            "real-test": corpus_clips(args.corpus, args.clips, cfg.clip_seconds, "real"),
            "real-speech": real_clips(REAL_SPEECH_DIRS[1], 8, cfg.clip_seconds, corpus_speakers(args.corpus))}
    conds = [0.0] + [float(x) for x in args.offsets.split(",")]

    def coded_pesq(model, audio: np.ndarray, gain_db: float) -> float:
        g = 10 ** (gain_db / 20)
        return pesq_wb(audio, reconstruct(model, np.clip(audio * g, -1, 1)) / g)

    result = {"codec_input_level_db": codec.cfg.input_level_db, "corpus_level_db": target, "sets": {}}
    for name, clips in sets.items():
        if not clips:  # a corpus without real speech, a folder without speech: nothing to code
            continue
        part = {"clips": len(clips), "level_db": [round(speech_level_db(c.audio), 1) for c in clips]}
        for label, model in (("as trained", codec), (f"at {target} dBFS", leveled)):
            rows = [{f"{o:+g} dB": coded_pesq(model, c.audio, o) for o in conds} for c in clips]
            part[label] = {"own": mean_interval([r["+0 dB"] for r in rows]),
                           "vs_own": {k: mean_interval([r[k] - r["+0 dB"] for r in rows]) for k in rows[0] if k != "+0 dB"},
                           "rows": rows}
            print(name, label, {k: round(v["mean"], 3) for k, v in part[label]["vs_own"].items()},
                  "own", round(part[label]["own"]["mean"], 3))
        result["sets"][name] = part
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
