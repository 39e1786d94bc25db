"""Codec training (loss goes down, exact resume, clear errors) and the `codec` CLI end to end at smoke scale."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from tests.conftest import REAL_SPEECH
from workbench.cli import UserError, main
from workbench.codec.config import PRESETS
from workbench.codec.data import corpus_speech_level_db, open_training_data
from workbench.codec.stream import level_gain
from workbench.codec.train import load_codec, train
from workbench.core.audio import load_audio, speech_level_db
from workbench.core.config import override

SMOKE = PRESETS["smoke"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread avoids oversubscribing


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, smoke_corpus):
    """One smoke training run (adversarial for its second half), shared by the tests below."""
    out = tmp_path_factory.mktemp("codec") / "run"
    summary = train(out, SMOKE.model, SMOKE.train, smoke_corpus, progress=False, preset="smoke")
    return out, summary


def test_smoke_training_lowers_the_held_out_loss(smoke_run) -> None:
    out, summary = smoke_run
    assert summary["steps"] == SMOKE.train.steps and summary["stopped_by"] == "steps"
    assert summary["final_eval_mel"] < summary["initial_eval_mel"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss" in r]
    assert any("adv" in r and "disc" in r for r in train_records)  # the discriminator joined halfway
    assert min(r["n_q"] for r in train_records) < SMOKE.model.num_quantizers  # quantizer dropout
    assert json.loads((out / "summary.json").read_text())["steps"] == SMOKE.train.steps
    codec, meta = load_codec(out)
    assert meta["model_config"]["num_quantizers"] == SMOKE.model.num_quantizers and not codec.training


def test_griffinlim_decoder_trains_on_its_magnitudes(tmp_path, smoke_corpus) -> None:
    """The laptop architecture (magnitude decoder + Griffin-Lim) at smoke size: the magnitude loss falls, the
    held-out mel loss (through Griffin-Lim) falls; with --adversarial its discriminator reads the log magnitudes,
    joins at adversarial_start and is checkpointed, and the envelope term trains alongside."""
    model = override(SMOKE.model, decoder="griffinlim", gla_iters=8)
    cfg = override(SMOKE.train, steps=40, adversarial=False, commit_weight=0.0, log_every=1, lr=3e-3, magnitude_tilt=1.0)
    summary = train(tmp_path / "run", model, cfg, smoke_corpus, progress=False)
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    losses = [r["magnitude"] for r in records if "magnitude" in r]
    assert len(losses) == 40 and np.mean(losses[-10:]) < np.mean(losses[:10])
    assert summary["final_eval_mel"] < summary["initial_eval_mel"]
    codec, _ = load_codec(tmp_path / "run")
    assert codec.decode(codec.encode(torch.randn(1, 3200) * 0.1)).shape == (1, 3200)
    greedy, _ = load_codec(tmp_path / "run", rvq_beam=1)  # the encoder's search replaced, weights kept
    assert (codec.cfg.rvq_beam, greedy.cfg.rvq_beam) == (16, 1)
    fewer, _ = load_codec(tmp_path / "run", gla_iters=2)  # the run's iterations replaced at decoding, weights kept
    assert (codec.decoder.iters, fewer.decoder.iters) == (8, 2)
    assert fewer.decoder.reach_frames() < codec.decoder.reach_frames()
    assert all(torch.equal(a, b) for a, b in zip(fewer.state_dict().values(), codec.state_dict().values()))
    assert main(["codec", "diagnose", "--preset", "smoke", "--ckpt", str(tmp_path / "run"), "--corpus",
                 str(smoke_corpus), "--clips", "1", "--reports", str(tmp_path), "--json",
                 "--postfilter", "1.2", "1.2", "--gla-iters", "4"]) == 0
    diagnosis = json.loads((tmp_path / "codec-diagnosis.json").read_text())
    pesq = diagnosis["sets"]["synthetic-test"]["pesq"]
    assert pesq["codec + postfilter"] != pesq["codec"]  # the postfilter given at the command line decoded
    assert pesq["exact"] > pesq["codec"] and set(diagnosis["sets"]["synthetic-test"]["repair_gain"]) == {
        "0-1 kHz", "1-2 kHz", "2-4 kHz", "4-8 kHz", "quiet frames", "envelope", "fine structure", "fine 0-1 kHz",
        "fine 1-2 kHz", "fine 2-4 kHz", "fine 4-8 kHz", "long-term spectrum"}
    assert set(diagnosis["sets"]["synthetic-test"]["fine_contrast"]) == {"0-1 kHz", "1-2 kHz", "2-4 kHz", "4-8 kHz"}
    voices = diagnosis["sets"]["synthetic-test"]["by_speaker"]
    assert sum(v["clips"] for v in voices.values()) == 1 and all(0 <= v["quiet_share"] <= 1 for v in voices.values())
    train(tmp_path / "adv", model, override(cfg, steps=6, adversarial=True, adversarial_start=0.5,
                                            envelope_weight=1.0), smoke_corpus, progress=False)
    records = [json.loads(line) for line in (tmp_path / "adv/metrics.jsonl").read_text().splitlines()]
    joined = [("adv" in r and "disc" in r) for r in records if "magnitude" in r]
    assert joined == [False] * 3 + [True] * 3 and all(np.isfinite(r["magnitude"]) for r in records if "magnitude" in r)
    assert list((tmp_path / "adv").rglob("discriminator.safetensors"))


def test_resume_continues_exactly(tmp_path, smoke_corpus) -> None:
    cfg = override(SMOKE.train, steps=8, checkpoint_every=4, adversarial_start=0.25, log_every=1)
    out = tmp_path / "run"
    train(out, SMOKE.model, cfg, smoke_corpus, progress=False)
    straight = load_file(str(out / "checkpoints/step-0000008/codec.safetensors"))
    # roll back to the step-4 checkpoint, as if the run had been interrupted there, and resume
    (out / "checkpoint.json").write_text(json.dumps({"step": 4, "path": "checkpoints/step-0000004"}))
    shutil.rmtree(out / "checkpoints/step-0000008")
    summary = train(out, SMOKE.model, cfg, smoke_corpus, resume=True, progress=False)
    assert summary["steps"] == 8
    resumed = load_file(str(out / "checkpoints/step-0000008/codec.safetensors"))
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.allclose(straight[k], resumed[k], atol=1e-6), k
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(5) == 1  # the log was cut back to step 4 before resuming


def test_training_errors_are_clear(tmp_path, smoke_corpus, smoke_run) -> None:
    out, _ = smoke_run
    with pytest.raises(UserError, match="already holds a run"):
        train(out, SMOKE.model, SMOKE.train, smoke_corpus, progress=False)
    with pytest.raises(UserError, match="different settings.*lr"):
        train(out, SMOKE.model, override(SMOKE.train, lr=0.5), smoke_corpus, resume=True, progress=False)
    with pytest.raises(UserError, match="no checkpoint"):
        train(tmp_path / "fresh", SMOKE.model, SMOKE.train, smoke_corpus, resume=True, progress=False)
    with pytest.raises(UserError, match="cannot open the training corpus"):
        train(tmp_path / "x", SMOKE.model, SMOKE.train, tmp_path / "nowhere", progress=False)
    with pytest.raises(UserError, match="cannot draw training crops"):
        train(tmp_path / "y", SMOKE.model, override(SMOKE.train, crop_seconds=1e4), smoke_corpus, progress=False)


def test_cli_encode_decode_roundtrip(tmp_path, smoke_run, smoke_corpus, capsys) -> None:
    out, _ = smoke_run
    wav = REAL_SPEECH / "19-198-0000.flac"
    codes = tmp_path / "codes.npz"
    assert main(["codec", "encode", str(wav), "--ckpt", str(out), "--out", str(codes), "--n-q", "2", "--json"]) == 0
    enc = json.loads(capsys.readouterr().out)
    assert enc["n_q"] == 2 and enc["kbps"] == pytest.approx(2 * 50 * 6 / 1000)
    with np.load(codes) as z:
        assert z["codes"].shape == (2, enc["frames"]) and z["codes"].dtype == np.int16
    decoded = tmp_path / "out.wav"
    assert main(["codec", "decode", str(codes), "--ckpt", str(out), "--out", str(decoded), "--json"]) == 0
    info = sf.info(str(decoded))
    assert info.samplerate == 16_000 and info.frames == sf.info(str(wav)).frames
    # the codec codes at its training corpus's speech level; the file carries the input's gain, decode undoes it
    codec, _ = load_codec(out)
    assert codec.cfg.input_level_db == corpus_speech_level_db(open_training_data(smoke_corpus)[0], SMOKE.train.seed)
    with np.load(codes) as z:
        saved = dict(z)
    assert float(saved["gain"]) == pytest.approx(level_gain(codec, load_audio(wav)), rel=1e-6)
    assert abs(float(saved["gain"]) - 1) > 0.05  # this clip is not at the smoke corpus's level
    np.savez(tmp_path / "unit.npz", **{**saved, "gain": np.float32(1.0)})  # as a file written before the gain
    assert main(["codec", "decode", str(tmp_path / "unit.npz"), "--ckpt", str(out), "--out", str(tmp_path / "unit.wav"),
                 "--json"]) == 0
    restored, at_codec = sf.read(str(decoded), dtype="float32")[0], sf.read(str(tmp_path / "unit.wav"), dtype="float32")[0]
    loud = np.abs(at_codec) > 0.05  # 16-bit rounding aside
    assert np.allclose(restored[loud] * float(saved["gain"]), at_codec[loud], rtol=0.02, atol=2e-4)


@pytest.mark.filterwarnings("ignore::workbench.core.audio.AudioConversionWarning")  # jfk.flac is 44.1 kHz stereo
def test_cli_bad_inputs_exit_with_one_clear_line(tmp_path, smoke_run, smoke_corpus, capsys) -> None:
    out, _ = smoke_run
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....not really a wave file")
    assert main(["codec", "encode", str(corrupt), "--ckpt", str(out), "--out", str(tmp_path / "c.npz")]) == 2
    assert "corrupt.wav: not a readable audio file" in capsys.readouterr().err
    assert main(["codec", "encode", str(REAL_SPEECH / "jfk.flac"), "--ckpt", str(tmp_path / "none"),
                 "--out", str(tmp_path / "c.npz")]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
    assert main(["codec", "encode", str(REAL_SPEECH / "jfk.flac"), "--ckpt", str(out), "--n-q", "9",
                 "--out", str(tmp_path / "c.npz")]) == 2
    assert "levels 1..4" in capsys.readouterr().err
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert main(["codec", "decode", str(tmp_path / "junk.npz"), "--ckpt", str(out), "--out", str(tmp_path / "o.wav")]) == 2
    assert "not a codes file" in capsys.readouterr().err
    np.savez(tmp_path / "nan-gain.npz", codes=np.zeros((2, 10), np.int16), num_samples=3200, sample_rate=16_000,
             hop=320, codebook_size=64, gain=np.float32("nan"))
    assert main(["codec", "decode", str(tmp_path / "nan-gain.npz"), "--ckpt", str(out), "--out",
                 str(tmp_path / "g.wav")]) == 2
    assert "gain nan is not a positive number" in capsys.readouterr().err and not (tmp_path / "g.wav").exists()
    assert main(["codec", "train", "--preset", "tiny"]) == 2
    assert "unknown codec preset" in capsys.readouterr().err
    assert main(["codec", "diagnose", "--preset", "smoke", "--ckpt", str(out), "--corpus", str(smoke_corpus)]) == 2
    assert "needs the griffinlim decoder" in capsys.readouterr().err  # the smoke codec decodes with an iSTFT
    assert main(["codec", "diagnose", "--preset", "smoke", "--ckpt", str(tmp_path / "none")]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
    assert main(["codec", "diagnose", "--preset", "smoke", "--ckpt", str(out), "--clips", "0"]) == 2
    assert "--clips must be at least 1" in capsys.readouterr().err
    assert main(["codec", "diagnose", "--preset", "smoke", "--ckpt", str(out), "--n-q", "9"]) == 2
    assert "--n-q must be 1..4" in capsys.readouterr().err
    for flag, value, message in (("--magnitude-tilt", "9", "--magnitude-tilt must be in [0, 4]"),
                                 ("--speed-perturb", "0.5", "--speed-perturb must be in [0, 0.3]"),
                                 ("--eq-perturb", "-1", "--eq-perturb must be in [0, 20] dB"),
                                 ("--envelope-weight", "11", "--envelope-weight must be in [0, 10]"),
                                 ("--adversarial-start", "2", "--adversarial-start must be in [0, 1]"),
                                 ("--adv-weight", "-1", "--adv-weight and --feat-weight must be >= 0"),
                                 ("--dim", "1", "--dim must be at least 2"),
                                 ("--gla-iters", "999", "--gla-iters must be in [0, 256]"),
                                 ("--rvq-beam", "0", "--rvq-beam must be in [1, 256]"),
                                 ("--quantizer-dropout", "1.5", "quantizer_dropout and adversarial_start in [0, 1]"),
                                 ("--seed", "-1", "seed must be in 0 .. 2**63 - 1")):
        assert main(["codec", "train", "--preset", "smoke", flag, value, "--out", str(tmp_path / "t")]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "t").exists()


def test_cli_train_takes_the_latent_size_quantizer_dropout_and_seed(tmp_path, smoke_corpus) -> None:
    out = tmp_path / "dim8"
    assert main(["codec", "train", "--preset", "smoke", "--corpus", str(smoke_corpus), "--out", str(out),
                 "--steps", "10", "--dim", "8", "--quantizer-dropout", "0", "--seed", "3", "--quiet"]) == 0
    codec, meta = load_codec(out)
    assert codec.quantizer.levels[0].codebook.shape[1] == 8 and meta["train_config"]["quantizer_dropout"] == 0
    assert meta["train_config"]["seed"] == 3
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    levels = [r["n_q"] for r in records if "n_q" in r]
    assert levels and set(levels) == {SMOKE.model.num_quantizers}  # every logged step on all levels


class ToneDataset:
    """One endless recording of a 200 Hz tone: random_crop as SpeechDataset draws it (a choice, then a start)."""

    def random_crop(self, seconds, rng):
        rng.choice(1, p=[1.0])
        start = float(rng.uniform(0.0, 10.0))
        t = start + np.arange(int(round(seconds * 16_000))) / 16_000
        return None, start, np.sin(2 * np.pi * 200.0 * t).astype(np.float32)


def test_speed_perturbation_moves_the_pitch_by_its_factor_and_is_off_by_default() -> None:
    from workbench.codec.data import sample_batch, speed_factors

    assert np.allclose(speed_factors(0.1), [0.9, 0.95, 1.0, 1.05, 1.1]) and np.allclose(speed_factors(0.0), [1.0])
    # off: the RNG draws what it drew before the option existed, so resumed and earlier runs see the same crops
    plain = sample_batch(ToneDataset(), 1.0, 4, np.random.default_rng(3), 320)
    rng = np.random.default_rng(3)
    direct = [ToneDataset().random_crop(1.0, rng)[2] for _ in range(4)]
    assert torch.equal(plain[:, 0], torch.from_numpy(np.stack(direct)))
    batch = sample_batch(ToneDataset(), 1.0, 64, np.random.default_rng(0), 320, speed_perturb=0.1)
    assert batch.shape == (64, 1, 16_000)
    pitches = {round(float(np.argmax(np.abs(np.fft.rfft(x[0].numpy()))))) for x in batch}  # 1 Hz bins
    assert pitches == {180, 190, 200, 210, 220}, "each crop's tone moves by one of the factors, all of them drawn"


def test_channel_perturbation_follows_its_gain_curve_and_keeps_the_loudness() -> None:
    from workbench.codec.data import EQ_ANCHORS_HZ, random_eq, sample_batch

    noise = np.random.default_rng(1).standard_normal(16_000).astype(np.float32)
    out = random_eq(noise, np.random.default_rng(2), 6.0)
    gains_db = np.random.default_rng(2).uniform(-6.0, 6.0, len(EQ_ANCHORS_HZ))  # what random_eq drew
    ratio_db = 20 * np.log10(np.abs(np.fft.rfft(out)) / np.abs(np.fft.rfft(noise)))  # 1 Hz bins
    level_db = 20 * np.log10(np.sqrt(np.mean(out ** 2)) / np.sqrt(np.mean(noise ** 2)))
    assert abs(level_db) < 1e-3, "brought back to the crop's own loudness"
    shape = [ratio_db[int(f)] for f in EQ_ANCHORS_HZ] - ratio_db[int(EQ_ANCHORS_HZ[0])]
    assert np.allclose(shape, gains_db - gains_db[0], atol=0.05), "each anchor gets its drawn gain, up to level"
    assert np.ptp(gains_db) > 3.0  # so the check above is not of a flat curve
    # in a batch each crop is drawn, then filtered by a curve of its own (the option off: untouched, tested above)

    class TwoTones(ToneDataset):  # 200 Hz + 3 kHz: a curve moves their balance
        def random_crop(self, seconds, rng):
            _, start, low = super().random_crop(seconds, rng)
            t = start + np.arange(len(low)) / 16_000
            return None, start, low + np.sin(2 * np.pi * 3000.0 * t).astype(np.float32)

    batch = sample_batch(TwoTones(), 1.0, 4, np.random.default_rng(0), 320, eq_perturb=6.0)[:, 0].numpy()
    rng = np.random.default_rng(0)
    expected = [random_eq(TwoTones().random_crop(1.0, rng)[2], rng, 6.0) for _ in range(4)]
    assert np.allclose(batch, np.stack(expected), atol=1e-6)
    balance_db = [20 * np.log10(abs(np.fft.rfft(x)[3000]) / abs(np.fft.rfft(x)[200])) for x in batch]
    assert np.ptp(balance_db) > 1.0, "the crops' tone balance differs: each got its own curve"


def test_levelled_crops_sit_at_the_corpus_level_and_need_it_measured() -> None:
    from workbench.codec.data import sample_batch

    class LoudAndQuiet(ToneDataset):  # each crop at an amplitude of its own, 0.01..0.9
        def random_crop(self, seconds, rng):
            _, start, tone = super().random_crop(seconds, rng)
            return None, start, tone * np.float32(rng.uniform(0.01, 0.9))

    plain = sample_batch(LoudAndQuiet(), 1.0, 8, np.random.default_rng(0), 320)[:, 0].numpy()
    levelled = sample_batch(LoudAndQuiet(), 1.0, 8, np.random.default_rng(0), 320, level_db=-20.0)[:, 0].numpy()
    assert np.ptp([speech_level_db(x) for x in plain]) > 20  # the crops differ in level ...
    assert np.allclose([speech_level_db(x) for x in levelled], -20.0, atol=1e-3)  # ... brought to one level
    gains = (levelled * plain).sum(1) / (plain * plain).sum(1)
    assert np.allclose(levelled, gains[:, None] * plain, atol=1e-6)  # by one gain per crop
    with pytest.raises(UserError, match="level_crops needs level_from_corpus"):
        override(SMOKE.train, level_crops=True, level_from_corpus=False)


def test_cli_eval_json_structure(tmp_path, smoke_run, smoke_corpus, capsys) -> None:
    out, _ = smoke_run
    assert main(["codec", "eval", "--preset", "smoke", "--ckpt", str(out), "--corpus", str(smoke_corpus),
                 "--real", str(REAL_SPEECH), "--reports", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "codec.json").read_text())
    assert printed["results"] == written["results"]
    assert set(written["sets"]) == {"synthetic-test", "real-speech"}
    systems = {(r["set"], r["system"], r["n_q"]) for r in written["results"]}
    for s in ("synthetic-test", "real-speech"):
        assert {(s, "ours", q) for q in range(1, SMOKE.model.num_quantizers + 1)} <= systems
        assert {(s, "codec2-3200", None), (s, "opus-6k", None), (s, "identity", None)} <= systems
    for r in written["results"]:
        assert {"kbps", "pesq", "stoi", "mel_distance", "clips"} <= set(r) and r["clips"] >= 1
        if r["system"] == "identity":
            assert r["pesq"] == pytest.approx(4.64, abs=0.01) and r["mel_distance"] == 0
        if r["system"] in ("codec2-3200", "opus-6k"):  # ours at the top rate minus the baseline, clip by clip
            top = next(o for o in written["results"] if (o["set"], o["system"], o["n_q"]) ==
                       (r["set"], "ours", SMOKE.model.num_quantizers))
            gap = r["ours_pesq_gap"]
            assert gap["n"] <= r["clips"] and (gap["low"] is None or gap["low"] <= gap["mean"] <= gap["high"])
            if top["pesq_undefined"] == r["pesq_undefined"] == 0:
                assert gap["n"] == r["clips"] and gap["mean"] == pytest.approx(top["pesq"] - r["pesq"], abs=2e-4)
    ours = [r["kbps"] for r in written["results"] if r["system"] == "ours" and r["set"] == "real-speech"]
    assert ours == sorted(ours) and ours[-1] == pytest.approx(SMOKE.model.kbps())
    assert written["speed"]["encode_x_realtime"] > 0 and written["speed"]["decode_x_realtime"] > 0


def test_acoustic_notebook_runs(tmp_path, smoke_corpus, smoke_tokenizer) -> None:
    """Notebook 04 at smoke scale: the codec part, then SoundStorm (trained on that codec) with its pictures,
    players and acoustic.json."""
    import nbformat

    from workbench.pipeline.notebooks import run_notebook

    out = run_notebook("04_acoustic_synthesis", tmp_path, {
        "preset": "smoke", "corpus_dir": str(smoke_corpus), "codec_dir": str(tmp_path / "codec"),
        "real_dir": str(REAL_SPEECH), "reports": str(tmp_path), "tokenizer_dir": str(smoke_tokenizer),
        "acoustic_dir": str(tmp_path / "acoustic")})
    nb = nbformat.read(out, as_version=4)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in shown if o.output_type == "error"]
    payload = json.loads((tmp_path / "codec.json").read_text())
    assert {r["system"] for r in payload["results"]} >= {"ours", "codec2-3200", "opus-6k"}
    assert (tmp_path / "codec" / "checkpoint.json").is_file()  # it trained the codec it had not found
    assert (tmp_path / "acoustic" / "checkpoint.json").is_file()  # and SoundStorm on top of it
    scores = json.loads((tmp_path / "acoustic.json").read_text())
    assert {"spkr_sim_prompt", "spkr_sim_other", "wer", "wer_codec", "spkr_sim_codec", "realtime_factor"} <= set(scores)
    assert sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in shown) >= 4 + 4
    players = sum(o.get("data", {}).get("text/html", "").count("<audio") for o in shown)
    assert players >= 1 + SMOKE.model.num_quantizers + 6  # codec: original + every bitrate; SoundStorm: 6
    text = "".join(o.get("text", "") for o in shown)
    assert "SoundStorm:" in text and "speaker similarity: to the prompt" in text


def test_heard_voices_study_scores_training_speakers_beside_new_ones(smoke_run, smoke_corpus) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "codec_heard_voices.py"
    spec = importlib.util.spec_from_file_location("codec_heard_voices", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out, _ = smoke_run
    codec, _ = load_codec(out, "cpu")
    cfg = SMOKE.eval
    heard = script.heard_clips(smoke_corpus, 3, cfg.clip_seconds, "synthetic")
    assert len(heard) == 3 and all(len(c.audio) == int(cfg.clip_seconds * 16_000) for c in heard)
    result = script.study(codec, smoke_corpus, "synthetic", 3, cfg)
    assert list(result) == ["synthetic-train (heard)", "synthetic-test (new)"]
    speakers = [{v["speaker"] for v in part["by_speaker"]} for part in result.values()]
    assert speakers[0] and speakers[1] and not speakers[0] & speakers[1], "heard and new voices must not overlap"
    for part in result.values():
        ours = [r for r in part["results"] if r["system"] == "ours"]
        assert len(ours) == 1 and ours[0]["n_q"] == codec.cfg.num_quantizers and ours[0]["pesq"] > 1.0


def test_voice_count_corpus_keeps_voices_at_a_fixed_share(tmp_path, smoke_corpus) -> None:
    import importlib.util
    from pathlib import Path

    from workbench.data.loaders import open_dataset

    path = Path(__file__).resolve().parents[1] / "scripts" / "voice_count_corpus.py"
    spec = importlib.util.spec_from_file_location("voice_count_corpus", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = [json.loads(line) for line in (smoke_corpus / "manifest.jsonl").read_text().splitlines()]
    train = script._train_rows(rows, "synthetic")
    speakers = sorted({r["speaker"] for r in train})
    fewer = script.keep_every(rows, "synthetic", 2)
    assert sorted({r["speaker"] for r in script._train_rows(fewer, "synthetic")}) == speakers[::2]
    assert script._mass(script._train_rows(fewer, "synthetic")) == pytest.approx(script._mass(train))
    assert [r for r in fewer if r["split"] != "train"] == [r for r in rows if r["split"] != "train"]
    script.write_corpus(smoke_corpus, tmp_path / "corpus", fewer)
    corpus = open_dataset(tmp_path / "corpus", split="train")
    assert {r.speaker for r in corpus.recordings} == set(speakers[::2])
    assert (tmp_path / "corpus" / "manifest.jsonl").read_text() != (smoke_corpus / "manifest.jsonl").read_text()
    for bad, message in ((lambda: script.keep_every(rows, "synthetic", 0), "--keep-every must be at least 1"),
                         (lambda: script.keep_every(rows, "real", 2), "no real training recordings")):
        with pytest.raises(UserError, match=message):
            bad()


def test_corpus_level_is_the_median_speech_level_and_a_silent_corpus_is_refused() -> None:
    class Crops:  # a corpus whose crops are a 220 Hz tone at a given amplitude
        def __init__(self, amplitude: float):
            self.amplitude, self.recordings = amplitude, [type("R", (), {"duration": 10.0})()]

        def random_crop(self, seconds, rng):
            t = np.arange(int(seconds * 16_000)) / 16_000
            return None, 0.0, (self.amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)

    assert corpus_speech_level_db(Crops(0.1), seed=0, crops=5) == pytest.approx(-23.0, abs=0.1)
    with pytest.raises(UserError, match="below -60 dBFS"):
        corpus_speech_level_db(Crops(1e-4), seed=0, crops=5)
