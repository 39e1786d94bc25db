"""SynthBooks-Long: the embedded long-form speech corpus, built on any machine from the Austen texts.

Every chapter becomes one recording read by one speaker, with exact word/sentence/phone timings. Dev and test
chapters are read only by held-out speakers and are also cut, at sentence boundaries, into contiguous segments
of up to four minutes, in the shape of LibriSpeech-Long. A small parallel set has the same sentences read by
every held-out speaker (for measuring speaker invariance). Layout of a built corpus:

    manifest.jsonl            one line per recording (chapter): id, split, speaker, book, chapter, audio, ...
    segments.jsonl            dev/test segments of <= segment_seconds, each with its own audio + alignment
    parallel.jsonl            the parallel sentences, one line per (sentence, held-out speaker)
    speakers.json, corpus.json
    recordings/<split>/<id>.flac + <id>.json     (the .json holds text, words, sentences, phones with times)
    segments/<split>/..., parallel/<speaker>/...
    real/<split>/<speaker>/<chapter>/<id>.flac    real read speech mixed in (`real_speech`), chapters joined;
    real/alignments/..., real/utterance-alignments/...   their alignments (every utterance aligned offline)
    voices.jsonl, voices/<speaker>/<id>.flac       extra real voices for the codec only (`real_extra_voices`)

Deterministic given the seed; parallel across processes; resumable (a recording whose .json exists is kept;
every file is written atomically, the .json last).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.audio import SAMPLE_RATE, save_audio
from workbench.core.config import pick_preset
from workbench.core.io import atomic_write_json, atomic_write_text
from workbench.core.reuse import write_stamp
from workbench.core.workers import process_pool
from workbench.data.synth import Rendering, render
from workbench.data.texts import Chapter, read_all, words
from workbench.data.voices import VOICES, Voice, have_mbrola
from workbench.data.voices import voice as voice_named


@dataclass(frozen=True)
class CorpusConfig:
    name: str
    train_hours: float | None  # None: every chapter not used by dev/test
    dev_hours: float
    test_hours: float
    max_words_per_recording: int | None = None  # read only the first sentences of each chapter (smoke)
    segment_seconds: float = 240.0  # dev/test segments, as LibriSpeech-Long
    parallel_sentences: int = 200
    seed: int = 0
    words_per_second: float = 2.67  # measured over the laptop corpus; planning estimate only: chooses how many chapters to read
    # Real read speech mixed in (`real_speech_root`): a LibriSpeech-layout folder, "auto" (WORKBENCH_REAL_SPEECH,
    # else ../shared/data/mini-librispeech where present, else none) or None. Its speakers are split into
    # train / dev / test, each chapter's consecutive utterances joined into one long recording, every utterance
    # aligned (held-out: phones for PNMI, words for clips; train: the tokenizer's real cross-speaker pairs).
    real_speech: str | None = None
    real_dev_speakers: int = 3
    real_test_speakers: int = 3
    real_weight: float = 1.0  # training crops come from real recordings this many times as often per second
    real_utterances_per_chapter: int | None = None  # only the first N of each chapter (tests)
    # More real voices for the codec, whose loss on new real speakers is one of too few voices heard (codec
    # README): a folder of audio files (speaker from the file name, `real_speaker_of`), "auto"
    # (loaders.EXTRA_VOICES where present, else none) or None. Files of speakers the corpus already holds are
    # left out; the rest become the `voices` split (voices.jsonl), `real_extra_share` of the real training crops.
    real_extra_voices: str | None = None
    real_extra_share: float = 1 / 3


PRESETS = {
    "smoke": CorpusConfig("smoke", train_hours=0.06, dev_hours=0.012, test_hours=0.012,
                          max_words_per_recording=70, parallel_sentences=8),
    # 10.6 h synthetic + mini-LibriSpeech's 2.97 h where present; real crops 4x as often per second, so about
    # 45% of the training audio the tokenizer and codec hear is real speech
    "laptop": CorpusConfig("laptop", train_hours=10.5, dev_hours=0.55, test_hours=0.55, parallel_sentences=200,
                           real_speech="auto", real_weight=4.0, real_extra_voices="auto"),
    "paper": CorpusConfig("paper", train_hours=None, dev_hours=1.5, test_hours=1.5, parallel_sentences=1000),
}


@dataclass(frozen=True)
class Job:
    """One recording to build: which chapter (possibly truncated), which reader, where."""

    id: str
    split: str
    chapter: Chapter
    voice: str


def plan(config: CorpusConfig) -> list[Job]:
    """Choose chapters and readers. Dev/test first (held-out readers), then train (balanced over readers)."""
    chapters = read_all()
    random.Random(config.seed).shuffle(chapters)
    if config.max_words_per_recording:
        chapters = [_truncate(c, config.max_words_per_recording) for c in chapters]
    seconds = lambda c: c.num_words / config.words_per_second  # noqa: E731
    held_out = [v for v in VOICES if v.held_out]
    readers = [v for v in VOICES if not v.held_out]
    jobs: list[Job] = []
    remaining = list(chapters)
    for split, hours in (("dev", config.dev_hours), ("test", config.test_hours)):
        total = 0.0
        while remaining and total < hours * 3600:
            chapter = remaining.pop(0)
            v = held_out[sum(j.split == split for j in jobs) % len(held_out)]
            jobs.append(Job(f"{chapter.id}_{v.name}", split, chapter, v.name))
            total += seconds(chapter)
    load = {v.name: 0.0 for v in readers}
    total = 0.0
    for chapter in remaining:
        if config.train_hours is not None and total >= config.train_hours * 3600:
            break
        name = min(load, key=lambda n: (load[n], n))  # the least-loaded reader: speakers stay balanced
        jobs.append(Job(f"{chapter.id}_{name}", "train", chapter, name))
        load[name] += seconds(chapter)
        total += seconds(chapter)
    return jobs


def _truncate(chapter: Chapter, max_words: int) -> Chapter:
    kept, n = [], 0
    for sentence in chapter.sentences:
        if kept and n + len(words(sentence)) > max_words:
            break
        kept.append(sentence)
        n += len(words(sentence))
    return dataclasses.replace(chapter, sentences=tuple(kept))


def build_corpus(config: CorpusConfig, out: str | os.PathLike, jobs: int | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Build (or finish building) the corpus into `out`; return its statistics (also written to corpus.json)."""
    from tqdm.auto import tqdm

    real_root = real_speech_root(config.real_speech)  # a folder that is not there: said before anything is built
    voices_root = extra_voices_root(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    work = plan(config)
    workers = max(1, jobs or os.cpu_count() or 1)
    exact = have_mbrola()
    tasks = [(job, str(out), config.segment_seconds) for job in work]
    results: list[dict] = []
    with process_pool(workers) as pool:
        for lines in tqdm(pool.imap_unordered(_build_job, tasks), total=len(tasks), desc="reading chapters",
                          disable=not progress, unit="chapter"):
            results.append(lines)
    recordings = sorted((r["recording"] for r in results), key=lambda r: r["id"])
    segments = sorted((s for r in results for s in r["segments"]), key=lambda s: s["id"])
    parallel = _build_parallel(config, out, work)
    real = _build_real(config, real_root, out, progress) if real_root is not None else None
    if real is not None:
        recordings += real["recordings"]
        segments += real["segments"]
    voices = _build_voices(config, voices_root, out, recordings, progress)
    _write_jsonl(out / "manifest.jsonl", recordings)
    if voices["recordings"]:
        _write_jsonl(out / "voices.jsonl", voices["recordings"])
    else:
        (out / "voices.jsonl").unlink(missing_ok=True)
    _write_jsonl(out / "segments.jsonl", segments)
    _write_jsonl(out / "parallel.jsonl", parallel)
    atomic_write_json(out / "speakers.json", [dataclasses.asdict(v) for v in VOICES])
    stats = corpus_stats(recordings, segments, parallel)
    stats.update(real_speech=real["summary"] if real else {"root": None, "why": _no_real_reason(config)},
                 extra_voices=voices["summary"])
    stats.update(config=dataclasses.asdict(config), path=str(out), mbrola=exact,
                 build_seconds=round(time.time() - started, 2), workers=workers)
    atomic_write_json(out / "corpus.json", stats)
    # a corpus is what its settings and voices make (a partial build is finished; a finished recording is rewritten
    # only when its voice has changed): its stamp is both, which downstream reuse reads (`reuse.input_fingerprint`)
    write_stamp(out, {"config": dataclasses.asdict(config), "real_speech": real["summary"]["root"] if real else None,
                      "extra_voices": voices["summary"]["root"],
                      "voices": [dataclasses.asdict(v) for v in VOICES]},
                finished=True)
    return stats


def _build_job(task: tuple[Job, str, float]) -> dict[str, Any]:
    job, out, segment_seconds = task
    out = Path(out)
    meta_path = out / "recordings" / job.split / f"{job.id}.json"
    v = voice_named(job.voice)
    meta = _finished(meta_path, dataclasses.asdict(v))
    if meta is None:
        r = render(list(job.chapter.sentences), v)
        audio_path = meta_path.with_suffix(".flac")
        save_audio(audio_path, r.audio)
        meta = _meta(job.id, job.split, v, job.chapter, r, audio_path.relative_to(out))
        atomic_write_json(meta_path, meta)
    segments = _build_segments(meta, out, segment_seconds) if job.split in ("dev", "test") else []
    return {"recording": _manifest_line(meta), "segments": segments}


def _finished(meta_path: Path, voice_settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """A recording's (or segment's) metadata if it was finished earlier (the .json is written last) by a voice with
    these settings (None for real speech); None if it must be (re)made: not made yet, or its voice has changed."""
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    return meta if meta is not None and meta.get("voice") == voice_settings else None


def _meta(rid: str, split: str, v: Voice, chapter: Chapter | None, r: Rendering, audio: Path) -> dict[str, Any]:
    rnd = lambda spans: [[x, round(s, 4), round(e, 4)] for x, s, e in spans]  # noqa: E731
    return {
        "id": rid, "split": split, "speaker": v.name, "gender": v.gender, "voice": dataclasses.asdict(v),
        "book": chapter.book if chapter else None, "chapter": chapter.index if chapter else None,
        "audio": str(audio), "sample_rate": SAMPLE_RATE, "duration": round(r.duration, 4),
        "num_words": len(r.words), "exact_alignment": r.exact, "source": "synthetic",
        "text": " ".join(s for s, _, _ in r.sentences),
        "sentences": rnd(r.sentences), "words": rnd(r.words), "phones": rnd(r.phones),
    }


def _manifest_line(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "split", "speaker", "gender", "book", "chapter", "audio", "sample_rate", "duration", "num_words",
            "exact_alignment", "offset", "recording", "text", "source")
    line = {k: meta[k] for k in keys if k in meta}
    line["alignment"] = str(Path(meta["audio"]).with_suffix(".json"))
    return line


def segment_bounds(sentences: list[list], duration: float, max_seconds: float) -> list[tuple[float, float]]:
    """Cut a recording into contiguous pieces of at most `max_seconds`, between sentences (at the middle of the
    pause), covering it from 0 to `duration` without gaps. A single longer sentence becomes its own piece."""
    # where a piece holding sentence i would end: the middle of the pause after it (the recording's end for the last)
    ends = [(a[2] + b[1]) / 2 for a, b in zip(sentences[:-1], sentences[1:])] + [duration]
    cuts = [0.0]
    for i in range(1, len(sentences)):
        if ends[i] - cuts[-1] > max_seconds:
            cuts.append(ends[i - 1])
    cuts.append(duration)
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _build_segments(meta: dict[str, Any], out: Path, max_seconds: float) -> list[dict[str, Any]]:
    from workbench.core.audio import load_audio

    lines, audio = [], None
    for k, (start, end) in enumerate(segment_bounds(meta["sentences"], meta["duration"], max_seconds)):
        sid = f"{meta['id']}-{k:03d}"
        seg_meta_path = out / "segments" / meta["split"] / f"{sid}.json"
        if _finished(seg_meta_path, meta.get("voice")) is None:  # real speech: no voice settings (None)
            if audio is None:
                audio = load_audio(out / meta["audio"])
            seg_audio = audio[int(round(start * SAMPLE_RATE)):int(round(end * SAMPLE_RATE))]
            save_audio(seg_meta_path.with_suffix(".flac"), seg_audio)
            inside = lambda spans: [[x, round(s - start, 4), round(e - start, 4)]  # noqa: E731
                                    for x, s, e in spans if s >= start and e <= end]
            seg = dict(meta, id=sid, audio=str(seg_meta_path.with_suffix(".flac").relative_to(out)),
                       duration=round(len(seg_audio) / SAMPLE_RATE, 4), offset=round(start, 4), recording=meta["id"],
                       sentences=inside(meta["sentences"]), words=inside(meta["words"]), phones=inside(meta["phones"]))
            seg["num_words"] = len(seg["words"])
            seg["text"] = " ".join(s for s, _, _ in seg["sentences"])
            atomic_write_json(seg_meta_path, seg)
        lines.append(_manifest_line(json.loads(seg_meta_path.read_text())))
    return lines


def _build_parallel(config: CorpusConfig, out: Path, work: list[Job]) -> list[dict[str, Any]]:
    """The same test sentences read by every held-out speaker, one short recording each."""
    sentences = [s for job in work if job.split == "test" for s in job.chapter.sentences
                 if 4 <= len(words(s)) <= 30][: config.parallel_sentences]
    lines = []
    for v in (v for v in VOICES if v.held_out):
        for k, sentence in enumerate(sentences):
            pid = f"parallel-{k:04d}_{v.name}"
            meta_path = out / "parallel" / v.name / f"{pid}.json"
            if _finished(meta_path, dataclasses.asdict(v)) is None:
                r = render([sentence], v)
                save_audio(meta_path.with_suffix(".flac"), r.audio)
                meta = _meta(pid, "parallel", v, None, r, meta_path.with_suffix(".flac").relative_to(out))
                meta["sentence_index"] = k
                atomic_write_json(meta_path, meta)
            line = _manifest_line(json.loads(meta_path.read_text()))
            line["sentence_index"] = k
            lines.append(line)
    return lines


# ------------------------------------------------------------------------------------------- real speech mixed in

def real_speech_root(setting: str | None) -> Path | None:
    """The real-speech folder a `CorpusConfig.real_speech` setting names (see there), or None."""
    from workbench.core.errors import UserError
    from workbench.data.loaders import MINI_LIBRISPEECH

    if setting in (None, "", "none"):
        return None
    if setting == "auto":
        named = os.environ.get("WORKBENCH_REAL_SPEECH")
        if not named:
            return MINI_LIBRISPEECH if MINI_LIBRISPEECH.is_dir() else None
        setting = named
    root = Path(setting).expanduser()
    if not root.is_dir():
        raise UserError(f"real speech {root}: no such folder (a LibriSpeech-layout folder: "
                        "<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac with *.trans.txt)")
    return root


def _no_real_reason(config: CorpusConfig) -> str:
    if config.real_speech in (None, "", "none"):
        return f"the {config.name} preset mixes in no real speech"
    return "no real speech found: set WORKBENCH_REAL_SPEECH to a LibriSpeech-layout folder (../shared/data/" \
           "mini-librispeech is used where present)"


def _build_real(config: CorpusConfig, root: Path, out: Path, progress: bool) -> dict[str, Any]:
    """Mix a LibriSpeech-layout folder into the corpus: speakers split (`speaker_split`), every utterance
    aligned, every chapter joined into one recording under ``real/`` (`write_longform`), dev/test cut
    into segments like the synthetic ones. Returns manifest rows, segment rows and a summary."""
    from workbench.core.errors import UserError
    from workbench.data.align import align_dataset
    from workbench.data.loaders import (
        SpeechDataset,
        _utterance_number,
        open_dataset,
        read_speaker_genders,
        speaker_split,
        write_longform,
    )

    try:
        dataset = open_dataset(root)
    except (OSError, ValueError) as err:
        raise UserError(f"real speech {root}: {' '.join(str(err).split())}") from None
    if dataset.kind not in ("librispeech", "librispeech-long"):
        raise UserError(f"real speech {root}: a {dataset.kind} folder; the corpus mixes in LibriSpeech-layout "
                        "speech (<speaker>/<chapter>/ folders with transcripts)")
    if config.real_utterances_per_chapter:
        keep = config.real_utterances_per_chapter
        dataset = SpeechDataset(dataset.kind, root, [r for r in dataset.recordings
                                                     if (_utterance_number(r) or 0) < keep])
    try:
        split = speaker_split(dataset, dev=config.real_dev_speakers, test=config.real_test_speakers, seed=config.seed)
    except ValueError as err:
        raise UserError(f"real speech {root}: {err}") from None
    # every utterance aligned: the held-out ones for PNMI and clips, the train ones for the tokenizer's
    # cross-speaker pairs (real speech beside a rendering of its transcript: tokenizer/data.py)
    _forget_other_real_speech(out, {"root": str(root), "split": split.as_dict(), "aligned": "all",
                                    "utterances_per_chapter": config.real_utterances_per_chapter})
    aligned_dir = out / "real" / "utterance-alignments"
    aligned = align_dataset(root, aligned_dir, only={r.id for r in dataset.recordings}, skip_bad=True,
                            progress=progress)
    dataset = SpeechDataset(dataset.kind, root, [r for r in open_dataset(root, alignments=aligned_dir).recordings
                                                 if r.id in {x.id for x in dataset.recordings}])
    written = write_longform(dataset, out / "real", split=split, progress=progress)
    genders = {"F": "female", "M": "male"}
    known = read_speaker_genders(root)
    recordings, segments = [], []
    for row in written:
        meta = json.loads(Path(row["alignment"]).read_text())
        rel = lambda p: str(Path(p).relative_to(out))  # noqa: E731
        meta.update(id=f"librispeech-{row['id']}", split=row["split"], speaker=f"librispeech-{row['speaker']}",
                    gender=genders.get(known.get(row["speaker"], ""), "unknown"), book=None, source="real",
                    audio=rel(row["audio"]), num_words=len(meta["text"].split()))
        line = _manifest_line(meta)
        line.update(alignment=rel(row["alignment"]), sampling_weight=config.real_weight)
        recordings.append(line)
        if row["split"] in ("dev", "test"):
            segments += _build_segments(meta, out, config.segment_seconds)
    hours = lambda which: round(sum(r["duration"] for r in recordings if r["split"] == which) / 3600, 4)  # noqa: E731
    summary = {"root": str(root), "speakers": split.as_dict(), "recordings": len(recordings),
               "hours": {s: hours(s) for s in ("train", "dev", "test")}, "sampling_weight": config.real_weight,
               "aligned_utterances": aligned["aligned"] + aligned["reused"], "alignment_skipped": aligned["skipped"]}
    return {"recordings": recordings, "segments": segments, "summary": summary}


def extra_voices_root(config: CorpusConfig) -> Path | None:
    """The folder of extra voices a `CorpusConfig.real_extra_voices` setting names (see there), or None."""
    from workbench.core.errors import UserError
    from workbench.data.loaders import EXTRA_VOICES

    setting = config.real_extra_voices
    if setting in (None, "", "none"):
        return None
    if not 0 < config.real_extra_share < 1:
        raise UserError(f"real_extra_share must be in (0, 1) (got {config.real_extra_share})")
    if setting == "auto":
        return EXTRA_VOICES if EXTRA_VOICES.is_dir() else None
    root = Path(setting).expanduser()
    if not root.is_dir():
        raise UserError(f"extra voices {root}: no such folder (a folder of audio files, one speaker per file name)")
    return root


def _build_voices(config: CorpusConfig, root: Path | None, out: Path, recordings: list[dict],
                  progress: bool) -> dict[str, Any]:
    """The extra voices (`real_extra_voices`): every file of `root` whose speaker the corpus does not hold, copied
    to ``voices/`` as 16 kHz mono, weighted so that they make `real_extra_share` of the real training crops (all of
    the training crops if the corpus has no real speech). Returns their rows and a summary."""
    import shutil
    import warnings

    from tqdm.auto import tqdm

    from workbench.core.audio import AudioConversionWarning
    from workbench.core.errors import UserError
    from workbench.data.loaders import open_dataset, real_speaker_of

    shutil.rmtree(out / "voices", ignore_errors=True)  # cheap to remake; none of another folder is kept by mistake
    if root is None:
        why = "none asked for" if config.real_extra_voices in (None, "", "none") else "the folder is not here"
        return {"recordings": [], "summary": {"root": None, "why": why}}
    try:
        found = open_dataset(root, kind="folder", skip_bad=True).recordings
    except (OSError, ValueError) as err:
        raise UserError(f"extra voices {root}: {' '.join(str(err).split())}") from None
    held = {r["speaker"] for r in recordings}
    rows = []
    for rec in tqdm(sorted(found, key=lambda r: str(r.audio)), desc="extra voices", disable=not progress,
                    unit="file"):
        speaker = real_speaker_of(rec.audio)
        if speaker in held:
            continue
        with warnings.catch_warnings():  # resampled or downmixed to 16 kHz mono: expected, so not warned about
            warnings.simplefilter("ignore", AudioConversionWarning)
            audio = rec.load()
        path = save_audio(out / "voices" / speaker / f"{rec.audio.name.split('.')[0]}.flac", audio)
        rows.append({"id": f"voice-{path.stem}", "split": "voices", "speaker": speaker, "source": "real",
                     "audio": str(path.relative_to(out)), "duration": round(len(audio) / SAMPLE_RATE, 3),
                     "origin": str(rec.audio)})
    if not rows:
        raise UserError(f"extra voices {root}: no audio of a speaker the corpus lacks")
    real = [r for r in recordings if r["split"] == "train" and r.get("source") == "real"] or \
        [r for r in recordings if r["split"] == "train"]
    mass = sum(r["duration"] * r.get("sampling_weight", 1.0) for r in real)
    share = config.real_extra_share
    weight = share / (1 - share) * mass / sum(r["duration"] for r in rows)
    for row in rows:
        row["sampling_weight"] = round(weight, 6)
    summary = {"root": str(root), "speakers": sorted({r["speaker"] for r in rows}), "recordings": len(rows),
               "minutes": round(sum(r["duration"] for r in rows) / 60, 3), "share": round(share, 4),
               "sampling_weight": round(weight, 6), "left_out": len(found) - len(rows)}
    return {"recordings": rows, "summary": summary}


def _forget_other_real_speech(out: Path, settings: dict[str, Any]) -> None:
    """Finished real recordings and segments are reused by name; if they were made from another folder, split or
    cut, remove them first so none is reused by mistake."""
    import shutil

    marker = out / "real" / "settings.json"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return
    shutil.rmtree(out / "real", ignore_errors=True)
    for old in (out / "segments").glob("*/librispeech-*"):
        old.unlink()
    atomic_write_json(marker, settings)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def corpus_stats(recordings: list[dict], segments: list[dict], parallel: list[dict]) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for split in ("train", "dev", "test"):
        rows = [r for r in recordings if r["split"] == split]
        durations = np.array([r["duration"] for r in rows]) if rows else np.zeros(0)
        splits[split] = {
            "hours": round(float(durations.sum()) / 3600, 4),
            "recordings": len(rows),
            "speakers": sorted({r["speaker"] for r in rows}),
            "mean_recording_minutes": round(float(durations.mean()) / 60, 3) if rows else 0.0,
            "words": int(sum(r["num_words"] for r in rows)),
            "segments": sum(s["split"] == split for s in segments),
            "real_hours": round(sum(r["duration"] for r in rows if r.get("source") == "real") / 3600, 4),
        }
    all_seconds = sum(r["duration"] for r in recordings)
    return {
        "hours": round(all_seconds / 3600, 4),
        "speakers": len({r["speaker"] for r in recordings}),
        "chapters": len(recordings),
        "segments": len(segments),
        "parallel_recordings": len(parallel),
        "max_segment_seconds": round(max((s["duration"] for s in segments), default=0.0), 3),
        "splits": splits,
    }


def build_preset(name: str, out: str | os.PathLike, jobs: int | None = None, progress: bool = True,
                 **overrides: Any) -> dict[str, Any]:
    from workbench.core.config import override

    config = pick_preset(PRESETS, name, "corpus")
    if overrides:
        config = override(config, **overrides)
    real_speech_root(config.real_speech)  # a real-speech folder that is not there: said before anything is written
    extra_voices_root(config)
    out = Path(out)
    previous = out / ".config.json"
    if previous.exists():
        # the real speech mixed in may change (added, another folder, none): the manifest is rewritten from the
        # settings, so only a change to the synthetic part asks for another folder
        old, new = json.loads(previous.read_text()), dataclasses.asdict(config)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and not k.startswith("real_"))
        if changed:
            from workbench.core.errors import UserError

            raise UserError(f"{out} holds a corpus built with different settings ({', '.join(changed)}; "
                            f"{previous}); choose another --out or delete it")
    atomic_write_json(previous, dataclasses.asdict(config))
    return build_corpus(config, out, jobs=jobs, progress=progress)
