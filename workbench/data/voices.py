"""The readers of the embedded corpus.

Four mbrola diphone voices (us1 female; us2, us3 male; en1 British male) become ten speakers by changing
pitch, speaking rate and apparent vocal-tract length (`tract`: the waveform is resampled so pitch *and*
formants scale together, the cheapest way to a genuinely different-sounding speaker). Two speakers are held out
of training for dev/test. mbrola voices are free for non-commercial use only (see README).

Without mbrola, espeak-ng's own formant voices stand in, with a warning: they sound robotic, offline ASR reads
them badly, and they give no exact phone timings.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

MBROLA_DIR = Path("/usr/share/mbrola")
# espeak-ng's own voice used in place of each mbrola voice when mbrola is missing
NATIVE_STAND_IN = {"us1": "en-us+f3", "us2": "en-us+m3", "us3": "en-us+m1", "en1": "en+m2"}


@dataclass(frozen=True)
class Voice:
    name: str
    base: str  # mbrola voice id
    gender: str
    accent: str
    pitch: int  # espeak-ng -p, 0..99 (50 = the voice's own)
    speed: int  # espeak-ng -s; with mbrola voices 126 is about 155 words per minute
    tract: float = 1.0  # >1: shorter vocal tract (higher formants and pitch); applied by resampling
    held_out: bool = False

    @property
    def mbrola_path(self) -> Path:
        return MBROLA_DIR / self.base / self.base

    @property
    def espeak_voice(self) -> str:
        return f"mb-{self.base}"

    @property
    def native_voice(self) -> str:
        return NATIVE_STAND_IN[self.base]


VOICES: tuple[Voice, ...] = (
    Voice("us1-a", "us1", "female", "US", pitch=50, speed=126),
    Voice("us1-b", "us1", "female", "US", pitch=72, speed=134, tract=1.10),
    Voice("us2-a", "us2", "male", "US", pitch=45, speed=122),
    Voice("us2-b", "us2", "male", "US", pitch=28, speed=118, tract=0.93),
    Voice("us3-a", "us3", "male", "US", pitch=50, speed=127),
    Voice("us3-b", "us3", "male", "US", pitch=68, speed=137, tract=1.05),
    Voice("en1-a", "en1", "male", "GB", pitch=50, speed=125),
    Voice("en1-b", "en1", "male", "GB", pitch=34, speed=132, tract=0.95),
    # held out of training: dev and test are read by these two only. Chosen far from every training voice to a
    # d-vector (nearest training voice 0.82 and 0.86; acoustic README): the earlier settings (us1 pitch 38 tract
    # 1.04, us3 pitch 62 tract 0.97) scored 0.96-0.97 against us1-a / us3-a, as close as a voice is to itself.
    Voice("us1-h", "us1", "female", "US", pitch=20, speed=124, tract=0.88, held_out=True),
    Voice("us3-h", "us3", "male", "US", pitch=30, speed=124, tract=0.90, held_out=True),
)


def voice(name: str) -> Voice:
    for v in VOICES:
        if v.name == name:
            return v
    raise ValueError(f"unknown voice {name!r}; voices: {', '.join(v.name for v in VOICES)}")


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def have_mbrola(v: Voice | None = None) -> bool:
    """True if mbrola and the voice's diphone database are installed (any voice's, if `v` is None)."""
    if shutil.which("mbrola") is None:
        return False
    voices = [v] if v else list(VOICES)
    return all(x.mbrola_path.exists() for x in voices)
