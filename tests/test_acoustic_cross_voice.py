"""SoundStorm's cross-voice training rows (issue 13): the same train sentence read by two voices, voice A's semantic
tokens placed on voice B's frames by the phone boundaries, B's codes, after a prompt of B."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from workbench.acoustic.config import PRESETS
from workbench.acoustic.data import Pair, Rates, cross_voice_pairs, fill_unmatched, load_pairs, sample_batch
from workbench.acoustic.train import load_codec_and_tokenizer, train
from workbench.tokenizer.data import ParallelSet
from workbench.tokenizer.metrics import frame_labels

SMOKE = PRESETS["smoke"]


def test_unmatched_frames_read_the_nearest_matched_one():
    assert fill_unmatched(np.array([-1, 3, 4, -1, -1, 9, -1])).tolist() == [3, 3, 4, 4, 9, 9, 9]
    assert fill_unmatched(np.array([-1, -1])) is None


@pytest.fixture(scope="module")
def parallel(smoke_corpus, smoke_tokenizer, tmp_path_factory):
    from workbench.tokenizer.model import Tokenizer

    tok = Tokenizer.load(smoke_tokenizer)
    config = dataclasses.replace(tok.config, parallel_sentences=6)
    par = ParallelSet.build(smoke_corpus, config, np.random.default_rng(0),
                            cache_dir=tmp_path_factory.mktemp("parallel"), log=lambda m: None)
    if par is None:
        pytest.skip("no mbrola voices to render the parallel sentences")
    return par


def test_tokens_of_one_voice_land_on_the_same_phones_of_the_other(parallel):
    """The frame map of a parallel pair: B's frame f and A's frame map[f] are inside the same phone (by the exact
    mbrola timings of both renderings) for nearly every frame of B's speech."""
    agree, near, total = 0, 0, 0
    same = [(ib, ia, m) for ib, ia, m in parallel.pairs  # both say the same phones (en1's British vowels differ)
            if [p[0] for p in parallel.phones[ib] if p[0] != "_"] == [p[0] for p in parallel.phones[ia] if p[0] != "_"]]
    assert len(same) >= 4
    for ib, ia, m in same:
        lb = frame_labels(parallel.phones[ib], len(m))
        la = frame_labels(parallel.phones[ia], int(m.max()) + 2)
        for f in np.flatnonzero(m >= 0):
            total += 1
            agree += lb[f] == la[m[f]]
            near += lb[f] in la[max(0, m[f] - 1): m[f] + 2]  # within one 40 ms frame: a phone boundary's quantum
    assert total > 100 and agree / total > 0.75 and near / total > 0.95, (agree / total, near / total)


def test_cross_pairs_carry_one_voice_tokens_on_the_other_voice_codes(parallel, smoke_codec, smoke_tokenizer):
    codec, tok = load_codec_and_tokenizer(smoke_codec, smoke_tokenizer)
    rates = Rates(16000, 640, codec.hop)
    pairs = cross_voice_pairs(tok, codec, parallel, rates)
    voices = set(parallel.voices)
    assert pairs and all(p.speaker in voices for p in pairs)
    assert len({p.id for p in pairs}) == len(pairs) and all("-from-" in p.id for p in pairs)
    for p in pairs:
        b, a = p.id.removeprefix("cross-").split("-from-")
        assert b == p.speaker and a != b and a in voices
        assert p.codes.shape[1] == rates.frames(len(p.semantic))  # tokens and codes cover the same time
        assert p.codes.shape[0] == codec.cfg.num_quantizers and p.semantic.max() < tok.num_units
    # B's codes are B's own encoding; A's tokens differ from B's own tokens of the same sentence somewhere
    ib, ia, m = parallel.pairs[0]
    own = tok.units(torch.from_numpy(parallel.audio[ib])).numpy()
    theirs = tok.units(torch.from_numpy(parallel.audio[ia])).numpy()[np.clip(fill_unmatched(m), 0, None)]
    n = min(len(own), len(theirs))
    assert (own[:n] != theirs[:n]).any()


def test_cross_rows_have_a_prompt_of_the_target_voice():
    rates = Rates(16000, 640, 320)
    rng = np.random.default_rng(0)
    own = [Pair("b-rec", "B", np.full(100, 1), np.full((2, 200), 11)),
           Pair("c-rec", "C", np.full(100, 2), np.full((2, 200), 22))]
    cross = [Pair("cross-B-from-C", "B", np.full(60, 7), np.full((2, 120), 33))]
    batch = sample_batch(own, rates, 16, 40, 20, 0.5, 2, rng, cross, cross_share=1.0)
    assert (batch.min_prompt == 20).all()
    assert (batch.codes[:, :, :20] == 11).all() and (batch.codes[:, :, 20:] == 33).all()  # B's prompt, B's codes
    assert (batch.semantic[:, :20] == 1).all() and (batch.semantic[:, 20:] == 7).all()  # ... C's tokens
    mixed = sample_batch(own, rates, 64, 40, 20, 0.5, 2, np.random.default_rng(1), cross, cross_share=0.5)
    share = float((mixed.codes[:, 0, -1] == 33).float().mean())
    assert 0.3 < share < 0.7


@pytest.mark.slow  # ~40 s: renders, encodes and trains at smoke scale
def test_training_with_cross_voice_rows(smoke_corpus, smoke_codec, smoke_tokenizer, tmp_path):
    preset = dataclasses.replace(SMOKE, train=dataclasses.replace(SMOKE.train, cross_voice=0.5, cross_sentences=6,
                                                                     steps=6))
    summary = train(tmp_path / "run", preset, smoke_corpus, smoke_codec, smoke_tokenizer, tmp_path / "pairs",
                    progress=False, preset_name="smoke")
    assert summary["steps"] == 6 and np.isfinite(summary["final_eval_loss"])
    assert load_pairs(tmp_path / "pairs", "cross")
