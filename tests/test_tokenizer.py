"""The semantic tokenizer: features, k-means, masking, metrics on hand-made cases, windowing equality,
save/load, a smoke training run that lowers its loss, encode/eval through the CLI."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REAL_SPEECH

from workbench.core.audio import speech_level_db
from workbench.core.config import override
from workbench.core.errors import UserError
from workbench.tokenizer import features as feat
from workbench.tokenizer import metrics as M
from workbench.tokenizer.config import FRAME, PRESETS, TokenizerConfig
from workbench.tokenizer.encoder import Encoder, span_mask
from workbench.tokenizer.kmeans import kmeans
from workbench.tokenizer.model import Tokenizer, TokenizerError
from workbench.tokenizer.train import train_tokenizers
from workbench.tokenizer.windowed import AudioSource, _window_audio, plan_windows, tokenize_windowed


def speech(seconds: float) -> np.ndarray:
    """Real speech (a LibriSpeech clip, 16 kHz) repeated to `seconds`, each repeat at another gain."""
    clip, sr = sf.read(REAL_SPEECH / "26-495-0000.flac", dtype="float32")
    assert sr == 16000 and clip.ndim == 1
    reps = math.ceil(seconds * sr / len(clip))
    gains = np.random.default_rng(0).uniform(0.3, 1.0, reps).astype(np.float32)
    return np.concatenate([clip * g for g in gains])[: int(seconds * sr)]


def random_tokenizer(config: TokenizerConfig, kind: str = "learned", seed: int = 0) -> Tokenizer:
    """An untrained tokenizer with centroids drawn from its own features: units are as local as a trained one's."""
    torch.manual_seed(seed)
    tok = Tokenizer(kind, config, torch.zeros(()), torch.ones(()), encoder=Encoder(config) if kind == "learned" else None)
    f = tok.features(torch.from_numpy(speech(20.0))[None])[0]
    tok.centroids = f[torch.randperm(len(f))[: config.num_units]].clone()
    return tok


TINY = TokenizerConfig(name="tiny", num_units=16, d_model=32, n_mels=40)  # laptop windows and receptive field


# -- features ----------------------------------------------------------------------------------------------------
def test_features_shapes_and_locality():
    audio = torch.from_numpy(speech(6.0))[None]
    logmel = feat.log_mel(audio, 40)
    assert logmel.shape == (1, 4 * math.ceil(audio.shape[1] / FRAME), 40)
    assert feat.stack_subframes(logmel).shape == (1, logmel.shape[1] // 4, 160)
    assert feat.mfcc_features(logmel, 13, 1).shape == (1, logmel.shape[1] // 4, 13 * 4 * 3)
    # a cut on the 640-sample grid leaves every frame but the edge ones unchanged
    cut = 640 * 50
    part = feat.log_mel(audio[:, cut:], 40)
    assert torch.allclose(part[:, 2:-4], logmel[:, 200 + 2: 200 + part.shape[1] - 4], atol=1e-4)


def test_vtlp_warp():
    freqs = torch.linspace(0, 8000, 201)
    w = feat.vtlp_warp(freqs, torch.tensor([0.8, 1.0, 1.2]))
    assert torch.allclose(w[1], freqs)  # alpha = 1: no change
    assert torch.allclose(w[:, 0], torch.zeros(3)) and torch.allclose(w[:, -1], torch.full((3,), 8000.0))
    assert (w.diff(dim=1) > 0).all()  # monotonic: no frequency folds over
    assert w[0, 50] < freqs[50] < w[2, 50]  # alpha < 1 lowers formants, > 1 raises them
    audio = torch.from_numpy(speech(2.0))[None]
    assert torch.allclose(feat.log_mel(audio, 40, torch.tensor([1.0])), feat.log_mel(audio, 40), atol=1e-5)
    assert not torch.allclose(feat.log_mel(audio, 40, torch.tensor([1.2])), feat.log_mel(audio, 40), atol=1e-2)


# -- k-means and masking -------------------------------------------------------------------------------------------
def test_kmeans_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(200, 2, generator=g) for c in centres])
    found, summary = kmeans(x, 3, iters=20, seed=1)
    assert summary["used"] == 3
    assert torch.cdist(centres, found).min(1).values.max() < 0.1
    with pytest.raises(ValueError, match="at least k"):
        kmeans(x[:2], 3)


def test_span_mask():
    g = torch.Generator().manual_seed(0)
    mask = span_mask(64, 200, prob=0.12, span=4, generator=g)
    assert mask.shape == (64, 200) and mask.dtype == torch.bool
    assert 0.3 < mask.float().mean() < 0.6  # ~1 - (1 - 0.12)^4 = 40%, plus overlaps at the end
    assert mask.any(1).all()  # every row contributes to the loss
    for row in mask[:8]:  # runs are at least a span long (except one cut by the end)
        padded = torch.cat([torch.tensor([False]), row, torch.tensor([False])]).int()
        starts, ends = (padded.diff() == 1).nonzero().flatten(), (padded.diff() == -1).nonzero().flatten()
        assert ((ends - starts)[ends < 200] >= 4).all()
    assert torch.equal(mask, span_mask(64, 200, 0.12, 4, torch.Generator().manual_seed(0)))


# -- metrics on hand-made cases ----------------------------------------------------------------------------------
def test_frame_labels_use_frame_centres():
    phones = [["a", 0.0, 0.05], ["b", 0.05, 0.1], ["_", 0.1, 0.2]]
    # centres at 0.02, 0.06, 0.10, 0.14, 0.18, 0.22
    assert M.frame_labels(phones, 6) == ["a", "b", "_", "_", "_", "_"]


def test_pnmi_and_purity():
    perfect = M.phone_stats([0, 0, 1, 1, 2, 2], ["a", "a", "b", "b", "c", "c"])
    assert perfect["pnmi"] == pytest.approx(1.0) and perfect["phone_purity"] == 1.0
    # independent units: no information
    assert M.phone_stats([0, 1, 0, 1], ["a", "a", "b", "b"])["pnmi"] == pytest.approx(0.0)
    # two units per phone: still fully informative about the phone, but cluster purity drops
    split = M.phone_stats([0, 1, 2, 3], ["a", "a", "b", "b"])
    assert split["pnmi"] == pytest.approx(1.0) and split["cluster_purity"] == 0.5
    # one unit for two phones: H(Y)=1 bit, I=0.5 bit... worked by hand: y=[a,a,b,b], z=[0,0,0,1]
    half = M.phone_stats([0, 0, 0, 1], ["a", "a", "b", "b"])
    h = lambda ps: -sum(p * math.log2(p) for p in ps if p)  # noqa: E731
    expected = (1.0 + h([0.75, 0.25]) - h([0.5, 0.25, 0.25])) / 1.0
    assert half["pnmi"] == pytest.approx(expected) and half["phone_purity"] == 0.75
    # pauses are excluded
    assert M.phone_stats([0, 0, 5, 1], ["a", "a", "_", "b"])["frames"] == 3


def test_edit_distance_dedup_usage_bitrate():
    assert M.dedup([3, 3, 7, 7, 7, 3]) == [3, 7, 3] and M.dedup([]) == []
    assert M.levenshtein([1, 2, 3], [1, 3]) == 1 and M.levenshtein([], [1, 2]) == 2
    assert M.levenshtein([1, 2, 3, 4], [2, 1, 3, 5]) == 3
    assert M.unit_edit_distance([1, 1, 2, 2, 3], [1, 2, 2, 2, 3, 3]) == 0.0  # same after dedup
    assert M.unit_edit_distance([1, 2, 3, 4], [1, 2]) == 0.5
    u = M.usage(np.array([0, 1, 2, 3] * 10), 8)
    assert u["usage_perplexity"] == pytest.approx(4.0) and u["fraction_used"] == 0.5 and u["bitrate_raw"] == 75.0
    b = M.dedup_bitrate([np.array([0, 0, 1, 1] * 25)], 4)  # 100 frames = 4 s, 50 runs alternating 0/1
    assert b["dedup_units_per_second"] == pytest.approx(12.5) and b["bitrate_dedup_entropy"] == pytest.approx(12.5)


# -- windowing -----------------------------------------------------------------------------------------------------
def test_plan_windows_cover_every_frame_once():
    for total in (1, 749, 750, 751, 1400, 1401, 24_000):
        windows = plan_windows(total, 750, 100)
        covered = np.concatenate([np.arange(w.keep_from, w.keep_to) for w in windows])
        assert np.array_equal(covered, np.arange(total))
        for w in windows:  # kept frames sit >= 50 frames (2 s) from a window edge, except at the audio's ends
            assert w.keep_from == 0 or w.keep_from - w.start >= 50
            assert w.keep_to == total or w.start + 750 - w.keep_to >= 50


def test_last_window_is_padded_with_the_start():
    audio = np.arange(1000, dtype=np.float32)
    window = _window_audio(lambda s, n: audio[s: s + n], 1000, 900, 300, multi=True)
    assert np.array_equal(window, np.r_[audio[900:], audio[:200]])
    assert len(_window_audio(lambda s, n: audio[s: s + n], 1000, 0, 3000, multi=False)) == 1000


@pytest.mark.parametrize("kind", ["learned", "mfcc_kmeans"])
def test_windowed_equals_whole_file(kind):
    tok = random_tokenizer(TINY, kind)
    audio = speech(75.0)  # three 30 s windows
    whole = tok.units(audio).numpy()
    windowed = tokenize_windowed(tok, audio)
    assert len(windowed) == len(whole) == math.ceil(len(audio) / FRAME)
    edge = TINY.receptive_frames + 2  # the end: whole-file sees zeros, the last window the recording's start
    assert np.array_equal(windowed[:-edge], whole[:-edge])
    assert (windowed[-edge:] == whole[-edge:]).mean() > 0.5
    if kind == "learned":  # receptive field 30 frames > half of a 1 s overlap
        with pytest.raises(ValueError, match="too short"):
            tokenize_windowed(tok, audio, overlap_seconds=1.0)


def test_sixteen_minutes_streamed_in_bounded_memory(tmp_path, monkeypatch):
    tok = random_tokenizer(TINY)
    path = tmp_path / "long.flac"
    audio = speech(16 * 60.0)
    sf.write(path, audio, 16000, subtype="PCM_16")
    source = AudioSource(path)
    reads = []
    read = source.read
    monkeypatch.setattr(source, "read", lambda s, n: reads.append(n) or read(s, n))
    units = tokenize_windowed(tok, source, batch_windows=2)
    assert len(units) == 16 * 60 * 25 and max(reads) <= 30 * 16000  # never more than a window read at once
    # and equal to whole-file tokenization of the same (16-bit) audio away from the end
    whole = tok.units(sf.read(path, dtype="float32")[0]).numpy()
    edge = TINY.receptive_frames + 2
    assert np.array_equal(units[:-edge], whole[:-edge])


# -- input level ---------------------------------------------------------------------------------------------------
def test_units_do_not_move_with_the_recording_level(tmp_path):
    audio = speech(12.0)
    levelled, as_is = random_tokenizer(TINY), random_tokenizer(override(TINY, input_level_db=None))
    for offset_db in (-12.0, 6.0):
        scaled = audio * np.float32(10 ** (offset_db / 20))
        same = {name: float((tok.units(scaled) == tok.units(audio)).float().mean())
                for name, tok in (("levelled", levelled), ("as_is", as_is))}
        assert same["levelled"] >= 0.99 and same["as_is"] < same["levelled"], (offset_db, same)
    # one gain per file: windowed tokenization of a file measures the whole file first, read in chunks
    path = tmp_path / "a.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    source = AudioSource(path)
    assert source.speech_level_db(chunk_seconds=0.7) == pytest.approx(speech_level_db(audio), abs=1e-9)
    assert levelled.gain(source) == pytest.approx(levelled.gain(audio), rel=1e-9)
    assert levelled.gain(audio) == pytest.approx(10 ** ((-26.0 - speech_level_db(audio)) / 20), rel=1e-9)
    assert as_is.gain(audio) == 1.0 and levelled.gain(np.zeros(16000, np.float32)) == 1.0  # silence is not lifted
    with pytest.raises(UserError, match="input_level_db 3"):
        override(TINY, input_level_db=3.0)
    with pytest.raises(UserError, match="precision 'fp16' is not one of"):
        override(TINY, precision="fp16")


def test_the_members_of_a_probe_pair_share_one_gain_and_their_prefix_units(tmp_path):
    from workbench.pipeline.probes import Pair, ProbeSet, tokenize_sets

    tok = random_tokenizer(TINY)
    prefix, rest = speech(8.0), speech(14.0)[-6 * 16000:]
    paths = {}
    for name, ending in (("correct", rest[:3 * 16000]), ("incorrect", 4 * rest[3 * 16000:])):  # one ending louder
        paths[name] = tmp_path / f"{name}.wav"
        sf.write(paths[name], np.concatenate([prefix, ending]), 16000, subtype="FLOAT")
    sources = [AudioSource(paths["correct"]), AudioSource(paths["incorrect"])]
    assert tok.gain(*sources) != tok.gain(sources[0])  # the gains per file differ, the pair's is one
    probe = ProbeSet("lexical/dev", "lexical", "zerospeech", (Pair("p", paths["correct"], paths["incorrect"]),))
    units = tokenize_sets(tok, [probe], progress=False)
    shared = 8 * 25 - TINY.receptive_frames - 1  # frames that see only the shared prefix
    a, b = units[paths["correct"]][:shared], units[paths["incorrect"]][:shared]
    assert np.array_equal(a, b)
    apart = [tokenize_windowed(tok, s)[:shared] for s in sources]  # per-file gains: the shared audio moves
    assert not np.array_equal(*apart)


# -- save / load -----------------------------------------------------------------------------------------------------
def test_save_load_roundtrip_and_clear_errors(tmp_path):
    tok = random_tokenizer(TINY)
    tok.training = {"note": "random"}
    tok.save(tmp_path / "tok")
    back = Tokenizer.load(tmp_path / "tok")
    assert back.kind == "learned" and back.config == TINY and back.training == {"note": "random"}
    audio = speech(5.0)
    assert torch.equal(back.units(audio), tok.units(audio))
    meta = json.loads((tmp_path / "tok" / "tokenizer.json").read_text())
    assert meta["tensors"]["kmeans.centroids"] == [16, 32] and "norm.mean" in meta["tensors"]
    assert meta["config"] == TINY.to_dict()  # `Config`'s JSON, with its format version
    # a tokenizer saved before configs were versioned still loads; one with settings we do not know is refused
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.safetensors").write_bytes((tmp_path / "tok" / "model.safetensors").read_bytes())
    del meta["config"]["format_version"]
    (tmp_path / "old" / "tokenizer.json").write_text(json.dumps(meta))
    assert Tokenizer.load(tmp_path / "old").config == TINY
    del meta["config"]["input_level_db"]  # saved before input levelling: reads audio at its own level, as trained
    (tmp_path / "old" / "tokenizer.json").write_text(json.dumps(meta))
    assert Tokenizer.load(tmp_path / "old").config == override(TINY, input_level_db=None)
    meta["config"]["surprise"] = 1
    (tmp_path / "old" / "tokenizer.json").write_text(json.dumps(meta))
    with pytest.raises(TokenizerError, match="does not know .*surprise"):
        Tokenizer.load(tmp_path / "old")

    with pytest.raises(TokenizerError, match="no such tokenizer folder"):
        Tokenizer.load(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    with pytest.raises(TokenizerError, match="model.safetensors is missing"):
        (tmp_path / "bad" / "tokenizer.json").write_text((tmp_path / "tok" / "tokenizer.json").read_text())
        Tokenizer.load(tmp_path / "bad")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(TokenizerError, match="corrupt tokenizer"):
        Tokenizer.load(tmp_path / "bad")
    (tmp_path / "bad" / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="corrupt tokenizer metadata"):
        Tokenizer.load(tmp_path / "bad")


# -- training, encoding, evaluation (smoke corpus) -------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(smoke_corpus, tmp_path_factory):
    # bounded by steps, not by the preset's 1-minute budget: on a busy machine the budget cut iteration 2 short
    toks = train_tokenizers(smoke_corpus, override(PRESETS["smoke"], max_minutes=30.0), log=lambda m: None)
    out = tmp_path_factory.mktemp("tokenizers")
    for name, tok in toks.items():
        tok.save(out / name)
    return toks, out


def test_smoke_training_lowers_the_loss(trained):
    toks, _ = trained
    history = toks["learned"].training["history"]
    for it in (1, 2):
        losses = [h["loss"] for h in history if h["iteration"] == it]
        assert len(losses) >= 10
        assert np.mean(losses[-5:]) < losses[0] - 0.3, losses  # from ~log K = 3.47 at the start
        parallel = [h["parallel_loss"] for h in history if h["iteration"] == it]  # voice B -> voice A's units
        assert len(parallel) == len(losses) and np.mean(parallel[-5:]) < parallel[0] - 0.3, parallel
    assert toks["learned"].training["parallel"]["pairs"] > 0
    assert toks["mfcc_kmeans"].training["kmeans"]["used"] == PRESETS["smoke"].num_units


def run_cli(capsys, *argv):
    from workbench.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_encode_writes_the_lm_format(trained, smoke_corpus, tmp_path, capsys):
    _, out = trained
    code, stdout, _ = run_cli(capsys, "tokenizer", "encode", "--tokenizer", str(out / "learned"), "--corpus",
                              str(smoke_corpus), "--out", str(tmp_path / "tokens"), "--json")
    assert code == 0
    summary = json.loads(stdout)
    rows = [json.loads(line) for line in (tmp_path / "tokens" / "manifest.jsonl").read_text().splitlines()]
    corpus = [json.loads(line) for line in (smoke_corpus / "manifest.jsonl").read_text().splitlines()]
    assert summary["recordings"] == len(rows) == len(corpus) and summary["num_units"] == 32
    assert {r["split"] for r in rows} == {"train", "dev", "test"}
    by_id = {c["id"]: c for c in corpus}
    for row in rows:
        assert set(row) == {"id", "split", "path", "num_tokens", "speaker"}
        units = np.load(tmp_path / "tokens" / row["path"])
        assert units.ndim == 1 and np.issubdtype(units.dtype, np.integer) and len(units) == row["num_tokens"]
        assert 0 <= units.min() and units.max() < 32
        assert abs(row["num_tokens"] - by_id[row["id"]]["duration"] * 25) <= 1
    # resumable: the same tokenizer reuses every file
    code, stdout, _ = run_cli(capsys, "tokenizer", "encode", "--tokenizer", str(out / "learned"), "--corpus",
                              str(smoke_corpus), "--out", str(tmp_path / "tokens"), "--json")
    assert json.loads(stdout)["reused"] == len(rows)


def test_cli_eval_json(trained, smoke_corpus, tmp_path, capsys):
    _, out = trained
    code, stdout, _ = run_cli(capsys, "tokenizer", "eval", str(out), "--corpus", str(smoke_corpus), "--real-speech",
                              str(REAL_SPEECH), "--json", "--reports", str(tmp_path))
    assert code == 0
    results = json.loads(stdout)
    assert json.loads((tmp_path / "tokenizer.json").read_text()) == results
    assert {"mfcc_kmeans", "learned", "learned_vs_baseline"} <= set(results)
    for name in ("mfcc_kmeans", "learned"):
        r = results[name]
        for key in ("pnmi", "phone_purity", "unit_edit_distance", "usage_perplexity", "fraction_used", "bitrate_raw",
                    "bitrate_dedup_entropy", "realtime_factor"):
            assert isinstance(r[key], float) and r[key] >= 0, key
        assert 0 < r["pnmi"] < 1 and 0 < r["phone_purity"] <= 1 and 1 <= r["usage_perplexity"] <= 32
        assert r["bitrate_raw"] == 125.0 and r["heldout_speakers"] == ["us1-h", "us3-h"]
        assert r["real_speech"]["clips"] == 6 and r["real_speech"]["realtime_factor"] > 0


def test_cli_clear_errors(trained, tmp_path, capsys):
    _, out = trained
    code, _, err = run_cli(capsys, "tokenizer", "encode", "--tokenizer", str(tmp_path / "nope"), "--corpus",
                           str(tmp_path), "--out", str(tmp_path / "t"))
    assert code == 2 and "no such tokenizer folder" in err
    corpus = tmp_path / "audio"
    corpus.mkdir()
    sf.write(corpus / "good.wav", speech(2.0), 16000)
    (corpus / "bad.wav").write_bytes(b"RIFF not really a wave file")
    code, _, err = run_cli(capsys, "tokenizer", "encode", "--tokenizer", str(out / "mfcc_kmeans"), "--corpus",
                           str(corpus), "--out", str(tmp_path / "t"))
    assert code == 2 and "bad.wav" in err and "not a readable audio file" in err


def test_cli_train_levels_inputs_unless_told_not_to_and_takes_a_precision(smoke_corpus, tmp_path, capsys,
                                                                          monkeypatch):
    import workbench.tokenizer.train as train_module

    seen = []

    def fake_train(corpus, config, log=print, cache_dir=None):  # the config the command hands to training
        seen.append((config.input_level_db, config.train_config().precision))
        return {}

    monkeypatch.setattr(train_module, "train_tokenizers", fake_train)
    for flag in ([], ["--no-level-inputs"], ["--precision", "bf16"]):
        code, _, err = run_cli(capsys, "tokenizer", "train", "--preset", "smoke", "--corpus", str(smoke_corpus),
                               "--out", str(tmp_path / "tok"), *flag)
        assert code == 0, err
    preset = PRESETS["smoke"]
    assert seen == [(preset.input_level_db, preset.precision), (None, preset.precision), (-26.0, "bf16")]
    assert preset.input_level_db == -26.0


def test_unit_audio_plays_exactly_the_frames_of_a_unit():
    from workbench.tokenizer.config import FRAME
    from workbench.tokenizer.notebook import unit_audio

    audio = np.repeat(np.arange(6, dtype=np.float32), FRAME)  # frame f holds the value f
    units = np.array([3, 1, 3, 2, 3, 0])
    sound = unit_audio(audio, units, 3, gap_s=0.0)
    assert len(sound) == 3 * FRAME
    assert [float(sound[k * FRAME + FRAME // 2]) for k in range(3)] == [0.0, 2.0, 4.0]  # frames 0, 2, 4, unfaded mid
    assert len(unit_audio(audio, units, 7)) == 0
