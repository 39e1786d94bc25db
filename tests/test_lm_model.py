"""The model: decoding step by step (and chunk by chunk) equals the full-sequence pass, packed streams do not
leak across resets, Griffin's decode state has constant size, parameter counts, sampling."""

import time

import pytest
import torch

from workbench.lm.config import ModelConfig
from workbench.lm.generate import generate, sample_next
from workbench.lm.model import build_model, count_parameters, model_config, transformer_like

WINDOW = 8
TINY = ModelConfig(vocab_size=32, width=16, num_layers=3, num_heads=2, attention_window=WINDOW)
MODELS = {"griffin": TINY, "transformer": transformer_like(TINY, 3)}


def packed_inputs(t=4 * WINDOW + 3, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, TINY.vocab_size, (3, t), generator=g)
    resets = torch.zeros(3, t, dtype=torch.bool)
    resets[1, 13] = True
    resets[2, 5] = resets[2, 2 * WINDOW + 1] = True
    return tokens, resets


@pytest.mark.parametrize("name", MODELS)
def test_step_by_step_equals_full_sequence(name):
    torch.manual_seed(0)
    model = build_model(MODELS[name]).eval()
    tokens, resets = packed_inputs()  # 35 tokens: > 3x the attention window, with resets inside
    with torch.no_grad():
        full, _ = model(tokens, resets)
        cache = model.init_cache(3)
        logits, cache = model(tokens[:, :3], resets[:, :3], cache)  # a short parallel prefill
        steps = [logits]
        for i in range(3, tokens.shape[1]):
            logits, cache = model(tokens[:, i:i + 1], resets[:, i:i + 1], cache)
            steps.append(logits)
    assert (torch.cat(steps, 1) - full).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_chunks_compose(name):
    torch.manual_seed(1)
    model = build_model(MODELS[name]).eval()
    tokens, resets = packed_inputs()
    with torch.no_grad():
        full, _ = model(tokens, resets)
        cache, parts, s = model.init_cache(3), [], 0
        for size in (5, 11, 1, 9, 9):  # chunks longer than the window and crossing resets
            logits, cache = model(tokens[:, s:s + size], resets[:, s:s + size], cache)
            parts.append(logits)
            s += size
    assert (torch.cat(parts, 1) - full).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_packed_stream_does_not_leak_across_a_reset(name):
    torch.manual_seed(2)
    model = build_model(MODELS[name]).eval()
    tokens, resets = packed_inputs()
    with torch.no_grad():
        packed, _ = model(tokens, resets)
        alone, _ = model(tokens[1:2, 13:])
        other = tokens.clone()
        other[1, :13] = (other[1, :13] + 1) % TINY.vocab_size  # change everything before the reset
        changed, _ = model(other, resets)
    torch.testing.assert_close(packed[1:2, 13:], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[1, 13:], changed[1, 13:], atol=1e-5, rtol=1e-5)


def test_griffin_decode_state_has_constant_size():
    config = ModelConfig(vocab_size=8, width=8, num_layers=2, num_heads=2, attention_window=4,
                         block_pattern=("recurrent", "attention"))  # tiny, so 20k steps take seconds
    model = build_model(config).eval()
    token = torch.zeros(2, 1, dtype=torch.long)
    sizes = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        cache = model.init_cache(2)
        for i in range(1, 20_001):
            _, cache = model(token, None, cache)
            if i in (100, 20_000):
                sizes[i] = cache.nbytes()
    assert sizes[100] == sizes[20_000] > 0, sizes
    assert cache.index == 20_000 and cache.blocks[1].keys.shape[1] == 4
    print(f"20k decode steps in {time.perf_counter() - t0:.1f}s, state {sizes[100]} bytes")


def test_transformer_kv_cache_grows():
    model = build_model(MODELS["transformer"]).eval()
    with torch.no_grad():
        cache = model.init_cache(1)
        _, cache = model(torch.zeros(1, 10, dtype=torch.long), None, cache)
        small = cache.nbytes()
        _, cache = model(torch.zeros(1, 10, dtype=torch.long), None, cache)
    assert cache.nbytes() > small


def test_paper_config_on_meta_and_matched_transformer():
    griffin = count_parameters(model_config("paper", "griffin"))
    transformer = count_parameters(model_config("paper", "transformer"))
    assert 1.9e9 < griffin["total"] < 2.3e9  # RecurrentGemma-2B's 2.7B less 224k x 2560 of text vocabulary
    assert griffin["embedding"] == 32_768 * 2560
    assert transformer["recurrent"] == 0 and griffin["recurrent"] > 0
    assert abs(transformer["total"] - griffin["total"]) / griffin["total"] < 0.03
    assert griffin["total"] == sum(v for k, v in griffin.items() if k != "total")


def test_presets_have_the_documented_scale():
    assert 10e6 <= count_parameters(model_config("laptop"))["total"] <= 20e6
    assert 80e6 <= count_parameters(model_config("small"))["total"] <= 130e6
    for preset in ("smoke", "laptop", "small"):
        g, t = (count_parameters(model_config(preset, m))["total"] for m in ("griffin", "transformer"))
        assert abs(g - t) / g < 0.1, preset


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible"):
        ModelConfig(vocab_size=8, width=30, num_layers=3, num_heads=4, attention_window=4)


def test_sampling_is_seeded_and_filters():
    torch.manual_seed(3)
    model = build_model(TINY).eval()
    prompt = torch.randint(0, 32, (2, 5))
    a = generate(model, prompt, 12, temperature=1.0, seed=7)
    b = generate(model, prompt, 12, temperature=1.0, seed=7)
    c = generate(model, prompt, 12, temperature=1.0, seed=8)
    assert a.shape == (2, 17) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:, :5], prompt)
    greedy = generate(model, prompt, 12, temperature=0)
    assert torch.equal(generate(model, prompt, 12, top_k=1, seed=1), greedy)
    assert torch.equal(generate(model, prompt, 12, top_p=1e-6, seed=2), greedy)
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]]).repeat(500, 1)
    picks = sample_next(logits, torch.Generator().manual_seed(0), top_k=2)
    assert set(picks.tolist()) == {2, 3}
    picks = sample_next(logits, torch.Generator().manual_seed(0), top_p=0.9)  # p = .03 .09 .24 .64
    assert set(picks.tolist()) == {1, 2, 3}


def test_griffin_attention_window_fits_inside_the_training_window():
    from workbench.lm.config import PRESETS, train_config

    for preset in PRESETS:
        assert model_config(preset).attention_window < train_config(preset).window_tokens, preset
