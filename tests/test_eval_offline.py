"""The offline evaluation models: pocketsphinx WER and resemblyzer speaker similarity."""

from pathlib import Path

import numpy as np
import pytest

from workbench.core.audio import SAMPLE_RATE, load_audio
from workbench.eval.asr import normalize_text, split_points, transcribe, transcribe_many, word_error_rate
from workbench.eval.speaker import cosine, speaker_embedding, speaker_similarity

REAL = Path(__file__).parent / "fixtures" / "real-speech"


def test_normalize_text_keeps_words_and_apostrophes_only():
    assert normalize_text("  Mr. Elton's  'own' HAPPINESS -- quickened!") == "mr elton's own happiness quickened"


def test_word_error_rate_counts_every_kind_of_error_over_the_corpus():
    assert word_error_rate("the cat sat down", "the cat sat down") == 0.0
    assert word_error_rate("the cat sat down", "the bat sat down") == 0.25  # substitution
    assert word_error_rate("the cat sat down", "the cat sat") == 0.25  # deletion
    assert word_error_rate("the cat", "the big cat") == 0.5  # insertion
    # pooled over pairs: 1 error in 6 words, not the mean of per-pair rates (0.25 and 0)
    assert word_error_rate(["the cat sat down", "a dog"], ["the bat sat down", "a dog"]) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="empty"):
        word_error_rate([""], ["words"])
    with pytest.raises(ValueError, match="references but"):
        word_error_rate(["a", "b"], ["a"])


def test_long_audio_is_cut_in_its_pauses():
    rng = np.random.default_rng(0)
    sr = SAMPLE_RATE
    wav = rng.normal(0, 0.1, 70 * sr).astype(np.float32)
    for pause in (27.0, 52.0):  # 300 ms pauses just before the 30 s boundaries
        wav[int(pause * sr): int((pause + 0.3) * sr)] = 0
    cuts = split_points(wav, max_seconds=30)
    assert len(cuts) == 2
    for cut, pause in zip(cuts, (27.0, 52.0)):
        assert pause * sr <= cut <= (pause + 0.3) * sr
    assert max(np.diff([0, *cuts, len(wav)])) <= 30 * sr
    assert split_points(wav[: 10 * sr], max_seconds=30) == []


def test_transcribe_real_speech_mostly_right():
    wav = load_audio(REAL / "jfk.flac")
    reference = (REAL / "jfk.txt").read_text()
    hyp = transcribe(wav)
    assert "country" in hyp.split()
    assert word_error_rate(reference, hyp) < 0.6  # pocketsphinx on a 1961 recording: ~0.4


def test_same_voice_is_more_similar_than_another_voice(smoke_corpus):
    from workbench.data.loaders import open_dataset

    recs = open_dataset(smoke_corpus).recordings
    female = [r.load() for r in recs if r.speaker == "us1-h"][:2]
    male = next(r.load() for r in recs if r.speaker == "us3-h")
    e = speaker_embedding(female[0])
    assert e.shape == (256,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-4)
    same, other = speaker_similarity(female[0], female[1]), speaker_similarity(female[0], male)
    assert same > 0.85 and same - other > 0.1, (same, other)
    assert cosine(e, e) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="too little"):
        speaker_embedding(female[0][: SAMPLE_RATE // 8])


def test_naturalness_proxy_ranks_clean_speech_above_noise_and_silence():
    """DNSMOS (speechmos's ONNX models, offline): clean real speech scores well above the same speech under white
    noise and above silence; per-bin rows follow the bins; bad input is refused."""
    from workbench.eval.naturalness import dnsmos, naturalness_over_time

    speech = np.tile(load_audio(REAL / "LJ001-0001.wav"), 3)[: 12 * SAMPLE_RATE]
    noisy = speech + 0.05 * np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    clean, dirty = dnsmos(speech), dnsmos(noisy)
    silent = dnsmos(np.zeros(10 * SAMPLE_RATE, dtype=np.float32))
    assert set(clean) == {"ovrl", "sig", "bak", "p808"}
    assert clean["ovrl"] > 2.8 and clean["ovrl"] - dirty["ovrl"] > 0.8 and clean["ovrl"] - silent["ovrl"] > 0.8
    bins = naturalness_over_time(np.concatenate([speech, np.zeros(SAMPLE_RATE, dtype=np.float32)]), bin_seconds=6.0)
    assert [(b["from_s"], b["to_s"]) for b in bins] == [(0.0, 6.0), (6.0, 13.0)]  # a 1 s last bin joins
    assert all(b["ovrl"] > 2.5 for b in bins)
    for bad, match in ((speech[:SAMPLE_RATE], "at least"), (np.full(3 * SAMPLE_RATE, np.nan, np.float32), "NaN")):
        with pytest.raises(ValueError, match=match):
            dnsmos(bad)
    with pytest.raises(ValueError, match="16 kHz"):
        dnsmos(speech, sample_rate=44100)


def test_a_transcript_does_not_depend_on_what_was_decoded_before():
    """pocketsphinx adapts its cepstral mean across utterances; transcribe() starts every piece afresh (without
    that, JFK's clip read "not like your kind brain" instead of "not what your country can do" after the noise)."""
    wav = load_audio(REAL / "jfk.flac")
    first = transcribe(wav)
    noise = (0.3 * np.random.default_rng(0).standard_normal(8 * SAMPLE_RATE)).astype(np.float32)
    for _ in range(5):
        transcribe(noise)
    assert transcribe(wav) == first


def test_many_transcripts_in_worker_processes_are_those_heard_one_by_one():
    """acoustic eval transcribes its resyntheses on every core: the same words, in the order given."""
    clips = [load_audio(REAL / name)[: 6 * SAMPLE_RATE] for name in ("jfk.flac", "19-198-0000.flac", "LJ001-0001.wav")]
    noise = (0.3 * np.random.default_rng(0).standard_normal(4 * SAMPLE_RATE)).astype(np.float32)
    wavs = [clips[0], noise, clips[1], clips[2]]
    expected = [transcribe(w) for w in wavs]
    assert transcribe_many(wavs, workers=2) == expected
    assert transcribe_many(wavs, workers=1) == expected and transcribe_many([]) == []
    assert len({*expected}) == 4  # four different transcripts: an order mix-up would show
