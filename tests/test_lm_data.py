"""Token manifests, long-form crops packed with resets, the synthetic source, clear errors."""

import json

import numpy as np
import pytest

from workbench.core.errors import UserError
from workbench.lm.data import (
    SYNTHETIC_PRESETS,
    SyntheticConfig,
    TokenCorpus,
    parse_window,
    sample_batch,
    write_synthetic_tokens,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return TokenCorpus(write_synthetic_tokens(tmp_path_factory.mktemp("tok"), SYNTHETIC_PRESETS["smoke"]))


def test_synthetic_corpus_format_and_determinism(corpus, tmp_path):
    lines = [json.loads(x) for x in (corpus.root / "manifest.jsonl").read_text().splitlines()]
    assert {"id", "split", "path", "num_tokens", "speaker"} <= set(lines[0])
    assert {x["split"] for x in lines} == {"train", "valid"} and corpus.held_out_split() == "valid"
    assert corpus.synthetic and all(x["id"].startswith("synthetic-") for x in lines)
    rec = corpus.recordings[0]
    assert corpus.tokens(rec).max() < SYNTHETIC_PRESETS["smoke"].vocab_size
    again = TokenCorpus(write_synthetic_tokens(tmp_path, SYNTHETIC_PRESETS["smoke"]))
    assert np.array_equal(again.tokens(again.recordings[0]), corpus.tokens(rec))


def test_synthetic_topic_persists_within_a_recording(tmp_path):
    """Long-range structure: a recording's first half shares far more bigrams with its own second half (same
    hidden topic) than with other recordings' second halves."""
    cfg = SyntheticConfig(vocab_size=64, num_topics=4, mean_topic_seconds=600.0, train_recordings=8,
                          train_seconds=(40.0, 40.0), held_out_recordings=1, held_out_seconds=4.0)
    corpus = TokenCorpus(write_synthetic_tokens(tmp_path, cfg))
    halves = []
    for rec in corpus.split("train"):
        t = np.asarray(corpus.tokens(rec))
        h = len(t) // 2
        halves.append(tuple({(int(a), int(b)) for a, b in zip(x[:-1], x[1:])} for x in (t[:h], t[h:])))

    def jaccard(a, b):
        return len(a & b) / len(a | b)

    own = np.mean([jaccard(first, second) for first, second in halves])
    cross = np.mean([jaccard(halves[i][0], halves[j][1]) for i in range(8) for j in range(8) if i != j])
    assert own > 1.5 * cross, (own, cross)


def test_crops_pack_recordings_with_resets_and_mask_the_seams(corpus):
    recs = corpus.split("train")
    batch = sample_batch(corpus, recs, np.random.default_rng(0), batch=16, window=200)  # longer than some recs
    assert batch.tokens.shape == batch.targets.shape == batch.resets.shape == batch.mask.shape == (16, 200)
    assert batch.resets[:, 0].all() and batch.resets[:, 1:].any()
    assert np.array_equal(batch.tokens[:, 1:].numpy(), batch.targets[:, :-1].numpy())
    # the loss skips exactly the predictions whose target starts a new recording
    assert np.array_equal(~batch.mask[:, :-1].numpy(), batch.resets[:, 1:].numpy())
    # each segment is a contiguous slice of one recording
    streams = [np.asarray(corpus.tokens(r)) for r in recs]
    row, res = batch.tokens[0].numpy(), batch.resets[0].numpy()
    bounds = list(np.flatnonzero(res)) + [len(row)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        seg = row[a:b]
        assert any(len(s) >= len(seg) and any(np.array_equal(s[i:i + len(seg)], seg)
                                              for i in range(len(s) - len(seg) + 1)) for s in streams)


def test_same_seed_same_batch(corpus):
    recs = corpus.split("train")
    a = sample_batch(corpus, recs, np.random.default_rng([3, 7]), 4, 50)
    b = sample_batch(corpus, recs, np.random.default_rng([3, 7]), 4, 50)
    assert all(np.array_equal(x, y) for x, y in zip(
        (a.tokens, a.resets, a.mask), (b.tokens, b.resets, b.mask)))


def test_bad_token_dirs_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no token manifest"):
        TokenCorpus(tmp_path)
    (tmp_path / "manifest.jsonl").write_text("\n")
    with pytest.raises(UserError, match="no recordings"):
        TokenCorpus(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"id": "a", "split": "train"}\n')
    with pytest.raises(UserError, match="bad manifest line"):
        TokenCorpus(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(
        '{"id": "a", "split": "train", "path": "a.npy", "num_tokens": 5, "speaker": "s"}\n')
    corpus = TokenCorpus(tmp_path)
    with pytest.raises(UserError, match="missing"):
        corpus.tokens(corpus.recordings[0])
    np.save(tmp_path / "a.npy", np.zeros(4, dtype=np.int32))
    with pytest.raises(UserError, match="expected a 1-D integer array of 5"):
        corpus.tokens(corpus.recordings[0])
    with pytest.raises(UserError, match="no held-out split"):
        corpus.held_out_split()


def test_parse_window():
    assert parse_window("30s") == 750 and parse_window("750") == 750 and parse_window(12) == 12
    with pytest.raises(UserError):
        parse_window("ten seconds")
