"""SoundStorm end to end at smoke scale: training (loss goes down, exact resume, clear errors), the model's
padding/batch invariance, and the `acoustic` CLI (synthesize, eval, bad input)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from workbench.acoustic.config import PRESETS
from workbench.acoustic.data import Pair, Rates, load_pairs, semantic_prior
from workbench.acoustic.model import SoundStorm
from workbench.acoustic.synthesize import Synthesizer
from workbench.acoustic.train import load_acoustic, train
from workbench.acoustic.windowed import Prompt
from workbench.cli import UserError, main
from workbench.core.audio import AudioConversionWarning
from workbench.core.config import override
from workbench.data.voices import have_mbrola
from workbench.eval.speaker import embedding_or_none, similarity_or_none

SMOKE = PRESETS["smoke"]
MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mini-librispeech"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, smoke_corpus, smoke_codec, smoke_tokenizer):
    root = tmp_path_factory.mktemp("acoustic")
    summary = train(root / "run", SMOKE, smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs", progress=False,
                    preset_name="smoke")
    return root, summary


def test_smoke_training_lowers_the_held_out_loss(smoke_run):
    root, summary = smoke_run
    assert summary["steps"] == SMOKE.train.steps and summary["stopped_by"] == "steps"
    assert summary["final_eval_loss"] < summary["initial_eval_loss"]
    records = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval_loss" in r] == [0, 15, 30]  # one evaluation at the end
    pairs = json.loads((root / "pairs" / "pairs.json").read_text())
    assert pairs["complete"] and pairs["levels"] == summary["levels"] == 4 and pairs["rates"]["codec_hop"] == 320
    assert pairs["rvq_beam"] == 1  # SoundStorm's codes are the greedy RVQ's (the codec's own commands use a beam)
    rows = [json.loads(line) for line in (root / "pairs" / "manifest.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "dev"}
    with np.load(root / "pairs" / rows[0]["path"]) as z:  # 25 Hz tokens, 50 Hz codes of the same audio
        assert abs(z["codes"].shape[1] - 2 * len(z["semantic"])) <= 1 and z["codes"].shape[0] == 4


def test_resume_continues_exactly(tmp_path, smoke_run, smoke_corpus, smoke_codec, smoke_tokenizer):
    root, _ = smoke_run
    preset = dataclasses.replace(SMOKE, train=override(SMOKE.train, steps=6, checkpoint_every=3, eval_every=100,
                                                       log_every=1))
    out = tmp_path / "run"
    train(out, preset, smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs", progress=False)
    straight = load_file(str(out / "checkpoints/step-0000006/model.safetensors"))
    (out / "checkpoint.json").write_text(json.dumps({"step": 3, "path": "checkpoints/step-0000003"}))
    shutil.rmtree(out / "checkpoints/step-0000006")
    summary = train(out, preset, smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs", resume=True, progress=False)
    assert summary["steps"] == 6
    resumed = load_file(str(out / "checkpoints/step-0000006/model.safetensors"))
    for k in straight:
        assert torch.allclose(straight[k], resumed[k], atol=1e-6), k
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines() if "loss" in line]
    assert steps.count(4) == 1


def test_training_errors_are_clear(tmp_path, smoke_run, smoke_corpus, smoke_codec, smoke_tokenizer):
    root, _ = smoke_run
    args = (smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs")
    with pytest.raises(UserError, match="already holds a run"):
        train(root / "run", SMOKE, *args, progress=False)
    changed = dataclasses.replace(SMOKE, train=override(SMOKE.train, lr=0.5))
    with pytest.raises(UserError, match="different settings.*lr"):
        train(root / "run", changed, *args, resume=True, progress=False)
    with pytest.raises(UserError, match="no checkpoint"):
        train(tmp_path / "fresh", SMOKE, *args, resume=True, progress=False)
    with pytest.raises(UserError, match="no checkpoint in .*nocodec"):
        train(tmp_path / "x", SMOKE, smoke_corpus, tmp_path / "nocodec", smoke_tokenizer, tmp_path / "p", progress=False)
    with pytest.raises(UserError, match="no such tokenizer folder"):
        train(tmp_path / "x", SMOKE, smoke_corpus, smoke_codec, tmp_path / "notok", tmp_path / "p", progress=False)
    with pytest.raises(UserError, match="cannot draw training crops"):
        long = dataclasses.replace(SMOKE, train=override(SMOKE.train, crop_seconds=1e4))
        train(tmp_path / "y", long, *args, progress=False)


@pytest.mark.parametrize("prompt_pooling", [False, True])
def test_padding_and_batching_do_not_change_a_window(prompt_pooling: bool):
    cfg = override(SMOKE.model, prompt_pooling=prompt_pooling).for_data(3, 8, 5)
    torch.manual_seed(0)
    model = SoundStorm(cfg).eval()
    sem, codes = torch.randint(0, 5, (2, 30)), torch.randint(0, 9, (2, 3, 30))
    pad = torch.zeros(2, 30, dtype=torch.bool)
    pad[1, 20:] = True
    both = model.level_logits(sem, codes, 1, pad)
    alone = model.level_logits(sem[1:, :20], codes[1:, :, :20], 1)
    assert torch.allclose(both[1, :20], alone[0], atol=1e-5)
    assert torch.allclose(both[0], model.level_logits(sem[:1], codes[:1], 1)[0], atol=1e-5)
    # every frame sees the whole window (bidirectional): changing the last frame changes the first frame's output
    changed = codes[:1].clone()
    changed[0, :, -1] = (changed[0, :, -1] + 1) % 8
    assert not torch.allclose(model.level_logits(sem[:1], changed, 0)[0, 0], model.level_logits(sem[:1], codes[:1], 0)[0, 0])


def test_semantic_prior_counts_each_tokens_codes_and_the_model_adds_it():
    # 25 Hz tokens, 50 Hz frames: frames 0-1 read token 0, frames 2-3 token 1, frames 4-5 token 2 (here 1 again)
    pairs = [Pair("a", None, np.array([0, 1, 1]), np.array([[2, 2, 3, 3, 3, 0], [1, 1, 1, 1, 1, 1]]))]
    prior = semantic_prior(pairs, Rates(16_000, 640, 320), levels=2, codebook_size=4, semantic_vocab=3)
    assert prior.shape == (2, 3, 4)
    assert torch.allclose(prior[0, 0].exp(), torch.tensor([1.0, 1, 3, 1]) / 6)  # codes 2, 2, add-one
    assert torch.allclose(prior[0, 1].exp(), torch.tensor([2.0, 1, 1, 4]) / 8)  # codes 3, 3, 3, 0
    assert torch.allclose(prior[0, 2].exp(), torch.full((4,), 0.25))  # never seen: uniform
    assert torch.allclose(prior[1, 1].exp(), torch.tensor([1.0, 5, 1, 1]) / 8)

    cfg = override(SMOKE.model, semantic_prior=True).for_data(2, 4, 3)
    torch.manual_seed(0)
    model = SoundStorm(cfg).eval()
    model.set_prior(prior)
    sem, codes = torch.tensor([[0, 0, 1, 1, 2, 2]]), torch.full((1, 2, 6), 4)
    assert torch.equal(model.level_logits(sem, codes, 0), prior[0][sem])  # a new model starts as the table
    torch.nn.init.normal_(model.head_weight)  # as after training: the network's logits and the table's add
    plain = SoundStorm(override(cfg, semantic_prior=False)).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k != "prior"})
    assert torch.allclose(model.level_logits(sem, codes, 0), plain.level_logits(sem, codes, 0) + prior[0][sem])
    hidden = model(sem, codes)  # training's path: one level per item
    assert torch.allclose(model.logits(hidden, torch.tensor([1]), sem),
                          plain.logits(hidden, torch.tensor([1]), sem) + prior[1][sem])
    with pytest.raises(ValueError, match="without a semantic prior"):
        plain.set_prior(prior)


def test_training_with_the_semantic_prior_saves_the_counted_table(tmp_path, smoke_run, smoke_corpus, smoke_codec,
                                                                  smoke_tokenizer):
    root, _ = smoke_run
    preset = dataclasses.replace(SMOKE, model=override(SMOKE.model, semantic_prior=True),
                                 train=override(SMOKE.train, steps=4, eval_every=4, checkpoint_every=4))
    train(tmp_path / "run", preset, smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs", progress=False)
    model, meta = load_acoustic(tmp_path / "run")
    rates = Rates(**meta["data"]["rates"])
    want = semantic_prior(load_pairs(root / "pairs", "train"), rates, model.cfg.num_levels,
                          model.cfg.codebook_size, model.cfg.semantic_vocab)
    assert torch.equal(model.prior, want) and want[0].exp().sum(-1).allclose(torch.tensor(1.0))


def test_prompt_pooling_reads_the_voice_from_the_frames_known_at_every_level():
    """The pooled vector averages the frames whose every level is given (the prompt) and nothing else: changing a
    masked frame's known coarse codes leaves it alone, changing a prompt frame moves it and every frame's output."""
    cfg = override(SMOKE.model, prompt_pooling=True).for_data(3, 8, 5)
    torch.manual_seed(0)
    model = SoundStorm(cfg).eval()
    sem, codes = torch.randint(0, 5, (1, 30)), torch.randint(0, 8, (1, 3, 30))
    codes[0, 1:, 10:] = model.mask_id  # frames 10.. know level 0 only: the window being decoded
    frames = model.code_embedding(codes + model.level_offset[:, None]).sum(1)
    with torch.no_grad():
        expected = model.speaker_projection(frames[:, :10].mean(1))
        assert torch.allclose(model.speaker(frames, codes, None), expected, atol=1e-5)
        window_changed = codes.clone()
        window_changed[0, 0, 20] = (window_changed[0, 0, 20] + 1) % 8
        changed_frames = model.code_embedding(window_changed + model.level_offset[:, None]).sum(1)
        assert torch.allclose(model.speaker(changed_frames, window_changed, None), expected, atol=1e-6)
        prompt_changed = codes.clone()
        prompt_changed[0, 2, 3] = (prompt_changed[0, 2, 3] + 1) % 8
        before, after = model.level_logits(sem, codes, 1), model.level_logits(sem, prompt_changed, 1)
        assert not torch.allclose(before[0, 25], after[0, 25])


def _audio(smoke_corpus, split, index=0):
    return sorted((smoke_corpus / "recordings" / split).glob("*.flac"))[index]


def test_cli_synthesize_from_tokens_and_from_audio(tmp_path, smoke_run, smoke_corpus, capsys):
    root, _ = smoke_run
    ckpt = ["--preset", "smoke", "--ckpt", str(root / "run")]
    tokens = np.random.default_rng(0).integers(0, 32, 150)
    np.save(tmp_path / "tokens.npy", tokens)
    prompt = str(_audio(smoke_corpus, "dev"))
    assert main(["acoustic", "synthesize", *ckpt, "--semantic", str(tmp_path / "tokens.npy"), "--prompt", prompt,
                 "--out", str(tmp_path / "a.wav"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seconds"] == pytest.approx(150 / 25) and sf.info(str(tmp_path / "a.wav")).frames == 150 * 640
    src = _audio(smoke_corpus, "test")
    assert main(["acoustic", "synthesize", *ckpt, "--audio", str(src), "--prompt", prompt, "--iterations", "2",
                 "--out", str(tmp_path / "b.wav"), "--json"]) == 0
    capsys.readouterr()
    assert sf.info(str(tmp_path / "b.wav")).frames == sf.info(str(src)).frames
    # a long prompt file: only its start is read, without a warning (using the start is what a prompt is)
    long_prompt = tmp_path / "long.wav"
    sf.write(long_prompt, np.random.default_rng(1).normal(0, 0.1, 61 * 16000).astype(np.float32), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioConversionWarning)
        assert main(["acoustic", "synthesize", *ckpt, "--semantic", str(tmp_path / "tokens.npy"), "--prompt",
                     str(long_prompt), "--out", str(tmp_path / "c.wav"), "--json"]) == 0
    capsys.readouterr()


def test_cli_train_uses_the_threads_it_is_given(tmp_path, smoke_run, smoke_corpus, smoke_codec, smoke_tokenizer,
                                                capsys):
    root, _ = smoke_run  # its pairs are reused
    assert main(["acoustic", "train", "--preset", "smoke", "--out", str(tmp_path / "run"), "--corpus", str(smoke_corpus),
                 "--codec", str(smoke_codec), "--tokenizer", str(smoke_tokenizer), "--pairs", str(root / "pairs"),
                 "--steps", "2", "--threads", "2", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == 2  # not the one the test runs on (fixture)


def test_cli_bad_inputs_exit_with_one_clear_line(tmp_path, smoke_run, smoke_corpus, smoke_tokenizer, capsys):
    from workbench.codec.config import PRESETS as CODEC
    from workbench.codec.train import train as train_codec

    root, _ = smoke_run
    prompt = str(_audio(smoke_corpus, "dev"))
    np.save(tmp_path / "ok.npy", np.zeros(50, dtype=np.int64))

    def run(*extra, ckpt=str(root / "run")):
        code = main(["acoustic", "synthesize", "--preset", "smoke", "--ckpt", ckpt, "--out", str(tmp_path / "o.wav"), *extra])
        return code, capsys.readouterr().err

    code, err = run("--semantic", str(tmp_path / "ok.npy"), "--prompt", prompt, ckpt=str(tmp_path / "none"))
    assert code == 2 and "no checkpoint in" in err and "acoustic train" in err
    np.save(tmp_path / "bad.npy", np.array([1, 2, 99]))
    code, err = run("--semantic", str(tmp_path / "bad.npy"), "--prompt", prompt)
    assert code == 2 and "outside the vocabulary 0..31 (found 1..99)" in err
    sf.write(tmp_path / "short.wav", np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), 16000)
    code, err = run("--semantic", str(tmp_path / "ok.npy"), "--prompt", str(tmp_path / "short.wav"))
    assert code == 2 and "speaker prompt is 0.50 s long; 1 s are needed" in err
    (tmp_path / "junk.npy").write_bytes(b"junk")
    code, err = run("--semantic", str(tmp_path / "junk.npy"), "--prompt", prompt)
    assert code == 2 and "not a .npy array" in err
    # a codec of the same shape but other weights: its codes mean something else
    other = tmp_path / "other-codec"
    train_codec(other, CODEC["smoke"].model, override(CODEC["smoke"].train, steps=2, adversarial=False, seed=1),
                smoke_corpus, progress=False)
    code, err = run("--semantic", str(tmp_path / "ok.npy"), "--prompt", prompt, "--codec", str(other))
    assert code == 2 and "codec mismatch" in err and "another codec" in err
    smaller = tmp_path / "small-codec"
    train_codec(smaller, dataclasses.replace(CODEC["smoke"].model, num_quantizers=2),
                override(CODEC["smoke"].train, steps=2, adversarial=False), smoke_corpus, progress=False)
    code, err = run("--semantic", str(tmp_path / "ok.npy"), "--prompt", prompt, "--codec", str(smaller))
    assert code == 2 and "needs 4 levels" in err and "has 2 x 64" in err
    for option, value in (("--finer-iterations", "0"), ("--temperature", "-1")):
        assert main(["acoustic", "eval", "--preset", "smoke", "--ckpt", str(tmp_path / "none"), option, value]) == 2
        err = capsys.readouterr().err  # refused before a checkpoint is looked for
        assert err.count("\n") == 1 and option in err and "must be" in err and "no checkpoint" not in err
    assert main(["acoustic", "train", "--preset", "tiny"]) == 2
    assert "unknown acoustic preset" in capsys.readouterr().err
    for option in ("--level0-share", "--cross-voice"):
        assert main(["acoustic", "train", "--preset", "smoke", "--out", str(tmp_path / "t"), option, "1.5"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{option} 1.5: a share, between 0 and 1" in err


def test_cli_eval_writes_the_measurements(tmp_path, smoke_run, smoke_corpus, capsys):
    root, _ = smoke_run
    assert main(["acoustic", "eval", "--preset", "smoke", "--ckpt", str(root / "run"), "--corpus", str(smoke_corpus),
                 "--reports", str(tmp_path), "--iterations", "3", "--finer-iterations", "2", "--temperature", "1.5",
                 "--guidance", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "acoustic.json").read_text())
    assert printed["rows"] == written["rows"] and len(written["rows"]) == SMOKE.eval.clips
    for key in ("spkr_sim_prompt", "spkr_sim_other", "wer", "wer_codec", "spkr_sim_codec", "spkr_sim_codec_other",
                "realtime_factor"):
        assert isinstance(written[key], float), key
    assert -1 <= written["spkr_sim_prompt"] <= 1 and written["wer_codec"] >= 0 and written["realtime_factor"] > 0
    assert written["spkr_sim_gap"] == pytest.approx(written["spkr_sim_prompt"] - written["spkr_sim_other"])
    assert set(written["speakers"]) == {"us1-h", "us3-h"}  # the held-out voices
    assert all(r["speaker"] != r["other_speaker"] for r in written["rows"])
    # the decoding options given on the command line are the ones used and recorded
    assert written["decode"]["iterations"] == [3, 2, 2, 2] and written["decode"]["temperature"] == 1.5
    assert written["decode"]["guidance"] == 2.0
    # resynthesis per kind of voice and per voice: the smoke corpus holds synthetic voices only
    assert set(written["by_source"]) == {"synthetic"} and written["by_source"]["synthetic"]["clips"] == SMOKE.eval.clips
    assert written["by_source"]["synthetic"]["wer_codec"] == pytest.approx(written["wer_codec"])
    assert set(written["by_speaker"]) == {r["speaker"] for r in written["rows"]}
    assert sum(v["clips"] for v in written["by_speaker"].values()) == SMOKE.eval.clips
    assert set(written["swap_test"]["by_kinds"]) == {"synthetic->synthetic", "synthetic->real"}
    # the swap test: each clip in the other held-out voice and in 2 real voices, per ordered pair with intervals
    swap = written["swap_test"]
    assert len(swap["real_voices"]) == 2 and set(swap["by_kind"]) == {"synthetic", "real"}
    assert swap["by_kind"]["synthetic"]["clips"] == SMOKE.eval.clips and swap["by_kind"]["real"]["clips"] == 4
    for c in swap["conditions"]:
        assert c["source"] != c["prompt"] and c["source"] in {"us1-h", "us3-h"}
        if c["unmeasured"] == c["clips"]:  # every synthesis too garbled to embed (a smoke model may): no means
            assert c["gap"]["mean"] is None and c["sim_prompt"]["mean"] is None and c["sim_source"]["mean"] is None
        else:
            assert c["gap"]["mean"] == pytest.approx(c["sim_prompt"]["mean"] - c["sim_source"]["mean"], abs=1e-9)
        assert 0 <= c["unmeasured"] <= c["clips"] and c["wer"] >= 0
    assert {(c["source"], c["prompt"]) for c in swap["conditions"] if c["kind"] == "synthetic"} <= {
        ("us1-h", "us3-h"), ("us3-h", "us1-h")}
    assert written["same_prompt_gap"]["n"] == SMOKE.eval.clips
    by_level = written["masked_prediction_by_level"]
    assert [r["level"] for r in by_level] == [0, 1, 2, 3]
    assert all(0 <= r["accuracy"] <= 1 and 0 < r["unigram_loss"] <= np.log(64) + 1e-6 for r in by_level)


def test_eval_records_a_synthesis_too_garbled_to_embed_instead_of_stopping(smoke_run, smoke_corpus, monkeypatch):
    """A barely trained model can decode speech the speaker encoder's VAD throws away: `acoustic eval` must count
    it and leave it out of the means, not crash half-way through an hour of evaluation."""
    from workbench.acoustic.evaluate import evaluate, summary_text

    root, _ = smoke_run
    synth = Synthesizer.load(root / "run")
    monkeypatch.setattr(Synthesizer, "synthesize", lambda self, semantic, prompt, seed=0, progress=False:
                        np.zeros(len(semantic) * self.rates.semantic_hop, dtype=np.float32))  # silence: nothing to embed
    result = evaluate(synth, dataclasses.replace(SMOKE.eval, real_prompts=0), smoke_corpus, progress=False)
    assert result["unmeasured"] == {"prompt": SMOKE.eval.clips, "swap_prompt": SMOKE.eval.clips, "codec": 0}
    assert result["spkr_sim_prompt"] is None and result["spkr_sim_gap"] is None
    assert result["same_prompt_gap"]["n"] == 0 and isinstance(result["spkr_sim_codec"], float)  # the codec measured
    assert all(c["unmeasured"] == c["clips"] for c in result["swap_test"]["conditions"])
    assert "too garbled for a speaker embedding" in summary_text(result)


@pytest.mark.slow  # ~15 s alone, ~40 s on a busy machine
def test_sixteen_minutes_end_to_end_with_the_smoke_model(smoke_run):
    """Semantic tokens of 16 minutes -> codes -> audio with a real (smoke) model and codec: every model call sees at
    most prompt + one window, and the audio (chunked codec decoding) has the stream's length."""
    root, _ = smoke_run
    synth = Synthesizer.load(root / "run").with_decode(window_seconds=8.0, overlap_seconds=1.0)
    seen = []
    forward = synth.model.level_logits

    def spy(semantic, codes, level, pad):
        seen.append(tuple(codes.shape))
        return forward(semantic, codes, level, pad)

    synth.model.level_logits = spy
    tokens = 16 * 60 * 25
    stream = np.random.default_rng(0).integers(0, 32, tokens)
    prompt_frames = synth.rates.seconds_to_frames(synth.decode.prompt_seconds)
    g = np.random.default_rng(1)
    prompt = Prompt(g.integers(0, 32, prompt_frames), g.integers(0, 64, (4, prompt_frames)))
    codes = synth.synthesize_codes([stream], [prompt])[0]
    assert codes.shape == (4, 2 * tokens) and codes.min() >= 0 and codes.max() < 64
    assert max(t for _, _, t in seen) == prompt_frames + 400
    wav = synth.audio(codes, chunk_seconds=60.0)
    assert len(wav) == tokens * 640 and np.isfinite(wav).all()


def test_real_prompt_voices_are_named_fixed_and_exclude_training_speakers():
    from workbench.acoustic.evaluate import real_prompt_voices
    from workbench.data.loaders import real_speaker_of

    assert real_speaker_of(Path("19-198-0000.flac")) == "librispeech-19"
    assert real_speaker_of(Path("LJ001-0002.wav")) == "ljspeech"
    assert real_speaker_of(Path("cmu_arctic_us_aew_a0001.wav")) == "arctic-aew"
    assert real_speaker_of(Path("p240_00000.mp3")) == "vctk-p240"
    voices = real_prompt_voices(4, 3.0)
    assert list(voices) == list(real_prompt_voices(4, 3.0))  # the same voices every time
    assert len(voices) == 4 and all(len(a) == 3 * 16000 and np.abs(a).max() > 0.01 for a in voices.values())
    assert "librispeech-19" not in real_prompt_voices(99, 3.0) or not MINI.is_dir()  # mini-LibriSpeech trains
    assert list(real_prompt_voices(2, 3.0, exclude=set())) != [] and real_prompt_voices(0, 3.0) == {}
    assert not set(real_prompt_voices(4, 3.0, exclude=set(voices))) & set(voices)  # voices a corpus holds


def test_the_listening_explorer_plays_the_chosen_voice_and_bitrate(smoke_run, smoke_corpus, smoke_codec,
                                                                    smoke_tokenizer):
    """Notebook 04's explorer: the players for a clip, in its own or the other held-out voice, through the codec
    at the chosen number of levels; bad choices are refused."""
    from workbench.acoustic.evaluate import eval_clips
    from workbench.acoustic.notebook import listening_set, synthesis_explorer

    root, _ = smoke_run
    synth = Synthesizer.load(root / "run", smoke_codec, smoke_tokenizer)
    clip = eval_clips(smoke_corpus, 1, SMOKE.eval.clip_seconds, synth.decode.prompt_seconds)[0]
    own = listening_set(synth, clip, "own", levels=1)
    other = listening_set(synth, clip, "other", levels=synth.levels, seed=1)
    assert list(own)[:2] == ["original", f"codec, {synth.codec.cfg.kbps(1):.1f} kbps"]
    assert f"prompt ({clip.speaker})" in own and f"prompt ({clip.other_speaker})" in other
    for sounds in (own, other):
        assert all(np.isfinite(a).all() for a in sounds.values())
        assert len(sounds[list(sounds)[-1]]) == len(clip.audio) == len(sounds[list(sounds)[1]])
    assert not np.allclose(own[list(own)[1]], other[list(other)[1]])  # 1 level vs all levels
    with pytest.raises(ValueError, match="levels"):
        listening_set(synth, clip, "own", levels=99)
    with pytest.raises(ValueError, match="voice"):
        listening_set(synth, clip, "mine")
    explorer = synthesis_explorer(synth, [clip])
    assert explorer is not None and [w.description for w in explorer.children[:4]] == [
        "clip", "prompt voice", "codec levels", "seed"]


def test_the_listening_page_has_the_four_players_per_clip(smoke_run, smoke_corpus, smoke_codec, smoke_tokenizer):
    """Notebook 04's listening page: for each clip the original, the codec, the same-prompt and the swapped-prompt
    resynthesis, all of the clip's length; the two prompts give different audio."""
    from workbench.acoustic.evaluate import eval_clips
    from workbench.acoustic.notebook import listening_page, listening_rows

    root, _ = smoke_run
    synth = Synthesizer.load(root / "run", smoke_codec, smoke_tokenizer)
    clips = eval_clips(smoke_corpus, 2, SMOKE.eval.clip_seconds, synth.decode.prompt_seconds)
    rows = listening_rows(synth, clips)
    assert [r["clip"] for r in rows] == [c.id for c in clips]
    for row, clip in zip(rows, clips):
        assert list(row["audio"]) == ["original", "codec", "same prompt", "swapped prompt"]
        assert all(len(a) == len(clip.audio) and np.isfinite(a).all() for a in row["audio"].values())
        assert not np.allclose(row["audio"]["same prompt"], row["audio"]["swapped prompt"])
    page = listening_page(rows).data
    assert page.count("<audio") == 4 * len(rows) and clips[0].other_speaker in page


@pytest.mark.skipif(not have_mbrola(), reason="mbrola voices not installed")
def test_voice_variants_of_one_diphone_set_are_different_speakers():
    """The corpus makes two training voices of each mbrola diphone set by pitch, rate and vocal-tract length: each
    pair is measurably further apart (same text) than either voice is from itself on other text; and each held-out
    voice is a new speaker: further from every training voice than that by a clear margin."""
    from workbench.acoustic.evaluate import voice_similarities
    from workbench.data.voices import VOICES

    pairs = [(v, next(w for w in VOICES if w.name == v.name[:-1] + "b")) for v in VOICES if v.name.endswith("-a")]
    sims = voice_similarities(VOICES)
    assert len(pairs) == 4
    for a, b in pairs:
        assert sims["pairs"][f"{a.name}|{b.name}"] < min(sims["self"][a.name], sims["self"][b.name]) - 0.015, sims
    pair = lambda a, b: sims["pairs"].get(f"{a}|{b}", sims["pairs"].get(f"{b}|{a}"))  # noqa: E731
    for held in (v.name for v in VOICES if v.held_out):
        nearest = max(pair(held, v.name) for v in VOICES if not v.held_out)
        assert nearest < sims["self"][held] - 0.08, (held, nearest, sims["self"][held])


def _script(name: str):
    """A module of scripts/ (they are not a package), loaded from its file."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_levels_study_decodes_each_prefix_of_the_same_syntheses(smoke_run, smoke_corpus):
    script = _script("acoustic_levels_study")
    root, _ = smoke_run
    result = script.study(Synthesizer.load(root / "run"), smoke_corpus, [1, 4], SMOKE.eval)
    assert [(r["kind"], r["levels"]) for r in result["table"]] == [("synthetic", 1), ("synthetic", 4), ("all", 1),
                                                                   ("all", 4)]
    assert all(r["clips"] == SMOKE.eval.clips and r["wer"] >= 0 and r["wer_codec"] >= 0 for r in result["table"])
    one, four = ([r for r in result["rows"] if r["levels"] == n] for n in (1, 4))
    assert [r["clip"] for r in one] == [r["clip"] for r in four]
    # the same synthesis, decoded from fewer levels, is other audio: its voice measures differ
    assert any(a["sim_prompt"] != b["sim_prompt"] for a, b in zip(one, four))
    # a decode too garbled for a speaker embedding is left out (None, counted), not a crash mid-study
    assert all(isinstance(r["unmeasured"], int) for r in result["table"])
    assert all(r["sim_prompt"] is None or -1 <= r["sim_prompt"] <= 1 for r in result["rows"])
    assert embedding_or_none(np.zeros(16_000, dtype=np.float32)) is None
    assert similarity_or_none(None, embedding_or_none(np.zeros(16_000, dtype=np.float32))) is None


def _one_clip(smoke_run, smoke_corpus):
    """The levels study script, the smoke run's synthesizer, and one eval clip's semantic tokens, codes and prompt."""
    from workbench.acoustic.evaluate import eval_clips

    script = _script("acoustic_levels_study")
    synth = Synthesizer.load(smoke_run[0] / "run")
    clip = eval_clips(smoke_corpus, 1, SMOKE.eval.clip_seconds, synth.decode.prompt_seconds)[0]
    return script, synth, synth.semantic_tokens(clip.audio), synth.codes(clip.audio), synth.prompt(clip.prompt)


def test_given_levels_study_forces_the_given_levels_and_decodes_the_rest(smoke_run, smoke_corpus):
    script, synth, semantic, truth, prompt = _one_clip(smoke_run, smoke_corpus)
    frames = synth.rates.frames(len(semantic))
    truth = np.pad(truth[:, :frames], ((0, 0), (0, frames - min(frames, truth.shape[1]))), mode="edge")
    plain, one, three = (script.given_codes(synth, semantic, prompt, truth, n, seed=0) for n in (0, 1, 3))
    assert plain.shape == one.shape == (synth.levels, frames)
    assert np.array_equal(one[0], truth[0]) and not np.array_equal(plain[0], truth[0])
    assert np.array_equal(three[:3], truth[:3]) and (three != synth.model.mask_id).all()
    result = script.given_study(synth, smoke_corpus, [0, 1], SMOKE.eval)
    assert [(r["kind"], r["given"]) for r in result["table"]] == [("synthetic", 0), ("synthetic", 1), ("all", 0),
                                                                  ("all", 1)]
    assert all(r["wer"] >= 0 and r["wer_codec"] >= 0 and r["clips"] == SMOKE.eval.clips for r in result["table"])


def test_soft_decoding_hears_the_expected_latent(smoke_run, smoke_corpus):
    script, synth, semantic, truth, prompt = _one_clip(smoke_run, smoke_corpus)
    codes = script.given_codes(synth, semantic, prompt, truth, 0, seed=0)
    books = [vq.codebook for vq in synth.codec.quantizer.levels]
    soft = script.soft_latent(synth, semantic, prompt, codes)
    assert soft.shape == (books[0].shape[1], codes.shape[1])
    # a vanishing temperature puts all the weight on each level's likeliest code. Levels 1.. are read exactly as
    # the plain decode's greedy pass read them, so they are its codes; level 0 (sampled there) is some code of its own
    sharp = script.soft_latent(synth, semantic, prompt, codes, temperature=1e-4)
    level0 = sharp - sum(books[q][torch.from_numpy(codes[q])].t() for q in range(1, synth.levels))
    assert float(torch.cdist(level0.t(), books[0]).min(1).values.max()) < 1e-3
    assert not torch.allclose(soft, sharp)
    result = script.soft_study(synth, smoke_corpus, [1.0], SMOKE.eval)
    assert [(r["kind"], r["decoding"]) for r in result["table"]] == [("synthetic", "plain"), ("synthetic", "soft T=1"),
                                                                     ("all", "plain"), ("all", "soft T=1")]
    assert all(r["wer"] >= 0 and r["clips"] == SMOKE.eval.clips for r in result["table"])


def test_code_tables_see_what_a_table_can_predict():
    """scripts/acoustic_code_tables.py: a level that is a function of the semantic token, one that copies the level
    above and one that is noise score as such against the code frequencies, on held-out pairs."""
    script = _script("acoustic_code_tables")
    rng = np.random.default_rng(0)

    def pair(n_tokens):
        semantic = rng.integers(0, 8, n_tokens)
        level0 = np.repeat(semantic, 2) * 2  # 25 Hz tokens, 50 Hz frames: a function of the token
        return Pair("p", None, semantic, np.stack([level0, level0 + 1, rng.integers(0, 16, 2 * n_tokens)]))

    rows = script.code_tables([pair(4000)], [pair(1000)], Rates(16_000, 640, 320), 3, 16, 8)
    assert rows[0]["semantic"] < 0.05 < np.log(8) - 0.1 < rows[0]["unigram"]  # 8 equally likely codes
    assert rows[1]["coarser"] < 0.05 and rows[1]["semantic"] < 0.05
    assert abs(rows[2]["coarser"] - np.log(16)) < 0.1 and abs(rows[2]["semantic"] - np.log(16)) < 0.1
    assert "coarser" not in rows[0]


def test_code_tables_refuse_missing_or_corrupt_pairs(tmp_path, monkeypatch, capsys):
    script = _script("acoustic_code_tables")

    def run(folder):
        monkeypatch.setattr("sys.argv", ["acoustic_code_tables.py", str(folder)])
        with pytest.raises(SystemExit) as exit_:
            script.main()
        return exit_.value.code, capsys.readouterr().err

    code, err = run(tmp_path)
    assert code == 2 and "no pairs.json" in err
    (tmp_path / "pairs.json").write_text(json.dumps({"rates": {}, "levels": 1, "codebook_size": 4, "semantic_vocab": 2}))
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"id": "a", "split": "train", "speaker": None,
                                                         "path": "train/a.npz"}) + "\n")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.npz").write_bytes(b"not an npz")
    code, err = run(tmp_path)
    assert code == 2 and "cannot read the pairs" in err
    assert not list(tmp_path.glob("*.tmp*"))
