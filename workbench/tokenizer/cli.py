"""`python -m workbench tokenizer {train,encode,eval}`: train both tokenizers, encode a corpus for the LM, measure."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.core import validate
from workbench.core.cli import add_output_args, emit
from workbench.core.config import PRECISIONS, override, pick_preset
from workbench.core.errors import UserError
from workbench.core.paths import corpus_dir, run_dir


def register(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="semantic speech tokenizer: train, encode a corpus, evaluate")
    cmds = tok.add_subparsers(dest="tokenizer_cmd", required=True)

    train = cmds.add_parser("train", help="train the MFCC k-means baseline and the learned (HuBERT-style) tokenizer")
    train.add_argument("--preset", default="laptop", help="smoke | laptop | paper (default laptop)")
    train.add_argument("--corpus", default=None, help="a SynthBooks-Long corpus folder with a train split "
                       "(default data/build/<preset>)")
    train.add_argument("--out", default=None, help="output folder (default runs/tokenizer/<preset>); gets mfcc_kmeans/ and learned/")
    train.add_argument("--max-minutes", type=float, default=None, help="wall-clock training budget")
    train.add_argument("--num-units", type=int, default=None, help="codebook size K")
    train.add_argument("--steps", type=int, default=None, help="training steps per iteration (cap)")
    train.add_argument("--parallel-weight", type=float, default=None,
                       help="weight of the cross-speaker loss on parallel train renderings (0: off)")
    train.add_argument("--parallel-real", type=int, default=None,
                       help="stretches of real train speech heard beside renderings of their transcripts in the "
                       "cross-speaker loss (0: mbrola voices only; the A/B in the tokenizer README)")
    train.add_argument("--parallel-real-share", type=float, default=None,
                       help="share of each step's cross-speaker pairs that hear real speech (0-1)")
    train.add_argument("--level-inputs", action=argparse.BooleanOptionalAction, default=None,
                       help="scale every input to one speech level first (the default, -26 dBFS); --no-level-inputs "
                       "reads audio at its own level (the A/B in the tokenizer README)")
    train.add_argument("--precision", default=None, choices=PRECISIONS,
                       help="the training loop's bf16 autocast (default: the preset's)")
    add_output_args(train)
    train.set_defaults(func=_train)

    enc = cmds.add_parser("encode", help="encode a corpus into unit files for the language model")
    enc.add_argument("--tokenizer", required=True, help="a saved tokenizer folder (e.g. runs/tokenizer/laptop/learned)")
    enc.add_argument("--corpus", required=True, help="corpus folder (SynthBooks, LibriSpeech(-Long) or any audio at "
                     "4-384 kHz); an unreadable, NaN or all-silence file stops the run with one error naming it")
    enc.add_argument("--out", required=True, help="output folder (e.g. data/build/tokens/laptop)")
    enc.add_argument("--splits", nargs="*", default=None, help="only these splits (default: all)")
    add_output_args(enc)
    enc.set_defaults(func=_encode)

    ev = cmds.add_parser("eval", help="PNMI, purity, cross-voice edit distance, usage, bitrate, speed")
    ev.add_argument("tokenizers", nargs="+", help="tokenizer folders, or a folder holding several (as train writes)")
    ev.add_argument("--corpus", required=True, help="a built SynthBooks-Long corpus (held-out speakers are scored)")
    ev.add_argument("--real-speech", nargs="*", default=None,
                    help="folders of real recordings (default: tests/fixtures/real-speech and ../shared/data/real-speech)")
    ev.add_argument("--real-aligned", default=None,
                    help="a LibriSpeech-layout corpus aligned by `data align`: PNMI and purity on its test speakers")
    ev.add_argument("--real-alignments", default=None,
                    help="where `data align --out` wrote its alignments (default: <real-aligned>/alignments)")
    add_output_args(ev)
    ev.set_defaults(func=_eval)


def _corpus(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{p}: no such corpus folder (build one: python -m workbench data build --preset smoke)")
    return p


def _check_training_corpus(corpus: Path) -> None:
    """Tokenizer training reads a SynthBooks-Long corpus: its train split (manifest.jsonl) and, for the
    cross-speaker loss, the train chapters' alignments. A plain folder of audio has neither."""
    import json

    manifest = corpus / "manifest.jsonl"
    hint = "build one: python -m workbench data build --preset smoke --out DIR"
    if not manifest.is_file():
        raise UserError(f"--corpus {corpus}: not a SynthBooks-Long corpus (no manifest.jsonl); tokenizer training "
                        f"needs its train split and alignments ({hint})")
    try:
        splits = {json.loads(line).get("split") for line in manifest.read_text().splitlines() if line.strip()}
    except (ValueError, AttributeError):
        raise UserError(f"{manifest}: not a corpus manifest (one JSON object a line)") from None
    if "train" not in splits:
        raise UserError(f"--corpus {corpus}: its manifest.jsonl has no train split (found: "
                        f"{', '.join(sorted(map(str, splits))) or 'nothing'}); {hint}")


def _train(args: argparse.Namespace) -> None:
    from workbench.tokenizer.config import PRESETS
    from workbench.tokenizer.train import train_tokenizers

    config = pick_preset(PRESETS, args.preset, "tokenizer")
    changes = {k: v for k, v in (("max_minutes", args.max_minutes), ("num_units", args.num_units),
                                 ("steps", args.steps),
                                 ("parallel_weight", args.parallel_weight), ("parallel_real", args.parallel_real),
                                 ("parallel_real_share", args.parallel_real_share),
                                 ("precision", args.precision))
               if v is not None}
    validate.number("--max-minutes", args.max_minutes, 0.0, None, lo_open=True, optional=True)
    validate.count("--num-units", args.num_units, 2, 65_536, optional=True)
    validate.count("--steps", args.steps, 1, optional=True)
    validate.number("--parallel-weight", args.parallel_weight, 0.0, None, optional=True)
    validate.count("--parallel-real", args.parallel_real, 0, 100_000, optional=True)
    validate.number("--parallel-real-share", args.parallel_real_share, 0.0, 1.0, optional=True)
    if args.level_inputs is False:
        changes["input_level_db"] = None
    config = override(config, **changes)
    corpus = _corpus(args.corpus or corpus_dir(args.preset))
    _check_training_corpus(corpus)
    out = Path(args.out or run_dir("tokenizer", args.preset))
    log = (lambda m: None) if args.json else (lambda m: print(m, flush=True))
    try:
        tokenizers = train_tokenizers(corpus, config, log=log, cache_dir=out)
    except ValueError as err:  # AudioError included: names the file
        raise UserError(" ".join(str(err).split())) from None
    payload = {}
    for name, tok in tokenizers.items():
        tok.save(out / name)
        t = tok.training
        payload[name] = {"path": str(out / name), "num_units": tok.num_units, "seconds": t.get("seconds"),
                         "units_used": t["kmeans"]["used"], "steps": t.get("steps"), "final_loss": t.get("final_loss"),
                         "final_masked_accuracy": t.get("final_masked_accuracy"),
                         "final_parallel_loss": t.get("final_parallel_loss"), "parallel": t.get("parallel")}
    emit(args, payload, lambda p: "\n".join(f"{k}: {json.dumps(v)}" for k, v in p.items()))


def _load(path: str | Path):
    from workbench.tokenizer.model import Tokenizer, TokenizerError

    try:
        return Tokenizer.load(path)
    except TokenizerError as err:
        raise UserError(str(err)) from None


def _encode(args: argparse.Namespace) -> None:
    from workbench.core.audio import AudioError
    from workbench.tokenizer.encode import encode_corpus

    tok = _load(args.tokenizer)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out}: is a file; name a folder for the unit files")
    try:
        summary = encode_corpus(tok, _corpus(args.corpus), args.out, args.splits, progress=not args.json)
    except (AudioError, ValueError) as err:
        raise UserError(str(err)) from None
    emit(args, summary, lambda s: f"{s['recordings']} recordings ({s['hours']:.2f} h) -> {s['out']}/manifest.jsonl "
                                  f"at {s['realtime_factor']}x real time ({s['reused']} reused)")


def tokenizer_dirs(paths: list[str]) -> dict[str, Path]:
    """Name -> folder: a tokenizer folder is itself; a folder of tokenizer folders gives each of them."""
    found: dict[str, Path] = {}
    for p in map(Path, paths):
        if (p / "tokenizer.json").exists() or not p.is_dir():
            found[p.name] = p
        else:
            subs = sorted(d for d in p.iterdir() if (d / "tokenizer.json").exists())
            if not subs:
                raise UserError(f"{p}: holds no tokenizer (no tokenizer.json in it or its subfolders)")
            found.update({d.name: d for d in subs})
    return found


def _eval(args: argparse.Namespace) -> None:
    from workbench.tokenizer.evaluate import compare, evaluate, summary_table

    corpus = _corpus(args.corpus)
    real = None if args.real_speech is None else [Path(p) for p in args.real_speech]
    results = {name: evaluate(_load(path), corpus, real, args.real_aligned, args.real_alignments)
               for name, path in tokenizer_dirs(args.tokenizers).items()}
    gains = compare(results)
    if gains:
        results["learned_vs_baseline"] = gains
    emit(args, results, summary_table, report_name="tokenizer.json")
