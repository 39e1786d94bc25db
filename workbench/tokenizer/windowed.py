"""Windowed tokenization of unbounded audio, as in SpeechSSM: fixed-size overlapping windows (default 30 s with
4 s overlap), merged at the middle of each overlap.

    frames  0 ............................................................ T      (25 Hz, T = ceil(N / 640))
    window0 [==========kept==========|..]
    window1                      [..|=========kept=========|..]
    window2                                            [..|====kept====][pad from the start of the audio]

Window k starts at frame k (W - O) (always a multiple of 640 samples) and keeps the frames from the middle of
its first overlap to the middle of its last, so every kept frame is at least O/2 = 2 s from a window edge. The
encoder sees only `receptive_frames` (1.2 s at laptop) on either side, hence kept frames are exactly the frames of
whole-file tokenization (tested). Windows are read from disk one batch at a time: a 16-minute recording never
sits in memory whole.

End of speech (the paper's fix): when a recording spans several windows, the last one is filled up to the full
window with audio from the *start* of the recording rather than silence, so the tokenizer never sees an
artificial silent tail; the padding's tokens are dropped. (Our encoder is local, so this only touches the last
1.2 s; a recording shorter than one window is tokenized as it is, without padding.)
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from workbench.core.audio import (
    LEVEL_FRAME_RATE,
    AudioConversionWarning,
    AudioError,
    check_audio,
    frame_power,
    load_audio,
    power_level_db,
)
from workbench.tokenizer.config import FRAME, SAMPLE_RATE

Reader = Callable[[int, int], np.ndarray]  # (first sample, number of samples) -> mono float32 16 kHz


@dataclass(frozen=True)
class Window:
    start: int  # first frame of the window (global)
    keep_from: int  # global frames [keep_from, keep_to) come from this window
    keep_to: int


def plan_windows(total_frames: int, window_frames: int, overlap_frames: int) -> list[Window]:
    if overlap_frames % 2 or not 0 <= overlap_frames < window_frames:
        raise ValueError(f"overlap must be even and below the window ({overlap_frames} vs {window_frames} frames)")
    if total_frames <= window_frames:
        return [Window(0, 0, total_frames)]
    hop, half = window_frames - overlap_frames, overlap_frames // 2
    n = 1 + math.ceil((total_frames - window_frames) / hop)
    return [Window(k * hop, 0 if k == 0 else k * hop + half,
                   total_frames if k == n - 1 else (k + 1) * hop + half) for k in range(n)]


class AudioSource:
    """Audio readable by sample range. 16 kHz files are streamed from disk; other rates are resampled whole
    (short clips in practice), with the usual conversion warning. `peak` is the largest |sample| read so far (so
    all-silence is refused after encoding, without a second pass over the file)."""

    def __init__(self, path: str | os.PathLike, offset_s: float = 0.0, duration_s: float | None = None):
        self.path = Path(path)
        try:
            info = sf.info(str(self.path))
        except Exception as err:
            if not self.path.exists():
                raise AudioError(f"{self.path}: no such file") from None
            raise AudioError(f"{self.path}: not a readable audio file ({err})") from None
        if info.frames <= 0:
            raise AudioError(f"{self.path}: contains no audio frames")
        self._array, self.peak = None, 0.0
        if info.samplerate == SAMPLE_RATE:
            self.first = int(round(offset_s * SAMPLE_RATE))
            total = info.frames - self.first
        else:
            full = load_audio(self.path, allow_silence=True)
            self.first = 0
            self._array = full[int(round(offset_s * SAMPLE_RATE)):]
            total = len(self._array)
        self.num_samples = min(total, int(round(duration_s * SAMPLE_RATE))) if duration_s else total
        if self.num_samples <= 0:
            raise AudioError(f"{self.path}: no audio at offset {offset_s:.2f}s")

    @classmethod
    def of(cls, recording) -> "AudioSource":
        """From a workbench.data Recording."""
        return cls(recording.audio, recording.offset, recording.duration)

    @property
    def seconds(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def frame_power(self, chunk_seconds: float = 20.0) -> np.ndarray:
        """`core.audio.frame_power` of the whole source, read a chunk of whole 20 ms frames at a time (the same
        values as reading it at once)."""
        frame = SAMPLE_RATE // LEVEL_FRAME_RATE
        chunk = max(1, int(chunk_seconds * LEVEL_FRAME_RATE)) * frame
        return np.concatenate([frame_power(self.read(start, chunk)) for start in range(0, self.num_samples, chunk)])

    def speech_level_db(self, chunk_seconds: float = 20.0) -> float | None:
        """`core.audio.speech_level_db` of the whole source, streamed (`frame_power`)."""
        return power_level_db(self.frame_power(chunk_seconds))

    def read(self, start: int, length: int) -> np.ndarray:
        chunk = self._read(start, max(0, min(length, self.num_samples - start)))
        if len(chunk):
            self.peak = max(self.peak, float(np.abs(chunk).max()))
        return chunk

    def _read(self, start: int, length: int) -> np.ndarray:
        if self._array is not None:
            return self._array[start: start + length]
        try:
            wav, sr = sf.read(str(self.path), start=self.first + start, frames=length, dtype="float32", always_2d=True)
        except Exception as err:
            raise AudioError(f"{self.path}: not a readable audio file ({err})") from None
        if len(wav) < length:
            raise AudioError(f"{self.path}: truncated (read {len(wav)} of {length} samples at {start})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AudioConversionWarning)  # stereo: averaged silently per window
            return check_audio(wav, sr, name=str(self.path), allow_silence=True)


def tokenize_windowed(tokenizer, source: AudioSource | np.ndarray, window_seconds: float | None = None,
                      overlap_seconds: float | None = None, batch_windows: int = 4,
                      gain: float | None = None) -> np.ndarray:
    """Units (T,) for audio of any length, `batch_windows` windows of audio in memory at a time. Every window is
    levelled by the file's gain (`Tokenizer.gain`), measured over the whole file first, unless `gain` is given
    (recordings tokenized as one session share one: `pipeline.probes.tokenize_sets`)."""
    cfg = tokenizer.config
    if isinstance(source, np.ndarray):
        array = np.asarray(source, dtype=np.float32)
        read, num_samples = (lambda s, n: array[s: s + n]), len(array)
    else:
        read, num_samples = source.read, source.num_samples
    if gain is None:
        gain = tokenizer.gain(array if isinstance(source, np.ndarray) else source)
    wf = int(round((window_seconds or cfg.window_seconds) * SAMPLE_RATE / FRAME))
    of = int(round((overlap_seconds if overlap_seconds is not None else cfg.overlap_seconds) * SAMPLE_RATE / FRAME))
    reach = cfg.receptive_frames if tokenizer.kind == "learned" else cfg.mfcc_context
    if reach + 1 > of // 2:  # +1: the window's edge frame also sees the STFT's reflect padding
        raise ValueError(f"overlap {of} frames is too short for a receptive field of {reach} frames per side")
    total = math.ceil(num_samples / FRAME)
    windows = plan_windows(total, wf, of)
    out = np.zeros(total, dtype=np.int64)
    for i in range(0, len(windows), batch_windows):
        group = windows[i: i + batch_windows]
        audio = [_window_audio(read, num_samples, w.start * FRAME, wf * FRAME, multi=len(windows) > 1) for w in group]
        longest = max(len(a) for a in audio)
        batch = torch.from_numpy(np.stack([np.pad(a, (0, longest - len(a))) for a in audio]))
        units = tokenizer.units(batch, gain=gain).numpy()
        for w, u in zip(group, units):
            out[w.keep_from: w.keep_to] = u[w.keep_from - w.start: w.keep_to - w.start]
    return out


def _window_audio(read: Reader, num_samples: int, start: int, length: int, multi: bool) -> np.ndarray:
    chunk = read(start, length)
    if not multi or len(chunk) >= length:
        return chunk
    # the paper's end-of-speech fix: fill the last window with the recording's beginning, not silence
    parts, have = [chunk], len(chunk)
    while have < length:
        part = read(0, min(length - have, num_samples))
        parts.append(part)
        have += len(part)
    return np.concatenate(parts)[:length]
