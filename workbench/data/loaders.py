"""One interface over every speech corpus the workbench reads.

`open_dataset(path)` recognises:
- ``synthbooks``: a folder built by `workbench data build` (has ``manifest.jsonl``);
- ``librispeech``: ``<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with one ``*.trans.txt`` per chapter;
- ``librispeech-long``: the same speaker/chapter tree with one transcript ``.txt`` beside each audio file
  (LibriSpeech-Long's examples of up to 4 minutes);
- ``folder``: any folder of audio files (wav, flac, ogg, mp3), transcripts taken from a sibling .txt if present.

Each gives a `SpeechDataset` of `Recording`s. Training takes random crops of a given duration from long
recordings (reading only the crop from disk); evaluation takes contiguous segments.

Real speech (the non-SynthBooks kinds) gets phone/word alignments attached (`Recording.alignment`) from an
alignment folder made by `python -m workbench data align` (``<root>/alignments`` is found by itself; any other
folder is named with `alignments=`). `speaker_split` splits a LibriSpeech-layout corpus by speaker, and
`join_chapter` / `write_longform` join a chapter's consecutive utterances into long-form recordings (see
workbench/data/README.md).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import soundfile as sf

from workbench.core.audio import SAMPLE_RATE, AudioError, check_audio, check_rate, one_line

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
# real recorded speech for measurements: the fixture clips in the repository, and the larger set beside it
REPO = Path(__file__).resolve().parents[2]
REAL_SPEECH_DIRS = (REPO / "tests" / "fixtures" / "real-speech", REPO.parent / "shared" / "data" / "real-speech")
MINI_LIBRISPEECH = REPO.parent / "shared" / "data" / "mini-librispeech"  # real voices to train on, where present
# one LibriSpeech utterance from each of 40 speakers: more real voices for the codec to train on, where present
EXTRA_VOICES = REPO.parent / "shared" / "data" / "real-speech" / "librispeech_train-clean-100_1utt_per_speaker"
KINDS = ("synthbooks", "librispeech", "librispeech-long", "folder")


@dataclass
class Recording:
    """A stretch of one audio file: [offset, offset + duration) seconds, with what is known about it."""

    id: str
    audio: Path
    duration: float
    speaker: str | None = None
    split: str | None = None
    text: str | None = None
    offset: float = 0.0
    alignment: Path | None = None  # JSON with words/sentences/phones (SynthBooks; real speech once aligned)
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self, start: float = 0.0, duration: float | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Read [start, start + duration) seconds of this recording as mono float32; only that part is read."""
        if start < 0 or start > self.duration + 1e-6:
            raise ValueError(f"{self.id}: start {start:.2f}s is outside the recording (0..{self.duration:.2f}s)")
        length = self.duration - start if duration is None else min(duration, self.duration - start)
        try:
            with sf.SoundFile(str(self.audio)) as f:  # one open: training reads a crop this way every step
                sr = f.samplerate
                f.seek(int(round((self.offset + start) * sr)))
                wav = f.read(max(1, int(round(length * sr))), dtype="float32", always_2d=True)
        except AudioError:
            raise
        except Exception as err:
            raise AudioError(f"{self.audio}: not a readable audio file ({one_line(err)})") from None
        return check_audio(wav, sr, sample_rate, name=str(self.audio), allow_silence=True)

    @property
    def source(self) -> str:
        """"synthetic" (a SynthBooks rendering) or "real" (recorded speech, in a corpus or any other layout)."""
        return self.extra.get("source") or ("synthetic" if "book" in self.extra else "real")

    def alignment_data(self) -> dict[str, Any]:
        if self.alignment is None:
            raise ValueError(f"{self.id}: this corpus has no alignments")
        return json.loads(Path(self.alignment).read_text())


@dataclass
class SpeechDataset:
    kind: str
    root: Path
    recordings: list[Recording]

    def __len__(self) -> int:
        return len(self.recordings)

    @property
    def hours(self) -> float:
        return sum(r.duration for r in self.recordings) / 3600

    def split(self, name: str) -> "SpeechDataset":
        return SpeechDataset(self.kind, self.root, [r for r in self.recordings if r.split == name])

    def random_crop(self, seconds: float, rng: np.random.Generator) -> tuple[Recording, float, np.ndarray]:
        """A crop of `seconds` from a recording chosen in proportion to its length (long recordings are
        where long crops come from) times its ``sampling_weight`` if the manifest gives one. Returns (recording,
        start, audio)."""
        usable = [r for r in self.recordings if r.duration >= seconds]
        if not usable:
            longest = max((r.duration for r in self.recordings), default=0.0)
            raise ValueError(f"no recording in {self.root} is {seconds:.1f}s long (longest: {longest:.1f}s)")
        # a corpus may ask for some recordings more often per second of audio (its real speech: `sampling_weight`)
        weights = np.array([(r.duration - seconds + 1e-3) * float(r.extra.get("sampling_weight", 1.0)) for r in usable])
        rec = usable[rng.choice(len(usable), p=weights / weights.sum())]
        start = float(rng.uniform(0.0, rec.duration - seconds))
        return rec, start, rec.load(start, seconds)

    def contiguous_segments(self, seconds: float) -> Iterator[tuple[Recording, float, float]]:
        """Every recording cut into back-to-back (recording, start, end) windows of `seconds` (the last shorter)."""
        for rec in self.recordings:
            start = 0.0
            while start < rec.duration - 1e-6:
                end = min(rec.duration, start + seconds)
                yield rec, start, end
                start = end

    def summary(self) -> dict[str, Any]:
        splits = sorted({r.split or "all" for r in self.recordings})
        return {
            "kind": self.kind, "root": str(self.root), "recordings": len(self.recordings),
            "hours": round(self.hours, 4), "speakers": len({r.speaker for r in self.recordings if r.speaker}),
            "with_transcripts": sum(r.text is not None for r in self.recordings),
            "splits": {s: round(sum(r.duration for r in self.recordings if (r.split or "all") == s) / 3600, 4)
                       for s in splits},
        }


def detect_kind(root: Path) -> str:
    if (root / "manifest.jsonl").exists():
        return "synthbooks"
    if next(root.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    audio = next((p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES), None)
    if audio is not None and len(audio.relative_to(root).parts) >= 3 and audio.with_suffix(".txt").exists():
        return "librispeech-long"
    return "folder"


def open_dataset(path: str | os.PathLike, kind: str = "auto", split: str | None = None,
                 skip_bad: bool = False, alignments: str | os.PathLike | None = None) -> SpeechDataset:
    """Open a corpus folder of any supported layout. Unreadable audio is an error naming the file, or, with
    `skip_bad`, a warning and the file left out. Real speech: recordings with an alignment in `alignments`
    (default ``<root>/alignments`` if it exists; made by `workbench data align`) get it as `.alignment`."""
    root = Path(path)
    if kind != "auto" and kind not in KINDS:
        raise ValueError(f"unknown corpus kind {kind!r}; kinds: auto, {', '.join(KINDS)}")
    if root.is_file():
        raise FileNotFoundError(f"{root}: is a file; a corpus is a folder (of audio files, or built by "
                                "`python -m workbench data build`)")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such corpus folder")
    kind = detect_kind(root) if kind == "auto" else kind
    if kind == "synthbooks":
        recordings = _synthbooks(root, split)
    else:
        recordings = _scan(root, kind, skip_bad)
        if split:
            recordings = [r for r in recordings if r.split == split]
        _attach_alignments(root, recordings, alignments)
    if not recordings:
        raise ValueError(f"{root}: no audio found (looked for {kind} layout)")
    return SpeechDataset(kind, root, recordings)


def _synthbooks(root: Path, split: str | None) -> list[Recording]:
    """SynthBooks-Long: whole chapters from manifest.jsonl; dev/test segments via split='dev-segments' etc.; the
    extra one-file voices only the codec trains on via split='voices' (voices.jsonl, where the corpus has them)."""
    if split == "voices":
        manifest = "voices.jsonl"
    else:
        manifest = "segments.jsonl" if split and split.endswith("-segments") else "manifest.jsonl"
    want = split.removesuffix("-segments") if split else None
    out = []
    if not (root / manifest).is_file():
        raise ValueError(f"{root / manifest}: no such file; a SynthBooks corpus folder has manifest.jsonl "
                         "(built by `python -m workbench data build`)")
    for i, line in enumerate((root / manifest).read_text().splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if want and row["split"] != want:
                continue
            out.append(Recording(row["id"], root / row["audio"], row["duration"], row["speaker"], row["split"],
                                 row.get("text"), alignment=root / row["alignment"] if row.get("alignment") else None,
                                 extra=row))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{root / manifest}: line {i + 1} is not a manifest row ({one_line(err)})") from None
    return out


def _header_duration(path: Path, skip_bad: bool) -> float | None:
    try:
        info = sf.info(str(path))
        check_rate(info.samplerate, str(path))
        if info.frames <= 0:
            raise AudioError(f"{path}: contains no audio frames")
        return info.frames / info.samplerate
    except Exception as err:
        message = str(err) if isinstance(err, AudioError) else f"{path}: not a readable audio file ({one_line(err)})"
        if not skip_bad:
            raise AudioError(message) from None
        warnings.warn(f"skipping {message}", stacklevel=3)
        return None


def _scan(root: Path, kind: str, skip_bad: bool) -> list[Recording]:
    transcripts: dict[str, str] = {}
    if kind == "librispeech":
        for trans in root.rglob("*.trans.txt"):
            for line in trans.read_text().splitlines():
                if line.strip():
                    uid, _, text = line.partition(" ")
                    transcripts[uid] = text.strip()
    out = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        duration = _header_duration(path, skip_bad)
        if duration is None:
            continue
        rel = path.relative_to(root).parts
        text = transcripts.get(path.stem)
        if text is None and path.with_suffix(".txt").exists():
            text = path.with_suffix(".txt").read_text().strip()
        # LibriSpeech trees: <split?>/<speaker>/<chapter>/<file>; the speaker is two folders up
        speaker = rel[-3] if kind != "folder" and len(rel) >= 3 else (rel[-2] if len(rel) >= 2 else None)
        split = rel[-4] if kind != "folder" and len(rel) >= 4 else None
        out.append(Recording(path.stem, path, duration, speaker, split, text))
    return out


def _attach_alignments(root: Path, recordings: list[Recording], alignments: str | os.PathLike | None) -> None:
    """Point each recording at ``<alignments>/<its path under root>.json`` where that file exists."""
    if alignments is None:
        folder = root / "alignments"
        if not folder.is_dir():
            return
    else:
        folder = Path(alignments)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such alignment folder (made by `python -m workbench data align`)")
    for rec in recordings:
        candidate = folder / rec.audio.relative_to(root).with_suffix(".json")
        if candidate.is_file():
            rec.alignment = candidate


# ----------------------------------------------------------- real read speech: speaker splits, long-form joins

@dataclass(frozen=True)
class SpeakerSplit:
    """Disjoint train / dev / test speakers."""

    train: tuple[str, ...]
    dev: tuple[str, ...]
    test: tuple[str, ...]

    def split_of(self, speaker: str | None) -> str | None:
        for name in ("train", "dev", "test"):
            if speaker in getattr(self, name):
                return name
        return None

    def apply(self, dataset: SpeechDataset) -> SpeechDataset:
        """The dataset with every recording's `split` set from its speaker (the recordings are copies)."""
        from dataclasses import replace

        return SpeechDataset(dataset.kind, dataset.root,
                             [replace(r, split=self.split_of(r.speaker)) for r in dataset.recordings])

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "dev": list(self.dev), "test": list(self.test)}


def _speaker_rank(speaker: str, seed: int) -> str:
    import hashlib

    return hashlib.sha256(f"{seed}:{speaker}".encode()).hexdigest()


def read_speaker_genders(root: Path) -> dict[str, str]:
    """LibriSpeech's SPEAKERS.TXT (``id | F/M | subset | minutes | name``) in `root` or a parent; {} if none."""
    for folder in (root, *root.parents[:2]):
        path = folder / "SPEAKERS.TXT"
        if path.is_file():
            out = {}
            for line in path.read_text(errors="replace").splitlines():
                parts = [p.strip() for p in line.split("|")]
                if not line.startswith(";") and len(parts) >= 2 and parts[1] in ("F", "M"):
                    out[parts[0]] = parts[1]
            return out
    return {}


def speaker_split(dataset: SpeechDataset | str | os.PathLike, dev: int = 3, test: int = 3,
                  seed: int = 0) -> SpeakerSplit:
    """Split a corpus's speakers into disjoint train / dev / test sets, deterministically.

    Speakers are ranked by sha256(f"{seed}:{speaker}") (so the rank of a speaker does not depend on which other
    speakers are present, nor on Python's hash seed). Where LibriSpeech's SPEAKERS.TXT gives genders, test and
    then dev draw alternately from the female and male queues (starting with the larger), so each held-out set
    has both genders; the rest train. Mini-LibriSpeech (20 speakers, 12 F / 8 M) at 3/3: 14 train (8 F, 6 M),
    dev 2 F + 1 M, test 2 F + 1 M."""
    if not isinstance(dataset, SpeechDataset):
        dataset = open_dataset(dataset)
    speakers = sorted({r.speaker for r in dataset.recordings if r.speaker})
    if dev < 0 or test < 0 or dev + test >= len(speakers):
        raise ValueError(f"{dataset.root}: cannot hold out {dev} dev + {test} test speakers of {len(speakers)} "
                         "(at least one must remain for training)")
    genders = read_speaker_genders(Path(dataset.root))
    queues: dict[str, list[str]] = {}
    for spk in sorted(speakers, key=lambda s: _speaker_rank(s, seed)):
        queues.setdefault(genders.get(spk, "?"), []).append(spk)
    order = sorted(queues, key=lambda g: (-len(queues[g]), g))
    held: dict[str, list[str]] = {"test": [], "dev": []}
    for name, count in (("test", test), ("dev", dev)):
        k = 0
        while len(held[name]) < count:
            queue = queues[order[k % len(order)]]
            if queue:
                held[name].append(queue.pop(0))
            k += 1
    train = sorted(s for q in queues.values() for s in q)
    return SpeakerSplit(tuple(train), tuple(sorted(held["dev"])), tuple(sorted(held["test"])))


def _utterance_number(rec: Recording) -> int | None:
    tail = rec.id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def chapter_runs(dataset: SpeechDataset, max_seconds: float | None = None) -> list[list[Recording]]:
    """Each chapter's (speaker/chapter folder's) recordings in utterance order, cut into runs of consecutive
    utterances (a gap in the numbering starts a new run; so does `max_seconds` of audio)."""
    chapters: dict[tuple[str, str], list[Recording]] = {}
    for rec in dataset.recordings:
        chapters.setdefault((str(rec.speaker), rec.audio.parent.name), []).append(rec)
    runs = []
    for key in sorted(chapters):
        recs = sorted(chapters[key], key=lambda r: (_utterance_number(r) is None, _utterance_number(r) or 0, r.id))
        run: list[Recording] = []
        for rec in recs:
            if run:
                a, b = _utterance_number(run[-1]), _utterance_number(rec)
                too_long = max_seconds is not None and sum(r.duration for r in run) + rec.duration > max_seconds
                if a is None or b is None or b != a + 1 or too_long:
                    runs.append(run)
                    run = []
            run.append(rec)
        if run:
            runs.append(run)
    return runs


def join_chapter(recordings: list[Recording], gap: float = 0.0) -> tuple[np.ndarray, dict[str, Any]]:
    """Consecutive utterances joined into one recording: (audio, alignment dict in the corpus's JSON format).

    The audio is the utterances back to back (`gap` seconds of silence between them); each utterance becomes
    one sentence span; its words and phones (where it has an alignment) are shifted by its start. Utterances
    without an alignment are listed under ``unaligned`` as [id, start, end] and hold no phones (frame labels
    treat that time as outside any phone, which the phone metrics leave out)."""
    if not recordings:
        raise ValueError("nothing to join")
    pieces, sentences, words, phones, unaligned, texts = [], [], [], [], [], []
    t = 0.0
    pad = np.zeros(int(round(gap * SAMPLE_RATE)), np.float32)
    for k, rec in enumerate(recordings):
        if k and gap > 0:
            pieces.append(pad)
            phones.append(["_", round(t, 4), round(t + len(pad) / SAMPLE_RATE, 4)])
            t += len(pad) / SAMPLE_RATE
        audio = rec.load()
        length = len(audio) / SAMPLE_RATE
        shift = lambda spans: [[x, round(s + t, 4), round(e + t, 4)] for x, s, e in spans]  # noqa: E731
        text = (rec.text or "").strip()
        texts.append(text)
        if rec.alignment is not None:
            meta = rec.alignment_data()
            words += shift(meta.get("words", []))
            phones += shift(meta.get("phones", []))
        else:
            unaligned.append([rec.id, round(t, 4), round(t + length, 4)])
        sentences.append([text, round(t, 4), round(t + length, 4)])
        pieces.append(audio)
        t += length
    audio = np.concatenate(pieces)
    first = recordings[0]
    return audio, {
        "id": None, "speaker": first.speaker, "chapter": first.audio.parent.name,
        "utterances": [r.id for r in recordings], "sample_rate": SAMPLE_RATE,
        "duration": round(len(audio) / SAMPLE_RATE, 4), "num_words": len(words),
        "exact_alignment": False, "text": " ".join(x for x in texts if x),
        "sentences": sentences, "words": words, "phones": phones, "unaligned": unaligned,
    }


def write_longform(dataset: SpeechDataset, out: str | os.PathLike, split: SpeakerSplit | None = None,
                   max_seconds: float | None = None, fmt: str = "flac", gap: float = 0.0,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Join every chapter's consecutive utterances (`chapter_runs`) and write each as
    ``<out>/[<split>/]<speaker>/<chapter>/<id>.<fmt>`` with its transcript (``.txt``) beside it and its alignment
    at ``<out>/alignments/<same path>.json``: the LibriSpeech-Long layout, so `open_dataset(out)` reads it back
    (kind ``librispeech-long``, ``split`` from the folder, alignments attached). Every file is written
    atomically; a recording whose alignment file exists is kept. Returns one row per recording."""
    from tqdm.auto import tqdm

    from workbench.core.audio import save_audio
    from workbench.core.io import atomic_write_json, atomic_write_text

    if fmt not in ("flac", "wav"):
        raise ValueError(f"format {fmt!r}: flac or wav")
    out = Path(out)
    runs = chapter_runs(dataset, max_seconds)
    counts: dict[tuple[str, str], int] = {}
    for run in runs:
        key = (str(run[0].speaker), run[0].audio.parent.name)
        counts[key] = counts.get(key, 0) + 1
    rows, part = [], {}
    for run in tqdm(runs, desc="joining chapters", unit="chapter", disable=not progress):
        speaker, chapter = str(run[0].speaker), run[0].audio.parent.name
        k = part[(speaker, chapter)] = part.get((speaker, chapter), -1) + 1
        rid = f"{speaker}-{chapter}" + (f"-p{k:02d}" if counts[(speaker, chapter)] > 1 else "")
        which = split.split_of(run[0].speaker) if split else None
        rel = Path(*([which] if which else []), speaker, chapter, f"{rid}.{fmt}")
        align_path = (out / "alignments" / rel).with_suffix(".json")
        if align_path.is_file():
            meta = json.loads(align_path.read_text())
        else:
            audio, meta = join_chapter(run, gap)
            meta.update(id=rid, split=which, audio=str(rel))
            save_audio(out / rel, audio)
            atomic_write_text((out / rel).with_suffix(".txt"), meta["text"] + "\n")
            atomic_write_json(align_path, meta)  # last: its presence marks the recording finished
        rows.append({"id": rid, "split": which, "speaker": speaker, "audio": str(out / rel),
                     "alignment": str(align_path), "duration": meta["duration"],
                     "utterances": len(meta["utterances"]), "unaligned": len(meta["unaligned"])})
    return rows


def real_speech_files(dirs: Sequence[Path] = REAL_SPEECH_DIRS) -> list[Path]:
    """Every audio file under `dirs` (the real-speech folders by default), sorted."""
    return [p for d in dirs if Path(d).is_dir() for p in sorted(Path(d).rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES]


def corpus_speakers(corpus_dir: str | os.PathLike) -> set[str]:
    """Every speaker a built corpus holds, in any split and among its extra voices: voices its models may have
    heard, which a measurement of *unheard* real voices leaves out (empty for a folder that is no built corpus)."""
    root = Path(corpus_dir)
    rows = [line for name in ("manifest.jsonl", "voices.jsonl") if (root / name).is_file()
            for line in (root / name).read_text().splitlines() if line.strip()]
    return {json.loads(line)["speaker"] for line in rows}


def real_speaker_of(path: Path) -> str:
    """Who speaks in a real-speech file, from its name: LibriSpeech "19-198-0000" -> "librispeech-19", LJ Speech
    -> "ljspeech", CMU ARCTIC "cmu_arctic_us_aew_a0001" -> "arctic-aew", VCTK "p240_00000" -> "vctk-p240"; any
    other file is its own speaker."""
    import re

    stem = path.name.split(".")[0]
    for pattern, name in ((r"^(\d+)-\d+-\d+$", "librispeech-{}"), (r"^LJ\d+-\d+$", "ljspeech"),
                          (r"^cmu_arctic_us_([a-z]+)_a\d+$", "arctic-{}"), (r"^(p\d+)_\d+$", "vctk-{}"),
                          (r"^(\d+)_\d+$", "librispeech-{}")):
        match = re.match(pattern, stem)
        if match:
            return name.format(*match.groups())
    return stem

