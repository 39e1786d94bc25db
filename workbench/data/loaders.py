"""One interface over every speech corpus the workbench reads.

`open_dataset(path)` recognises:
- ``synthbooks``: a folder built by `workbench data build` (has ``manifest.jsonl``);
- ``librispeech``: ``<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with one ``*.trans.txt`` per chapter;
- ``librispeech-long``: the same speaker/chapter tree with one transcript ``.txt`` beside each audio file
  (LibriSpeech-Long's examples of up to 4 minutes);
- ``folder``: any folder of audio files (wav, flac, ogg, mp3), transcripts taken from a sibling .txt if present.

Each gives a `SpeechDataset` of `Recording`s. Training takes random crops of a given duration from long
recordings (reading only the crop from disk); evaluation takes contiguous segments.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soundfile as sf

from workbench.core.audio import SAMPLE_RATE, AudioError, check_audio, check_rate, one_line

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
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
    alignment: Path | None = None  # JSON with words/sentences/phones (SynthBooks only)
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self, start: float = 0.0, duration: float | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Read [start, start + duration) seconds of this recording as mono float32; only that part is read."""
        if start < 0 or start > self.duration + 1e-6:
            raise ValueError(f"{self.id}: start {start:.2f}s is outside the recording (0..{self.duration:.2f}s)")
        length = self.duration - start if duration is None else min(duration, self.duration - start)
        try:
            info = sf.info(str(self.audio))
            first = int(round((self.offset + start) * info.samplerate))
            wav, sr = sf.read(str(self.audio), start=first, frames=max(1, int(round(length * info.samplerate))),
                              dtype="float32", always_2d=True)
        except AudioError:
            raise
        except Exception as err:
            raise AudioError(f"{self.audio}: not a readable audio file ({one_line(err)})") from None
        return check_audio(wav, sr, sample_rate, name=str(self.audio), allow_silence=True)

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
        where long crops come from). Returns (recording, start, audio)."""
        usable = [r for r in self.recordings if r.duration >= seconds]
        if not usable:
            longest = max((r.duration for r in self.recordings), default=0.0)
            raise ValueError(f"no recording in {self.root} is {seconds:.1f}s long (longest: {longest:.1f}s)")
        weights = np.array([r.duration - seconds + 1e-3 for r in usable])
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
                 skip_bad: bool = False) -> SpeechDataset:
    """Open a corpus folder of any supported layout. Unreadable audio is an error naming the file, or, with
    `skip_bad`, a warning and the file left out."""
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
    if not recordings:
        raise ValueError(f"{root}: no audio found (looked for {kind} layout)")
    return SpeechDataset(kind, root, recordings)


def _synthbooks(root: Path, split: str | None) -> list[Recording]:
    """SynthBooks-Long: whole chapters from manifest.jsonl; dev/test segments via split='dev-segments' etc."""
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
                                 row.get("text"), alignment=root / row["alignment"], extra=row))
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
