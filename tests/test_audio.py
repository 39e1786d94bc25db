"""Bad audio in, one clear error out (naming the file); convertible audio converted with a warning."""

import numpy as np
import pytest
import soundfile as sf
from conftest import REAL_SPEECH

from workbench.core.audio import AudioConversionWarning, AudioError, load_audio, save_audio


def test_real_flac_loads_at_16k():
    wav = load_audio(REAL_SPEECH / "19-198-0000.flac")
    assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) > 16000


def test_wrong_rate_is_resampled_with_warning():
    with pytest.warns(AudioConversionWarning, match="22050 Hz -> 16000 Hz"):
        wav = load_audio(REAL_SPEECH / "LJ001-0001.wav")
    assert abs(len(wav) / 16000 - sf.info(REAL_SPEECH / "LJ001-0001.wav").duration) < 0.01


def test_wrong_rate_refused_when_resampling_is_off():
    with pytest.raises(AudioError, match="LJ001-0001.wav: sample rate 22050"):
        load_audio(REAL_SPEECH / "LJ001-0001.wav", resample=False)


def test_stereo_is_downmixed_with_warning(tmp_path):
    mono = load_audio(REAL_SPEECH / "19-198-0000.flac")
    sf.write(tmp_path / "st.wav", np.stack([mono, 0.5 * mono], 1), 16000)
    with pytest.warns(AudioConversionWarning, match="2 channels"):
        wav = load_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(wav, 0.75 * mono, atol=1e-4)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("empty", "empty file"),
    ("text", "not a readable audio file"),
    ("truncated", "not a readable audio file|contains no audio frames"),
    ("silence", "all silence"),
    ("nan", "NaN"),
])
def test_bad_audio_names_the_file_and_problem(tmp_path, case, message):
    path = tmp_path / f"{case}.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not audio\n" * 20)
    elif case == "truncated":
        path.write_bytes((REAL_SPEECH / "LJ001-0001.wav").read_bytes()[:30])
    elif case == "silence":
        sf.write(path, np.zeros(16000, np.float32), 16000)
    elif case == "nan":
        x = np.full(16000, 0.1, np.float32)
        x[100] = np.nan
        sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert path.name in str(err.value)


def test_save_is_atomic_and_roundtrips(tmp_path):
    x = (0.3 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    out = save_audio(tmp_path / "a.flac", x)
    assert [p.name for p in tmp_path.iterdir()] == ["a.flac"]  # no temp file left behind
    np.testing.assert_allclose(load_audio(out), x, atol=1e-4)
