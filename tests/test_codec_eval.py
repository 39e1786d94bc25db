"""Codec measurements: metrics on known cases, alignment, the Codec2/Opus baselines."""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pytest
import torch

from tests.conftest import REAL_SPEECH
from workbench.codec import baselines
from workbench.codec.metrics import align, measure, mel_distance
from workbench.core.audio import load_audio


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(REAL_SPEECH / "19-198-0000.flac")[: 16_000 * 4]


def test_identical_signals_score_the_ceiling(speech) -> None:
    m = measure(speech, speech.copy())
    assert m["pesq"] == pytest.approx(4.64, abs=0.01)
    assert m["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert m["mel_distance"] == 0.0


def test_degradation_lowers_every_measure(speech) -> None:
    rng = np.random.default_rng(0)
    light = speech + 0.003 * rng.standard_normal(len(speech)).astype(np.float32)
    heavy = speech + 0.05 * rng.standard_normal(len(speech)).astype(np.float32)
    a, b = measure(speech, light), measure(speech, heavy)
    assert 4.64 > a["pesq"] > b["pesq"] and 1.0 > a["stoi"] > b["stoi"]
    assert 0 < a["mel_distance"] < b["mel_distance"]


def test_silent_reference_gives_undefined_pesq_not_a_crash() -> None:
    silence = np.zeros(16_000 * 2, np.float32)
    assert np.isnan(measure(silence, silence)["pesq"])


@pytest.mark.parametrize("lag", [0, 37, -120, 1000])
def test_align_recovers_a_known_delay(speech, lag: int) -> None:
    delayed = np.roll(speech, lag)
    aligned, found = align(speech, delayed)
    assert found == lag and len(aligned) == len(speech)
    inner = slice(1200, -1200)
    assert np.allclose(aligned[inner], speech[inner])


def test_mel_distance_pads_a_short_output(speech) -> None:
    assert mel_distance(speech, speech[:-100]) < mel_distance(speech, np.zeros_like(speech))


@pytest.mark.parametrize("name", ["codec2-3200", "opus-6k", "identity"])
def test_baselines_run_and_keep_length(speech, name: str) -> None:
    if baselines.missing_tools(name):
        # CI installs codec2 and opus-tools (scripts/setup.sh): there a missing tool is a failure, not a skip
        if os.environ.get("CI"):
            pytest.fail(f"{name} needs {baselines.missing_tools(name)}, which setup should have installed")
        pytest.skip(f"{name} needs {baselines.missing_tools(name)}")
    out, kbps, kbps_file = baselines.BASELINES[name](speech)
    assert out.shape == speech.shape and out.dtype == np.float32 and np.isfinite(out).all()
    out, _ = align(speech, out)
    m = measure(speech, out)
    assert m["stoi"] > 0.6  # intelligible: the tool really ran on speech
    if name == "codec2-3200":
        assert kbps == 3.2 and kbps_file == pytest.approx(3.2, rel=0.02)  # 64 bits per 20 ms frame
    if name == "opus-6k":
        assert kbps == 6.0 and 5.5 < kbps_file < 12  # the Ogg container adds its overhead


def test_spectral_envelope_splits_the_harmonics_from_the_vocal_tract() -> None:
    """A log spectrum made of a smooth tilt with two formants plus a 200 Hz harmonic comb: the envelope is the
    smooth part (the comb averages out of it), what is left is the comb, and the split is exact."""
    from workbench.codec.model import spectral_envelope

    f = torch.arange(641) * 12.5  # the laptop codec's bins
    smooth = -f / 4000 + torch.exp(-((f - 700) / 300) ** 2) + 0.5 * torch.exp(-((f - 2200) / 400) ** 2)
    comb = 0.8 * torch.cos(2 * math.pi * f / 200)
    log_mag = (smooth + comb)[None, :, None].repeat(1, 1, 3)
    envelope = spectral_envelope(log_mag)
    assert envelope.shape == log_mag.shape
    inner = slice(8, -8)  # the ends of the band wrap around in the cepstrum
    assert (envelope[0, inner, 0] - smooth[inner]).abs().max() < 0.1
    assert torch.corrcoef(torch.stack([(log_mag - envelope)[0, inner, 0], comb[inner]]))[0, 1] > 0.99
    assert torch.allclose(spectral_envelope(envelope), envelope, atol=1e-4)  # smooth stays smooth


def test_diagnosis_isolates_each_loss(speech) -> None:
    """`codec diagnose` on an untrained Griffin-Lim codec: Griffin-Lim from the true magnitudes scores far above
    the codec, and repairing the whole band gives exactly the true magnitudes' score. Another decoder is refused."""
    from workbench.codec.config import ModelConfig
    from workbench.codec.diagnose import diagnose_clip
    from workbench.codec.model import Codec
    from workbench.core.errors import UserError

    tiny = ModelConfig(channels=2, decoder_channels=2, dim=8, dilations=(1,), codebook_size=16, num_quantizers=2,
                       encoder="stft", decoder="griffinlim", gla_iters=16)
    out = diagnose_clip(Codec(tiny).eval(), speech[: 16_000 * 3], bands=((0, 1000), (0, 8000)))
    assert out["exact"] > 2.5 and out["codec"] < 1.5 and out["exact"] > out["unquantized"]
    assert out["codec, true 0-8 kHz"] == pytest.approx(out["exact"], abs=1e-4)  # the same magnitudes
    assert out["error 0-1 kHz"] > 0 and np.isfinite(out["loud error 0-1 kHz"])
    assert 0 < out["quiet share"] < 1 and np.isfinite(out["codec, true quiet frames"])  # speech has pauses
    assert out["dynamic range dB"] > 20  # clean speech: its pauses lie far under its vowels
    assert np.isfinite(out["codec, true envelope"]) and np.isfinite(out["codec, true fine 0-1 kHz"])
    assert out["codec, true fine 0-8 kHz"] == pytest.approx(out["codec, true fine structure"], abs=1e-4)
    assert out["fine contrast 0-1 kHz"] >= 0
    with pytest.raises(UserError, match="griffinlim"):
        diagnose_clip(Codec(dataclasses.replace(tiny, decoder="istft")), speech[:16_000])


def test_paired_gap_is_the_mean_difference_over_the_clips_both_define() -> None:
    from workbench.codec.evaluate import paired_gap

    ours = [{"pesq": 2.0}, {"pesq": 2.2}, {"pesq": float("nan")}, {"pesq": 1.5}]
    theirs = [{"pesq": 1.8}, {"pesq": 1.9}, {"pesq": 1.0}, {"pesq": 1.6}]
    gap = paired_gap(ours, theirs, "pesq")
    assert gap["n"] == 3 and gap["mean"] == pytest.approx((0.2 + 0.3 - 0.1) / 3, abs=1e-4)
    assert gap["low"] < 0 < gap["high"]  # three clips that disagree in sign: the interval holds both
    with pytest.raises(ValueError):  # lists of different clips cannot be paired
        paired_gap(ours, theirs[:2], "pesq")
