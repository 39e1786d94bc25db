"""The cross-speaker parallel set: frame alignment across two renderings on hand-made phone timings, and the
sampler's guarantees (train voices and train text only)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from workbench.data.voices import VOICES
from workbench.tokenizer.config import PRESETS
from workbench.tokenizer.data import IGNORE, ParallelSet, frame_map, read_span, train_sentences, train_voices
from workbench.tokenizer.features import num_frames

# A: "h a (pause) t" in 0.6 s;  B: slower, longer leading pause, no inner pause, "t" spelled "t=" by its voice
A = [("_", 0.0, 0.1), ("h", 0.1, 0.2), ("a", 0.2, 0.4), ("_", 0.4, 0.5), ("t", 0.5, 0.6)]
B = [("_", 0.0, 0.2), ("h", 0.2, 0.4), ("a", 0.4, 0.8), ("t=", 0.8, 1.0)]


def test_frame_map_piecewise_linear_by_phone():
    m = frame_map(B, A, frames_b=25, frames_a=15)
    assert m.shape == (25,)
    assert (m[:5] == -1).all()  # B's leading pause (frame centres 0.02 .. 0.18 s) has no counterpart
    # frame 5 (centre 0.22 s, 10% into B's "h") -> 0.11 s in A -> A frame 2; frame 14 (0.58 s, 45% into "a")
    # -> 0.29 s -> frame 7; frame 20 (0.82 s, 10% into "t=") -> 0.51 s -> frame 12; frame 24 -> 0.59 s -> 14
    assert m[5] == 2 and m[14] == 7 and m[20] == 12 and m[24] == 14
    assert (np.diff(m[5:]) >= 0).all()  # monotone in time
    # and the other way round: A's inner pause is skipped, A's "t" maps into B's "t="
    back = frame_map(A, B, frames_b=15, frames_a=25)
    assert back[10] == -1 and back[12] == 20  # A frame 12 (0.50 s, start of "t") -> 0.82 s in B -> frame 20


def test_frame_map_extra_phone_at_the_end():
    # B says one phone more at the very end (an insertion after A's last phone): 3 of 4 phones one-to-one
    longer = B[:-1] + [("t", 0.8, 1.0), ("s", 1.0, 1.2)]
    assert frame_map(longer, A, frames_b=30, frames_a=15) is None  # below the default 0.8
    m = frame_map(longer, A, frames_b=30, frames_a=15, min_match=0.7)
    assert m is not None and m[20] == 12 and (m[25:] == 14).all()  # "s" has nothing after A's end: A's last frame
    assert frame_map(A, longer, frames_b=15, frames_a=30, min_match=0.7)[12] == 20


def test_frame_map_skips_different_sentences():
    other = [("k", 0.0, 0.1), ("o", 0.1, 0.3), ("s", 0.3, 0.4), ("m", 0.4, 0.6)]
    assert frame_map(other, A, 15, 15) is None
    # one phone in three differing in length-changing ways is below the 0.8 one-to-one threshold too
    assert frame_map([("h", 0.0, 0.1), ("a", 0.1, 0.2), ("t", 0.2, 0.3), ("s", 0.3, 0.4)],
                     [("h", 0.0, 0.1), ("e", 0.1, 0.15), ("I", 0.15, 0.2), ("t", 0.2, 0.3), ("s", 0.3, 0.4)],
                     10, 10, min_match=0.8) is None


def test_parallel_set_uses_train_voices_and_train_text_only(smoke_corpus, tmp_path):
    rows = [json.loads(line) for line in (smoke_corpus / "manifest.jsonl").read_text().splitlines()]
    heldout_speakers = {r["speaker"] for r in rows if r["split"] != "train"}
    heldout_sentences = {s[0] for r in rows if r["split"] != "train"
                         for s in json.loads((smoke_corpus / r["alignment"]).read_text())["sentences"]}
    assert heldout_speakers and heldout_sentences
    names = {v.name for v in train_voices(smoke_corpus)}
    assert names and not names & heldout_speakers and not names & {v.name for v in VOICES if v.held_out}

    config = PRESETS["smoke"]
    sentences = train_sentences(smoke_corpus, 1000, (0.0, 1e9), np.random.default_rng(0))
    assert sentences and not set(sentences) & heldout_sentences
    ps = ParallelSet.build(smoke_corpus, config, np.random.default_rng(0), tmp_path, log=lambda m: None)
    assert set(ps.voices) <= names and len(ps.pairs) > 0
    assert all(ps.voices[b] != ps.voices[a] and ps.sentence[b] == ps.sentence[a] for b, a, _ in ps.pairs)
    # cached: the second build reads the same renderings back (16-bit) instead of rendering again
    again = ParallelSet.build(smoke_corpus, config, np.random.default_rng(0), tmp_path, log=lambda m: None)
    assert again.voices == ps.voices and len(again.pairs) == len(ps.pairs)
    assert max(np.abs(x - y).max() for x, y in zip(again.audio, ps.audio)) < 1e-4

    # targets: unit i everywhere in rendering i, so each row's targets name the A rendering they came from
    units = [torch.full((num_frames(len(a)),), i) for i, a in enumerate(ps.audio)]
    audio, targets = ps.batch(units, 3, np.random.default_rng(0))
    assert audio.shape[0] == targets.shape[0] == 3 and audio.shape[1] == 640 * targets.shape[1]
    pairs = {(b, a) for b, a, _ in ps.pairs}
    for row in targets:
        a = row[row != IGNORE].unique()
        assert len(a) == 1 and any(pa == int(a) for _, pa in pairs)
    assert (targets == IGNORE).any()


def test_real_pair_settings_are_checked():
    for bad in ({"parallel_real": -1}, {"parallel_real_share": 1.5}, {"parallel_real_share": -0.1}):
        with pytest.raises(ValueError, match="parallel_real"):
            dataclasses.replace(PRESETS["laptop"], **bad)


def test_a_real_stretch_that_cannot_be_read_is_named(tmp_path):
    import soundfile as sf

    from workbench.core.audio import AudioError

    mono, stereo, broken = tmp_path / "mono.flac", tmp_path / "stereo.flac", tmp_path / "broken.flac"
    sf.write(mono, np.zeros(16000, np.float32), 16000)
    sf.write(stereo, np.full((16000, 2), 0.25, np.float32), 16000)
    broken.write_bytes(b"not audio")
    assert read_span(str(mono), 0.25, 0.5).shape == (4000,)
    assert np.allclose(read_span(str(stereo), 0.0, 0.5), 0.25)  # channels averaged, as windowed tokenization does
    for path, start, end, why in ((broken, 0.0, 0.5, "not a readable audio file"),
                                  (tmp_path / "missing.flac", 0.0, 0.5, "no such file"), (mono, 0.5, 2.0, "past the end")):
        with pytest.raises(AudioError, match=why):
            read_span(str(path), start, end)
