"""Audio in and out, with the checks that turn bad input into one clear error naming the file.

All audio inside the workbench is mono float32 at 16 kHz. `load_audio` converts what can be converted
safely (stereo is averaged, another sample rate is resampled; each with a warning) and refuses the rest
(missing, empty, truncated or non-audio files, NaN/inf samples, all-silence) with an `AudioError`.

Bounds, checked from the header before any sample is decoded or resampled (so a small file declaring 1 Hz never
becomes hours of 16 kHz audio): the sample rate must lie in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] Hz, and the
audio may last at most `max_seconds` (default MAX_SECONDS, 2 hours; commands state theirs in `--help`): longer
audio is refused, or with ``trim=True`` only its first `max_seconds` are read.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from workbench.core.io import atomic_path

SAMPLE_RATE = 16_000
SILENCE_PEAK = 1e-4  # peak |x| below this (about -80 dBFS) counts as silence
MIN_SAMPLE_RATE = 4_000  # below this there is no speech to speak of (and resampling up would multiply the data)
MAX_SAMPLE_RATE = 384_000
MAX_SECONDS = 2 * 3600.0  # the default duration cap of `load_audio`


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the problem."""


class AudioConversionWarning(UserWarning):
    """Audio was converted (downmixed or resampled) on load."""


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, *, resample: bool = True,
               allow_silence: bool = False, max_seconds: float | None = MAX_SECONDS, trim: bool = False) -> np.ndarray:
    """Read `path` as mono float32 at `sample_rate`.

    The header is read first: a sample rate outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] is refused, and audio
    longer than `max_seconds` (None: no cap) is refused or, with `trim`, cut to its first `max_seconds` -- in
    both cases before anything is decoded, so memory stays bounded by the cap.
    Raises AudioError for anything unusable; warns (AudioConversionWarning) when it downmixes, resamples or trims.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile's errors are terse; name the file and what we expected
        raise AudioError(f"{path}: not a readable audio file ({one_line(err)})") from None
    check_rate(info.samplerate, str(path))
    frames = int(info.frames)
    if frames <= 0:
        raise AudioError(f"{path}: contains no audio frames")
    if max_seconds is not None and frames > max_seconds * info.samplerate:
        if not trim:
            raise AudioError(f"{path}: {_clock(frames / info.samplerate)} long ({frames} frames at "
                             f"{info.samplerate} Hz); at most {_clock(max_seconds)} is accepted here")
        frames = max(1, int(max_seconds * info.samplerate))
        warnings.warn(f"{path}: using its first {max_seconds:g} s of {info.frames / info.samplerate:.1f} s",
                      AudioConversionWarning, stacklevel=2)
    try:
        wav, sr = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioError(f"{path}: not a readable audio file ({one_line(err)})") from None
    return check_audio(wav, sr, sample_rate, name=str(path), resample=resample, allow_silence=allow_silence)


def check_rate(sr: int, name: str = "audio") -> int:
    """A sample rate the workbench can convert: [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] Hz, else AudioError."""
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        where = "below" if sr < MIN_SAMPLE_RATE else "above"
        bound = MIN_SAMPLE_RATE if sr < MIN_SAMPLE_RATE else MAX_SAMPLE_RATE
        raise AudioError(f"{name}: sample rate {sr} Hz is {where} {bound} Hz (accepted: {MIN_SAMPLE_RATE}-"
                         f"{MAX_SAMPLE_RATE} Hz)")
    return sr


def one_line(err: Exception) -> str:
    return " ".join(str(err).split())  # libsndfile's messages can span lines; a refusal is one line


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} (h:mm:ss)"


def check_audio(wav: np.ndarray, sr: int, sample_rate: int = SAMPLE_RATE, *, name: str = "audio",
                resample: bool = True, allow_silence: bool = False) -> np.ndarray:
    """Validate and convert an in-memory signal (frames[, channels]) the same way `load_audio` does."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        wav = wav[:, None]
    if wav.ndim != 2:
        raise AudioError(f"{name}: expected (frames,) or (frames, channels), got shape {wav.shape}")
    if wav.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio frames")
    check_rate(int(sr), name)
    if not np.isfinite(wav).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if wav.shape[1] > 1:
        warnings.warn(f"{name}: {wav.shape[1]} channels, averaging to mono", AudioConversionWarning, stacklevel=3)
    wav = wav.mean(axis=1)
    if sr != sample_rate:
        if not resample:
            raise AudioError(f"{name}: sample rate {sr} Hz, expected {sample_rate} Hz")
        warnings.warn(f"{name}: resampling {sr} Hz -> {sample_rate} Hz", AudioConversionWarning, stacklevel=3)
        wav = resample_audio(wav, sr, sample_rate)
    if not allow_silence and float(np.abs(wav).max()) < SILENCE_PEAK:
        raise AudioError(f"{name}: is all silence (peak below {SILENCE_PEAK:g})")
    return np.ascontiguousarray(wav, dtype=np.float32)


SPEECH_RANGE_DB = 35.0  # frames this far below the loudest 5% are pauses, not speech
LEVEL_FRAME_RATE = 50  # 20 ms frames
MAX_LEVEL_GAIN_DB = 40.0  # `gain_to_level`'s cap


def frame_power(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mean power of `wav`'s whole 20 ms frames (float64): computed frame by frame, so a long file read in chunks of
    whole frames gives the same values as read at once (`tokenizer.windowed.AudioSource.frame_power`)."""
    frame = sample_rate // LEVEL_FRAME_RATE
    n = len(wav) // frame
    return np.square(np.asarray(wav[: n * frame], dtype=np.float64).reshape(n, frame)).mean(1)


def speech_frames(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray] | None:
    """(power, is_speech) of `wav`'s 20 ms frames: speech is every frame within SPEECH_RANGE_DB of the loudest 5%;
    None where there is no frame (shorter than 20 ms) or no signal."""
    return speech_mask(frame_power(wav, sample_rate))


def speech_mask(power: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(power, is_speech) from `frame_power`'s output; None without frames or signal."""
    if len(power) == 0 or not power.max() > 0:
        return None
    db = 10 * np.log10(power + 1e-20)
    return power, db >= np.percentile(db, 95) - SPEECH_RANGE_DB


def speech_level_db(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float | None:
    """The level of the speech in `wav`, dBFS: the RMS over its `speech_frames`, so that pauses do not lower it;
    None where there is no frame or no signal."""
    return power_level_db(frame_power(wav, sample_rate))


def power_level_db(power: np.ndarray) -> float | None:
    """`speech_level_db` from `frame_power`'s output."""
    frames = speech_mask(power)
    if frames is None:
        return None
    power, speech = frames
    return float(10 * np.log10(power[speech].mean()))


def gain_to_level(level_db: float | None, target_db: float | None) -> float:
    """The factor that moves speech at `level_db` to `target_db` (at most MAX_LEVEL_GAIN_DB either way, so a
    near-silent input is not lifted into the noise floor's own level); 1 where either is None."""
    if level_db is None or target_db is None:
        return 1.0
    return float(10 ** (np.clip(target_db - level_db, -MAX_LEVEL_GAIN_DB, MAX_LEVEL_GAIN_DB) / 20))


def resample_audio(wav: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.ascontiguousarray(wav)), orig_sr, new_sr).numpy()


def save_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write 16-bit PCM WAV (or FLAC by suffix) atomically."""
    path = Path(path)
    fmt = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.asarray(wav, dtype=np.float32), sample_rate, subtype="PCM_16", format=fmt)
    return path


def audio_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in `path`, read from the header only."""
    try:
        info = sf.info(str(path))
    except Exception as err:
        raise AudioError(f"{path}: not a readable audio file ({one_line(err)})") from None
    return info.frames / info.samplerate
