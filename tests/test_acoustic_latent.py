"""SoundStorm's latent head (`AcousticModelConfig.latent_head`) and decoding by regression
(`DecodeConfig.regress_levels`): the target is the codec latent the masked levels add up to, the chosen code is the
one nearest the estimate, and a trained run keeps the codec's codebooks beside its weights."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from workbench.acoustic.config import PRESETS, DecodeConfig, TrainConfig
from workbench.acoustic.model import SoundStorm
from workbench.acoustic.synthesize import Synthesizer
from workbench.acoustic.train import codec_codebooks, latent_target, load_acoustic, train
from workbench.acoustic.windowed import make_prompt
from workbench.core.config import override
from workbench.core.errors import UserError

SMOKE = PRESETS["smoke"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_latent_target_is_what_the_levels_from_the_trained_one_add_up_to():
    codebooks = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)  # 3 levels x 4 codes x 2 dims
    codes = torch.tensor([[[1, 2], [0, 3], [2, 2]], [[3, 0], [1, 1], [0, 1]]])  # (b 2, q 3, t 2)
    target = latent_target(codebooks, codes, torch.tensor([0, 2]))
    assert target.shape == (2, 2, 2)
    for t in range(2):  # item 0 trains level 0: every level's code; item 1 level 2: the finest alone
        assert torch.equal(target[0, t], sum(codebooks[q, codes[0, q, t]] for q in range(3)))
        assert torch.equal(target[1, t], codebooks[2, codes[1, 2, t]])


def test_nearest_code_logits_rank_codes_by_distance_to_the_estimate():
    cfg = override(SMOKE.model, latent_head=True).for_data(2, 8, 5, latent_dim=3)
    torch.manual_seed(0)
    model = SoundStorm(cfg).eval()
    books = torch.randn(2, 8, 3)
    model.set_codebooks(books)
    estimate = torch.tensor([0.3, -1.0, 2.0])
    torch.nn.init.zeros_(model.latent_head.weight)  # the head now says `estimate` at every frame
    model.latent_head.bias.data.copy_(estimate)
    sem, codes = torch.randint(0, 5, (1, 6)), torch.full((1, 2, 6), model.mask_id)
    with torch.no_grad():
        for level in range(2):
            logits = model.nearest_code_logits(sem, codes, level)
            want = -(books[level] - estimate).pow(2).sum(-1)
            assert torch.allclose(logits[0, 2], want, atol=1e-4)
            assert int(logits[0, 2].argmax()) == int((books[level] - estimate).pow(2).sum(-1).argmin())
    with pytest.raises(ValueError, match="shape"):
        model.set_codebooks(torch.zeros(2, 8, 4))
    plain = SoundStorm(SMOKE.model.for_data(2, 8, 5)).eval()
    assert plain.latent_head is None and plain.codebooks is None
    with pytest.raises(ValueError, match="without a latent head"):
        plain.nearest_code_logits(sem, codes, 0)


def test_regressed_levels_take_one_pass_each_and_settings_are_checked():
    assert DecodeConfig(first_level_iterations=16, regress_levels=2).iterations(4) == (1, 1, 1, 1)
    assert DecodeConfig(first_level_iterations=16, finer_level_iterations=3, regress_levels=1).iterations(3) == (1, 3, 3)
    assert DecodeConfig().iterations(3) == (16, 1, 1)
    with pytest.raises(ValueError, match="latent_weight"):
        TrainConfig(latent_weight=-1.0)
    with pytest.raises(UserError, match="latent_dim"):
        SoundStorm(dataclasses.replace(SMOKE.model, latent_head=True).for_data(2, 8, 5))


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory, smoke_corpus, smoke_codec, smoke_tokenizer):
    root = tmp_path_factory.mktemp("acoustic-latent")
    preset = dataclasses.replace(SMOKE, model=override(SMOKE.model, latent_head=True),
                                 train=override(SMOKE.train, latent_weight=10.0))
    summary = train(root / "run", preset, smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs", progress=False,
                    preset_name="smoke")
    return root, summary


def test_training_with_a_latent_head_keeps_the_codebooks_and_learns_the_latent(latent_run, smoke_codec):
    root, summary = latent_run
    model, meta = load_acoustic(root / "run")
    assert meta["model_config"]["latent_head"] and model.latent_head is not None
    assert torch.equal(model.codebooks, codec_codebooks(smoke_codec)[: model.cfg.num_levels])
    records = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r["eval_latent_error"] for r in records if "eval_latent_error" in r]
    assert len(evals) == 3 and evals[-1] < evals[0]  # the regression is learned, not just carried
    assert all("latent_error" in r for r in records if "loss" in r)
    assert summary["final_eval_loss"] < summary["initial_eval_loss"]  # and the codes' cross-entropy still falls


def test_synthesis_by_regression_gives_codes_and_a_plain_model_refuses_it(latent_run, smoke_corpus):
    root, _ = latent_run
    synth = Synthesizer.load(root / "run")
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(16_000 * 3).astype(np.float32) * 0.1
    need = synth.rates.seconds_to_frames(synth.decode.prompt_seconds)
    prompt = make_prompt(synth.semantic_tokens(audio), synth.codes(audio), synth.rates, need)
    semantic = rng.integers(0, synth.model.cfg.semantic_vocab, 40)
    regressed = synth.with_decode(regress_levels=synth.levels)
    codes = regressed.synthesize_codes([semantic], [prompt])[0]
    assert codes.shape == (synth.levels, 2 * len(semantic)) and codes.min() >= 0
    assert codes.max() < synth.model.cfg.codebook_size
    # level 0 by regression is what the nearest code to the head's estimate gives, not what the softmax samples
    plain_codes = synth.synthesize_codes([semantic], [prompt])[0]
    assert not np.array_equal(codes, plain_codes)
    with pytest.raises(UserError, match="regress levels"):
        synth.with_decode(regress_levels=synth.levels + 1)
    plain = Synthesizer(SoundStorm(SMOKE.model.for_data(synth.levels, synth.model.cfg.codebook_size,
                                                        synth.model.cfg.semantic_vocab)).eval(),
                        synth.codec, synth.tokenizer, synth.meta)
    with pytest.raises(UserError, match="no latent head"):
        plain.with_decode(regress_levels=1)


def test_latent_prior_starts_the_estimate_at_the_tokens_table_less_the_known_codes():
    cfg = override(SMOKE.model, latent_head=True, latent_prior=True).for_data(2, 8, 5, latent_dim=3)
    torch.manual_seed(0)
    model = SoundStorm(cfg).eval()
    books, table = torch.randn(2, 8, 3), torch.randn(5, 3)
    model.set_codebooks(books)
    model.set_latent_table(table)
    sem = torch.tensor([[0, 1, 2, 3, 4, 4]])
    codes = torch.full((1, 2, 6), model.mask_id)
    codes[0, 0, 3:] = torch.tensor([1, 2, 3])  # frames 3-5 know level 0
    with torch.no_grad():  # the head starts at zero: with no prompt the estimate is the table less what is known
        estimate = model.latent_estimate(model(sem, codes), sem, codes)[0]
        assert torch.allclose(estimate[:3], table[sem[0, :3]])
        assert torch.allclose(estimate[3:], table[sem[0, 3:]] - books[0, torch.tensor([1, 2, 3])])
        # so decoding every level by regression is a greedy RVQ of the table's latent
        level0 = model.nearest_code_logits(sem, codes, 0)[0, :3].argmax(-1)
        assert torch.equal(level0, torch.cdist(table[sem[0, :3]], books[0]).argmin(-1))
        # a frame known at every level (the prompt) moves every frame by its offset from the table
        prompted = codes.clone()
        prompted[0, :, 0] = torch.tensor([5, 6])
        offset = books[0, 5] + books[1, 6] - table[0]
        estimate = model.latent_estimate(model(sem, prompted), sem, prompted)[0]
        assert torch.allclose(estimate[1:3], table[sem[0, 1:3]] + offset, atol=1e-5)
        assert torch.allclose(estimate[3:], table[sem[0, 3:]] + offset - books[0, torch.tensor([1, 2, 3])], atol=1e-5)
    with pytest.raises(ValueError, match="without a latent prior"):
        SoundStorm(override(cfg, latent_prior=False)).set_latent_table(table)
    with pytest.raises(UserError, match="latent_prior needs latent_head"):
        SoundStorm(override(cfg, latent_head=False, latent_prior=True))


def test_training_with_the_latent_prior_saves_the_counted_table(tmp_path, latent_run, smoke_corpus, smoke_codec,
                                                               smoke_tokenizer):
    from workbench.acoustic.data import Rates, latent_table, load_pairs

    root, _ = latent_run
    preset = dataclasses.replace(SMOKE, model=override(SMOKE.model, latent_head=True, latent_prior=True),
                                 train=override(SMOKE.train, steps=2, eval_every=2, checkpoint_every=2))
    train(tmp_path / "run", preset, smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs", progress=False)
    model, meta = load_acoustic(tmp_path / "run")
    want = latent_table(load_pairs(root / "pairs", "train"), Rates(**meta["data"]["rates"]), model.codebooks,
                        model.cfg.semantic_vocab)
    assert torch.allclose(model.latent_table, want) and want.abs().sum() > 0
    # decoded by regression over several windows, the prompt moves the voice: two prompts, two code streams
    synth = Synthesizer.load(tmp_path / "run").with_decode(regress_levels=model.cfg.num_levels)
    rng = np.random.default_rng(1)
    need = synth.rates.seconds_to_frames(synth.decode.prompt_seconds)
    prompts = [make_prompt(synth.semantic_tokens(a), synth.codes(a), synth.rates, need)
               for a in (rng.standard_normal(16_000).astype(np.float32) * s for s in (0.05, 0.5))]
    semantic = rng.integers(0, model.cfg.semantic_vocab, 80)  # 3.2 s: several 1 s windows
    one, other = (synth.synthesize_codes([semantic], [p])[0] for p in prompts)
    assert one.shape == other.shape == (model.cfg.num_levels, 160) and not np.array_equal(one, other)


def test_a_model_without_the_head_saves_a_decoding_that_regresses_nothing(tmp_path, latent_run, smoke_corpus,
                                                                         smoke_codec, smoke_tokenizer):
    root, _ = latent_run
    preset = dataclasses.replace(SMOKE, decode=override(SMOKE.decode, regress_levels=2),
                                 train=override(SMOKE.train, steps=1, eval_every=1, checkpoint_every=1))
    train(tmp_path / "run", preset, smoke_corpus, smoke_codec, smoke_tokenizer, root / "pairs", progress=False)
    _, meta = load_acoustic(tmp_path / "run")
    assert meta["decode_config"]["regress_levels"] == 0
    assert Synthesizer.load(tmp_path / "run").decode.regress_levels == 0
    assert PRESETS["laptop"].decode.regress_levels == 6 and PRESETS["laptop"].model.latent_prior


def test_no_latent_head_on_the_command_line_drops_the_presets_latent_prior():
    from argparse import Namespace

    from workbench.acoustic.cli import model_changes

    given = dict(prompt_pooling=None, semantic_prior=None, latent_head=False, latent_prior=None)
    changes = model_changes(Namespace(**given))
    assert changes == {"latent_head": False, "latent_prior": False}
    cfg = override(PRESETS["laptop"].model, **changes).for_data(6, 1024, 256, 64)
    SoundStorm(cfg)  # fits: neither head nor prior
    asked = model_changes(Namespace(**{**given, "latent_prior": True}))
    with pytest.raises(UserError, match="latent_prior needs latent_head"):  # asked for both: the conflict is named
        SoundStorm(override(PRESETS["laptop"].model, **asked).for_data(6, 1024, 256, 64))
