"""Reference codecs run through their command-line tools, for the comparison table.

- Codec2 3200 bit/s (`c2enc`/`c2dec`, package codec2): a narrow-band vocoder that reads raw 8 kHz signed 16-bit
  samples, so the 16 kHz input is resampled down to 8 kHz and the output back up to 16 kHz (band-limited to
  4 kHz: wide-band PESQ counts the missing upper band against it, as it would against any 8 kHz codec).
- Opus at 6 kbit/s (`opusenc --bitrate 6 --hard-cbr`/`opusdec --rate 16000`, package opus-tools): Opus's
  lowest rate (SILK, narrow-band at this rate). `kbps_file` also counts the Ogg container's overhead.
- identity: the input itself, the ceiling of every measure.

Each returns (decoded 16 kHz waveform of the input's length, kbps, kbps_file).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from workbench.codec.metrics import fit_length
from workbench.core.audio import SAMPLE_RATE, resample_audio

TOOLS = {"codec2-3200": ("c2enc", "c2dec"), "opus-6k": ("opusenc", "opusdec"), "opus-8k": ("opusenc", "opusdec"),
         "identity": ()}


def missing_tools(name: str) -> list[str]:
    return [t for t in TOOLS[name] if shutil.which(t) is None]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def codec2(wav: np.ndarray, mode: str = "3200") -> tuple[np.ndarray, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        raw, bits, out = Path(tmp, "in.raw"), Path(tmp, "in.bit"), Path(tmp, "out.raw")
        narrow = resample_audio(np.asarray(wav, dtype=np.float32), SAMPLE_RATE, 8000)
        (np.clip(narrow, -1, 1) * 32767).round().astype("<i2").tofile(raw)
        _run(["c2enc", mode, str(raw), str(bits)])
        _run(["c2dec", mode, str(bits), str(out)])
        decoded = np.fromfile(out, "<i2").astype(np.float32) / 32768
        kbps_file = bits.stat().st_size * 8 / (len(wav) / SAMPLE_RATE) / 1000
    return fit_length(resample_audio(decoded, 8000, SAMPLE_RATE), len(wav)), int(mode) / 1000, kbps_file


def opus(wav: np.ndarray, kbps: float = 6.0) -> tuple[np.ndarray, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        src, enc, out = Path(tmp, "in.wav"), Path(tmp, "in.opus"), Path(tmp, "out.wav")
        sf.write(str(src), np.clip(wav, -1, 1), SAMPLE_RATE, subtype="PCM_16")
        _run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", "--hard-cbr", str(src), str(enc)])
        _run(["opusdec", "--quiet", "--rate", str(SAMPLE_RATE), str(enc), str(out)])
        decoded, sr = sf.read(str(out), dtype="float32", always_2d=True)
        kbps_file = enc.stat().st_size * 8 / (len(wav) / SAMPLE_RATE) / 1000
    return fit_length(decoded.mean(1), len(wav)), kbps, kbps_file


def identity(wav: np.ndarray) -> tuple[np.ndarray, float, float]:
    return np.asarray(wav, dtype=np.float32), 256.0, 256.0  # 16-bit PCM at 16 kHz


BASELINES: dict[str, Callable[[np.ndarray], tuple[np.ndarray, float, float]]] = {
    "codec2-3200": codec2, "opus-6k": opus, "opus-8k": lambda wav: opus(wav, 8.0), "identity": identity}
