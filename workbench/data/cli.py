"""`python -m workbench data {build,info}`: build the embedded corpus; describe any supported dataset."""

from __future__ import annotations

import argparse

from workbench.core.cli import add_output_args, emit


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build and inspect speech corpora").add_subparsers(dest="data_cmd",
                                                                                          required=True)
    build = data.add_parser("build", help="synthesize the embedded long-form corpus (SynthBooks-Long)")
    build.add_argument("--preset", default="laptop", help="smoke | laptop | paper (default laptop)")
    build.add_argument("--out", default=None, help="output folder (default data/build/<preset>)")
    build.add_argument("--jobs", type=int, default=None, help="parallel processes (default: all cores)")
    build.add_argument("--seed", type=int, default=None)
    add_output_args(build)
    build.set_defaults(func=_build)

    info = data.add_parser("info", help="summarise a corpus folder (SynthBooks, LibriSpeech(-Long), any audio)")
    info.add_argument("path")
    info.add_argument("--kind", default="auto", help="auto | synthbooks | librispeech | librispeech-long | folder "
                      "(audio at 4-384 kHz; unreadable files are one error naming the file)")
    add_output_args(info)
    info.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> None:
    from workbench.core import validate
    from workbench.data.corpus import build_preset

    validate.count("--jobs", args.jobs, 1, 256, optional=True)
    if args.seed is not None:
        validate.seed(args.seed)
    overrides = {"seed": args.seed} if args.seed is not None else {}
    out = args.out or f"data/build/{args.preset}"
    stats = build_preset(args.preset, out, jobs=args.jobs, progress=not args.json, **overrides)
    emit(args, stats, _human_stats, report_name="corpus.json")


def _human_stats(s: dict) -> str:
    lines = [f"SynthBooks-Long ({s['config']['name']}) in {s['path']}: {s['hours']:.2f} h, {s['speakers']} speakers, "
             f"{s['chapters']} chapters, {s['segments']} dev/test segments, {s['parallel_recordings']} parallel "
             f"recordings; built in {s['build_seconds']:.0f} s" + ("" if s["mbrola"] else " (espeak-ng fallback voices)")]
    for split, x in s["splits"].items():
        lines.append(f"  {split:5s} {x['hours']:7.2f} h  {x['recordings']:4d} chapters  {x['segments']:4d} segments"
                     f"  speakers: {', '.join(x['speakers'])}")
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> None:
    from workbench.core.errors import UserError
    from workbench.data.loaders import open_dataset

    try:
        dataset = open_dataset(args.path, kind=args.kind)
    except (OSError, ValueError) as err:  # AudioError is a ValueError; FileNotFoundError an OSError
        raise UserError(" ".join(str(err).split())) from None
    emit(args, dataset.summary())
