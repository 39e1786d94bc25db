"""scripts/acoustic_oracle_units.py: SoundStorm's pairs with the corpus's phone labels in place of the tokenizer's
units, and `acoustic eval` reading the clips' and prompts' phones instead of tokenizing them."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.acoustic.config import PRESETS
from workbench.acoustic.train import train
from workbench.core.config import override
from workbench.core.errors import UserError
from workbench.data.loaders import Recording, open_dataset

SMOKE = PRESETS["smoke"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "acoustic_oracle_units.py"
    spec = importlib.util.spec_from_file_location("acoustic_oracle_units", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_frame_reads_the_phone_at_its_centre():
    script = _script()
    inventory = {"_": 0, "a": 1, "b": 2}
    # 40 ms frames centred at 0.02, 0.06, 0.10, ...: a covers 0-0.1 s, b 0.1-0.2 s, then nothing (a pause)
    ids = script.phone_ids([("a", 0.0, 0.1), ("b", 0.1, 0.2)], 6, inventory)
    assert ids.tolist() == [1, 1, 2, 2, 2, 0]
    assert script.phone_ids([("zz", 0.0, 0.2)], 3, inventory).tolist() == [0, 0, 0]  # not in the inventory: pause


def test_oracle_pairs_keep_the_codes_and_label_every_frame_with_its_phone(tmp_path, smoke_corpus, smoke_codec,
                                                                          smoke_tokenizer):
    script = _script()
    quick = dataclasses.replace(SMOKE, train=override(SMOKE.train, steps=4, eval_every=4, checkpoint_every=4))
    train(tmp_path / "plain", quick, smoke_corpus, smoke_codec, smoke_tokenizer, tmp_path / "pairs", progress=False)
    recordings = {r.id: r for r in open_dataset(smoke_corpus).recordings}
    rows = [json.loads(line) for line in (tmp_path / "pairs" / "manifest.jsonl").read_text().splitlines()]
    with pytest.raises(UserError, match="do not fit"):  # the smoke tokenizer's 32 ids hold fewer than its phones
        script.make_pairs(tmp_path / "pairs", smoke_corpus, tmp_path / "too-many")
    # so the test names 31 phones and a pause: the commonest ones of the pairs' recordings
    counts = Counter(p[0] for row in rows for p in recordings[row["id"]].alignment_data()["phones"] if p[0] != "_")
    inventory = {"_": 0, **{name: i + 1 for i, (name, _) in enumerate(counts.most_common(31))}}
    made = script.make_pairs(tmp_path / "pairs", smoke_corpus, tmp_path / "oracle", inventory)
    assert json.loads((tmp_path / "oracle" / "phones.json").read_text()) == inventory
    assert made == {"recordings": len(rows), "phones": 32}
    for row in rows:
        with np.load(tmp_path / "pairs" / row["path"]) as a, np.load(tmp_path / "oracle" / row["path"]) as b:
            assert np.array_equal(a["codes"], b["codes"]) and len(a["semantic"]) == len(b["semantic"])
            phones = [p for p in recordings[row["id"]].alignment_data()["phones"]
                      if p[0] in inventory and p[2] - p[1] >= 0.08]
            assert phones
            for label, start, end in phones[:: max(1, len(phones) // 20)]:
                frame = int((start + end) / 2 * 25)  # the 40 ms frame around a long phone's middle reads it
                assert b["semantic"][frame] == inventory[label]

    # the usual training reads them, and the evaluation hears phones, not the tokenizer's units
    train(tmp_path / "run", quick, smoke_corpus, smoke_codec, smoke_tokenizer, tmp_path / "oracle", progress=False)
    plain_load = Recording.load
    payload = script.evaluate_with_phones(tmp_path / "run", smoke_corpus, tmp_path / "reports", "smoke")
    assert Recording.load is plain_load  # the corpus reader is put back
    assert payload["units"] == "oracle phone labels" and payload["clips"] == SMOKE.eval.clips
    assert json.loads((tmp_path / "reports" / "acoustic.json").read_text())["wer"] == payload["wer"]


def test_latents_averaged_per_phone_segment_and_per_phone():
    script = _script()
    latent = torch.arange(2 * 6, dtype=torch.float32).view(2, 6)  # (D 2, T 6) at 10 frames/s: centres .05 .. .55
    phones = [("a", 0.0, 0.2), ("b", 0.2, 0.3), ("a", 0.3, 0.6)]
    seg = script.segment_means(latent, phones, 10.0)
    assert seg[0].tolist() == [0.5, 0.5, 2.0, 4.0, 4.0, 4.0]  # each segment its own mean
    per_phone = script.phone_means(latent, phones, 10.0)
    assert torch.allclose(per_phone[0], torch.tensor([2.6, 2.6, 2.0, 2.6, 2.6, 2.6]))  # both a's share one mean
    assert torch.allclose(per_phone[1], per_phone[0] + 6)


def test_token_table_is_each_tokens_mean_latent(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "pairs.json").write_text(json.dumps({"rates": {"sample_rate": 16000, "semantic_hop": 640,
                                                                "codec_hop": 320}}))
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"id": "a", "split": "train", "speaker": "x",
                                                         "path": "train/a.npz"}) + "\n")
    # tokens 0, 1 at 25 Hz -> frames 0-1 read token 0, frames 2-3 token 1; two levels of 1-d codebooks
    np.savez(tmp_path / "train" / "a.npz", semantic=np.array([0, 1]), codes=np.array([[0, 1, 1, 1], [0, 0, 1, 0]]))
    books = torch.tensor([[[1.0], [3.0]], [[0.0], [10.0]]])  # level 0: 1, 3; level 1: 0, 10
    table = _script().token_table(tmp_path, books, vocab=3)
    # frame latents 1, 3, 13, 3: token 0 -> mean(1, 3) = 2, token 1 -> mean(13, 3) = 8, token 2 unseen -> mean 5
    assert table[:, 0].tolist() == [2.0, 8.0, 5.0]


def test_averaged_latent_study_scores_each_way_of_reading_the_clips(tmp_path, smoke_corpus, smoke_codec,
                                                                     smoke_tokenizer):
    script = _script()
    quick = dataclasses.replace(SMOKE, train=override(SMOKE.train, steps=2, eval_every=2, checkpoint_every=2))
    train(tmp_path / "plain", quick, smoke_corpus, smoke_codec, smoke_tokenizer, tmp_path / "pairs", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "pairs" / "manifest.jsonl").read_text().splitlines()]
    recordings = {r.id: r for r in open_dataset(smoke_corpus).recordings}
    counts = Counter(p[0] for row in rows for p in recordings[row["id"]].alignment_data()["phones"] if p[0] != "_")
    script.make_pairs(tmp_path / "pairs", smoke_corpus, tmp_path / "oracle",
                      {"_": 0, **{name: i + 1 for i, (name, _) in enumerate(counts.most_common(31))}})
    result = script.averaged_latent_study(smoke_codec, smoke_corpus, "smoke", tmp_path / "pairs", tmp_path / "oracle",
                                          smoke_tokenizer)
    rows = {r["kind"]: r for r in result["table"]}
    assert rows["all"]["clips"] == SMOKE.eval.clips
    ways = ("codec", "phone segment means", "phone means", "unit table", "phone table")
    assert all(rows["all"][name] >= 0 for name in ways)


def test_a_missing_pairs_folder_is_one_line(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "acoustic_oracle_units.py"
    done = subprocess.run([sys.executable, str(script), "pairs", str(tmp_path / "none"), str(tmp_path),
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2 and "none/pairs.json" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
