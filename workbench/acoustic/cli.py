"""`python -m workbench acoustic {train,synthesize,eval}`: SoundStorm, semantic tokens -> codec codes -> audio.

    acoustic train      --preset laptop [--corpus DIR] [--codec DIR] [--tokenizer DIR] [--out DIR] [--resume]
                        [--steps N] [--max-minutes M] [--threads N] [--latent-head] [--latent-weight 1]
    acoustic synthesize (--semantic TOKENS.npy | --audio SPEECH.wav) --prompt SPEAKER.wav --out OUT.wav
                        [--iterations 16] [--finer-iterations 1] [--temperature 1.0] [--guidance 1.0] [--seed 0]
                        [--regress-levels 0]
    acoustic eval       [--corpus DIR] [--clips N] [--iterations 16] [--finer-iterations 1] [--temperature 1.0]
                        [--guidance 1.0] [--regress-levels 0] [--json]
                        (writes acoustic.json into the report folder)

Defaults (`workbench.core.paths`): corpus data/build/<preset>, codec runs/codec/<preset>, tokenizer
runs/tokenizer/<preset>/learned, training pairs data/build/acoustic/<preset>, run folder runs/acoustic/<preset>.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from workbench.core import validate
from workbench.core.audio import MAX_SECONDS
from workbench.core.cli import add_output_args, emit, trained_line
from workbench.core.config import PRECISIONS, override, pick_preset
from workbench.core.errors import UserError

PROMPT_READ_SECONDS = 60.0  # of a speaker prompt file, only the start is read (the prompt is a few seconds)


def register(subparsers: argparse._SubParsersAction) -> None:
    ac = subparsers.add_parser("acoustic", help="SoundStorm acoustic generator: train, synthesize, eval")
    sub = ac.add_subparsers(dest="acoustic_command", required=True, metavar="{train,synthesize,eval}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--preset", default="laptop", help="smoke | laptop (default) | paper")
        p.add_argument("--ckpt", default=None, help="acoustic run folder (default runs/acoustic/<preset>)")
        p.add_argument("--codec", default=None, help="codec run folder (default: the one the model was trained with)")
        p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the one the model was trained with)")
        p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, every core)")

    def decoding(p: argparse.ArgumentParser) -> None:
        p.add_argument("--iterations", type=int, default=None, help="decoding iterations on the first level, 1-1000 "
                       "(default 16)")
        p.add_argument("--finer-iterations", type=int, default=None, help="decoding iterations on each finer level, "
                       "1-1000 (default 1)")
        p.add_argument("--temperature", type=float, default=None, help="sampling temperature, finite and >= 0 "
                       "(0: greedy; default the preset's, 1.0)")
        p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance on the prompt, 0-10: "
                       "1 = none (the preset's), w > 1 follows the prompt's voice harder at twice the forward cost, "
                       "0 ignores the prompt")
        p.add_argument("--regress-levels", type=int, default=None, help="levels 0..N-1 take the code nearest the "
                       "latent head's estimate, one pass each (a model trained with --latent-head; default 0)")

    t = sub.add_parser("train", help="train SoundStorm on (semantic tokens, codec codes) pairs of a corpus")
    common(t)
    t.add_argument("--corpus", default=None, help="training corpus (default data/build/<preset>)")
    t.add_argument("--pairs", default=None, help="cache of tokens + codes (default data/build/acoustic/<preset>)")
    t.add_argument("--out", default=None, help="run folder (default: --ckpt)")
    t.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget (checkpoints on the way out)")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--cross-voice", type=float, default=None, help="share of rows across voices, 0-1: voice A's "
                   "semantic tokens on voice B's codes for the same train sentences (default: the preset's, 0)")
    t.add_argument("--level0-share", type=float, default=None, help="probability a row trains RVQ level 0, 0-1 "
                   "(default: the preset's; none = every level alike, SoundStorm's)")
    t.add_argument("--prompt-pooling", action=argparse.BooleanOptionalAction, default=None,
                   help="add the prompt's mean code embedding to every frame (default: the preset's choice)")
    t.add_argument("--semantic-prior", action=argparse.BooleanOptionalAction, default=None,
                   help="add log p(code | semantic token), counted on the training pairs, to the logits (default: "
                   "the preset's choice)")
    t.add_argument("--latent-head", action=argparse.BooleanOptionalAction, default=None,
                   help="train a second head regressing the codec latent of the masked levels (default: the preset's)")
    t.add_argument("--latent-prior", action=argparse.BooleanOptionalAction, default=None,
                   help="the latent head starts from each semantic token's mean codec latent (needs --latent-head)")
    t.add_argument("--latent-weight", type=float, default=None, help="weight of the latent head's loss, 0-100 "
                   "(default 1)")
    t.add_argument("--precision", default=None, choices=PRECISIONS, help="bf16 autocast: native (the preset's: where "
                   "the CPU or GPU computes bf16 natively), auto (GPUs only), bf16 (always) or fp32 (never)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_output_args(t)
    t.set_defaults(func=run_train)

    s = sub.add_parser("synthesize", help="semantic tokens (or speech to resynthesize) + a speaker prompt -> audio")
    common(s)
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--semantic", help="semantic tokens, a 1-D .npy (as `tokenizer encode` writes); at most "
                     f"{validate.MAX_SYNTH_SECONDS:g} s of them (90,000 tokens at 25 Hz)")
    src.add_argument("--audio", help="speech whose semantic tokens are resynthesized (4-384 kHz, at most "
                     f"{validate.MAX_SYNTH_SECONDS:g} s)")
    s.add_argument("--prompt", required=True, help="speaker prompt audio (4-384 kHz; its first prompt_seconds are "
                   f"used, at most the first {PROMPT_READ_SECONDS:g} s are read)")
    s.add_argument("--out", required=True, help="output audio (.wav or .flac)")
    decoding(s)
    s.add_argument("--seed", type=int, default=0, help="random seed, 0 .. 2**63 - 1")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_output_args(s)
    s.set_defaults(func=run_synthesize)

    v = sub.add_parser("eval", help="speaker similarity (prompt vs other speaker), WER, codec ceiling, speed")
    common(v)
    v.add_argument("--corpus", default=None, help="corpus with held-out test speakers (default data/build/<preset>)")
    v.add_argument("--clips", type=int, default=None)
    decoding(v)
    add_output_args(v)
    v.set_defaults(func=run_eval)


def _paths(args) -> dict[str, Path]:
    from workbench.acoustic.train import default_paths

    return default_paths(args.preset)


def _ckpt(args) -> Path:
    return Path(args.ckpt or _paths(args)["run"])


def run_train(args: argparse.Namespace) -> int:
    from workbench.acoustic.config import PRESETS
    from workbench.acoustic.train import train

    preset = pick_preset(PRESETS, args.preset, "acoustic")
    changes = {k: v for k, v in (("steps", args.steps), ("max_minutes", args.max_minutes),
                                  ("batch_size", args.batch_size), ("cross_voice", args.cross_voice),
                                  ("level0_share", args.level0_share), ("threads", args.threads),
                                  ("precision", args.precision), ("latent_weight", args.latent_weight))
               if v is not None}
    if min(changes.get("steps", 1), changes.get("batch_size", 1), changes.get("threads", 1)) < 1:
        raise UserError("--steps, --batch-size and --threads must be at least 1")
    for name in ("cross_voice", "level0_share"):
        if not 0.0 <= changes.get(name, 0.0) <= 1.0:
            raise UserError(f"--{name.replace('_', '-')} {changes[name]}: a share, between 0 and 1")
    preset = dataclasses.replace(preset, train=override(preset.train, **changes))
    if not 0.0 <= changes.get("latent_weight", 0.0) <= 100.0:
        raise UserError(f"--latent-weight {changes['latent_weight']}: must be between 0 and 100")
    preset = dataclasses.replace(preset, model=override(preset.model, **model_changes(args)))
    paths = _paths(args)
    summary = train(args.out or _ckpt(args), preset, args.corpus or paths["corpus"], args.codec or paths["codec"],
                    args.tokenizer or paths["tokenizer"], args.pairs or paths["pairs"], resume=args.resume,
                    device=args.device, progress=False if args.quiet or args.json else None, preset_name=args.preset)

    def human(s: dict) -> str:
        return trained_line(s, "masked loss", s.get("initial_eval_loss"), s.get("final_eval_loss"),
                            f", accuracy {s.get('final_eval_accuracy', 0.0):.3f}")

    emit(args, summary, human)
    return 0


def model_changes(args: argparse.Namespace) -> dict:
    """The model settings `acoustic train` was given; --no-latent-head also drops the preset's latent prior (which
    needs the head) unless --latent-prior is asked for, and then the config check names the conflict."""
    changes = {k: v for k, v in (("prompt_pooling", args.prompt_pooling), ("semantic_prior", args.semantic_prior),
                                 ("latent_head", args.latent_head), ("latent_prior", args.latent_prior))
               if v is not None}
    if args.latent_head is False and args.latent_prior is None:
        changes["latent_prior"] = False
    return changes


def _set_threads(args) -> None:
    import torch

    from workbench.acoustic.config import PRESETS

    threads = args.threads or pick_preset(PRESETS, args.preset, "acoustic").train.threads
    if threads is not None and threads < 1:
        raise UserError("--threads must be at least 1")
    if threads:
        torch.set_num_threads(threads)


def _check_decoding(args) -> dict:
    """The decoding options given (checked before anything is loaded), as `DecodeConfig` changes."""
    validate.count("--iterations", args.iterations, 1, 1000, optional=True)
    validate.count("--finer-iterations", args.finer_iterations, 1, 1000, optional=True)
    if args.temperature is not None:
        validate.temperature(args.temperature)
    if args.guidance is not None:
        validate.guidance(args.guidance)
    validate.count("--regress-levels", args.regress_levels, 0, 64, optional=True)
    changes = {"first_level_iterations": args.iterations, "finer_level_iterations": args.finer_iterations,
               "temperature": args.temperature, "guidance": args.guidance, "regress_levels": args.regress_levels}
    return {k: v for k, v in changes.items() if v is not None}


def _synthesizer(args, decode_changes: dict):
    from workbench.acoustic.synthesize import Synthesizer
    from workbench.core.device import pick_device

    _set_threads(args)

    synth = Synthesizer.load(_ckpt(args), args.codec, args.tokenizer, device=pick_device(args.device))
    return synth.with_decode(**decode_changes) if decode_changes else synth


def _read_audio(path: str, max_seconds: float = MAX_SECONDS, trim: bool = False):
    import warnings

    from workbench.core.audio import AudioConversionWarning, AudioError, load_audio

    try:
        with warnings.catch_warnings():
            if trim:  # a long prompt file: using only its start is what a prompt is, not worth a warning
                warnings.filterwarnings("ignore", ".*: using its first", AudioConversionWarning)
            return load_audio(path, max_seconds=max_seconds, trim=trim)
    except AudioError as err:
        raise UserError(str(err)) from None


def run_synthesize(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from workbench.core.audio import save_audio

    # every argument is checked before a model is loaded or a sample read
    validate.output_file("--out", args.out, (".wav", ".flac"))
    decode_changes = _check_decoding(args)
    validate.seed(args.seed)
    if args.semantic:
        validate.input_file("--semantic", args.semantic, "semantic tokens file (.npy)")
    synth = _synthesizer(args, decode_changes)
    if args.semantic:
        try:
            semantic = np.load(args.semantic, mmap_mode="r")  # the length is checked before the tokens are read
        except (OSError, ValueError) as err:
            raise UserError(f"{args.semantic}: not a .npy array of semantic tokens ({' '.join(str(err).split())})") from None
        semantic = synth.check_semantic(semantic, args.semantic)
        length = None
    else:
        source = _read_audio(args.audio, max_seconds=validate.MAX_SYNTH_SECONDS)
        semantic, length = synth.semantic_tokens(source), len(source)
    prompt = synth.prompt(_read_audio(args.prompt, max_seconds=PROMPT_READ_SECONDS, trim=True))
    started = time.perf_counter()
    wav = synth.synthesize(semantic, prompt, args.seed, progress=not (args.quiet or args.json))[:length]
    wall = time.perf_counter() - started
    save_audio(args.out, wav, synth.rates.sample_rate)
    seconds = len(wav) / synth.rates.sample_rate
    payload = {"out": args.out, "seconds": round(seconds, 3), "semantic_tokens": int(len(semantic)),
               "prompt_seconds": synth.decode.prompt_seconds, "wall_s": round(wall, 3),
               "realtime_factor": round(seconds / wall, 3)}
    emit(args, payload, lambda p: f"{p['semantic_tokens']} semantic tokens -> {p['out']} ({p['seconds']} s, "
                                  f"{p['realtime_factor']}x real time)")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from workbench.acoustic.config import PRESETS
    from workbench.acoustic.evaluate import evaluate, summary_text

    cfg = pick_preset(PRESETS, args.preset, "acoustic").eval
    if args.clips is not None:
        if args.clips < 1:
            raise UserError("--clips must be at least 1")
        cfg = override(cfg, clips=args.clips)
    synth = _synthesizer(args, _check_decoding(args))
    corpus = Path(args.corpus or _paths(args)["corpus"])
    payload = evaluate(synth, cfg, corpus, progress=not args.json)
    payload = {"preset": args.preset, "checkpoint": str(_ckpt(args)), **payload}
    emit(args, payload, summary_text, report_name="acoustic.json")
    return 0
