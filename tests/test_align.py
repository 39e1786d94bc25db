"""Real speech: pocketsphinx phone/word alignments in the synthetic corpus's JSON format, the loader attaching
them, the speaker split, long-form joins, and the aligner measured against exact synthetic timings.

Reads ../shared/data/mini-librispeech/ (CI has it there); the tests that need it skip where it is absent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.core.errors import UserError
from workbench.data import align as A
from workbench.data.loaders import (
    SpeakerSplit,
    join_chapter,
    open_dataset,
    speaker_split,
    write_longform,
)

MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mini-librispeech"
CHAPTER = MINI / "train-clean-5" / "19" / "198"
needs_mini = pytest.mark.skipif(not CHAPTER.is_dir(), reason=f"{MINI} is not here")

try:
    import pocketsphinx  # noqa: F401

    HAVE_PS = True
except ImportError:  # the `eval` extra is part of `dev`; without it the aligner says how to install it
    HAVE_PS = False
needs_pocketsphinx = pytest.mark.skipif(not HAVE_PS, reason="pocketsphinx (the eval extra) is not installed")


def _have_mbrola() -> bool:
    from workbench.data.voices import have_espeak, have_mbrola

    return have_espeak() and have_mbrola()


needs_mbrola = pytest.mark.skipif(not _have_mbrola(), reason="espeak-ng + mbrola voices not installed")

UTTERANCES = ("19-198-0001", "19-198-0002", "19-198-0003")


def _transcripts(chapter: Path) -> dict[str, str]:
    trans = next(chapter.glob("*.trans.txt"))
    return dict(line.split(" ", 1) for line in trans.read_text().splitlines() if line.strip())


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """Three consecutive utterances of one shared chapter, in the LibriSpeech layout, in a folder of our own."""
    if not CHAPTER.is_dir():
        pytest.skip(f"{MINI} is not here")
    root = tmp_path_factory.mktemp("mini") / "corpus"
    chapter = root / "train-clean-5" / "19" / "198"
    chapter.mkdir(parents=True)
    texts = _transcripts(CHAPTER)
    for uid in UTTERANCES:
        shutil.copy(CHAPTER / f"{uid}.flac", chapter / f"{uid}.flac")
    (chapter / "19-198.trans.txt").write_text("".join(f"{u} {texts[u]}\n" for u in UTTERANCES))
    return root


@pytest.fixture(scope="module")
def aligned(small_set) -> dict:
    if not HAVE_PS:
        pytest.skip("pocketsphinx (the eval extra) is not installed")
    return A.align_dataset(small_set, progress=False)  # default out: <dataset>/alignments


# ------------------------------------------------------------------------------------------ the phone sets

def test_phone_mapping_is_total_over_the_aligner_and_the_synthetic_phones():
    # every phone of the acoustic model maps to one synthetic-set phone, and back onto itself
    assert set(A.ACOUSTIC_MODEL_PHONES) == set(A.ARPABET_TO_PHONE)
    for arpa, phone in A.ARPABET_TO_PHONE.items():
        if phone != A.PAUSE:
            assert A.PHONE_TO_ARPABET[phone] == (arpa,)
    # every ARPAbet phone the reverse map produces is one the acoustic model has
    assert {a for seq in A.PHONE_TO_ARPABET.values() for a in seq} <= set(A.ACOUSTIC_MODEL_PHONES) - {"SIL"}
    if HAVE_PS:  # every phone used by the dictionary and the noise dictionary the aligner loads
        import pocketsphinx

        model = Path(pocketsphinx.get_model_path()) / "en-us"
        used = {p for line in (model / "cmudict-en-us.dict").read_text().splitlines() for p in line.split()[1:]}
        used |= {line.split()[1] for line in (model / "en-us" / "noisedict").read_text().splitlines() if line.strip()}
        assert used <= set(A.ARPABET_TO_PHONE), used - set(A.ARPABET_TO_PHONE)


@needs_mbrola
def test_every_phone_espeak_gives_the_mbrola_voices_maps_to_arpabet():
    from workbench.data.synth import espeak_pho
    from workbench.data.texts import read_book
    from workbench.data.voices import voice

    text = " ".join(s for c in read_book("persuasion")[:3] for s in c.sentences)
    for name in ("us1-a", "us2-a", "us3-a", "en1-a"):
        phones = {line[0] for line in espeak_pho(text, voice(name))}
        assert phones - {A.PAUSE} <= set(A.PHONE_TO_ARPABET), (name, phones - set(A.PHONE_TO_ARPABET))


# ---------------------------------------------------------------------------------- aligning real speech

@needs_pocketsphinx
def test_shared_utterances_align_in_the_corpus_format(small_set, aligned):
    assert aligned["aligned"] == 3 and aligned["skipped"] == 0, aligned
    texts = _transcripts(small_set / "train-clean-5" / "19" / "198")
    dataset = open_dataset(small_set)  # finds <root>/alignments by itself
    assert dataset.kind == "librispeech"
    for rec in dataset.recordings:
        assert rec.alignment is not None, rec.id
        meta = rec.alignment_data()
        phones, words = meta["phones"], meta["words"]
        # the phones tile the utterance, in time order, from 0 to its end
        assert phones[0][1] == 0.0
        assert abs(phones[-1][2] - rec.duration) < 1e-3
        for (_, s, e), (_, s2, _) in zip(phones, phones[1:]):
            assert e > s and abs(e - s2) < 1e-6
        assert {p for p, _, _ in phones} <= set(A.ARPABET_TO_PHONE.values())
        speech = sum(e - s for p, s, e in phones if p != A.PAUSE)
        assert speech > 0.5 * rec.duration
        # the words are the transcript's, in order, inside the utterance, each holding speech phones
        assert [w for w, _, _ in words] == texts[rec.id].split()
        assert all(0 <= s < e <= rec.duration + 1e-6 for _, s, e in words)
        assert all(a[2] <= b[1] + 1e-6 for a, b in zip(words, words[1:]))
        for _, s, e in words:
            assert any(p != A.PAUSE and s - 1e-6 <= ps and pe <= e + 1e-6 for p, ps, pe in phones)
        assert meta["text"] == texts[rec.id] and meta["num_words"] == len(words)
        assert meta["exact_alignment"] is False and meta["phone_set"] == A.PHONE_SET
    # the tokenizer's frame labels read it as they read the synthetic corpus's
    from workbench.tokenizer.metrics import frame_labels

    rec = dataset.recordings[0]
    labels = frame_labels(rec.alignment_data()["phones"], int(rec.duration * 25))
    assert len(set(labels) - {A.PAUSE}) >= 10


@needs_pocketsphinx
def test_a_second_run_reuses_and_an_alignment_folder_can_be_named(small_set, aligned, tmp_path):
    again = A.align_dataset(small_set, progress=False)
    assert again["reused"] == 3 and again["aligned"] == 0
    shutil.copytree(small_set / "alignments", tmp_path / "elsewhere")
    no_default = tmp_path / "copy"
    shutil.copytree(small_set, no_default, ignore=shutil.ignore_patterns("alignments"))
    assert all(r.alignment is None for r in open_dataset(no_default).recordings)
    named = open_dataset(no_default, alignments=tmp_path / "elsewhere")
    assert all(r.alignment is not None for r in named.recordings)
    with pytest.raises(FileNotFoundError, match="no such alignment folder"):
        open_dataset(no_default, alignments=tmp_path / "missing")


def test_processes_align_as_one_does(small_set, aligned, tmp_path):
    """The corpus build aligns on every core: the same files as one process writes, whichever process aligned."""
    done = A.align_dataset(small_set, tmp_path / "pooled", progress=False, workers=2)
    assert done["aligned"] == 3 and done["skipped"] == 0
    for serial in sorted((small_set / "alignments").rglob("*.json")):
        if serial.name != "align.json":
            pooled = tmp_path / "pooled" / serial.relative_to(small_set / "alignments")
            assert json.loads(pooled.read_text()) == json.loads(serial.read_text()), serial.name


@needs_pocketsphinx
@needs_mini
def test_a_word_missing_from_the_dictionary_is_spelled_by_espeak(tmp_path):
    if not _have_mbrola():
        pytest.skip("espeak-ng + mbrola voices not installed")
    chapter = MINI / "train-clean-5" / "1088" / "134315"
    uid = "1088-134315-0001"  # ... A MOST INTERESTING MAN GEORGE GATHERCOLE
    text = _transcripts(chapter)[uid]
    audio, _ = sf.read(str(chapter / f"{uid}.flac"), dtype="float32")
    aligner = A.Aligner()
    assert aligner.decoder.lookup_word("gathercole") is None
    meta = aligner.align(audio, text)
    assert meta["words"][-1][0] == "GATHERCOLE" and meta["words"][-1][2] > meta["words"][-1][1]


# ------------------------------------------------------------------------------------------ bad input

def _tiny_librispeech(root: Path, texts: dict[str, str | None], audio: dict[str, np.ndarray]) -> Path:
    chapter = root / "7" / "70"
    chapter.mkdir(parents=True)
    for uid, wav in audio.items():
        sf.write(str(chapter / f"{uid}.flac"), wav, 16000)
    (chapter / "7-70.trans.txt").write_text("".join(f"{u} {t}\n" for u, t in texts.items() if t is not None))
    return root


@needs_pocketsphinx
@needs_mini
def test_bad_input_is_one_line_or_a_counted_skip(tmp_path):
    src = CHAPTER / "19-198-0001.flac"
    speech, _ = sf.read(str(src), dtype="float32")
    texts = _transcripts(CHAPTER)
    # a missing transcript: one line naming the file; with skip_bad, counted
    root = _tiny_librispeech(tmp_path / "a", {"7-70-0000": texts["19-198-0001"]},
                             {"7-70-0000": speech, "7-70-0001": speech})
    with pytest.raises(UserError, match=r"7-70-0001\.flac: no transcript"):
        A.align_dataset(root, tmp_path / "out-a", progress=False)
    done = A.align_dataset(root, tmp_path / "out-a2", progress=False, skip_bad=True)
    assert done["aligned"] == 1 and done["skipped"] == 1 and done["skipped_reasons"] == {"7-70-0001": "no transcript"}
    # unreadable audio: one line naming the file
    bad = tmp_path / "b"
    _tiny_librispeech(bad, {"7-70-0000": "HELLO"}, {})
    (bad / "7" / "70" / "7-70-0000.flac").write_bytes(b"not audio at all" * 100)
    with pytest.raises(UserError, match=r"7-70-0000\.flac"):
        A.align_dataset(bad, tmp_path / "out-b", progress=False)
    # an utterance the aligner cannot align (another utterance's transcript; a transcript of no words; audio too
    # short): skipped and counted, the good one still aligned
    root = _tiny_librispeech(tmp_path / "c", {"7-70-0000": texts["19-198-0001"], "7-70-0001": texts["19-198-0003"],
                                              "7-70-0002": "... !", "7-70-0003": "HELLO"},
                             {"7-70-0000": speech, "7-70-0001": speech, "7-70-0002": speech,
                              "7-70-0003": speech[:800]})
    done = A.align_dataset(root, tmp_path / "out-c", progress=False)
    assert done["aligned"] == 1 and done["skipped"] == 3, done
    reasons = done["skipped_reasons"]
    assert "no words" in reasons["7-70-0002"] and "too short" in reasons["7-70-0003"]
    assert reasons["7-70-0001"]  # wrong transcript: no path, or a score far below a true transcript's
    assert json.loads((tmp_path / "out-c" / "align.json").read_text())["skipped"] == 3
    # nothing with a transcript; a SynthBooks corpus; not a folder
    notext = tmp_path / "d"
    notext.mkdir()
    sf.write(str(notext / "x.wav"), speech, 16000)
    with pytest.raises(UserError, match="no transcripts"):
        A.align_dataset(notext, tmp_path / "out-d", progress=False)
    with pytest.raises(UserError, match="no such corpus folder"):
        A.align_dataset(tmp_path / "nowhere", progress=False)


def test_the_command_line_says_what_is_missing_in_one_line(capsys, tmp_path):
    from workbench.cli import main

    assert main(["data", "align"]) == 2
    assert "give --dataset" in capsys.readouterr().err
    assert main(["data", "align", "--dataset", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "no such corpus folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "file").write_text("x")
    assert main(["data", "align", "--dataset", str(tmp_path), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ speaker split, joins

@needs_mini
def test_speaker_split_is_disjoint_deterministic_and_has_both_genders():
    dataset = open_dataset(MINI)
    split = speaker_split(dataset)
    assert (len(split.train), len(split.dev), len(split.test)) == (14, 3, 3)
    sets = [set(split.train), set(split.dev), set(split.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == {r.speaker for r in dataset.recordings}
    assert speaker_split(MINI) == split  # from the path too, same answer
    assert speaker_split(dataset, seed=1) != split
    from workbench.data.loaders import read_speaker_genders

    genders = read_speaker_genders(MINI)
    for held in (split.dev, split.test):
        assert {genders[s] for s in held} == {"F", "M"}
    labelled = split.apply(dataset)
    assert {r.split for r in labelled.recordings} == {"train", "dev", "test"}
    assert {r.speaker for r in labelled.split("test").recordings} == set(split.test)
    assert {r.split for r in dataset.recordings} == {"train-clean-5"}  # the original is left alone
    with pytest.raises(ValueError, match="cannot hold out"):
        speaker_split(dataset, dev=10, test=10)


def test_speaker_split_without_speaker_metadata(tmp_path):
    for spk in range(6):
        d = tmp_path / str(spk) / "1"
        d.mkdir(parents=True)
        sf.write(str(d / f"{spk}-1-0000.flac"), np.full(1600, 0.1, np.float32), 16000)
        (d / f"{spk}-1.trans.txt").write_text(f"{spk}-1-0000 A\n")
    split = speaker_split(tmp_path, dev=1, test=2)
    assert (len(split.train), len(split.dev), len(split.test)) == (3, 1, 2)
    assert split == speaker_split(tmp_path, dev=1, test=2)
    # a speaker's place does not depend on which other speakers are present
    shutil.rmtree(tmp_path / split.train[0])
    assert speaker_split(tmp_path, dev=1, test=2).test == split.test


def _fake_aligned_chapter(root: Path) -> list[tuple[float, list]]:
    """Two short utterances of chapter 5/50 with hand-made alignments (so the join test needs no aligner)."""
    chapter = root / "5" / "50"
    chapter.mkdir(parents=True)
    rows = []
    lines = []
    for k, (seconds, words) in enumerate(((1.0, ["ONE", "TWO"]), (1.5, ["THREE"]))):
        uid = f"5-50-{k:04d}"
        t = np.arange(int(seconds * 16000)) / 16000
        sf.write(str(chapter / f"{uid}.flac"), (0.1 * np.sin(2 * np.pi * (200 + 100 * k) * t)).astype(np.float32),
                 16000)
        lines.append(f"{uid} {' '.join(words)}\n")
        phones = [["_", 0.0, 0.1], ["w", 0.1, 0.3], ["V", 0.3, 0.5], ["_", 0.5, seconds]]
        spans = [[w, round(0.1 + 0.2 * i, 4), round(0.3 + 0.2 * i, 4)] for i, w in enumerate(words)]
        meta = {"text": " ".join(words), "words": spans, "phones": phones,
                "sentences": [[" ".join(words), 0.1, spans[-1][2]]]}
        target = root / "alignments" / "5" / "50" / f"{uid}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(meta))
        rows.append((seconds, meta))
    (chapter / "5-50.trans.txt").write_text("".join(lines))
    return rows


def test_joined_chapter_shifts_every_time_by_the_audio_before_it(tmp_path):
    rows = _fake_aligned_chapter(tmp_path / "ls")
    dataset = open_dataset(tmp_path / "ls")
    recs = sorted(dataset.recordings, key=lambda r: r.id)
    assert all(r.alignment is not None for r in recs)
    audio, meta = join_chapter(recs)
    assert len(audio) == int(2.5 * 16000) and meta["duration"] == 2.5
    first, second = rows[0][1], rows[1][1]
    assert meta["words"] == first["words"] + [[w, s + 1.0, e + 1.0] for w, s, e in second["words"]]
    assert meta["phones"] == first["phones"] + [[p, s + 1.0, e + 1.0] for p, s, e in second["phones"]]
    assert meta["sentences"] == [["ONE TWO", 0.0, 1.0], ["THREE", 1.0, 2.5]]
    assert meta["text"] == "ONE TWO THREE" and meta["unaligned"] == []
    # with a pause between utterances: the second shifts by it too, and the pause is a pause phone
    audio, meta = join_chapter(recs, gap=0.25)
    assert len(audio) == int(2.75 * 16000)
    assert meta["words"][2] == ["THREE", 1.35, 1.55]
    assert ["_", 1.0, 1.25] in meta["phones"]
    # an utterance without alignment keeps its time (as a sentence) and is listed, not dropped
    recs[1].alignment = None
    _, meta = join_chapter(recs)
    assert meta["unaligned"] == [["5-50-0001", 1.0, 2.5]] and len(meta["words"]) == 2


def test_longform_output_reads_back_with_its_split_and_alignment(tmp_path):
    _fake_aligned_chapter(tmp_path / "ls")
    dataset = open_dataset(tmp_path / "ls")
    split = SpeakerSplit(train=(), dev=("5",), test=())
    rows = write_longform(dataset, tmp_path / "long", split=split, progress=False)
    assert [r["id"] for r in rows] == ["5-50"] and rows[0]["split"] == "dev"
    back = open_dataset(tmp_path / "long")
    assert back.kind == "librispeech-long" and len(back) == 1
    rec = back.recordings[0]
    assert (rec.split, rec.speaker, rec.text) == ("dev", "5", "ONE TWO THREE")
    assert abs(rec.duration - 2.5) < 1e-6 and rec.alignment is not None
    assert rec.alignment_data()["words"][-1] == ["THREE", 1.1, 1.3]
    assert len(rec.load()) == int(2.5 * 16000)
    # a cap on the length cuts at utterance boundaries
    parts = write_longform(dataset, tmp_path / "parts", max_seconds=2.0, fmt="wav", progress=False)
    assert [r["id"] for r in parts] == ["5-50-p00", "5-50-p01"]
    assert [r["duration"] for r in parts] == [1.0, 1.5]


# ------------------------------------------------------------------------- against exact synthetic timings

def test_boundary_errors_match_phones_and_count_each_boundary_once():
    truth = [["_", 0.0, 0.1], ["h", 0.1, 0.2], ["@", 0.2, 0.3], ["l=", 0.3, 0.5], ["oU", 0.5, 0.6], ["_", 0.6, 0.9]]
    aligned = [["SIL", 0.0, 0.115], ["HH", 0.115, 0.215], ["AH", 0.215, 0.31], ["AH", 0.31, 0.4], ["L", 0.4, 0.5],
               ["OW", 0.5, 0.64], ["SIL", 0.64, 0.9]]
    found = A.boundary_errors(truth, aligned)
    # h and @ match (the syllabic l= is two ARPAbet phones, "oU" is no mbrola-US phone: both unmatched)
    assert found["matched"] == 2 and found["truth_phones"] == 4
    assert np.allclose(sorted(found["errors"]), [0.01, 0.015, 0.015])  # h start, h/@ boundary, @ end
    summary = A.error_summary(found["errors"])
    assert summary["boundaries"] == 3 and summary["within_20ms"] == 1.0 and summary["median_abs_ms"] == 15.0
    assert A.error_summary([0.03, -0.06, 0.01])["within_50ms"] == pytest.approx(2 / 3, abs=1e-4)


@needs_pocketsphinx
@needs_mbrola
def test_aligner_boundaries_on_synthetic_speech_are_close_to_the_exact_ones():
    result = A.measure_synthetic(count=2, voices=("us1-h",), progress=False)
    assert result["failed"] == 0 and result["phones_matched_share"] > 0.8
    phones = result["phones"]
    assert phones["boundaries"] > 30
    assert phones["median_abs_ms"] < 40 and phones["within_50ms"] > 0.8, phones
