"""Is it the units or the acoustic model? SoundStorm trained and evaluated on the corpus's phone labels instead of
the tokenizer's units.

The corpus knows every frame's phone: exactly for the synthetic voices (espeak-ng + mbrola), by forced alignment
for the real ones (`workbench.data.align`). This study swaps the semantic tokens for those phones -- the 25 Hz
frame's phone (`tokenizer.metrics.frame_labels`), as an id in the corpus's phone inventory -- everywhere SoundStorm
reads them: in its training pairs (the same codec codes, the same recordings) and in the evaluation's clips and
prompts. Everything else is the job's recipe. If the words came back with perfect phones, the units hold them back;
if they stay where they are, the acoustic model (its size, its steps) does.

    python scripts/acoustic_oracle_units.py pairs PAIRS_DIR CORPUS_DIR OUT_PAIRS_DIR   # phone-labelled copy
    python -m workbench acoustic train --preset laptop --pairs OUT_PAIRS_DIR --out RUN ...   # the usual training
    python scripts/acoustic_oracle_units.py eval RUN CORPUS_DIR REPORTS_DIR [--preset laptop] # acoustic eval, phones

The pairs keep the tokenizer's and codec's fingerprints (so `acoustic train` reuses them as they are) and add
`phones.json`, the inventory (id 0 = pause). In the evaluation every recording the clips and prompts are cut from
is read through a wrapper that remembers the phones of what it returned, and the synthesizer's `semantic_tokens`
looks them up (by the audio's first half second): the clips, prompts and measures are those of `acoustic eval`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from workbench.core.config import override
from workbench.core.errors import UserError
from workbench.core.io import atomic_path, atomic_write_json
from workbench.data.loaders import Recording, open_dataset
from workbench.tokenizer.config import TOKEN_RATE
from workbench.tokenizer.metrics import PAUSE, frame_labels

KEY_SAMPLES = 8000  # the first half second at 16 kHz names an audio excerpt


def phone_ids(phones: list, num_frames: int, inventory: dict[str, int]) -> np.ndarray:
    """The id of the phone at the centre of each 25 Hz frame (pause, or a phone the inventory lacks: 0)."""
    return np.array([inventory.get(p, 0) for p in frame_labels(phones, num_frames, TOKEN_RATE)], dtype=np.int32)


def make_pairs(pairs_dir: Path, corpus_dir: Path, out: Path, inventory: dict[str, int] | None = None) -> dict:
    """A copy of the pairs in `pairs_dir` with phone ids as the semantic tokens; the inventory (phone -> id, pause
    0) is every phone of the alignments unless given (a phone it lacks reads as a pause)."""
    meta = json.loads((pairs_dir / "pairs.json").read_text())
    if not meta.get("complete"):
        raise UserError(f"{pairs_dir}: the pairs are not complete (run acoustic train once first)")
    rows = [json.loads(line) for line in (pairs_dir / "manifest.jsonl").read_text().splitlines()]
    recordings = {r.id: r for r in open_dataset(corpus_dir).recordings}
    phones_of = {row["id"]: recordings[row["id"]].alignment_data()["phones"] for row in rows}
    if inventory is None:
        names = sorted({p[0] for phones in phones_of.values() for p in phones} - {PAUSE})
        inventory = {PAUSE: 0, **{name: i + 1 for i, name in enumerate(names)}}
    # the model's semantic embedding has the tokenizer's vocabulary (the pairs keep its fingerprint, so that
    # `acoustic train` reuses them): the phone ids must fit in it
    if max(inventory.values()) >= meta["semantic_vocab"]:
        raise UserError(f"{len(inventory)} phones do not fit the model's {meta['semantic_vocab']} semantic ids")
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        with np.load(pairs_dir / row["path"]) as z:
            codes, tokens = z["codes"], len(z["semantic"])
        (out / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / row["path"]) as tmp:
            np.savez(tmp, semantic=phone_ids(phones_of[row["id"]], tokens, inventory), codes=codes)
    shutil.copy(pairs_dir / "manifest.jsonl", out / "manifest.jsonl")
    atomic_write_json(out / "phones.json", inventory)
    atomic_write_json(out / "pairs.json", {**meta, "oracle": "phone labels in place of the tokenizer's units"})
    return {"recordings": len(rows), "phones": len(inventory)}


def _key(audio: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(audio[:KEY_SAMPLES], dtype=np.float32).tobytes(), digest_size=16).hexdigest()


def evaluate_with_phones(run: Path, corpus_dir: Path, reports: Path, preset: str) -> dict:
    from workbench.acoustic.config import PRESETS
    from workbench.acoustic.evaluate import evaluate
    from workbench.acoustic.synthesize import Synthesizer

    synth = Synthesizer.load(run)
    inventory = json.loads((Path(synth.meta["pairs"]) / "phones.json").read_text())
    excerpts: dict[str, tuple[list, float]] = {}  # audio key -> (the recording's phones, the excerpt's start)
    plain_load = Recording.load

    def load(self, start: float = 0.0, duration: float | None = None, sample_rate: int = 16_000) -> np.ndarray:
        audio = plain_load(self, start, duration, sample_rate)
        key = _key(audio)
        phones = self.alignment_data()["phones"]
        if key in excerpts and excerpts[key] != (phones, start):
            raise UserError(f"two excerpts start with the same half second ({self.id} at {start:.2f} s)")
        excerpts[key] = (phones, start)
        return audio

    plain_tokens = synth.semantic_tokens

    def semantic_tokens(audio: np.ndarray) -> np.ndarray:
        if _key(audio) not in excerpts:
            raise UserError("an excerpt the evaluation did not read from the corpus has no phone labels")
        phones, start = excerpts[_key(audio)]
        shifted = [(p, s - start, e - start) for p, s, e in phones if e > start]
        return phone_ids(shifted, len(plain_tokens(audio)), inventory).astype(np.int64)

    Recording.load = load
    synth.semantic_tokens = semantic_tokens
    try:
        # voices from outside the corpus have no alignment to read phones from: the corpus's own held-out voices
        # are the swap test's prompts (as at the laptop preset)
        payload = evaluate(synth, override(PRESETS[preset].eval, real_prompts=0), corpus_dir, progress=True)
    finally:
        Recording.load = plain_load
    payload = {"preset": preset, "checkpoint": str(run), "units": "oracle phone labels", **payload}
    reports.mkdir(parents=True, exist_ok=True)
    atomic_write_json(reports / "acoustic.json", payload)
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pairs", help="a copy of SoundStorm's training pairs with phone labels as the semantic tokens")
    p.add_argument("pairs_dir", type=Path)
    p.add_argument("corpus", type=Path)
    p.add_argument("out", type=Path)
    e = sub.add_parser("eval", help="acoustic eval of a model trained on those pairs, with the clips' phone labels")
    e.add_argument("run", type=Path)
    e.add_argument("corpus", type=Path)
    e.add_argument("reports", type=Path)
    e.add_argument("--preset", default="laptop")
    args = parser.parse_args()
    if args.command == "pairs":
        print(json.dumps(make_pairs(args.pairs_dir, args.corpus, args.out)))
    else:
        from workbench.acoustic.evaluate import summary_text

        print(summary_text(evaluate_with_phones(args.run, args.corpus, args.reports, args.preset)))


if __name__ == "__main__":
    main()
