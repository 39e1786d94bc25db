"""Codec model: residual VQ (EMA, dead codes, dropout, bits), shapes, causality, chunked == whole coding."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from workbench.acoustic.data import codec_fingerprint
from workbench.codec.config import PRESETS, ModelConfig
from workbench.codec.model import ELU, POSTFILTER_BINS, POSTFILTER_FRAMES, Codec, moving_average, postfilter
from workbench.codec.quantizer import ResidualVectorQuantizer, VectorQuantizer, beam_encode
from workbench.codec.stream import decode_long, encode_long, level_gain, reconstruct
from workbench.core.audio import speech_level_db
from workbench.core.errors import UserError

TINY = ModelConfig(channels=2, decoder_channels=2, dim=8, dilations=(1,), codebook_size=16, num_quantizers=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread avoids oversubscribing


def test_encode_picks_the_nearest_code_and_one_ema_step_adds_counts_and_sums() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=6, codebook_size=32, decay=0.8, dead_code_threshold=0.0)
    vq._init(torch.randn(64, 6))
    x = torch.randn(200, 6)
    codes = vq.encode(x)
    assert torch.equal(codes, torch.cdist(x, vq.codebook).argmin(1))  # the fast ranking is the true distance's
    size, sums = vq.cluster_size.clone(), vq.embed_sum.clone()
    vq.update(x, codes)
    for k in range(32):  # each code's usage and vector sum: decay x before + (1 - decay) x this batch's
        mine = codes == k
        assert float(vq.cluster_size[k]) == pytest.approx(float(0.8 * size[k] + 0.2 * mine.sum()), rel=1e-5)
        torch.testing.assert_close(vq.embed_sum[k], 0.8 * sums[k] + 0.2 * x[mine].sum(0), rtol=1e-5, atol=1e-5)


def test_ema_update_moves_codes_toward_their_data() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=4, codebook_size=8, decay=0.5, dead_code_threshold=0.0)
    vq._init(torch.randn(64, 4))
    target = torch.full((32, 4), 3.0) + 0.01 * torch.randn(32, 4)
    code = int(vq.encode(target).mode().values)
    before = (vq.codebook[code] - target.mean(0)).norm()
    for _ in range(5):
        vq.update(target, vq.encode(target))
    after = (vq.codebook[code] - target.mean(0)).norm()
    assert after < 0.1 * before
    # codes that got no data stay where they were (up to the Laplace smoothing, which is tiny)
    others = [i for i in range(8) if i not in vq.encode(target).tolist()]
    assert others


def test_dead_codes_are_restarted_on_batch_vectors() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=4, codebook_size=8, decay=0.9, dead_code_threshold=0.5)
    data = torch.randn(40, 4)
    vq._init(data)
    vq.codebook[3] = 100.0  # far from all data: never chosen, so its usage decays until it is restarted
    vq.embed_sum[3] = 100.0
    for _ in range(30):
        vq.update(data, vq.encode(data))
    assert vq.restarts > 0
    assert vq.codebook[3].abs().max() < 50
    # a restarted code sits on (EMA-smoothed) data, so the data now uses it or it is close to some vector
    assert torch.cdist(vq.codebook[3:4], data).min() < 5


def test_first_training_batch_initialises_codes_on_data() -> None:
    vq = VectorQuantizer(dim=4, codebook_size=8).train()
    data = torch.randn(100, 4) * 5 + 20
    vq(data)
    assert bool(vq.initialized) and vq.codebook.mean() > 10


def test_rvq_levels_refine_and_dropout_prefixes_decode() -> None:
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dim=8, codebook_size=32, num_quantizers=4, decay=0.8).train()
    z = torch.randn(4, 8, 50)
    for _ in range(20):
        rvq(z)
    rvq.eval()
    errors = []
    for n_q in range(1, 5):
        codes = rvq.encode(z, n_q)
        assert codes.shape == (n_q, 4, 50) and codes.dtype == torch.int64
        errors.append((rvq.decode(codes) - z).pow(2).mean().item())
        quantized, fwd_codes, commit = rvq(z, n_q)
        assert torch.equal(fwd_codes, codes) and torch.allclose(quantized, rvq.decode(codes), atol=1e-5)
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.5 * errors[0]
    with pytest.raises(ValueError, match="levels 1..4"):
        rvq.encode(z, 5)


def test_beam_search_finds_the_best_pair_of_codes_and_codes_closer_than_greedy() -> None:
    torch.manual_seed(0)
    x = torch.randn(300, 4)
    books = [torch.randn(8, 4), 0.5 * torch.randn(8, 4)]
    # two levels, a beam as wide as the first codebook: every pair is searched, so the result is the best pair
    codes = beam_encode(x, books, beam=8)
    pairs = (books[0][:, None] + books[1][None]).reshape(64, 4)
    best = torch.cdist(x, pairs).argmin(1)
    assert torch.equal(codes[0] * 8 + codes[1], best)
    rvq = ResidualVectorQuantizer(dim=8, codebook_size=32, num_quantizers=4, decay=0.8).train()
    z = torch.randn(4, 8, 50)
    for _ in range(20):
        rvq(z)
    rvq.eval()
    error = {b: (rvq.decode(rvq.encode(z, beam=b)) - z).pow(2).sum(1) for b in (1, 16)}
    assert torch.equal(rvq.encode(z, beam=1), rvq(z)[1])  # beam 1 is the greedy RVQ training uses
    assert error[16].mean() < 0.9 * error[1].mean() and (error[16] <= error[1] + 1e-5).float().mean() > 0.95
    assert rvq.encode(z, 2, beam=16).shape == (2, 4, 50)
    with pytest.raises(ValueError, match="beam must be >= 1"):
        rvq.encode(z, beam=0)


def test_the_encoders_beam_changes_the_codes_not_the_codec() -> None:
    torch.manual_seed(0)
    greedy = Codec(dataclasses.replace(TINY, rvq_beam=1)).eval()
    beam = Codec(dataclasses.replace(TINY, rvq_beam=16)).eval()
    beam.load_state_dict(greedy.state_dict())
    wav = torch.randn(1, 320 * 40) * 0.3
    latent = greedy.encoder(greedy.pad(wav[:, None]))
    error = {c.cfg.rvq_beam: (greedy.quantizer.decode(c.encode(wav)) - latent).pow(2).sum() for c in (greedy, beam)}
    assert error[16] < error[1]
    assert codec_fingerprint(beam) == codec_fingerprint(greedy)  # a SoundStorm trained over either still fits
    with pytest.raises(UserError, match="rvq_beam 0 is not in"):
        Codec(dataclasses.replace(TINY, rvq_beam=0))


def test_beam_study_codes_the_same_clips_at_each_width(smoke_codec, smoke_corpus) -> None:
    """scripts/codec_beam_study.py: each width scored on the same clips, paired against the first, the codec's
    own setting left as it was."""
    import importlib.util
    from pathlib import Path

    from workbench.codec.evaluate import corpus_clips
    from workbench.codec.train import load_codec

    path = Path(__file__).resolve().parents[1] / "scripts" / "codec_beam_study.py"
    spec = importlib.util.spec_from_file_location("codec_beam_study", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    codec, _ = load_codec(smoke_codec)
    clips = corpus_clips(smoke_corpus, 2, 2.0)
    result = script.beam_study(codec, {"synthetic-test": clips}, [1, 4], chunk_seconds=1.0)
    rows = result["synthetic-test"]["beams"]
    assert result["synthetic-test"]["clips"] == 2 and set(rows) == {"1", "4"} and rows["1"]["minus_first"] is None
    assert rows["4"]["minus_first"]["n"] == 2 and rows["4"]["pesq"] == pytest.approx(
        rows["1"]["pesq"] + rows["4"]["minus_first"]["mean"], abs=1e-3)
    assert codec.cfg.rvq_beam == 16


def test_straight_through_gradient_reaches_the_encoder_side() -> None:
    rvq = ResidualVectorQuantizer(dim=4, codebook_size=8, num_quantizers=2).train()
    z = torch.randn(2, 4, 10, requires_grad=True)
    out, _, commit = rvq(z)
    (out.sum() + commit).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_bits_accounting() -> None:
    cfg = ModelConfig()
    assert cfg.hop == 320 and cfg.frame_rate == 50
    assert cfg.kbps(1) == 0.5 and cfg.kbps() == 3.0 <= 3.2
    assert PRESETS["laptop"].model.kbps() <= 3.2 and PRESETS["paper"].model.kbps() == 6.0
    codec = Codec(TINY).eval()
    wav = torch.randn(3 * 320 + 17)
    codes = encode_long(codec, wav)
    assert codes.shape == (3, 4)  # ceil(977 / 320) frames
    bits = codes.numel() * math.log2(TINY.codebook_size)
    assert bits / (codes.shape[1] / TINY.frame_rate) / 1000 == pytest.approx(TINY.kbps())


def test_config_that_does_not_fit_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="does not divide"):
        Codec(ModelConfig(strides=(3, 7)))
    with pytest.raises(UserError, match="power of two"):
        Codec(ModelConfig(codebook_size=1000))
    with pytest.raises(UserError, match="encoder 'mel'"):
        Codec(ModelConfig(encoder="mel"))
    with pytest.raises(UserError, match="decoder 'wavenet'"):
        Codec(ModelConfig(decoder="wavenet"))
    with pytest.raises(UserError, match="griffinlim decoder is not causal"):
        Codec(ModelConfig(decoder="griffinlim", causal=True))


def test_the_codecs_elu_is_torchs_elu_in_value_and_gradient() -> None:
    torch.manual_seed(0)
    x = torch.cat([torch.randn(4000) * 4, torch.tensor([0.0, -1e-8, 1e-8, -80.0, 80.0])])
    ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn_like(x)
    ELU()(ours).backward(grad)
    torch.nn.functional.elu(ref).backward(grad)
    assert torch.allclose(ELU()(x), torch.nn.functional.elu(x), rtol=1e-6, atol=1e-7)
    assert torch.allclose(ours.grad, ref.grad, rtol=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(ELU(), (torch.randn(30, dtype=torch.float64, requires_grad=True),))


def test_griffin_lim_recovers_a_signal_from_its_magnitudes() -> None:
    """The griffinlim decoder's phase recovery alone: fed a voiced signal's exact magnitudes, its output has
    nearly those magnitudes (spectral convergence), and iterating is what gets it there."""
    from workbench.codec.model import frame_spectrum

    t = np.arange(320 * 50) / 16000
    f0 = 120 + 20 * np.sin(2 * np.pi * 1.5 * t)  # a gliding pitch, 12 harmonics with a falling envelope
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    wav = torch.tensor(sum(np.sin(k * phase) / k for k in range(1, 13)) * 0.1, dtype=torch.float32)[None]
    errors = {}
    for iters in (0, 32):
        decoder = Codec(dataclasses.replace(TINY, encoder="stft", decoder="griffinlim", gla_iters=iters)).decoder
        target = frame_spectrum(wav, decoder.n_fft, decoder.hop, decoder.window).abs()
        decoder.log_magnitude = lambda z: target.clamp(min=1e-5).log()
        out = decoder(torch.zeros(1, TINY.dim, 50))[:, 0]
        rebuilt = frame_spectrum(out, decoder.n_fft, decoder.hop, decoder.window).abs()
        inner = slice(5, 45)  # away from the zero-padded ends
        errors[iters] = float(torch.linalg.norm((rebuilt - target)[..., inner]) / torch.linalg.norm(target[..., inner]))
    assert errors[32] < 0.15 < errors[0], errors


ARCHS = [(causal, enc, dec) for causal in (False, True) for enc, dec in (("conv", "conv"), ("conv", "istft"), ("stft", "istft"))]
ARCHS += [(False, "stft", "griffinlim")]


def arch(causal: bool, encoder: str, decoder: str, **more) -> ModelConfig:
    return dataclasses.replace(TINY, causal=causal, encoder=encoder, decoder=decoder, gla_iters=4, **more)


@pytest.mark.parametrize("causal,encoder,decoder", ARCHS)
def test_shapes(causal: bool, encoder: str, decoder: str) -> None:
    codec = Codec(arch(causal, encoder, decoder)).eval()
    wav = torch.randn(2, 1, 320 * 7)
    with torch.no_grad():
        out, codes, _ = codec(wav)
        assert out.shape == wav.shape and codes.shape == (3, 2, 7)
        assert codec.decode(codec.encode(wav[:, 0], 2)).shape == (2, 320 * 7)
    assert reconstruct(codec, np.random.randn(1000).astype(np.float32), 1).shape == (1000,)


@pytest.mark.parametrize("encoder,decoder", [("conv", "conv"), ("conv", "istft"), ("stft", "istft")])
def test_causal_outputs_do_not_see_the_future(encoder: str, decoder: str) -> None:
    torch.manual_seed(0)
    codec = Codec(dataclasses.replace(TINY, causal=True, encoder=encoder, decoder=decoder)).eval()
    wav = torch.randn(1, 1, 320 * 20)
    later = wav.clone()
    later[..., 320 * 12:] = torch.randn(320 * 8)
    with torch.no_grad():
        za, zb = codec.encoder(wav), codec.encoder(later)
        assert torch.allclose(za[..., :12], zb[..., :12], atol=1e-6) and not torch.allclose(za, zb)
        ya, yb = codec.decoder(za), codec.decoder(zb)
        assert torch.allclose(ya[..., : 320 * 12], yb[..., : 320 * 12], atol=1e-6)


@pytest.mark.parametrize("causal,encoder,decoder", ARCHS)
def test_chunked_coding_equals_whole_signal_coding(causal: bool, encoder: str, decoder: str) -> None:
    torch.manual_seed(0)
    codec = Codec(arch(causal, encoder, decoder, dilations=(1, 3))).eval()
    rng = np.random.default_rng(0)
    wav = (rng.standard_normal(320 * 61 + 5) * 0.3).astype(np.float32)
    whole = encode_long(codec, wav, chunk_seconds=100.0)
    assert whole.shape[1] == 62
    for chunk in (0.02, 0.1, 0.26):  # 1, 5 and 13 frames: many chunk boundaries, none aligned to 61
        assert torch.equal(encode_long(codec, wav, chunk_seconds=chunk), whole)
    full = decode_long(codec, whole, chunk_seconds=100.0)
    for chunk in (0.02, 0.1, 0.26):
        assert torch.allclose(decode_long(codec, whole, chunk_seconds=chunk), full, atol=1e-5)


def test_decode_a_16_minute_token_stream_in_bounded_chunks() -> None:
    torch.manual_seed(0)
    codec = Codec(dataclasses.replace(TINY, causal=True)).eval()
    frames = 16 * 60 * 50
    codes = torch.randint(0, TINY.codebook_size, (TINY.num_quantizers, frames))
    wav = decode_long(codec, codes, chunk_seconds=60.0)
    assert wav.shape == (frames * 320,) and torch.isfinite(wav).all()
    # the last minute equals decoding that minute on its own with its left context (causal: nothing else)
    left = codec.context_frames()[1]
    tail = decode_long(codec, codes[:, -(3000 + left):], chunk_seconds=1000.0)[left * 320:]
    assert torch.allclose(wav[-3000 * 320:], tail, atol=1e-5)


def test_bad_inputs_to_the_streaming_coder() -> None:
    codec = Codec(TINY).eval()
    with pytest.raises(ValueError, match="non-empty mono"):
        encode_long(codec, np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="non-empty mono"):
        encode_long(codec, np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="codes must lie in 0..15"):
        decode_long(codec, torch.full((3, 4), 16))
    with pytest.raises(ValueError, match="chunk_seconds"):
        encode_long(codec, np.ones(400, np.float32), chunk_seconds=0)


def test_tilted_magnitude_loss_counts_low_frequencies_more() -> None:
    """`magnitude_tilt`: bin weights of mean 1 falling with frequency as (700 + f) ** -tilt (tilt 1: the mel
    density, a 0-1 kHz bin ~6x a 4-8 kHz one); the same log-magnitude error costs more at 200 Hz than at 6 kHz,
    and alike without tilt. A tilt outside [0, 4] is refused."""
    from workbench.codec.config import TrainConfig
    from workbench.codec.losses import bin_weights, magnitude_loss

    flat, mel = bin_weights(641, 0.0), bin_weights(641, 1.0)
    assert torch.allclose(flat, torch.ones(641)) and abs(float(mel.mean()) - 1) < 1e-5
    assert (mel[1:] < mel[:-1]).all() and 5 < float(mel[:80].mean() / mel[320:].mean()) < 7
    target = torch.full((2, 641, 10), 0.5)
    low, high = target.log().clone(), target.log().clone()
    low[:, 16], high[:, 480] = low[:, 16] + 1.0, high[:, 480] + 1.0  # bins at 200 Hz and 6 kHz
    # the spectral convergence term is the same for both; the L1 term differs by the two bins' weights
    difference = magnitude_loss(low, target, mel) - magnitude_loss(high, target, mel)
    assert float(mel[16] / mel[480]) > 7 and torch.isclose(difference, (mel[16] - mel[480]) / 641, rtol=1e-3)
    assert torch.isclose(magnitude_loss(low, target, flat), magnitude_loss(high, target, flat), rtol=1e-5)
    with pytest.raises(ValueError, match="magnitude_tilt"):
        TrainConfig(magnitude_tilt=-1.0)


def test_envelope_term_sees_the_formants_not_the_harmonics() -> None:
    """`envelope_weight`: the L1 of the cepstral envelopes is added to the magnitude loss. An error that is a
    smooth tilt (a formant drawn wrong) costs it as much as its own size; an error that is a harmonic comb (the fine
    structure) costs it almost nothing; weight 0 is the old loss. A weight outside [0, 10] is refused."""
    from workbench.codec.config import TrainConfig
    from workbench.codec.losses import magnitude_loss

    f = torch.arange(641)[None, :, None] * 12.5
    target = torch.exp(-f / 3000).repeat(2, 1, 10)
    smooth = target.log() + 0.5 * torch.exp(-((f - 1500) / 500) ** 2)
    comb = target.log() + 0.5 * torch.cos(2 * torch.pi * f / 200)
    extra = lambda pred: magnitude_loss(pred, target, envelope_weight=1.0) - magnitude_loss(pred, target)  # noqa: E731
    assert torch.isclose(extra(smooth), (smooth - target.log()).abs().mean(), rtol=0.05)
    assert float(extra(comb)) < 0.05 * float((comb - target.log()).abs().mean())
    with pytest.raises(ValueError, match="envelope_weight"):
        TrainConfig(envelope_weight=-1.0)


def test_log_magnitude_discriminator_reads_the_harmonics_up_to_4_khz() -> None:
    """The griffinlim decoder's discriminator reads log-magnitude frames (B, bins, F) up to 4 kHz only: changing
    the bins above leaves its logits alone, changing one below does not; one logits map, and its feature maps."""
    from workbench.codec.discriminator import LogMagnitudeDiscriminator

    torch.manual_seed(0)
    disc = LogMagnitudeDiscriminator(channels=4, n_fft=1280, sample_rate=16_000)
    log_mag = torch.randn(2, 641, 12)
    logits, feats = disc(log_mag)
    assert disc.bins == 321 and len(logits) == 1 and logits[0].shape[:2] == (2, 1) and len(feats[0]) == 5
    above, below = log_mag.clone(), log_mag.clone()
    above[:, 400:] += 3.0
    below[:, 100] += 3.0
    assert torch.equal(disc(above)[0][0], logits[0]) and not torch.equal(disc(below)[0][0], logits[0])


def test_postfilter_widens_contrast_and_is_the_identity_at_one() -> None:
    torch.manual_seed(0)
    log_mag = torch.randn(2, 641, 300)
    assert torch.equal(postfilter(log_mag, 1.0, 1.0), log_mag)
    widened = postfilter(log_mag, 1.5, 1.0)
    mean = moving_average(log_mag, POSTFILTER_FRAMES, -1)
    assert torch.allclose(widened - mean, 1.5 * (log_mag - mean), atol=1e-5)
    flat = torch.linspace(-3, 2, 641)[None, :, None].expand(1, 641, 300)  # the same spectrum in every frame
    assert torch.allclose(postfilter(flat, 1.3, 1.0), flat, atol=1e-5)  # nothing moves in time: nothing to widen
    sharpened = postfilter(log_mag, 1.0, 1.3)
    assert (sharpened - moving_average(sharpened, POSTFILTER_BINS, 1)).std() > (log_mag - moving_average(
        log_mag, POSTFILTER_BINS, 1)).std()


def test_postfilter_decodes_the_same_in_chunks_and_leaves_the_codes_alone() -> None:
    torch.manual_seed(0)
    plain = Codec(arch(False, "stft", "griffinlim")).eval()
    codec = Codec(arch(False, "stft", "griffinlim", postfilter_time=1.2, postfilter_freq=1.2)).eval()
    codec.load_state_dict(plain.state_dict())
    assert codec.context_frames()[1] == plain.context_frames()[1] + POSTFILTER_FRAMES // 2
    wav = (np.random.default_rng(0).standard_normal(320 * 240) * 0.3).astype(np.float32)
    codes = encode_long(codec, wav, chunk_seconds=100.0)
    assert torch.equal(codes, encode_long(plain, wav, chunk_seconds=100.0))
    assert codec_fingerprint(codec) == codec_fingerprint(plain)  # SoundStorm's pairs stay valid
    full = decode_long(codec, codes, chunk_seconds=100.0)
    assert not torch.allclose(full, decode_long(plain, codes, chunk_seconds=100.0), atol=1e-3)
    for chunk in (0.5, 1.3):  # 25 and 65 frames, with 2 s of moving average on either side to carry
        assert torch.allclose(decode_long(codec, codes, chunk_seconds=chunk), full, atol=1e-5)


def test_speech_level_is_the_speech_not_the_pauses() -> None:
    t = np.arange(16_000) / 16_000
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # RMS 0.1 / sqrt(2): -23.0 dBFS
    paused = np.concatenate([tone, np.zeros(48_000, np.float32), tone])
    assert speech_level_db(tone) == pytest.approx(-23.01, abs=0.05)
    assert speech_level_db(paused) == pytest.approx(speech_level_db(tone), abs=0.05)  # 60% pause: the same level
    assert speech_level_db(tone * 0.5) == pytest.approx(-23.01 - 6.02, abs=0.05)
    assert speech_level_db(np.zeros(16_000, np.float32)) is None and speech_level_db(np.zeros(100, np.float32)) is None


def test_a_codec_with_an_input_level_codes_every_level_alike_and_gives_the_level_back() -> None:
    torch.manual_seed(0)
    cfg = arch(False, "stft", "griffinlim")
    plain = Codec(cfg).eval()
    leveled = Codec(dataclasses.replace(cfg, input_level_db=-20.0)).eval()
    leveled.load_state_dict(plain.state_dict())
    wav = (np.random.default_rng(0).standard_normal(320 * 40) * 0.05).astype(np.float32)
    assert level_gain(plain, wav) == 1.0  # no input level: coded as it is
    assert level_gain(leveled, wav) == pytest.approx(10 ** ((-20.0 - speech_level_db(wav)) / 20), rel=1e-5)
    assert level_gain(leveled, np.zeros(320 * 4, np.float32)) == 1.0  # silence is not lifted
    quiet = wav * 10 ** (-12 / 20)
    assert torch.equal(encode_long(leveled, quiet), encode_long(leveled, wav))  # 12 dB quieter: the same codes
    assert not torch.equal(encode_long(plain, quiet), encode_long(plain, wav))  # which a plain codec does not give
    assert np.allclose(reconstruct(leveled, quiet), reconstruct(leveled, wav) * 10 ** (-12 / 20), atol=1e-6)
    decoded = decode_long(leveled, encode_long(leveled, wav)).numpy()[: len(wav)]  # at the codec's level
    assert np.allclose(reconstruct(leveled, wav), decoded / level_gain(leveled, wav), atol=1e-7)  # scaled back
    with pytest.raises(UserError, match="input_level_db 5"):
        dataclasses.replace(cfg, input_level_db=5.0).check()
