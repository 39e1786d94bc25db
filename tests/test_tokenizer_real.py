"""The tokenizer measured on real voices: PNMI and phone purity on the test speakers of a real, aligned
LibriSpeech-layout corpus (alignments by `workbench.data.align`), with a per-speaker table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workbench.core.errors import UserError
from workbench.data import align as A
from workbench.data.loaders import open_dataset
from workbench.tokenizer.evaluate import phone_figures_of, real_phone_figures
from workbench.tokenizer.model import Tokenizer

MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mini-librispeech" / "train-clean-5"
SPEAKERS = ("19", "118", "226")  # one utterance of each


@pytest.fixture(scope="module")
def three_speakers(tmp_path_factory) -> Path:
    if not MINI.is_dir():
        pytest.skip(f"{MINI} is not here")
    pytest.importorskip("pocketsphinx")
    root = tmp_path_factory.mktemp("real") / "corpus"
    for speaker in SPEAKERS:
        chapter = next(p for p in sorted((MINI / speaker).iterdir()) if p.is_dir())
        trans = next(chapter.glob("*.trans.txt"))
        first = trans.read_text().splitlines()[0]
        uid = first.split(" ", 1)[0]
        out = root / "train-clean-5" / speaker / chapter.name
        out.mkdir(parents=True)
        shutil.copy(chapter / f"{uid}.flac", out / f"{uid}.flac")
        (out / trans.name).write_text(first + "\n")
    A.align_dataset(root, progress=False)
    return root


def test_pnmi_on_real_test_speakers_with_a_table_per_speaker(three_speakers, smoke_tokenizer):
    tok = Tokenizer.load(smoke_tokenizer)
    real = real_phone_figures(tok, three_speakers, dev=1, test=1)
    assert real["split"] == "test" and real["unaligned_skipped"] == 0
    assert len(real["heldout_speakers"]) == 1 and set(real["by_speaker"]) == set(real["heldout_speakers"])
    assert 0 < real["pnmi"] < 1 and 0 < real["phone_purity"] <= 1 and real["scored_frames"] > 100
    (only,) = real["by_speaker"].values()
    assert only["pnmi"] == pytest.approx(real["pnmi"], abs=1e-4)  # one speaker: the table is the whole
    # every speaker at once: the per-speaker rows are the speakers', each a proper PNMI
    everyone = phone_figures_of(tok, open_dataset(three_speakers).recordings)
    assert set(everyone["by_speaker"]) == set(SPEAKERS) and all(0 < v["pnmi"] < 1 for v in everyone["by_speaker"].values())


def test_unaligned_real_speech_is_refused_with_the_command_that_aligns_it(three_speakers, smoke_tokenizer, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(three_speakers, bare, ignore=shutil.ignore_patterns("alignments"))
    tok = Tokenizer.load(smoke_tokenizer)
    with pytest.raises(ValueError, match="data align"):
        real_phone_figures(tok, bare, dev=1, test=1)
    with pytest.raises(UserError, match="no such folder"):
        real_phone_figures(tok, tmp_path / "nowhere", dev=1, test=1)
    with pytest.raises(UserError, match="--real-alignments"):
        real_phone_figures(tok, bare, alignments=tmp_path / "nowhere", dev=1, test=1)
    with pytest.raises(ValueError, match="no phone alignment"):
        phone_figures_of(tok, open_dataset(bare).recordings)
