"""`python -m workbench data {build,info,align,longform}`: build the embedded corpus; describe any supported dataset;
align real speech with its transcripts (phones and words); join chapters of real speech into long-form recordings."""

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
    build.add_argument("--real-speech", default=None, help="real read speech to mix in, split by speaker: a "
                       "LibriSpeech-layout folder, 'auto' (the laptop default: $WORKBENCH_REAL_SPEECH, else "
                       "../shared/data/mini-librispeech where present) or 'none'")
    build.add_argument("--extra-voices", default=None, help="more real voices for the codec only: a folder of audio "
                       "files (speaker from the file name; speakers the corpus holds left out), 'auto' (the laptop "
                       "default: ../shared/data/real-speech/librispeech_train-clean-100_1utt_per_speaker where "
                       "present) or 'none'")
    build.add_argument("--extra-share", type=float, default=None,
                       help="the extra voices' share of the real training crops, in (0, 1) (default 1/3)")
    add_output_args(build)
    build.set_defaults(func=_build)

    info = data.add_parser("info", help="summarise a corpus folder (SynthBooks, LibriSpeech(-Long), any audio)")
    info.add_argument("path")
    info.add_argument("--kind", default="auto", help="auto | synthbooks | librispeech | librispeech-long | folder "
                      "(audio at 4-384 kHz; unreadable files are one error naming the file)")
    add_output_args(info)
    info.set_defaults(func=_info)

    align = data.add_parser("align", help="phone and word alignments for real speech with transcripts "
                            "(pocketsphinx, offline), in the synthetic corpus's JSON format")
    align.add_argument("--dataset", default=None, help="a LibriSpeech(-Long) or audio+.txt folder to align")
    align.add_argument("--out", default=None, help="alignment folder, mirroring the dataset's tree "
                       "(default <dataset>/alignments, where the loader finds it)")
    align.add_argument("--limit", type=int, default=None, help="align only the first N utterances (sorted by path)")
    align.add_argument("--kind", default="auto", help="auto | librispeech | librispeech-long | folder")
    align.add_argument("--force", action="store_true", help="realign utterances that already have an alignment")
    align.add_argument("--skip-bad", action="store_true",
                       help="skip (and count) unreadable audio and utterances without a transcript instead of stopping")
    align.add_argument("--measure", action="store_true",
                       help="instead of a dataset: measure the aligner's phone boundaries against exact espeak-ng + "
                       "mbrola timings on --limit (default 12) synthetic utterances per held-out voice "
                       "-> align_synthetic.json")
    align.add_argument("--seed", type=int, default=0, help="--measure: which sentences (default 0)")
    align.add_argument("--voices", default="us1-h,us3-h",
                       help="--measure: corpus voices to render, comma-separated (default the held-out us1-h,us3-h)")
    add_output_args(align)
    align.set_defaults(func=_align)

    longform = data.add_parser("longform", help="join each chapter's consecutive utterances (LibriSpeech layout) "
                               "into one long recording with its alignment, in train/dev/test speaker splits")
    longform.add_argument("--dataset", required=True, help="a LibriSpeech-layout folder")
    longform.add_argument("--alignments", default=None, help="its alignment folder (default <dataset>/alignments "
                          "if present)")
    longform.add_argument("--out", required=True, help="output folder (LibriSpeech-Long layout: "
                          "<split>/<speaker>/<chapter>/<id>.flac + .txt, alignments/ beside)")
    longform.add_argument("--dev-speakers", type=int, default=3)
    longform.add_argument("--test-speakers", type=int, default=3)
    longform.add_argument("--max-minutes", type=float, default=None,
                          help="cut a chapter into parts of at most this long, at utterance boundaries")
    longform.add_argument("--format", default="flac", choices=("flac", "wav"))
    add_output_args(longform)
    longform.set_defaults(func=_longform)


def _build(args: argparse.Namespace) -> None:
    from workbench.core import validate
    from workbench.data.corpus import build_preset

    validate.count("--jobs", args.jobs, 1, 256, optional=True)
    if args.seed is not None:
        validate.seed(args.seed)
    overrides = {"seed": args.seed} if args.seed is not None else {}
    if args.real_speech is not None:
        overrides["real_speech"] = None if args.real_speech == "none" else args.real_speech
    if args.extra_voices is not None:
        overrides["real_extra_voices"] = None if args.extra_voices == "none" else args.extra_voices
    if args.extra_share is not None:
        overrides["real_extra_share"] = args.extra_share
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
    real = s.get("real_speech") or {}
    lines.append(f"  real speech from {real['root']}: {real['recordings']} long-form recordings, hours "
                 + ", ".join(f"{k} {v:.2f}" for k, v in real["hours"].items())
                 + f"; crops drawn {real['sampling_weight']:g}x as often per second" if real.get("root")
                 else f"  no real speech mixed in: {real.get('why', 'an older corpus')}")
    extra = s.get("extra_voices") or {}
    lines.append(f"  extra voices (codec only) from {extra['root']}: {len(extra['speakers'])} speakers, "
                 f"{extra['minutes']:.1f} min, {extra['share']:.0%} of the real crops" if extra.get("root")
                 else f"  no extra voices: {extra.get('why', 'an older corpus')}")
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> None:
    from workbench.core.errors import UserError
    from workbench.data.loaders import open_dataset

    try:
        dataset = open_dataset(args.path, kind=args.kind)
    except (OSError, ValueError) as err:  # AudioError is a ValueError; FileNotFoundError an OSError
        raise UserError(" ".join(str(err).split())) from None
    emit(args, dataset.summary())


def _align(args: argparse.Namespace) -> None:
    from workbench.core import validate
    from workbench.core.errors import UserError
    from workbench.data.align import align_dataset, measure_synthetic

    validate.count("--limit", args.limit, 1, None, optional=True)
    if args.measure:
        if args.dataset:
            raise UserError("--measure aligns synthetic speech; give either --measure or --dataset, not both")
        validate.seed(args.seed)
        voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
        try:
            result = measure_synthetic(count=args.limit or 12, voices=voices, seed=args.seed, progress=not args.json)
        except ValueError as err:  # an unknown voice
            raise UserError(str(err)) from None
        emit(args, result, _human_measure, report_name="align_synthetic.json")
        return
    if not args.dataset:
        raise UserError("give --dataset DIR (a LibriSpeech-layout or audio+.txt folder), or --measure")
    if args.out:
        validate.output_dir("--out", args.out)
    summary = align_dataset(args.dataset, args.out, limit=args.limit, kind=args.kind, force=args.force,
                            skip_bad=args.skip_bad, progress=not args.json)
    emit(args, summary, _human_align)


def _human_align(s: dict) -> str:
    lines = [f"aligned {s['aligned']} of {s['recordings']} utterances ({s['aligned_hours']:.2f} h) in {s['seconds']:.0f} s"
             f" -> {s['out']}; {s['reused']} already aligned, {s['skipped']} skipped"]
    lines += [f"  skipped {uid}: {why}" for uid, why in list(s["skipped_reasons"].items())[:10]]
    if len(s["skipped_reasons"]) > 10:
        lines.append(f"  ... and {len(s['skipped_reasons']) - 10} more (see {s['out']}/align.json)")
    return "\n".join(lines)


def _human_measure(s: dict) -> str:
    p, w = s["phones"], s["words"]
    lines = [f"aligner vs exact phone timings: {s['utterances']} synthetic utterances ({s['audio_seconds']:.0f} s, "
             f"voices {', '.join(s['voices'])}), {s['failed']} failed, {s['phones_matched_share']:.0%} of phones matched",
             f"  phone boundaries: median |error| {p['median_abs_ms']:.1f} ms, {p['within_20ms']:.0%} within 20 ms, "
             f"{p['within_50ms']:.0%} within 50 ms, bias {p['median_signed_ms']:+.1f} ms ({p['boundaries']} boundaries)",
             f"  word boundaries:  median |error| {w['median_abs_ms']:.1f} ms, {w['within_20ms']:.0%} within 20 ms, "
             f"{w['within_50ms']:.0%} within 50 ms ({w['boundaries']} boundaries)"]
    for name, v in s["per_voice"].items():
        lines.append(f"  {name}: phones median {v['phones']['median_abs_ms']:.1f} ms, "
                     f"{v['phones']['within_20ms']:.0%} <= 20 ms, {v['phones']['within_50ms']:.0%} <= 50 ms")
    return "\n".join(lines)


def _longform(args: argparse.Namespace) -> None:
    from workbench.core import validate
    from workbench.core.errors import UserError
    from workbench.data.loaders import open_dataset, speaker_split, write_longform

    validate.output_dir("--out", args.out)
    validate.count("--dev-speakers", args.dev_speakers, 0, None)
    validate.count("--test-speakers", args.test_speakers, 0, None)
    max_seconds = validate.seconds("--max-minutes", args.max_minutes * 60, optional=True) \
        if args.max_minutes is not None else None
    try:
        dataset = open_dataset(args.dataset, alignments=args.alignments)
        split = speaker_split(dataset, dev=args.dev_speakers, test=args.test_speakers)
    except (OSError, ValueError) as err:
        raise UserError(" ".join(str(err).split())) from None
    written = write_longform(dataset, args.out, split=split, max_seconds=max_seconds, fmt=args.format,
                             progress=not args.json)
    emit(args, {"out": str(args.out), "split": split.as_dict(), "recordings": written},
         lambda s: f"wrote {len(s['recordings'])} long-form recordings to {s['out']}; speakers: "
         + "; ".join(f"{k} {', '.join(v)}" for k, v in s["split"].items() if k in ("train", "dev", "test")))


