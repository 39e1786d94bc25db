"""The 16-minute comparison as a statistic: intervals, prompts across voices, the stream plan, and the claims
stated as tests -- checked on streams built to be flat, drifting and collapsing, so the verdicts can fail."""

import numpy as np
import pytest

from workbench.eval.longform import collapse_onset_s, loop_onset_s, token_measures
from workbench.eval.stats import excludes, mean_interval, share_interval, slope
from workbench.pipeline.extrapolate import (
    PRESETS,
    ExtrapolationConfig,
    bin_intervals,
    choose_prompts,
    claims,
    drift_untestable,
    extrapolation_config,
    stream_plan,
)

RATE = 25


def test_mean_interval_matches_the_t_distribution():
    x = [1.0, 2.0, 3.0, 4.0]
    i = mean_interval(x)
    half = 3.182 * np.std(x, ddof=1) / 2  # t(0.975, 3) * s / sqrt(4)
    assert i["mean"] == 2.5 and i["n"] == 4 and i["low"] == pytest.approx(2.5 - half, abs=1e-3)
    assert mean_interval([5.0])["low"] is None and mean_interval([None, float("nan")])["n"] == 0
    assert excludes(i, 0.0) is True and excludes(i, 2.0) is False and excludes(mean_interval([1.0])) is None


def test_wilson_interval_is_sound_at_the_edges():
    none, every = share_interval(0, 10), share_interval(10, 10)
    assert none["low"] == 0.0 and 0.2 < none["high"] < 0.35  # 0 of 10 does not prove "never"
    assert every["high"] == pytest.approx(1.0) and 0.65 < every["low"] < 0.8
    assert share_interval(0, 0)["share"] is None


def test_slope():
    assert slope([0, 1, 2], [1.0, 3.0, 5.0]) == pytest.approx(2.0)
    assert slope([0, 1], [1.0, None]) is None


class FakeRec:
    def __init__(self, id, speaker, n):
        self.id, self.speaker, self.num_tokens, self.split = id, speaker, n, "test"


class FakeCorpus:
    def __init__(self, recs):
        self.recs = recs

    def held_out_split(self):
        return "test"

    def split(self, name):
        return self.recs

    def tokens(self, rec):
        return np.arange(rec.num_tokens) % 7


def test_prompts_are_taken_across_voices_longest_first():
    corpus = FakeCorpus([FakeRec("a1", "A", 900), FakeRec("a2", "A", 800), FakeRec("b1", "B", 700),
                         FakeRec("c1", "C", 100)])
    chosen = choose_prompts(corpus, prompt_seconds=10.0, count=3)  # 250-token prompts: c1 is too short
    assert [r.id for r, _, _ in chosen] == ["a1", "b1", "a2"]
    assert all(len(p) == 250 for _, p, _ in chosen)


def test_stream_plan_runs_the_first_streams_long():
    cfg = ExtrapolationConfig(minutes=16, transformer_minutes=4, prompts=2, seeds=2, long_streams=1, set_minutes=2)
    plan = stream_plan(cfg, 2)
    assert [(p["prompt"], p["seed"]) for p in plan] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert plan[0]["minutes"] == {"griffin": 16, "transformer": 4}
    assert all(p["minutes"] == {"griffin": 2, "transformer": 2} for p in plan[1:])


def test_laptop_set_has_several_voices_and_seeds():
    cfg = extrapolation_config("laptop")
    assert cfg.prompts >= 2 and cfg.seeds >= 2 and cfg.minutes == 16
    grid = extrapolation_config("laptop-grid")
    assert grid.prompts * grid.seeds >= 12 and grid.long_streams == grid.prompts * grid.seeds


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_can_state_the_drift_claims(preset):
    """Every stream of a preset's set spans two bins (tokens and rendered audio), so each has a slope: the laptop
    set's 1-minute streams had one 60 s bin each, and its claims came out undetermined in every timed run."""
    cfg = extrapolation_config(preset)
    assert drift_untestable(cfg, cfg.prompts) is None


def test_settings_that_leave_the_claims_undetermined_say_why():
    laptop = extrapolation_config("laptop")
    assert "fewer than two bins of 60 s" in drift_untestable(laptop.replace(bin_seconds=60.0), laptop.prompts)
    assert "no slope" in drift_untestable(laptop.replace(audio_minutes=0.5), laptop.prompts)
    assert "needs two" in drift_untestable(laptop.replace(seeds=1), 1)


def speech_like(rng, seconds):
    return rng.integers(0, 200, seconds * RATE)


def collapsing(rng, seconds):
    """Speech-like at first, then held units take over minute by minute (the Transformer's failure)."""
    out = []
    for minute in range(seconds // 60):
        n = 60 * RATE
        held = min(0.9, 0.3 * minute)  # share of the minute spent on held units
        piece = rng.integers(0, 200, n)
        stuck = int(held * n)
        piece[:stuck] = np.repeat(rng.integers(0, 3, stuck // 50 + 1), 50)[:stuck]
        out.append(piece)
    return np.concatenate(out)


def member(stream):
    bins = token_measures(stream, 0, bin_seconds=60.0)
    return {"measures": bins, "loop_onset_s": loop_onset_s(bins), "collapse_onset_s": collapse_onset_s(bins)}


def test_claims_separate_flat_from_drifting_streams():
    rng = np.random.default_rng(0)
    members = {"griffin": [member(speech_like(rng, 240)) for _ in range(4)],
               "transformer": [member(collapsing(rng, 240)) for _ in range(4)]}
    c = claims(members)
    assert c["drift"]["griffin"]["stuck_share"]["verdict"] == "flat"
    assert c["drift"]["transformer"]["stuck_share"]["verdict"] == "drifts"
    assert c["griffin_flat_transformer_drifts"].startswith("supported")
    assert c["failures"]["transformer"]["collapse"]["k"] == 4 and c["failures"]["griffin"]["collapse"]["k"] == 0


def test_claims_are_withdrawn_when_both_hold_or_undetermined_with_one_stream():
    rng = np.random.default_rng(1)
    both_flat = {"griffin": [member(speech_like(rng, 240)) for _ in range(3)],
                 "transformer": [member(speech_like(rng, 240)) for _ in range(3)]}
    assert claims(both_flat)["griffin_flat_transformer_drifts"].startswith("not supported")
    one = {"griffin": [member(speech_like(rng, 240))], "transformer": [member(collapsing(rng, 240))]}
    assert claims(one)["griffin_flat_transformer_drifts"].startswith("undetermined")


def test_bin_intervals_count_the_streams_reaching_each_bin():
    rng = np.random.default_rng(2)
    streams = [member(speech_like(rng, 240)), member(speech_like(rng, 120))]
    rows = bin_intervals(streams, "entropy_bits")
    assert [r["n"] for r in rows] == [2, 2, 1, 1] and rows[2]["low"] is None


def test_minute_figure_shows_the_chosen_minute():
    from workbench.pipeline.extrapolate import last_minute, minute_figure

    prompt = 50
    streams = {"griffin": np.arange(prompt + 3 * 60 * RATE) % 1000, "transformer": np.arange(prompt + 60 * RATE)}
    assert last_minute(streams, prompt) == 2
    fig = minute_figure(streams, prompt, 2, seconds=4.0)
    (trace,) = fig.data  # the transformer's stream ends before minute 2
    assert list(trace.y) == list(streams["griffin"][prompt + 2 * 60 * RATE: prompt + 2 * 60 * RATE + 100])
    assert trace.x[0] == 120.0
