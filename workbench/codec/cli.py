"""`python -m workbench codec {train,encode,decode,eval}`: the neural audio codec.

    codec train  --preset laptop [--corpus DIR] [--out DIR] [--resume] [--max-minutes M] [--steps N]
    codec encode IN_AUDIO --out CODES.npz [--n-q Q]        (codes: int16 (n_q, frames) + what decoding needs)
    codec decode CODES.npz --out OUT.wav
    codec eval   [--real DIR] [--json]                      (writes codec.json into the report folder)

The run folder defaults to runs/codec/<preset>, the corpus to data/build/<preset> (`workbench.core.paths`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from workbench.core import validate
from workbench.core.audio import MAX_SECONDS
from workbench.core.cli import add_output_args, emit, trained_line
from workbench.core.config import override, pick_preset
from workbench.core.errors import UserError
from workbench.core.paths import codec_dir, corpus_dir

REAL_SPEECH = Path("../shared/data/real-speech")  # relative to the repository root; skipped when absent


def register(subparsers: argparse._SubParsersAction) -> None:
    codec = subparsers.add_parser("codec", help="neural audio codec (SoundStream-style RVQ): train, encode, decode, eval, "
                                  "diagnose")
    sub = codec.add_subparsers(dest="codec_command", required=True, metavar="{train,encode,decode,eval,diagnose}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--preset", default="laptop", help="smoke | laptop (default) | paper")
        p.add_argument("--ckpt", default=None, help="codec run folder (default runs/codec/<preset>)")
        p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
        p.add_argument("--postfilter", type=float, nargs=2, default=None, metavar=("TIME", "FREQ"),
                       help="griffinlim decoder: decode with this postfilter (contrast in time and in frequency, "
                       "1 1 = none) instead of the run's")
        p.add_argument("--gla-iters", type=int, default=None, metavar="N",
                       help="griffinlim decoder: decode with N Griffin-Lim iterations instead of the run's (laptop 16; "
                       "runs trained before 2026-12-05 recorded 32)")
        p.add_argument("--rvq-beam", type=int, default=None, metavar="B",
                       help="encode with a beam of B partial sums per RVQ level instead of the run's (default 16; "
                       "1 = greedy, as runs before 2026-12-06 encoded)")

    t = sub.add_parser("train", help="train a codec on a corpus")
    common(t)
    t.add_argument("--corpus", default=None, help="training corpus (default data/build/<preset>)")
    t.add_argument("--out", default=None, help="run folder (default: --ckpt)")
    t.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget (checkpoints on the way out)")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--adversarial", action=argparse.BooleanOptionalAction, default=None,
                   help="train against a discriminator: multi-scale STFT on the waveform, or on the log magnitudes for the "
                   "griffinlim decoder (default: the preset's choice)")
    t.add_argument("--magnitude-tilt", type=float, default=None, help="griffinlim decoder: weigh a bin at f Hz by "
                   "(700 + f) ** -tilt in the magnitude loss, 0..4 (0 every bin alike; laptop default 1)")
    t.add_argument("--envelope-weight", type=float, default=None, help="griffinlim decoder: add this x the L1 of "
                   "the cepstral envelopes (formants) to the magnitude loss, 0..10 (0: off)")
    t.add_argument("--adversarial-start", type=float, default=None, help="fraction of training before the "
                   "discriminator joins, 0..1")
    t.add_argument("--adv-weight", type=float, default=None, help="weight of the adversarial loss (default 1)")
    t.add_argument("--feat-weight", type=float, default=None, help="weight of the feature-matching loss (default 2)")
    t.add_argument("--speed-perturb", type=float, default=None, help="play each training crop at a speed drawn "
                   "from 1 +- this (pitch and formants move with it: new voices), 0..0.3 on a 0.05 grid (0: off)")
    t.add_argument("--eq-perturb", type=float, default=None, help="filter each training crop by a random smooth "
                   "gain curve within +- this many dB (microphones and rooms), 0..20 (0: off)")
    t.add_argument("--level-crops", action=argparse.BooleanOptionalAction, default=None, help="bring every training "
                   "crop to the corpus's speech level (the codec never models loudness; default: the preset's choice)")
    t.add_argument("--quantizer-dropout", type=float, default=None, metavar="P", help="probability a batch trains a "
                   "random prefix of the RVQ levels (every bitrate a codec), 0..1 (laptop 0.5; 0: always all levels)")
    t.add_argument("--seed", type=int, default=None, help="training seed: initialisation and crops (default 0)")
    t.add_argument("--dim", type=int, default=None, help="latent (codebook vector) size, >= 2 (default: the "
                   "preset's; laptop 64)")
    t.add_argument("--causal", action=argparse.BooleanOptionalAction, default=None,
                   help="causal (streamable) convolutions (default: the preset's choice)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_output_args(t)
    t.set_defaults(func=run_train)

    e = sub.add_parser("encode", help="audio file -> codes (.npz)")
    common(e)
    e.add_argument("input", help=f"audio (wav/flac/ogg/mp3, 4-384 kHz, at most {MAX_SECONDS / 3600:g} h; "
                   "converted to 16 kHz mono)")
    e.add_argument("--out", required=True, help="codes file (.npz)")
    e.add_argument("--n-q", type=int, default=None, help="quantizer levels to keep (default all): the bitrate")
    e.add_argument("--chunk-seconds", type=float, default=None)
    add_output_args(e)
    e.set_defaults(func=run_encode)

    d = sub.add_parser("decode", help="codes (.npz) -> 16 kHz wav")
    common(d)
    d.add_argument("codes", help=f"codes written by `codec encode` (at most {MAX_SECONDS / 3600:g} h of audio)")
    d.add_argument("--out", required=True, help="output audio (.wav or .flac)")
    d.add_argument("--chunk-seconds", type=float, default=None)
    add_output_args(d)
    d.set_defaults(func=run_decode)

    v = sub.add_parser("eval", help="PESQ/STOI/mel distance vs Codec2-3200 and Opus-6k/8k, per voice; encode/decode "
                       "speed")
    common(v)
    v.add_argument("--corpus", default=None, help="corpus with test segments, synthetic and any real speech mixed in "
                   "(default data/build/<preset>)")
    v.add_argument("--real", default=str(REAL_SPEECH), help=f"real-speech folder (default {REAL_SPEECH}; skipped if absent)")
    v.add_argument("--test-clips", type=int, default=None, help="clips of the synthetic test speakers")
    v.add_argument("--real-test-clips", type=int, default=None, help="clips of the corpus's real test speakers")
    v.add_argument("--real-clips", type=int, default=None, help="files of --real")
    add_output_args(v)
    v.set_defaults(func=run_eval)

    g = sub.add_parser("diagnose", help="where a Griffin-Lim codec loses quality: exact magnitudes, no RVQ, the codec, "
                       "and the codec with each frequency band repaired (PESQ-WB)")
    common(g)
    g.add_argument("--corpus", default=None, help="corpus with test segments (default data/build/<preset>)")
    g.add_argument("--clips", type=int, default=9, help="clips per set (the preset's eval clip length): synthetic and "
                   "real test speakers")
    g.add_argument("--n-q", type=int, default=None, help="quantizer levels (default all)")
    add_output_args(g)
    g.set_defaults(func=run_diagnose)


def _ckpt(args) -> Path:
    return Path(args.ckpt or codec_dir(args.preset))


def run_train(args: argparse.Namespace) -> int:
    from workbench.codec.config import PRESETS
    from workbench.codec.train import train

    preset = pick_preset(PRESETS, args.preset, "codec")
    model, cfg = preset.model, preset.train
    if args.causal is not None:
        model = override(model, causal=args.causal)
    if args.dim is not None:
        if args.dim < 2:
            raise UserError(f"--dim must be at least 2 (got {args.dim})")
        model = override(model, dim=args.dim)
    if args.postfilter is not None:
        model = override(model, postfilter_time=args.postfilter[0], postfilter_freq=args.postfilter[1])
    if args.gla_iters is not None:
        model = override(model, gla_iters=_gla_iters(args))
    if args.rvq_beam is not None:
        model = override(model, rvq_beam=_rvq_beam(args))
    changes = {k: v for k, v in (("steps", args.steps), ("max_minutes", args.max_minutes),
                                  ("batch_size", args.batch_size), ("adversarial", args.adversarial),
                                  ("magnitude_tilt", args.magnitude_tilt), ("speed_perturb", args.speed_perturb),
                                  ("eq_perturb", args.eq_perturb), ("envelope_weight", args.envelope_weight),
                                  ("adversarial_start", args.adversarial_start), ("adv_weight", args.adv_weight),
                                  ("feat_weight", args.feat_weight), ("quantizer_dropout", args.quantizer_dropout),
                                  ("level_crops", args.level_crops), ("seed", args.seed))
               if v is not None}
    if changes.get("steps", 1) < 1 or changes.get("batch_size", 1) < 1:
        raise UserError("--steps and --batch-size must be at least 1")
    if not 0 <= changes.get("magnitude_tilt", 0) <= 4:
        raise UserError(f"--magnitude-tilt must be in [0, 4] (got {args.magnitude_tilt})")
    if not 0 <= changes.get("speed_perturb", 0) <= 0.3:
        raise UserError(f"--speed-perturb must be in [0, 0.3] (got {args.speed_perturb})")
    if not 0 <= changes.get("envelope_weight", 0) <= 10:
        raise UserError(f"--envelope-weight must be in [0, 10] (got {args.envelope_weight})")
    if changes.get("adv_weight", 0) < 0 or changes.get("feat_weight", 0) < 0:
        raise UserError("--adv-weight and --feat-weight must be >= 0")
    if not 0 <= changes.get("adversarial_start", 0) <= 1:
        raise UserError(f"--adversarial-start must be in [0, 1] (got {args.adversarial_start})")
    if not 0 <= changes.get("eq_perturb", 0) <= 20:
        raise UserError(f"--eq-perturb must be in [0, 20] dB (got {args.eq_perturb})")
    cfg = override(cfg, **changes)
    corpus = Path(args.corpus or corpus_dir(args.preset))
    if not corpus.is_dir():
        raise UserError(f"no corpus at {corpus}; build it (python -m workbench data build --preset {args.preset}) "
                        "or pass --corpus")
    summary = train(args.out or _ckpt(args), model, cfg, corpus, resume=args.resume, device=args.device,
                    progress=False if args.quiet or args.json else None, preset=args.preset)
    emit(args, summary, _trained)
    return 0


def _trained(s: dict) -> str:
    return trained_line(s, "mel loss", s.get("initial_eval_mel"), s.get("final_eval_mel"))


def _load(args):
    from workbench.codec.train import load_codec
    from workbench.core.device import pick_device

    postfilter = getattr(args, "postfilter", None)
    if postfilter is not None and not all(0 < f <= 3 for f in postfilter):
        raise UserError(f"--postfilter factors must be in (0, 3] (got {postfilter[0]:g} {postfilter[1]:g})")
    return load_codec(_ckpt(args), pick_device(args.device), postfilter, _gla_iters(args), _rvq_beam(args))


def _bounded(args, name: str, low: int, high: int) -> int | None:
    n = getattr(args, name, None)
    if n is not None and not low <= n <= high:
        raise UserError(f"--{name.replace('_', '-')} must be in [{low}, {high}] (got {n})")
    return n


def _gla_iters(args) -> int | None:
    from workbench.codec.config import MAX_GLA_ITERS

    return _bounded(args, "gla_iters", 0, MAX_GLA_ITERS)


def _rvq_beam(args) -> int | None:
    from workbench.codec.config import MAX_RVQ_BEAM

    return _bounded(args, "rvq_beam", 1, MAX_RVQ_BEAM)


def run_encode(args: argparse.Namespace) -> int:
    import numpy as np

    from workbench.codec.config import EvalConfig
    from workbench.codec.stream import encode_long, level_gain
    from workbench.core.audio import AudioError, load_audio
    from workbench.core.io import atomic_path

    out = validate.output_file("--out", args.out, (".npz",))
    validate.count("--n-q", args.n_q, 1, optional=True)
    validate.seconds("--chunk-seconds", args.chunk_seconds, 3600.0, optional=True)
    codec, meta = _load(args)
    if args.n_q is not None and args.n_q > codec.cfg.num_quantizers:
        raise UserError(f"--n-q {args.n_q}: this codec has levels 1..{codec.cfg.num_quantizers}")
    try:
        wav = load_audio(args.input, max_seconds=MAX_SECONDS)
    except AudioError as err:
        raise UserError(str(err)) from None
    try:
        codes = encode_long(codec, wav, args.n_q, args.chunk_seconds or EvalConfig().chunk_seconds)
    except ValueError as err:
        raise UserError(str(err)) from None
    with atomic_path(out) as tmp:
        # `gain`: the factor the input was scaled by to the codec's level (one float per file), undone by decode
        np.savez(tmp, codes=codes.numpy().astype(np.int16), num_samples=len(wav), sample_rate=codec.cfg.sample_rate,
                 hop=codec.hop, codebook_size=codec.cfg.codebook_size, gain=np.float32(level_gain(codec, wav)))
    payload = {"input": args.input, "out": str(out), "n_q": codes.shape[0], "frames": codes.shape[1],
               "seconds": round(len(wav) / codec.cfg.sample_rate, 3), "kbps": codec.cfg.kbps(codes.shape[0])}
    emit(args, payload, lambda p: f"{p['input']}: {p['seconds']} s -> {p['frames']} frames x {p['n_q']} levels "
                                  f"({p['kbps']:.2f} kbps) in {p['out']}")
    return 0


def read_codes(path: str | Path) -> dict:
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such codes file")
    try:
        with np.load(path) as z:
            data = {k: z[k] for k in ("codes", "num_samples", "sample_rate", "hop", "codebook_size")}
            data["gain"] = float(z["gain"]) if "gain" in z.files else 1.0  # files from before the codec's level
    except Exception as err:
        raise UserError(f"{path}: not a codes file written by `codec encode` ({' '.join(str(err).split())})") from None
    return data


def run_decode(args: argparse.Namespace) -> int:
    import numpy as np

    from workbench.codec.config import EvalConfig
    from workbench.codec.stream import decode_long
    from workbench.core.audio import save_audio

    validate.output_file("--out", args.out, (".wav", ".flac"))
    validate.seconds("--chunk-seconds", args.chunk_seconds, 3600.0, optional=True)
    data = read_codes(args.codes)
    rate = max(int(data["sample_rate"]), 1)
    frames = data["codes"].shape[-1] if data["codes"].ndim else 0
    seconds = max(int(data["num_samples"]), frames * max(int(data["hop"]), 1)) / rate
    if data["codes"].ndim != 2 or seconds > MAX_SECONDS + 1:
        raise UserError(f"{args.codes}: codes of shape {data['codes'].shape} for {seconds:.0f} s; at most "
                        f"{MAX_SECONDS:.0f} s ({MAX_SECONDS / 3600:g} h) are decoded at once")
    codec, _ = _load(args)
    if int(data["hop"]) != codec.hop or int(data["codebook_size"]) != codec.cfg.codebook_size:
        raise UserError(f"{args.codes} was encoded with hop {int(data['hop'])} and {int(data['codebook_size'])} codes; "
                        f"this codec has hop {codec.hop} and {codec.cfg.codebook_size} codes")
    if data["codes"].shape[0] > codec.cfg.num_quantizers:
        raise UserError(f"{args.codes} has {data['codes'].shape[0]} levels; this codec has {codec.cfg.num_quantizers}")
    try:
        wav = decode_long(codec, data["codes"].astype("int64"), args.chunk_seconds or EvalConfig().chunk_seconds)
    except ValueError as err:
        raise UserError(f"{args.codes}: {err}") from None
    if not (np.isfinite(data["gain"]) and data["gain"] > 0):
        raise UserError(f"{args.codes}: gain {data['gain']} is not a positive number")
    wav = wav[: int(data["num_samples"])].numpy() / data["gain"]  # the input's own level back
    save_audio(args.out, wav, codec.cfg.sample_rate)
    payload = {"codes": args.codes, "out": args.out, "seconds": round(len(wav) / codec.cfg.sample_rate, 3)}
    emit(args, payload, lambda p: f"{p['codes']} -> {p['out']} ({p['seconds']} s)")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from workbench.codec.config import PRESETS
    from workbench.codec.evaluate import evaluate, summary_table

    cfg = pick_preset(PRESETS, args.preset, "codec").eval
    changes = {k: v for k, v in (("test_clips", args.test_clips), ("real_test_clips", args.real_test_clips),
                                 ("real_clips", args.real_clips)) if v is not None}
    cfg = override(cfg, **changes)
    codec, meta = _load(args)
    corpus = Path(args.corpus or corpus_dir(args.preset))
    payload = evaluate(codec, cfg, corpus, args.real, progress=not args.json)
    payload = {"preset": args.preset, "checkpoint": str(_ckpt(args)), "trained_steps": meta.get("step"),
               "eval_config": dataclasses.asdict(cfg), **payload}
    if not payload["sets"]:
        raise UserError(f"nothing to evaluate: {'; '.join(payload['notes'])}")
    emit(args, payload, summary_table, report_name="codec.json")
    return 0


def run_diagnose(args: argparse.Namespace) -> int:
    from workbench.codec.config import PRESETS
    from workbench.codec.diagnose import diagnose, summary_text
    from workbench.codec.evaluate import corpus_clips

    if args.clips < 1:
        raise UserError("--clips must be at least 1")
    codec, meta = _load(args)
    if args.n_q is not None and not 1 <= args.n_q <= codec.cfg.num_quantizers:
        raise UserError(f"--n-q must be 1..{codec.cfg.num_quantizers}")
    corpus = Path(args.corpus or corpus_dir(args.preset))
    if not corpus.is_dir():
        raise UserError(f"no corpus at {corpus}; pass --corpus")
    seconds = pick_preset(PRESETS, args.preset, "codec").eval.clip_seconds
    sets = {name: corpus_clips(corpus, args.clips, seconds, source) for name, source in
            (("synthetic-test", "synthetic"), ("real-test", "real"))}
    payload = diagnose(codec, {k: v for k, v in sets.items() if v}, args.n_q, progress=not args.json)
    if not payload["sets"]:
        raise UserError(f"{corpus} has no test segments to diagnose")
    payload = {"preset": args.preset, "checkpoint": str(_ckpt(args)), "trained_steps": meta.get("step"), **payload}
    emit(args, payload, summary_text, report_name="codec-diagnosis.json")
    return 0
