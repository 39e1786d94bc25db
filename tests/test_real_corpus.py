"""Real read speech mixed into the corpus (issue 14): mini-LibriSpeech's speakers split into train / dev / test,
chapters joined into long recordings, every utterance aligned; every stage then measures synthetic and real
test voices apart. Reads ../shared/data/mini-librispeech/ (CI has it there); skips where it is absent."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from workbench.core.audio import save_audio
from workbench.core.errors import UserError
from workbench.data.corpus import build_preset, real_speech_root
from workbench.data.loaders import MINI_LIBRISPEECH, Recording, SpeechDataset, open_dataset, speaker_split


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory) -> tuple[Path, dict]:
    """The smoke corpus with the first utterance of every mini-LibriSpeech chapter mixed in (seconds), and the
    fixture clips as extra voices for the codec."""
    if not (MINI_LIBRISPEECH / "train-clean-5").is_dir():
        pytest.skip(f"{MINI_LIBRISPEECH} is not here")
    pytest.importorskip("pocketsphinx")
    out = tmp_path_factory.mktemp("mixed") / "smoke"
    stats = build_preset("smoke", out, jobs=1, progress=False, real_speech=str(MINI_LIBRISPEECH),
                         real_utterances_per_chapter=1, real_weight=3.0, real_extra_voices=str(FIXTURES))
    return out, stats


FIXTURES = Path(__file__).parent / "fixtures" / "real-speech"


def test_real_speakers_are_split_disjointly_and_joined_per_chapter(mixed_corpus):
    out, stats = mixed_corpus
    corpus = open_dataset(out)
    real = [r for r in corpus.recordings if r.source == "real"]
    synthetic = [r for r in corpus.recordings if r.source == "synthetic"]
    assert real and synthetic and all(r.speaker.startswith("librispeech-") for r in real)
    by_split = {s: {r.speaker for r in real if r.split == s} for s in ("train", "dev", "test")}
    assert all(by_split.values()) and not (by_split["train"] & by_split["dev"] or by_split["train"] & by_split["test"]
                                           or by_split["dev"] & by_split["test"])
    split = speaker_split(MINI_LIBRISPEECH)  # the same deterministic split the loaders give
    assert by_split["test"] == {f"librispeech-{s}" for s in split.test}
    summary = stats["real_speech"]
    assert summary["root"] == str(MINI_LIBRISPEECH) and summary["recordings"] == len(real)
    assert stats["splits"]["train"]["real_hours"] == pytest.approx(summary["hours"]["train"], abs=1e-3)
    # one utterance per chapter: each recording is that utterance, its transcript its text
    rec = next(r for r in real if r.id == "librispeech-19-198")
    first = (MINI_LIBRISPEECH / "train-clean-5" / "19" / "198" / "19-198.trans.txt").read_text().splitlines()[0]
    assert rec.text == first.split(" ", 1)[1] and rec.extra["sampling_weight"] == 3.0
    import soundfile as sf

    assert rec.duration == pytest.approx(sf.info(str(MINI_LIBRISPEECH / "train-clean-5/19/198/19-198-0000.flac"))
                                         .duration, abs=1e-3)


def test_real_speech_is_aligned_and_the_held_out_cut_into_segments(mixed_corpus):
    out, stats = mixed_corpus
    corpus = open_dataset(out)
    for rec in (r for r in corpus.recordings if r.source == "real"):  # train too: the tokenizer's real pairs
        phones = [p for p in rec.alignment_data()["phones"] if p[0] != "_"]
        assert len(phones) >= 5 and all(0 <= s < e <= rec.duration + 1e-3 for _, s, e in phones), rec.id
    assert stats["real_speech"]["aligned_utterances"] > 0
    segments = [r for r in open_dataset(out, split="test-segments").recordings if r.source == "real"]
    held = {r.id for r in corpus.recordings if r.source == "real" and r.split == "test"}
    assert segments and {r.extra["recording"] for r in segments} == held
    assert all(r.alignment_data()["words"] for r in segments)


def test_crops_follow_the_sampling_weight(tmp_path):
    audio = np.random.default_rng(0).standard_normal(16000 * 4).astype(np.float32) * 0.1
    recs = [Recording(name, save_audio(tmp_path / f"{name}.wav", audio), 4.0, name, "train",
                      extra={"sampling_weight": w} if w != 1.0 else {}) for name, w in (("heavy", 4.0), ("plain", 1.0))]
    data = SpeechDataset("synthbooks", tmp_path, recs)
    rng = np.random.default_rng(1)
    picks = [data.random_crop(0.1, rng)[0].id for _ in range(600)]
    assert 0.74 < picks.count("heavy") / len(picks) < 0.86  # 4 : 1 -> 0.8


def test_the_real_speech_setting(tmp_path, monkeypatch):
    assert real_speech_root(None) is None and real_speech_root("none") is None
    monkeypatch.setenv("WORKBENCH_REAL_SPEECH", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="nowhere: no such folder"):
        real_speech_root("auto")
    monkeypatch.setenv("WORKBENCH_REAL_SPEECH", str(tmp_path))
    assert real_speech_root("auto") == tmp_path
    monkeypatch.delenv("WORKBENCH_REAL_SPEECH")
    assert real_speech_root("auto") == (MINI_LIBRISPEECH if MINI_LIBRISPEECH.is_dir() else None)
    # a folder of loose audio is not something the corpus can split by speaker and chapter
    save_audio(tmp_path / "loose.wav", np.zeros(16000, np.float32))
    with pytest.raises(UserError, match="LibriSpeech-layout"):
        build_preset("smoke", tmp_path / "corpus", jobs=1, progress=False, real_speech=str(tmp_path))


def test_a_corpus_without_real_speech_says_why(smoke_corpus):
    stats = json.loads((smoke_corpus / "corpus.json").read_text())
    assert stats["real_speech"]["root"] is None and "mixes in no real speech" in stats["real_speech"]["why"]
    assert all(r.source == "synthetic" for r in open_dataset(smoke_corpus).recordings)


def test_stages_measure_synthetic_and_real_test_voices_apart(mixed_corpus, smoke_tokenizer):
    from workbench.acoustic.evaluate import eval_clips
    from workbench.codec.evaluate import corpus_clips
    from workbench.tokenizer.evaluate import corpus_real_phone_figures, phone_figures
    from workbench.tokenizer.model import Tokenizer

    out, _ = mixed_corpus
    real_test = {r.speaker for r in open_dataset(out).recordings if r.source == "real" and r.split == "test"}
    clips = corpus_clips(out, 3, 2.0, "real")
    assert len(clips) == 3 and {c.speaker for c in clips} <= real_test
    assert all(not c.speaker.startswith("librispeech-") for c in corpus_clips(out, 3, 2.0))
    tok = Tokenizer.load(smoke_tokenizer)
    real = corpus_real_phone_figures(tok, out)
    assert set(real["by_speaker"]) == real_test and 0 < real["pnmi"] < 1
    assert not any(s.startswith("librispeech-") for s in phone_figures(tok, out)["by_speaker"])
    kinds = {(c.speaker.startswith("librispeech-"), c.kind) for c in eval_clips(out, 8, 2.0, 1.0)}
    assert kinds == {(False, "synthetic"), (True, "real")}


def test_the_codec_voice_table_puts_the_worst_voice_first():
    from workbench.codec.evaluate import voice_table

    def row(speaker, system, n_q, pesq):
        return {"set": "real-test", "speaker": speaker, "system": system, "n_q": n_q, "pesq": pesq, "stoi": 0.8,
                "mel_distance": 1.0, "clips": 2}

    payload = {"results": [{"system": "ours", "n_q": n, "kbps": k} for n, k in ((1, 0.5), (6, 3.0), (8, 4.0))],
               "by_speaker": [row("a", "ours", 6, 1.9), row("a", "ours", 8, 2.5), row("a", "codec2-3200", None, 1.6),
                              row("b", "ours", 6, 1.2), row("b", "codec2-3200", None, 1.5),
                              row("b", "identity", None, 4.6)]}
    table = voice_table(payload)
    assert [r["speaker"] for r in table] == ["b", "a"]  # worst first
    assert table[1] == {"set": "real-test", "speaker": "a", "clips": 2, "ours": 1.9, "codec2-3200": 1.6, "kbps": 3.0}


def test_the_real_speech_of_a_built_corpus_may_change(mixed_corpus, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(mixed_corpus[0], out)
    plain = build_preset("smoke", out, jobs=1, progress=False, real_speech=None)  # the synthetic part is kept
    assert plain["real_speech"]["root"] is None
    assert all(r.source == "synthetic" for r in open_dataset(out).recordings)
    again = build_preset("smoke", out, jobs=1, progress=False, real_speech=str(MINI_LIBRISPEECH),
                         real_utterances_per_chapter=1, real_weight=3.0)
    assert again["real_speech"]["recordings"] == mixed_corpus[1]["real_speech"]["recordings"]
    # another cut of the same folder: nothing made for the first one is reused
    two = build_preset("smoke", out, jobs=1, progress=False, real_speech=str(MINI_LIBRISPEECH),
                       real_utterances_per_chapter=2, real_weight=3.0)
    longer = next(r for r in open_dataset(out).recordings if r.id == "librispeech-19-198")
    assert two["real_speech"]["hours"]["train"] > again["real_speech"]["hours"]["train"]
    assert len(longer.alignment_data()["utterances"]) == 2
    with pytest.raises(UserError, match=r"different settings \(seed;"):
        build_preset("smoke", out, jobs=1, progress=False, seed=7)


def test_extra_voices_are_new_speakers_the_codec_alone_trains_on(mixed_corpus):
    from workbench.codec.data import open_training_data
    from workbench.codec.evaluate import real_clips
    from workbench.data.loaders import corpus_speakers

    out, stats = mixed_corpus
    voices = open_dataset(out, split="voices").recordings
    # the fixtures' speakers less librispeech-19, whom mini-LibriSpeech (the corpus) already holds
    assert {r.speaker for r in voices} == {"librispeech-26", "ljspeech", "arctic-aew", "jfk"}
    assert len(voices) == 5 and all(r.split == "voices" and r.source == "real" for r in voices)
    assert not any(r.split == "voices" for r in open_dataset(out).recordings)  # not the other stages' data
    import soundfile as sf

    for rec in voices:
        info = sf.info(str(rec.audio))
        assert info.samplerate == 16000 and info.channels == 1
        assert info.duration == pytest.approx(sf.info(rec.extra["origin"]).duration, abs=0.01)
    # a third of the real training crops
    real_train = [r for r in open_dataset(out, split="train").recordings if r.source == "real"]
    mass = lambda rows: sum(r.duration * r.extra["sampling_weight"] for r in rows)  # noqa: E731
    assert mass(voices) / (mass(voices) + mass(real_train)) == pytest.approx(1 / 3, abs=1e-3)
    summary = stats["extra_voices"]
    assert summary["root"] == str(FIXTURES) and summary["recordings"] == 5 and summary["left_out"] == 1
    train, _ = open_training_data(out)
    assert {r.id for r in voices} <= {r.id for r in train.recordings}
    heard = corpus_speakers(out)
    assert {r.speaker for r in voices} | {"librispeech-19"} <= heard
    # codec eval's other real voices are voices the corpus does not hold
    assert not {c.speaker for c in real_clips(FIXTURES, 10, 1.0, heard)} & heard
    assert {c.speaker for c in real_clips(FIXTURES, 10, 1.0)} & heard


def test_extra_voices_bad_settings(tmp_path):
    from workbench.data.corpus import PRESETS, _build_voices, extra_voices_root
    from workbench.data.loaders import EXTRA_VOICES

    smoke = PRESETS["smoke"]
    assert smoke.real_extra_voices is None and extra_voices_root(smoke) is None
    assert extra_voices_root(PRESETS["laptop"]) == (EXTRA_VOICES if EXTRA_VOICES.is_dir() else None)
    with pytest.raises(UserError, match="nowhere: no such folder"):
        build_preset("smoke", tmp_path / "c", progress=False, real_extra_voices=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"real_extra_share must be in \(0, 1\)"):
        build_preset("smoke", tmp_path / "c", progress=False, real_extra_voices=str(FIXTURES), real_extra_share=1.0)
    assert not (tmp_path / "c").exists()  # said before anything is written
    import shutil

    (tmp_path / "only").mkdir()
    shutil.copy(FIXTURES / "19-198-0000.flac", tmp_path / "only")
    held = [{"speaker": "librispeech-19", "split": "train", "duration": 10.0}]
    with pytest.raises(UserError, match="no audio of a speaker the corpus lacks"):
        _build_voices(dataclasses.replace(smoke, real_extra_voices="x"), tmp_path / "only", tmp_path, held, False)


def test_real_train_speech_joins_the_tokenizers_cross_speaker_pairs(mixed_corpus, tmp_path):
    """Stretches of real train speech cut at pauses, each heard beside a rendering of its words: the real one is
    only ever B (what the student hears), the two share their sentence, and the batch draws them at their share."""
    import dataclasses as dc

    import torch

    from workbench.tokenizer.config import PRESETS
    from workbench.tokenizer.data import ParallelSet, real_train_phrases
    from workbench.tokenizer.features import num_frames

    out, _ = mixed_corpus
    train_real = {r.speaker for r in open_dataset(out).recordings if r.source == "real" and r.split == "train"}
    phrases = real_train_phrases(out, 1000, (1.5, 7.0), np.random.default_rng(0))
    assert len(phrases) >= 10 and {p["speaker"] for p in phrases} <= train_real
    for p in phrases:
        span = p["end"] - p["start"]
        assert 1.5 <= span <= 7.0 + 2 * 0.15 and p["text"] and p["text"] == p["text"].lower()
        assert all(0 <= a < b <= span + 1e-6 for _, a, b in p["phones"])
        spoken = [ph for ph in p["phones"] if ph[0] != "_"]
        assert spoken and (p["start"] == 0 or spoken[0][1] > 0)  # it starts in a pause (or where the audio does)
    assert real_train_phrases(out, 1000, (1.5, 7.0), np.random.default_rng(0)) == phrases  # deterministic

    config = dc.replace(PRESETS["smoke"], parallel_real=12, parallel_real_share=0.5)
    ps = ParallelSet.build(out, config, np.random.default_rng(0), tmp_path, log=lambda m: None)
    real = [i for i, r in enumerate(ps.real) if r]
    assert len(real) == 12 and {ps.voices[i] for i in real} <= train_real
    heard_real = [(b, a) for b, a, _ in ps.pairs if ps.real[b]]
    assert len(heard_real) >= 8  # most stretches say what their rendering says, phone for phone (>= 80%)
    assert not any(ps.real[a] for _, a, _ in ps.pairs)  # a real stretch is never a target
    assert all(ps.sentence[b] == ps.sentence[a] and not ps.real[a] for b, a in heard_real)
    units = ps.teacher_units(type("Teacher", (), {"units": lambda self, x: torch.zeros(1, num_frames(x.shape[1]),
                                                                                        dtype=torch.long)})())
    assert all((u is None) == r for u, r in zip(units, ps.real))
    weights = ps.pair_weights()
    assert weights.sum() == pytest.approx(1.0)
    assert sum(w for w, (b, _, _) in zip(weights, ps.pairs) if ps.real[b]) == pytest.approx(0.5)
    again = ParallelSet.build(out, config, np.random.default_rng(0), tmp_path, log=lambda m: None)  # the cache
    assert again.real == ps.real and len(again.pairs) == len(ps.pairs)
    none = ParallelSet.build(out, dc.replace(config, parallel_real=0), np.random.default_rng(0), tmp_path,
                             log=lambda m: None)
    assert not any(none.real) and none.pair_weights() is None
