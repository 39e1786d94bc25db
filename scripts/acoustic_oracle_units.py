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
    python scripts/acoustic_oracle_units.py means CODEC_DIR CORPUS_DIR OUT.json [--preset laptop]
                               [--unit-pairs PAIRS_DIR --tokenizer TOKENIZER_DIR] [--phone-pairs OUT_PAIRS_DIR]

`means` asks what a regression on phones could say at best: the eval's clips decoded by the codec from their own
latent averaged over each phone segment (true durations, the speaker's own voice), and over every frame of the same
phone in the clip (a phone -> latent table), beside the codec's reconstruction; and, no model at all, from tables
counted on the training pairs over every training speaker: each frame the mean latent of its semantic unit
(`--unit-pairs`) or of its phone (`--phone-pairs`). Pooled pocketsphinx WER.

The pairs keep the tokenizer's and codec's fingerprints (so `acoustic train` reuses them as they are) and add
`phones.json`, the inventory (id 0 = pause). In the evaluation every recording the clips and prompts are cut from
is read through a wrapper that remembers the phones of what it returned, and the synthesizer's `semantic_tokens`
looks them up (by the audio's first half second): the clips, prompts and measures are those of `acoustic eval`
(the swap test's prompts: the corpus's held-out voices, whose phones are known).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from workbench.core.config import override
from workbench.core.errors import UserError
from workbench.core.io import atomic_path, atomic_write_json
from workbench.data.loaders import Recording, open_dataset
from workbench.tokenizer.config import TOKEN_RATE
from workbench.tokenizer.metrics import PAUSE, frame_labels

KEY_SAMPLES = 8000  # the first half second at 16 kHz names an audio excerpt


def phone_ids(phones: list, num_frames: int, inventory: dict[str, int], rate: float = TOKEN_RATE) -> np.ndarray:
    """The id of the phone at the centre of each frame (25 Hz: the semantic tokens' rate) (pause, or a phone the
    inventory lacks: 0)."""
    return np.array([inventory.get(p, 0) for p in frame_labels(phones, num_frames, rate)], dtype=np.int32)


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


@contextmanager
def remembered_excerpts():
    """While open, every excerpt read from a corpus recording is remembered with its recording's phones and its
    start (by its first half second); yields the dict that `excerpt_phones` reads."""
    excerpts: dict[str, tuple[list, float]] = {}
    plain_load = Recording.load

    def load(self, start: float = 0.0, duration: float | None = None, sample_rate: int = 16_000) -> np.ndarray:
        audio = plain_load(self, start, duration, sample_rate)
        key, phones = _key(audio), self.alignment_data()["phones"]
        if key in excerpts and excerpts[key] != (phones, start):
            raise UserError(f"two excerpts start with the same half second ({self.id} at {start:.2f} s)")
        excerpts[key] = (phones, start)
        return audio

    Recording.load = load
    try:
        yield excerpts
    finally:
        Recording.load = plain_load


def excerpt_phones(excerpts: dict, audio: np.ndarray) -> list[tuple[str, float, float]]:
    """The phones of an excerpt (or of any prefix of it), in its own time."""
    if _key(audio) not in excerpts:
        raise UserError("an excerpt the evaluation did not read from the corpus has no phone labels")
    phones, start = excerpts[_key(audio)]
    return [(p, s - start, e - start) for p, s, e in phones if e > start]


def evaluate_with_phones(run: Path, corpus_dir: Path, reports: Path, preset: str) -> dict:
    from workbench.acoustic.config import PRESETS
    from workbench.acoustic.evaluate import evaluate
    from workbench.acoustic.synthesize import Synthesizer

    synth = Synthesizer.load(run)
    inventory = json.loads((Path(synth.meta["pairs"]) / "phones.json").read_text())
    plain_tokens = synth.semantic_tokens
    with remembered_excerpts() as excerpts:
        synth.semantic_tokens = lambda audio: phone_ids(excerpt_phones(excerpts, audio), len(plain_tokens(audio)),
                                                        inventory).astype(np.int64)
        # voices from outside the corpus have no alignment to read phones from: the corpus's own held-out voices
        # are the swap test's prompts (as at the laptop preset)
        payload = evaluate(synth, override(PRESETS[preset].eval, real_prompts=0), corpus_dir, progress=True)
    payload = {"preset": preset, "checkpoint": str(run), "units": "oracle phone labels", **payload}
    reports.mkdir(parents=True, exist_ok=True)
    atomic_write_json(reports / "acoustic.json", payload)
    return payload


def segment_means(latent: torch.Tensor, phones: list, frame_rate: float) -> torch.Tensor:
    """latent (D, T) with every phone's frames (centres inside it) replaced by their mean; pauses too."""
    out = latent.clone()
    centres = (torch.arange(latent.shape[1]) + 0.5) / frame_rate
    for _, start, end in phones:
        inside = (centres >= start) & (centres < end)
        if inside.any():
            out[:, inside] = latent[:, inside].mean(1, keepdim=True)
    return out


def phone_means(latent: torch.Tensor, phones: list, frame_rate: float) -> torch.Tensor:
    """latent (D, T) with every frame replaced by the mean over the excerpt of the frames of its phone (a table
    phone -> latent, in this speaker's voice, read with the true durations)."""
    labels = frame_labels(phones, latent.shape[1], frame_rate)
    out = latent.clone()
    for name in set(labels):
        where = torch.tensor([lab == name for lab in labels])
        out[:, where] = latent[:, where].mean(1, keepdim=True)
    return out


def token_table(pairs_dir: Path, codebooks: torch.Tensor, vocab: int) -> torch.Tensor:
    """(vocab, D): the mean codec latent of the training frames read by each semantic id, over every speaker of
    the pairs' train split (`acoustic.data.latent_table`) -- a lookup that speaks in an average voice."""
    from workbench.acoustic.data import Rates, latent_table, load_pairs

    rates = Rates(**json.loads((pairs_dir / "pairs.json").read_text())["rates"])
    return latent_table(load_pairs(pairs_dir, "train"), rates, codebooks, vocab)


@torch.no_grad()
def averaged_latent_study(codec_dir: Path, corpus_dir: Path, preset: str, unit_pairs: Path | None = None,
                          phone_pairs: Path | None = None, tokenizer_dir: Path | None = None) -> dict:
    """How intelligible is the codec's latent once averaged the way a regression on phones would average it? The
    eval's clips, decoded by the codec from their own latent (the codec's reconstruction), from its per-phone-segment
    means and from its per-phone means; with `unit_pairs` (+ `tokenizer_dir`) and `phone_pairs` also from tables
    counted on the training pairs: each frame the mean latent of its semantic unit / of its phone over every
    training speaker (no model, an average voice). Pooled pocketsphinx WER of each, by kind of voice."""
    from workbench.acoustic.config import PRESETS
    from workbench.acoustic.data import Rates, upsample_semantic
    from workbench.acoustic.evaluate import eval_clips
    from workbench.codec.stream import encode_long, level_gain
    from workbench.codec.train import load_codec
    from workbench.eval.asr import transcribe_many, word_error_rate
    from workbench.tokenizer.model import Tokenizer
    from workbench.tokenizer.windowed import tokenize_windowed

    codec, _ = load_codec(codec_dir, rvq_beam=1)
    codebooks = torch.stack([vq.codebook for vq in codec.quantizer.levels])
    cfg = PRESETS[preset]
    with remembered_excerpts() as excerpts:
        clips = eval_clips(corpus_dir, cfg.eval.clips, cfg.eval.clip_seconds, cfg.decode.prompt_seconds)
        phones = [excerpt_phones(excerpts, clip.audio) for clip in clips]
    rate = codec.cfg.frame_rate
    ways = {"codec": lambda z, p, clip: z, "phone segment means": lambda z, p, clip: segment_means(z, p, rate),
            "phone means": lambda z, p, clip: phone_means(z, p, rate)}

    def from_table(table: torch.Tensor, ids: np.ndarray, frames: int) -> torch.Tensor:
        return table[torch.as_tensor(ids[:frames], dtype=torch.long)].T  # (D, frames)

    if unit_pairs is not None:
        tokenizer = Tokenizer.load(tokenizer_dir)
        units = token_table(unit_pairs, codebooks, tokenizer.num_units)
        rates = Rates(**json.loads((unit_pairs / "pairs.json").read_text())["rates"])
        ways["unit table"] = lambda z, p, clip: from_table(
            units, upsample_semantic(tokenize_windowed(tokenizer, clip.audio), rates, 0, z.shape[1]), z.shape[1])
    if phone_pairs is not None:
        inventory = json.loads((phone_pairs / "phones.json").read_text())
        by_phone = token_table(phone_pairs, codebooks, max(inventory.values()) + 1)
        ways["phone table"] = lambda z, p, clip: from_table(by_phone, phone_ids(p, z.shape[1], inventory, rate),
                                                            z.shape[1])
    heard = {name: [] for name in ways}
    for clip, clip_phones in zip(clips, phones):
        latent = codec.quantizer.decode(encode_long(codec, clip.audio)[:, None])[0]  # (D, T)
        for name, way in ways.items():
            wav = codec.decoder(way(latent, clip_phones, clip)[None])[0, 0].numpy()[: len(clip.audio)]
            heard[name].append(wav / level_gain(codec, clip.audio))
    transcripts = {name: transcribe_many(wavs) for name, wavs in heard.items()}
    table = []
    for kind in ("synthetic", "real", "all"):
        pick = [i for i, c in enumerate(clips) if kind in ("all", c.kind)]
        if pick:
            table.append({"kind": kind, "clips": len(pick), **{
                name: word_error_rate([clips[i].text for i in pick], [transcripts[name][i] for i in pick])
                for name in ways}})
    return {"codec": str(codec_dir), "table": table}


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
    m = sub.add_parser("means", help="WER of the eval clips decoded from their latent averaged per phone")
    m.add_argument("codec", type=Path)
    m.add_argument("corpus", type=Path)
    m.add_argument("out", type=Path, help="the table as JSON")
    m.add_argument("--preset", default="laptop")
    m.add_argument("--unit-pairs", type=Path, default=None, help="SoundStorm's pairs: add a unit -> latent table")
    m.add_argument("--tokenizer", type=Path, default=None, help="the tokenizer of --unit-pairs")
    m.add_argument("--phone-pairs", type=Path, default=None, help="the phone-labelled pairs: add a phone -> latent "
                   "table")
    args = parser.parse_args()
    try:  # a missing checkpoint, corpus or pairs folder, pairs without phones: one line
        if args.command == "pairs":
            print(json.dumps(make_pairs(args.pairs_dir, args.corpus, args.out)))
        elif args.command == "means":
            if (args.unit_pairs is None) != (args.tokenizer is None):
                raise UserError("--unit-pairs and --tokenizer go together")
            result = averaged_latent_study(args.codec, args.corpus, args.preset, args.unit_pairs, args.phone_pairs,
                                           args.tokenizer)
            atomic_write_json(args.out, result)
            print(json.dumps(result["table"], indent=1))
        else:
            from workbench.acoustic.evaluate import summary_text

            print(summary_text(evaluate_with_phones(args.run, args.corpus, args.reports, args.preset)))
    except (UserError, ValueError, FileNotFoundError) as err:
        parser.error(str(err))


if __name__ == "__main__":  # transcribe_many starts processes by spawning: they re-import this module
    main()
