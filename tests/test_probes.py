"""Spoken-LM zero-shot probes: the builders make matched pairs (same voice, same length class, only the intended
change), the pair scorer is exact, an LM that memorised the real items scores near 1 and an untrained one near
0.5, and sets in the public layouts (ZeroSpeech 2021, spoken StoryCloze) are read and scored by the command."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.core.config import override
from workbench.core.errors import UserError
from workbench.data.probes import (
    CONSONANTS,
    UNSEEN_VOICE,
    VOWELS,
    base,
    build_probes,
    length_class,
    probe_config,
    probe_voices,
    sources,
    syntactic_edits,
)
from workbench.data.texts import read_all, words
from workbench.data.voices import VOICES, have_espeak, have_mbrola
from workbench.lm.model import build_model, model_config
from workbench.lm.score import common_prefix, score_pair, sequence_score, token_logprobs
from workbench.pipeline.probes import discover, read_storycloze, read_zerospeech, score_sets, tokenize_sets

pytestmark = pytest.mark.skipif(not (have_espeak() and have_mbrola()), reason="needs espeak-ng and mbrola")

CONTEXTS = (2.0, 5.0)
CONFIG = probe_config("smoke", lexical_pairs=8, syntactic_pairs=2, story_pairs=4, long_pairs=2,
                      context_seconds=CONTEXTS, lexicon_size=1500)
UNITS = 64


@pytest.fixture(scope="module")
def src():
    return sources(CONFIG)


@pytest.fixture(scope="module")
def chapters():
    return {c.id: c for c in read_all()}


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probes") / "smoke"
    build_probes(CONFIG, out, progress=False, log=lambda m: None)
    return out


def gold(folder: Path) -> list[dict]:
    with (folder / "gold.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def audio(path: Path) -> np.ndarray:
    wav, sr = sf.read(path, dtype="float32")
    assert sr == 16000 and wav.ndim == 1 and len(wav) > 1600
    return wav


# -- builders ------------------------------------------------------------------------------------------------------
def test_only_held_out_and_unseen_voices_read_the_probes(items):
    allowed = {v.name for v in VOICES if v.held_out} | {UNSEEN_VOICE.name}
    assert UNSEEN_VOICE.name not in {v.name for v in VOICES}  # no corpus, tokenizer or LM reads it
    assert {v.name for v in probe_voices()} == allowed
    used = {r["voice"] for r in gold(items / "lexical" / "dev") + gold(items / "syntactic" / "dev")}
    used |= {i["voice"] for i in jsonl(items / "story" / "items.jsonl")}
    assert used <= allowed and UNSEEN_VOICE.name in used
    summary = json.loads((items / "items.json").read_text())
    assert summary["voices"][UNSEEN_VOICE.name] == "unseen"
    assert summary["counts"]["lexical"] == {"frequent": 8, "rare": 8}


def test_lexical_pairs_differ_only_in_the_substituted_phones(items, src):
    folder = items / "lexical" / "dev"
    rows = gold(folder)
    by_id: dict[str, list[dict]] = {}
    for row in rows:
        by_id.setdefault(row["id"], []).append(row)
    pairs = {p["id"]: p for p in jsonl(folder / "items.jsonl")}
    assert set(by_id) == set(pairs) and len(pairs) == 16
    for pid, (a, b) in ((k, v) for k, v in by_id.items()):
        assert {a["correct"], b["correct"]} == {"1", "0"}
        assert a["voice"] == b["voice"] and a["length"] == b["length"]  # same reader, same number of phones
        assert a["filename"] != b["filename"] and pid not in a["filename"]  # the name does not give it away
        for row in (a, b):
            audio(folder / f"{row['filename']}.wav")
        p = pairs[pid]
        word, nonword = p["phones"], p["nonword"]
        assert len(word) == len(nonword) == int(a["length"])
        differ = [i for i, (x, y) in enumerate(zip(word, nonword)) if x != y]
        assert differ == sorted(p["changed"]) and len(differ) == max(1, round(len(word) / 4))
        for i in differ:
            x, y = word[i], nonword[i]
            assert x[: len(x) - len(base(x))] == y[: len(y) - len(base(y))]  # stress kept
            assert (base(x) in VOWELS) == (base(y) in VOWELS) and {base(x), base(y)} <= set(VOWELS + CONSONANTS)
        count = src.train_counts[p["word"]]
        assert count >= 1 and (count > CONFIG.rare_max_count) == (p["frequency"] == "frequent")


def test_syntactic_pairs_change_one_thing(items, src, chapters):
    folder = items / "syntactic" / "dev"
    rows = {(r["id"], r["correct"]): r for r in gold(folder)}
    pairs = jsonl(folder / "items.jsonl")
    assert {p["type"] for p in pairs} == {"agreement", "word_order", "determiner_noun"}
    for p in pairs:
        good, bad = rows[(p["id"], "1")], rows[(p["id"], "0")]
        assert good["voice"] == bad["voice"] == p["voice"] and good["type"] == p["type"]
        audio(folder / f"{good['filename']}.wav"), audio(folder / f"{bad['filename']}.wav")
        a, b = words(good["transcription"]), words(bad["transcription"])
        assert len(a) == len(b) == p["length"]  # same length class: the same number of words
        differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        if p["type"] == "word_order":
            i, j = differ
            assert j == i + 1 and (a[i], a[j]) == (b[j], b[i]) and a[i].lower() in ("the", "a", "an")
        else:
            assert differ == p["changed"] and len(differ) == 1
        assert p["chapter"] not in src.train_chapters  # a held-out sentence
        assert chapters[p["chapter"]].sentences[p["sentence_index"]] == good["transcription"]


def test_syntactic_edits_by_hand():
    edits = syntactic_edits("Then they are sure that this morning the house was empty.")
    assert [e["text"] for e in edits["agreement"]] == ["Then they is sure that this morning the house was empty."]
    assert [e["text"] for e in edits["determiner_noun"]] == ["Then they are sure that these morning the house was empty."]
    assert [e["text"] for e in edits["word_order"]] == ["Then they are sure that this morning house the was empty."]
    # never a grammatical subjunctive ("if he were"), never across punctuation
    assert not any(syntactic_edits("If he was there.").values())
    assert not any(syntactic_edits("So they, are.").values())


def test_story_pairs_share_the_prefix_audio_and_the_length_class(items, src, chapters):
    folder = items / "story"
    entries = jsonl(folder / "items.jsonl")
    assert len(entries) == 4 and json.loads((folder / "set.json").read_text())["kind"] == "story"
    train = src.train_chapters
    for e in entries:
        right, wrong = audio(folder / f"{e['id']}_correct.flac"), audio(folder / f"{e['id']}_incorrect.flac")
        n = int(round(e["prefix_seconds"] * 16000))
        assert np.array_equal(right[:n], wrong[:n])  # the same prefix audio: only the ending differs
        assert not np.array_equal(right[n:n + 8000], wrong[n:n + 8000])
        chapter = chapters[e["chapter"]]
        k = e["sentence_index"]
        assert list(chapter.sentences[k - CONFIG.story_sentences:k]) == e["prefix"]
        assert chapter.sentences[k] == e["correct"]
        assert e["incorrect_chapter"] != e["chapter"] and e["incorrect"] in chapters[e["incorrect_chapter"]].sentences
        assert length_class(len(words(e["correct"]))) == length_class(len(words(e["incorrect"])))
        assert e["chapter"] not in train and e["incorrect_chapter"] not in train


def test_long_story_contexts_are_cut_from_one_reading(items):
    sets = {c: {e["id"]: e for e in jsonl(items / "long_story" / f"ctx-{int(c):04d}s" / "items.jsonl")}
            for c in CONTEXTS}
    short, long_ = sets[CONTEXTS[0]], sets[CONTEXTS[1]]
    assert set(short) == set(long_) and len(short) == 2
    for pid in short:
        a, b = short[pid], long_[pid]
        assert a["prefix_seconds"] >= CONTEXTS[0] and b["prefix_seconds"] >= CONTEXTS[1]
        assert (a["correct"], a["incorrect"], a["voice"]) == (b["correct"], b["incorrect"], b["voice"])
        root = items / "long_story"
        sa = audio(root / f"ctx-{int(CONTEXTS[0]):04d}s" / f"{pid}_correct.flac")
        sb = audio(root / f"ctx-{int(CONTEXTS[1]):04d}s" / f"{pid}_correct.flac")
        assert len(sb) >= len(sa) and np.array_equal(sa, sb[len(sb) - len(sa):])  # the short prefix ends the long one
        wa = audio(root / f"ctx-{int(CONTEXTS[0]):04d}s" / f"{pid}_incorrect.flac")
        n = int(round(a["prefix_seconds"] * 16000))
        assert np.array_equal(sa[:n], wa[:n])


def test_a_second_build_keeps_the_folder_and_other_settings_are_refused(items):
    before = (items / "items.json").read_text()
    build_probes(CONFIG, items, progress=False, log=lambda m: None)
    assert (items / "items.json").read_text() == before
    with pytest.raises(UserError, match="other settings"):
        build_probes(override(CONFIG, seed=1), items, progress=False, log=lambda m: None)


# -- scoring -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["griffin", "transformer"])
def test_pair_scores_equal_whole_sequence_scores(kind, one_torch_thread):
    torch.manual_seed(0)
    model = build_model(model_config("smoke", kind)).eval()
    rng = np.random.default_rng(0)
    prefix = rng.integers(0, 64, 40)
    a = np.concatenate([prefix, rng.integers(0, 64, 13)])
    b = np.concatenate([prefix, rng.integers(0, 64, 9)])
    b[40] = (a[40] + 1) % 64
    pair = score_pair(model, a, b, chunk=7)
    assert pair.common_prefix == common_prefix(a, b) == 40
    whole_a, whole_b = sequence_score(model, a, chunk=11), sequence_score(model, b, chunk=5)
    # the shared prefix adds the same to both sums, so the difference of sums is the whole-sequence one
    assert pair.correct.logprob - pair.incorrect.logprob == pytest.approx(whole_a.logprob - whole_b.logprob, abs=1e-3)
    assert pair.correct.tokens == len(a) - 40 and pair.incorrect.tokens == len(b) - 40
    tail = token_logprobs(model, a, chunk=64)[39:]
    assert pair.correct.logprob == pytest.approx(float(tail.sum()), abs=1e-3)
    assert pair.correct.mean == pytest.approx(pair.correct.logprob / pair.correct.tokens)
    same = score_pair(model, a, a)
    assert same.outcome("mean") == same.outcome("sum") == 0.5


def test_an_untrained_lm_is_at_chance_on_random_pairs(one_torch_thread):
    torch.manual_seed(1)
    model = build_model(model_config("smoke", "griffin")).eval()
    rng = np.random.default_rng(1)
    wins = []
    for _ in range(300):
        head = rng.integers(0, 64, int(rng.integers(1, 20)))
        a = np.concatenate([head, rng.integers(0, 64, 12)])
        b = np.concatenate([head, rng.integers(0, 64, 12)])
        wins.append(score_pair(model, a, b, chunk=64).outcome("mean"))
        if len(wins) <= 20:  # no member is favoured for its place in the pair
            assert score_pair(model, b, a, chunk=64).outcome("mean") == 1.0 - wins[-1]
    assert 0.42 <= np.mean(wins) <= 0.58


# -- a memorised LM, an untrained one, and the command -------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer_dir(items, tmp_path_factory) -> Path:
    """An MFCC k-means tokenizer fitted on the story audio (K = 64): units fine enough to tell the phones apart."""
    from workbench.tokenizer.config import PRESETS as TOK
    from workbench.tokenizer.kmeans import kmeans
    from workbench.tokenizer.model import Tokenizer

    cfg = override(TOK["smoke"], num_units=UNITS, threads=1)
    files = sorted((items / "story").glob("*.flac"))[:4]
    clips = [torch.from_numpy(audio(f)) for f in files]
    tok = Tokenizer("mfcc_kmeans", cfg, torch.zeros(()), torch.ones(()))
    feats = torch.cat([tok.model_input(c[None])[0] for c in clips])
    tok.mean, tok.std = feats.mean(0), feats.std(0) + 1e-5
    feats = torch.cat([tok.features(c[None])[0] for c in clips])
    tok.centroids, _ = kmeans(feats, UNITS, iters=10, seed=0)
    out = tmp_path_factory.mktemp("tokenizer") / "mfcc_kmeans"
    tok.save(out)
    return out


@pytest.fixture(scope="module")
def memorised(items, tokenizer_dir, tmp_path_factory):
    """A Griffin trained for seconds on the tokens of the *real* member of every pair (and nothing else)."""
    from workbench.lm.config import train_config
    from workbench.lm.train import train
    from workbench.tokenizer.model import Tokenizer, fingerprint

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tok = Tokenizer.load(tokenizer_dir)
    sets = discover(items)
    tokens = tokenize_sets(tok, sets, progress=False)
    root = tmp_path_factory.mktemp("memorised")
    (root / "tokens").mkdir()
    lines = []
    for n, path in enumerate(sorted({p.correct for s in sets for p in s.pairs})):
        for split in ("train", "valid"):
            rid = f"{split}-{n:03d}"
            np.save(root / "tokens" / f"{rid}.npy", tokens[path].astype(np.int32))
            lines.append({"id": rid, "split": split, "path": f"{rid}.npy", "num_tokens": len(tokens[path]),
                          "speaker": "probe"})
    (root / "tokens" / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / "tokens" / "tokens.json").write_text(json.dumps(
        {"tokenizer": tok.kind, "num_units": UNITS, "fingerprint": fingerprint(tok), "complete": True}))
    mcfg = override(model_config("smoke", "griffin"), width=64, num_heads=4, attention_window=32)
    tcfg = override(train_config("smoke"), steps=240, batch_size=8, window_tokens=96, lr=3e-3, warmup_steps=10,
                    eval_every=240, checkpoint_every=240, log_every=40, snapshots=4)
    train(root / "run", mcfg, tcfg, root / "tokens", preset="smoke", progress=False)
    torch.set_num_threads(before)
    return {"run": root / "run", "sets": sets, "tokens": tokens, "config": mcfg}


def test_a_memorised_lm_scores_near_one_and_an_untrained_one_near_half(memorised, one_torch_thread):
    from workbench.lm.model import load_model

    trained, _ = load_model(memorised["run"])
    torch.manual_seed(0)
    untrained = build_model(memorised["config"]).eval()
    sets, tokens = memorised["sets"], memorised["tokens"]
    outcomes = {}
    for name, model in (("trained", trained), ("untrained", untrained)):
        results = score_sets(model, sets, tokens, chunk=96, progress=False)
        k = sum(r["accuracy"]["k"] for r in results.values())
        n = sum(r["accuracy"]["n"] for r in results.values())
        outcomes[name] = (k / n, results)
    share, results = outcomes["trained"]
    assert share >= 0.9, results
    assert results["lexical/dev"]["accuracy"]["low"] > 0.5
    # an untrained LM prefers whichever member repeats units more (a property of the item, not of the label), so
    # on these ~30 pairs it lands within the sampling spread of 0.5 (exact chance: the 300 random pairs above)
    share, results = outcomes["untrained"]
    assert 0.25 <= share <= 0.75, results
    assert set(results) == {"lexical/dev", "syntactic/dev", "story", "long_story/ctx-0002s", "long_story/ctx-0005s"}


def test_public_layouts_are_read_and_scored_by_the_command(items, memorised, tokenizer_dir, tmp_path, capsys):
    from workbench.cli import main

    public = tmp_path / "zerospeech2021"
    # lexical dev: the challenge's columns in another order, random names, one id read by two voices
    lex = public / "lexical" / "dev"
    lex.mkdir(parents=True)
    ours = gold(items / "lexical" / "dev")
    rows = []
    for n, row in enumerate(ours):
        for voice in ("Voice1", "Voice2"):
            name = f"x{n:02d}{voice[-1]}"
            shutil.copy(items / "lexical" / "dev" / f"{row['filename']}.wav", lex / f"{name}.wav")
            rows.append({"id": row["id"], "filename": name, "word": row["word"], "frequency": row["frequency"],
                         "correct": row["correct"], "phones": row["phones"], "length": row["length"], "voice": voice})
    rows.sort(key=lambda r: (r["correct"], r["filename"]))  # every changed item before every real one
    with (lex / "gold.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lexical = read_zerospeech(lex)
    assert lexical.kind == "lexical" and len(lexical.pairs) == len(ours)  # 16 pairs x 2 voices
    assert all(p.voice in ("Voice1", "Voice2") and p.category in ("frequent", "rare") for p in lexical.pairs)
    # spoken StoryCloze, items as <id>/correct.wav + <id>/incorrect.wav
    story = public / "sSC"
    for n, e in enumerate(jsonl(items / "story" / "items.jsonl")):
        (story / f"{n:04d}").mkdir(parents=True)
        for label in ("correct", "incorrect"):
            sf.write(story / f"{n:04d}" / f"{label}.wav", audio(items / "story" / f"{e['id']}_{label}.flac"), 16000)
    assert read_storycloze(story).kind == "story" and len(read_storycloze(story).pairs) == 4
    # the semantic set's gold.csv pairs nothing: it is passed over, not an error
    (public / "semantic" / "dev").mkdir(parents=True)
    (public / "semantic" / "dev" / "gold.csv").write_text("filename,type,word\nabc,synthetic,house\n")
    assert [s.name for s in discover(public)] == ["lexical/dev", "sSC"]
    # a nested build of its own (items.json: the curves' short sets under the full ones) is not scored twice
    shutil.copytree(story, public / "short" / "sSC")
    (public / "short" / "items.json").write_text("{}")
    assert [s.name for s in discover(public)] == ["lexical/dev", "sSC"]
    assert [s.name for s in discover(public / "short")] == ["sSC"]

    reports = tmp_path / "reports"
    code = main(["lm", "probes", "--preset", "smoke", "--runs", str(memorised["run"]), "--items", str(public),
                 "--tokenizer", str(tokenizer_dir), "--json", "--reports", str(reports)])
    assert code == 0
    payload = json.loads((reports / "probes.json").read_text())
    assert json.loads(capsys.readouterr().out) == payload
    assert set(payload["sets"]) == {"lexical/dev", "sSC"}
    griffin = payload["models"]["griffin"]["sets"]
    assert griffin["lexical/dev"]["pairs"] == len(ours) and set(griffin["lexical/dev"]["by_voice"]) == {"Voice1", "Voice2"}
    for result in griffin.values():
        acc = result["accuracy"]
        assert acc["n"] == result["pairs"] and acc["low"] <= acc["share"] <= acc["high"]
        assert acc["share"] >= 0.75  # the memorised audio, read through the public layouts
    assert payload["normalisation"] == "mean" and "accuracy_sum" in griffin["sSC"]


def test_our_sets_through_the_command_give_accuracy_per_context(items, memorised, tokenizer_dir, tmp_path, capsys):
    from workbench.cli import main

    code = main(["lm", "probes", "--preset", "smoke", "--runs", str(memorised["run"]), "--items", str(items),
                 "--tokenizer", str(tokenizer_dir), "--normalisation", "sum", "--reports", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "lexical/dev (lexical, 16 pairs): griffin" in out
    payload = json.loads((tmp_path / "probes.json").read_text())
    contexts = payload["models"]["griffin"]["by_context"]
    assert [c["context_seconds"] for c in contexts] == list(CONTEXTS)
    assert all(c["accuracy"]["n"] == 2 for c in contexts)


def test_learning_curves_score_every_snapshot_on_the_short_sets(items, memorised, tokenizer_dir, tmp_path, capsys):
    """--curves: the memorising LM at 25/50/75/100% of its training on the lexical, syntactic and story sets;
    it ends where it memorised them (near 1) and starts lower."""
    from workbench.cli import main

    code = main(["lm", "probes", "--preset", "smoke", "--runs", str(memorised["run"]), "--items", str(items),
                 "--tokenizer", str(tokenizer_dir), "--curves", "--reports", str(tmp_path)])
    assert code == 0 and "learning curve, griffin:" in capsys.readouterr().out
    curves = json.loads((tmp_path / "probes.json").read_text())["learning_curves"]
    assert set(curves["sets"]) == {"lexical/dev", "syntactic/dev", "story"}  # no long-context sets
    points = curves["models"]["griffin"]
    assert [p["mark"] for p in points] == [0.25, 0.5, 0.75, 1.0]
    assert [p["step"] for p in points] == [60, 120, 180, 240]
    assert all(a["minutes"] <= b["minutes"] for a, b in zip(points, points[1:]))

    def pooled(point):
        return sum(a["k"] for a in point["sets"].values()) / sum(a["n"] for a in point["sets"].values())

    assert pooled(points[-1]) >= 0.9 and pooled(points[0]) < pooled(points[-1])
    from workbench.pipeline.probes import curve_figure

    fig = curve_figure(curves)
    assert len(fig.data) == 2 * 3  # a band and a line per set for the one model


def test_bad_sets_and_runs_are_one_line(items, memorised, tokenizer_dir, tmp_path, capsys):
    from workbench.cli import main

    bad = tmp_path / "lexical" / "dev"
    bad.mkdir(parents=True)
    (bad / "gold.csv").write_text("id,filename,correct\n1,a,1\n1,b,1\n2,c,0\n")
    with pytest.raises(UserError, match="1 real and 0 changed|2 real and 0 changed"):
        read_zerospeech(bad)
    lonely = tmp_path / "sc"
    lonely.mkdir()
    sf.write(lonely / "7_correct.wav", np.zeros(1600, np.float32), 16000)
    with pytest.raises(UserError, match="incorrect partner is missing"):
        read_storycloze(lonely)
    assert main(["lm", "probes", "--runs", str(tmp_path / "nothing"), "--items", str(items)]) == 2
    assert main(["lm", "probes", "--runs", str(memorised["run"]), "--items", str(tmp_path / "empty-set"),
                 "--tokenizer", str(tokenizer_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("error: no trained LM") and "no such folder" in err[1]
