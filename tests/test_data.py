"""The embedded corpus: texts, synthesis + alignment, the builder, and the loaders over every layout."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REAL_SPEECH

from workbench.core.audio import AudioError
from workbench.data.corpus import PRESETS, plan, segment_bounds
from workbench.data.loaders import open_dataset
from workbench.data.synth import align_words, render
from workbench.data.texts import normalise, read_all, read_book, split_sentences
from workbench.data.voices import VOICES, have_mbrola, voice


def test_books_parse_into_chapters_without_front_or_back_matter():
    chapters = read_all()
    assert len(chapters) == 269
    assert 700_000 < sum(c.num_words for c in chapters) < 750_000
    pride = read_book("pride")
    assert pride[0].sentences[0].startswith("It is a truth universally acknowledged")
    northanger = read_book("northanger")
    assert "Vide a letter" not in " ".join(northanger[-1].sentences)


def test_normalise_and_sentences():
    assert normalise('"_You_ want--it," said he &c.') == '"You want, it," said he etcetera.'
    assert split_sentences("Mr. Darcy came. She left! Did he? Yes.") == ["Mr. Darcy came.", "She left!", "Did he?",
                                                                          "Yes."]


def test_align_words_exact_and_interpolated():
    # in context "a" became a schwa: its boundaries come from its neighbours
    spoken = ["I", "z", "@", "t", "r", "u", "T"]
    per_word = [["I", "z"], ["EI"], ["t", "r", "u", "T"]]
    assert align_words(spoken, per_word) == [(0, 2), (2, 3), (3, 7)]


def test_voices_distinct_and_held_out():
    assert len(VOICES) >= 8 and len({v.name for v in VOICES}) == len(VOICES)
    assert sum(v.held_out for v in VOICES) >= 2
    with pytest.raises(ValueError, match="unknown voice"):
        voice("nobody")


@pytest.mark.skipif(not have_mbrola(), reason="mbrola voices not installed")
def test_render_alignment_is_consistent():
    sentences = ["It is a truth universally acknowledged.", "However little known the feelings of such a man may be."]
    r = render(sentences, voice("us1-b"))  # includes a vocal-tract change (resampling)
    assert r.exact and len(r.words) == 17 and len(r.sentences) == 2
    phone_end = r.phones[-1][2]
    assert abs(phone_end - r.duration) < 0.02  # mbrola renders exactly the durations espeak chose
    starts = [s for _, s, _ in r.words]
    assert starts == sorted(starts) and all(e >= s for _, s, e in r.words)
    assert r.words[-1][2] <= r.duration and r.sentences[1][1] > r.sentences[0][2]
    # words sit on speech: the energy inside words is far above the pause between the sentences
    sr = r.sample_rate
    gap = r.audio[int(r.sentences[0][2] * sr) + 200:int(r.sentences[1][1] * sr) - 200]
    speech = r.audio[int(r.words[0][1] * sr):int(r.words[5][2] * sr)]
    assert np.sqrt(np.mean(gap**2)) < 0.1 * np.sqrt(np.mean(speech**2))


def test_native_fallback_still_renders():
    r = render(["A short sentence, read by espeak alone."], voice("us2-a"), mbrola=False)
    assert not r.exact and r.duration > 0.5 and len(r.words) == 7 and r.phones == []


def test_plan_sizes_and_splits():
    jobs = plan(PRESETS["laptop"])
    hours = {s: sum(j.chapter.num_words for j in jobs if j.split == s) / 2.67 / 3600 for s in ("train", "dev", "test")}
    assert hours["train"] >= 10 and hours["dev"] >= 0.5 and hours["test"] >= 0.5
    held_out = {v.name for v in VOICES if v.held_out}
    assert all((j.voice in held_out) == (j.split != "train") for j in jobs)
    ids = [j.chapter.id for j in jobs]
    assert len(ids) == len(set(ids))  # no chapter is read twice: dev/test text is unseen in training
    assert plan(PRESETS["laptop"]) == jobs  # deterministic


def test_segment_bounds_cover_without_gaps():
    sentences = [["s", i * 10.0, i * 10.0 + 9.0] for i in range(30)]  # 9 s sentences, 1 s pauses
    cuts = segment_bounds(sentences, 300.0, 60.0)
    assert cuts[0][0] == 0.0 and cuts[-1][1] == 300.0
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
    assert all(b - a <= 60.0 for a, b in cuts)
    assert all(round(a % 10, 6) == 9.5 for a, _ in cuts[1:])  # cut in the middle of a pause


def test_smoke_corpus_layout(smoke_corpus):
    stats = json.loads((smoke_corpus / "corpus.json").read_text())
    assert stats["speakers"] == 10 and stats["splits"]["train"]["recordings"] >= 8
    assert set(stats["splits"]["dev"]["speakers"]) <= {v.name for v in VOICES if v.held_out}
    rows = [json.loads(line) for line in (smoke_corpus / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        align = json.loads((smoke_corpus / row["alignment"]).read_text())
        assert abs(align["duration"] - row["duration"]) < 1e-6 and align["words"] and align["phones"]
        assert align["words"][-1][2] <= row["duration"] + 1e-3
    segs = open_dataset(smoke_corpus, split="test-segments")
    assert all(s.duration <= 240.0 for s in segs.recordings)
    assert not list(smoke_corpus.rglob(".*.tmp-*"))  # nothing half-written


def test_build_is_resumable_and_guarded(smoke_corpus):
    from workbench.core.errors import UserError
    from workbench.data.corpus import build_preset

    before = {p: p.stat().st_mtime_ns for p in (smoke_corpus / "recordings").rglob("*.flac")}
    build_preset("smoke", smoke_corpus, jobs=1, progress=False)
    after = {p: p.stat().st_mtime_ns for p in (smoke_corpus / "recordings").rglob("*.flac")}
    assert before == after  # finished chapters are not rebuilt
    with pytest.raises(UserError, match=r"different settings \(seed;"):
        build_preset("smoke", smoke_corpus, jobs=1, progress=False, seed=7)


def test_a_changed_voice_is_read_again(tmp_path, monkeypatch):
    """A voice whose settings change (pitch, rate, tract) re-reads its recordings, segments and parallel sentences
    on the next build; every other voice's are kept, and the stamp (downstream reuse) changes."""
    import dataclasses

    import workbench.data.corpus as corpus
    import workbench.data.voices as voices
    from workbench.core.reuse import read_stamp

    out = tmp_path / "smoke"
    corpus.build_preset("smoke", out, jobs=1, progress=False)
    stamp = read_stamp(out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    changed = tuple(dataclasses.replace(v, pitch=v.pitch + 10) if v.name == "us1-h" else v for v in VOICES)
    monkeypatch.setattr(voices, "VOICES", changed)
    monkeypatch.setattr(corpus, "VOICES", changed)
    corpus.build_preset("smoke", out, jobs=1, progress=False)
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    redone = {p.name for p in before if after.get(p) != before[p]}
    assert redone and all("_us1-h" in name for name in redone)
    assert any(p.parts[-3] == "segments" for p in before if p.name in redone)  # the test segments were cut again
    assert any("parallel-" in name for name in redone)
    assert read_stamp(out)["fingerprint"] != stamp["fingerprint"]


def test_cli_build_prints_counts(tmp_path):
    out = subprocess.run([sys.executable, "-m", "workbench", "data", "build", "--preset", "smoke", "--out",
                          str(tmp_path / "c"), "--json", "--reports", str(tmp_path / "r")],
                         capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout)
    assert stats["hours"] > 0.05 and stats["speakers"] == 10 and stats["chapters"] >= 12 and stats["segments"] >= 4
    assert json.loads((tmp_path / "r" / "corpus.json").read_text()) == stats


def test_synthbooks_loader_crops_and_segments(smoke_corpus):
    ds = open_dataset(smoke_corpus)
    assert ds.kind == "synthbooks" and all(r.text for r in ds.recordings)
    rec, start, audio = ds.split("train").random_crop(5.0, np.random.default_rng(0))
    assert audio.shape == (80_000,) and 0 <= start <= rec.duration - 5.0
    np.testing.assert_allclose(audio[:1000], rec.load(start, 5.0)[:1000])  # same crop read twice
    windows = list(ds.split("dev").contiguous_segments(10.0))
    assert sum(e - s for _, s, e in windows) == pytest.approx(sum(r.duration for r in ds.split("dev").recordings))


def test_librispeech_layouts(librispeech_tree, librispeech_long_tree):
    ls = open_dataset(librispeech_tree)
    assert ls.kind == "librispeech" and len(ls) == 2
    assert {r.speaker for r in ls.recordings} == {"19", "26"} and {r.split for r in ls.recordings} == {"dev-clean"}
    assert ls.recordings[0].text.startswith("SOME TRANSCRIPT")
    long = open_dataset(librispeech_long_tree)
    assert long.kind == "librispeech-long" and long.recordings[0].text == "A LONGER EXAMPLE"
    assert long.recordings[0].duration > open_dataset(librispeech_tree).recordings[0].duration


def test_folder_of_audio_and_bad_files(tmp_path):
    folder = open_dataset(REAL_SPEECH)
    assert folder.kind == "folder" and len(folder) == 6
    (tmp_path / "bad.wav").write_bytes(b"RIFF....nonsense")
    (tmp_path / "good.flac").write_bytes((REAL_SPEECH / "19-198-0000.flac").read_bytes())
    with pytest.raises(AudioError, match="bad.wav"):
        open_dataset(tmp_path)
    with pytest.warns(UserWarning, match="skipping .*bad.wav"):
        assert len(open_dataset(tmp_path, skip_bad=True)) == 1
    with pytest.raises(FileNotFoundError, match="no such corpus folder"):
        open_dataset(tmp_path / "nope")
