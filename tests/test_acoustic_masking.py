"""The logic SoundStorm reimplementations got wrong, tested without a trained model: the training mask, the
level-by-level decoding (driven by a fake model that records what it was shown), window planning, overlap
conditioning and merging, and bounded per-window work on a 16-minute stream."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.acoustic.config import DecodeConfig
from workbench.acoustic.data import Pair, Rates, sample_batch, upsample_semantic
from workbench.acoustic.decode import DecodeTrace, decode_levels, masked_count_after
from workbench.acoustic.masking import cosine_ratio, training_mask
from workbench.acoustic.windowed import Prompt, make_prompt, plan_windows, synthesize_codes

K, Q, MASK = 16, 4, 16
RATES = Rates(16_000, 640, 320)  # 25 Hz tokens, 50 Hz frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_codes(b=64, q=Q, t=40, seed=0):
    return torch.randint(0, K, (b, q, t), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- training mask
def test_mask_per_level_coarser_kept_finer_masked_prompt_untouched():
    codes = random_codes()
    m = training_mask(codes, MASK, torch.Generator().manual_seed(1))
    frames = torch.arange(codes.shape[2])
    for i in range(codes.shape[0]):
        q, p = int(m.level[i]), int(m.prompt[i])
        masked = m.inputs[i] == MASK  # (q, t)
        assert not masked[:, :p].any(), "the prompt prefix is never masked"
        assert torch.equal(m.inputs[i, :, :p], codes[i, :, :p])
        assert not masked[:q].any(), "coarser levels are kept everywhere"
        assert masked[q + 1:, p:].all(), "finer levels are masked at every non-prompt frame"
        assert torch.equal(masked[q], m.loss_mask[i]), "the loss is on exactly the masked level-q tokens"
        assert m.loss_mask[i].sum() >= 1 and not m.loss_mask[i, :p].any()
        kept = ~masked
        assert torch.equal(m.inputs[i][kept], codes[i][kept]), "unmasked tokens are the true codes"
        assert (frames[m.loss_mask[i]] >= p).all()


def test_mask_count_follows_the_cosine_of_the_drawn_ratio():
    codes = random_codes(b=256, t=100)
    m = training_mask(codes, MASK, torch.Generator().manual_seed(2))
    n_open = codes.shape[2] - m.prompt
    expected = (m.mask_ratio * n_open).round().clamp(min=1)
    assert torch.equal(m.loss_mask.sum(1), expected.long())
    # p = cos(u), u ~ U[0, pi/2): E[p] = 2 / pi, and every level is drawn
    assert abs(m.mask_ratio.mean().item() - 2 / math.pi) < 0.05
    assert set(m.level.tolist()) == set(range(Q))
    assert m.prompt.min() == 0 and m.prompt.max() < codes.shape[2]


def test_mask_respects_min_prompt_and_rejects_no_room():
    codes = random_codes(t=30)
    min_prompt = torch.tensor([10, 0] * 32)
    m = training_mask(codes, MASK, torch.Generator().manual_seed(3), min_prompt)
    assert (m.prompt >= min_prompt).all()
    assert not (m.inputs[::2, :, :10] == MASK).any()
    with pytest.raises(ValueError, match="no frame to mask"):
        training_mask(codes, MASK, None, 30)


def test_mask_with_a_fixed_level_and_ratio():
    codes = random_codes(b=8, t=41)
    m = training_mask(codes, MASK, torch.Generator().manual_seed(4), level=2, ratio=0.5)
    assert (m.level == 2).all()
    assert torch.equal(m.loss_mask.sum(1), (0.5 * (41 - m.prompt)).round().clamp(min=1).long())
    assert not (m.inputs[:, :2] == MASK).any()


def test_level0_share_draws_level_zero_that_often_and_the_rest_alike():
    codes = random_codes(b=4000, t=20)
    m = training_mask(codes, MASK, torch.Generator().manual_seed(5), level0_share=0.5)
    counts = torch.bincount(m.level, minlength=Q).float() / len(m.level)
    assert abs(counts[0] - 0.5) < 0.03
    assert torch.allclose(counts[1:], torch.full((Q - 1,), 0.5 / (Q - 1)), atol=0.03)
    assert (training_mask(codes, MASK, torch.Generator().manual_seed(5), level0_share=1.0).level == 0).all()
    # unset, the draw is SoundStorm's uniform one, exactly as before the option existed
    plain = training_mask(codes, MASK, torch.Generator().manual_seed(5))
    assert torch.equal(plain.level, torch.randint(0, Q, (4000,), generator=torch.Generator().manual_seed(5)))


def test_cosine_ratio_endpoints():
    assert cosine_ratio(torch.tensor(0.0)) == pytest.approx(1.0)
    assert cosine_ratio(torch.tensor(1.0)) == pytest.approx(0.0, abs=1e-6)


# -------------------------------------------------------------------------------------------------- decoding
class RecordingModel:
    """A fake SoundStorm: remembers every input; predicts a fixed random distribution per frame, so decoding
    is deterministic to check."""

    def __init__(self, t, seed=0):
        self.calls = []
        self.table = torch.randn(Q, t, K, generator=torch.Generator().manual_seed(seed)) * 3

    def __call__(self, semantic, codes, level, pad):
        self.calls.append((level, codes.clone(), None if pad is None else pad.clone()))
        return self.table[level, : codes.shape[2]].expand(codes.shape[0], -1, -1).clone()


def test_decoding_reads_no_finer_level_and_never_changes_known_frames():
    b, t = 3, 24
    codes = random_codes(b, Q, t, seed=5)
    known = torch.zeros(b, t, dtype=torch.bool)
    known[:, :6] = True  # a prompt
    known[1, 6:9] = True  # and an overlap fixed by a predecessor
    model = RecordingModel(t)
    iterations = [5, 1, 1, 1]
    out = decode_levels(model, torch.zeros(b, t, dtype=torch.long), codes, known, iterations, MASK,
                        generator=torch.Generator().manual_seed(0))
    assert len(model.calls) == sum(iterations), "16-1-1-... passes: one forward per iteration"
    assert [c[0] for c in model.calls] == [0] * 5 + [1, 2, 3]
    for level, seen, _ in model.calls:
        assert torch.equal(seen[:, :, :6], codes[:, :, :6]) and torch.equal(seen[1, :, 6:9], codes[1, :, 6:9])
        unknown = ~known
        for q in range(level + 1, Q):
            assert (seen[:, q][unknown] == MASK).all(), f"level {q} was read while decoding level {level}"
        for q in range(level):
            assert (seen[:, q] != MASK).all(), f"level {q} should be fully decoded before level {level}"
    assert torch.equal(out[known[:, None].expand_as(out)], codes[known[:, None].expand_as(codes)])
    assert (out != MASK).all() and out.max() < K


def test_iterations_unmask_on_the_cosine_schedule_and_keep_what_they_fixed():
    b, t, n = 2, 40, 8
    model = RecordingModel(t, seed=1)
    trace = DecodeTrace()
    known = torch.zeros(b, t, dtype=torch.bool)
    decode_levels(model, torch.zeros(b, t, dtype=torch.long), random_codes(b, Q, t), known, [n, 1, 1, 1], MASK,
                  generator=torch.Generator().manual_seed(0), trace=trace)
    fixed0 = [(c[1][:, 0] != MASK) for c in model.calls[1:n]] + [None]
    for i in range(n - 1):  # what pass i + 1 saw = what pass i left
        assert torch.equal(fixed0[i].sum(1), t - masked_count_after(torch.tensor([t, t]), i, n))
        if i:
            prev, now = model.calls[i][1][:, 0], model.calls[i + 1][1][:, 0]
            kept = prev != MASK
            assert torch.equal(now[kept], prev[kept]), "a fixed token was re-masked or changed"
    assert [p for p in trace.passes] == [(0, i) for i in range(n)] + [(1, 0), (2, 0), (3, 0)]
    assert (trace.levels_fixed[-1] == Q).all()


def test_least_confident_tokens_are_the_ones_remasked():
    t = 10
    model = RecordingModel(t, seed=2)
    known = torch.zeros(1, t, dtype=torch.bool)
    decode_levels(model, torch.zeros(1, t, dtype=torch.long), random_codes(1, Q, t), known, [2, 1, 1, 1], MASK,
                  temperature=0.0)  # greedy: the confidence of a frame is its top probability
    after_first = model.calls[1][1][0, 0] != MASK
    top = torch.softmax(model.table[0], -1).max(-1).values
    n_fixed = int(after_first.sum())
    assert n_fixed == t - int(masked_count_after(torch.tensor([t]), 0, 2))
    assert set(top.argsort(descending=True)[:n_fixed].tolist()) == set(after_first.nonzero()[:, 0].tolist())


def test_finer_levels_are_greedy_and_padding_stays_masked():
    b, t = 2, 12
    model = RecordingModel(t, seed=3)
    pad = torch.zeros(b, t, dtype=torch.bool)
    pad[1, 8:] = True
    out = decode_levels(model, torch.zeros(b, t, dtype=torch.long), random_codes(b, Q, t),
                        torch.zeros(b, t, dtype=torch.bool), [3, 1, 1, 1], MASK, temperature=5.0,
                        generator=torch.Generator().manual_seed(0), pad=pad)
    for q in range(1, Q):
        assert torch.equal(out[0, q], model.table[q].argmax(-1))
    assert (out[1, :, 8:] == MASK).all() and (out[1, :, :8] != MASK).all()
    assert all(torch.equal(p, pad) for _, _, p in model.calls)


class PromptSensitiveModel:
    """A fake whose logits are table `seen` for a row that can read its prompt (frame 0 known) and `blind` for one
    that cannot; records every input."""

    def __init__(self, t, seed=4):
        g = torch.Generator().manual_seed(seed)
        self.seen, self.blind = (torch.randn(Q, t, K, generator=g) * 3 for _ in range(2))
        self.calls = []

    def __call__(self, semantic, codes, level, pad):
        self.calls.append(codes.clone())
        sees = (codes[:, 0, 0] != MASK)[:, None, None]
        return torch.where(sees, self.seen[level, : codes.shape[2]], self.blind[level, : codes.shape[2]])


def test_guidance_one_is_plain_decoding():
    b, t = 2, 16
    codes, known = random_codes(b, Q, t, seed=6), torch.zeros(b, t, dtype=torch.bool)
    known[:, :4] = True
    args = (torch.zeros(b, t, dtype=torch.long), codes, known, [3, 1, 1, 1], MASK)
    plain, guided = RecordingModel(t, seed=7), RecordingModel(t, seed=7)
    a = decode_levels(plain, *args, generator=torch.Generator().manual_seed(0))
    c = decode_levels(guided, *args, generator=torch.Generator().manual_seed(0), guidance=1.0)
    assert torch.equal(a, c) and len(guided.calls) == len(plain.calls)
    assert all(seen.shape[0] == b for _, seen, _ in guided.calls), "no blind rows without guidance"


@pytest.mark.parametrize("w", [0.0, 2.5])
def test_guidance_decodes_from_blind_plus_w_times_what_the_prompt_adds(w):
    b, t = 2, 16
    codes, known = random_codes(b, Q, t, seed=8), torch.zeros(b, t, dtype=torch.bool)
    known[:, :4] = True  # the prompt
    known[1, 4:6] = True  # and an overlap
    model = PromptSensitiveModel(t)
    out = decode_levels(model, torch.zeros(b, t, dtype=torch.long), codes, known, [1, 1, 1, 1], MASK,
                        temperature=0.0, guidance=w)
    assert len(model.calls) == Q, "one batched forward per pass"
    for seen_and_blind in model.calls:
        seen, blind = seen_and_blind.chunk(2)
        assert torch.equal(seen[known[:, None].expand_as(seen)], codes[known[:, None].expand_as(codes)])
        assert (blind[known[:, None].expand_as(blind)] == MASK).all(), "the blind rows must not read known frames"
        assert torch.equal(blind[~known[:, None].expand_as(blind)], seen[~known[:, None].expand_as(seen)])
    for q in range(Q):
        expect = (model.blind[q] + w * (model.seen[q] - model.blind[q])).argmax(-1)
        assert torch.equal(out[:, q][~known], expect.expand(b, -1)[~known])
    assert torch.equal(out[known[:, None].expand_as(out)], codes[known[:, None].expand_as(codes)])


# ---------------------------------------------------------------------------------------------------- windows
@pytest.mark.parametrize("total,window,overlap", [(10, 20, 4), (20, 20, 4), (21, 20, 4), (100, 20, 4), (57, 9, 0)])
def test_plan_windows_covers_everything_with_the_given_overlap(total, window, overlap):
    spans = plan_windows(total, window, overlap)
    assert spans[0].start == 0 and spans[0].fixed == 0 and spans[-1].end == total
    for a, b in zip(spans, spans[1:]):
        assert b.start == a.end - overlap and b.fixed == overlap and b.end > a.end
    assert all(s.end - s.start <= window for s in spans)
    with pytest.raises(ValueError):
        plan_windows(total, window, window)


def test_rates_upsample_by_frame_centres_without_a_hardcoded_ratio():
    sem = np.arange(5)
    assert upsample_semantic(sem, RATES, 0, 10).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert upsample_semantic(sem, RATES, 3, 3).tolist() == [1, 2, 2]
    assert RATES.frames(5) == 10 and RATES.codec_rate == 50 and RATES.semantic_rate == 25
    three = Rates(16_000, 960, 320)  # a 3:1 ratio is handled by the same rule
    assert upsample_semantic(np.arange(2), three, 0, 6).tolist() == [0, 0, 0, 1, 1, 1]
    assert three.frames(2) == 6


class WindowModel(RecordingModel):
    """Fake model for windowed synthesis: the prediction depends on the semantic token, so windows differ."""

    def __call__(self, semantic, codes, level, pad):
        self.calls.append((level, codes.shape, None))
        return torch.nn.functional.one_hot((semantic * 3 + level) % K, K).float() * 5


def _prompt(frames, seed=0):
    g = np.random.default_rng(seed)
    return Prompt(g.integers(0, 8, frames), g.integers(0, K, (Q, frames)))


def test_windowed_synthesis_keeps_the_prompt_out_and_overlaps_fixed():
    cfg = DecodeConfig(first_level_iterations=3, window_seconds=0.4, overlap_seconds=0.1, batch_windows=2)
    streams = [np.random.default_rng(1).integers(0, 8, 30), np.random.default_rng(2).integers(0, 8, 11)]
    prompts = [_prompt(10, 0), _prompt(10, 1)]
    seen = []

    def fn(semantic, codes, level, pad):
        seen.append((codes.clone(), None if pad is None else pad.clone()))
        return WindowModel(1)(semantic, codes, level, pad)

    outs = synthesize_codes(fn, streams, prompts, RATES, Q, MASK, cfg, torch.Generator().manual_seed(0))
    assert [o.shape for o in outs] == [(Q, 60), (Q, 22)]
    assert all((o != MASK).all() for o in outs)
    window, overlap = 20, 5
    for codes, pad in seen:  # every window starts with its stream's prompt, given in full
        assert codes.shape[2] <= 10 + window
        assert torch.equal(codes[0, :, :10], torch.from_numpy(prompts[0].codes))
    # window k > 0 received the predecessor's overlap codes as given, unmasked, at every level
    plan = plan_windows(60, window, overlap)
    firsts = [c for c, _ in seen if (c[0, :, 10: 10 + overlap] != MASK).all() and (c[0, :, 10 + overlap:] == MASK).all()]
    assert len(firsts) == len(plan) - 1
    for span, codes in zip(plan[1:], firsts):
        assert torch.equal(codes[0, :, 10: 10 + overlap], torch.from_numpy(outs[0][:, span.start: span.start + overlap]))
    # windows of the two streams were batched together while both had one
    assert [c.shape[0] for c, _ in seen[:: 3 + Q - 1]] == [2, 2, 1, 1]
    padded = [p for _, p in seen if p is not None]  # window 1: 20 frames of stream 0 beside 7 of stream 1
    assert len(padded) == 3 + Q - 1 and all(p[0].sum() == 0 and p[1].sum() == 20 - 7 for p in padded)


def test_sixteen_minutes_synthesize_window_by_window_with_bounded_inputs():
    cfg = DecodeConfig(first_level_iterations=2, window_seconds=8.0, overlap_seconds=1.0, batch_windows=4)
    tokens = 16 * 60 * 25
    stream = np.random.default_rng(0).integers(0, 8, tokens)
    longest = []

    def fn(semantic, codes, level, pad):
        longest.append(codes.shape[2])
        return torch.nn.functional.one_hot((semantic + level) % K, K).float() * 100  # sharp: sampling = argmax

    out = synthesize_codes(fn, [stream], [_prompt(150)], RATES, Q, MASK, cfg)[0]
    assert out.shape == (Q, 2 * tokens) and (out != MASK).all()
    assert max(longest) == 150 + 400, "the model never sees more than prompt + one window"
    assert len(longest) == len(plan_windows(2 * tokens, 400, 50)) * (2 + Q - 1)
    # the fake predicts (token + level) mod K everywhere: the merged stream is that, with no seam
    expected = (upsample_semantic(stream, RATES, 0, 2 * tokens)[None] + np.arange(Q)[:, None]) % K
    assert np.array_equal(out, expected)


def test_prompt_shorter_than_needed_is_a_clear_error():
    from workbench.core.errors import UserError

    with pytest.raises(UserError, match="speaker prompt is 0.80 s long; 3.00 s are needed"):
        make_prompt(np.zeros(20, dtype=int), np.zeros((Q, 40), dtype=int), RATES, 150)
    p = make_prompt(np.arange(100), np.zeros((Q, 200), dtype=int), RATES, 150)
    assert p.frames == 150 and p.semantic[:4].tolist() == [0, 0, 1, 1]


def test_training_crops_put_a_prompt_from_elsewhere_in_front():
    frames = 400
    codes = np.tile(np.arange(frames), (Q, 1)) % 1000  # code = frame index, to find where crops came from
    pair = Pair("r", "s", np.arange(frames // 2), codes)
    batch = sample_batch([pair], RATES, 64, crop_frames=50, prompt_frames=30, prompt_elsewhere=0.5, levels=Q,
                         rng=np.random.default_rng(0))
    assert batch.codes.shape == (64, Q, 80) and batch.semantic.shape == (64, 80)
    assert 10 < int((batch.min_prompt == 30).sum()) < 54
    for c, s, mp in zip(batch.codes[:, 0], batch.semantic, batch.min_prompt):
        prompt, crop = c[:30], c[30:]
        assert torch.equal(crop, torch.arange(crop[0], crop[0] + 50))
        assert torch.equal(s, torch.from_numpy(np.concatenate([upsample_semantic(pair.semantic, RATES, int(prompt[0]), 30),
                                                               upsample_semantic(pair.semantic, RATES, int(crop[0]), 50)])))
        if mp:  # a prompt from elsewhere never overlaps the crop
            assert prompt[-1] < crop[0] or prompt[0] >= crop[-1] + 1
        else:
            assert prompt[-1] + 1 == crop[0]
