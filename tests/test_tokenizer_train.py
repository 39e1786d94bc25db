"""The learned tokenizer's training iteration runs on the shared loop (`workbench.core.train.fit`): its settings
come from `TokenizerConfig.train_config`, its history is the loop's records (one per step, lr on the loop's
schedule), its budget is the loop's `max_minutes`, and its batches are the loop's (seed, step) draws."""

import copy
import time

import numpy as np
import pytest
import torch

import workbench.tokenizer.train as tok_train
from workbench.core.train import TrainConfig, fit, lr_factor
from workbench.tokenizer.config import FRAME, PRESETS, SAMPLE_RATE, TokenizerConfig
from workbench.tokenizer.data import ParallelSet
from workbench.tokenizer.encoder import Encoder
from workbench.tokenizer.features import num_frames
from workbench.tokenizer.model import Tokenizer
from workbench.tokenizer.train import fit_kmeans, fit_norm, train_iteration

CFG = TokenizerConfig(name="tiny", num_units=8, d_model=16, n_mels=20, n_mfcc=8, dilations=(1, 2), feature_layer=2,
                      teacher_layer=1, crop_seconds=1.0, batch_size=2, steps=6, warmup_steps=2, kmeans_iters=5,
                      parallel_weight=0.0, parallel_batch=2, threads=1)
KEYS = {"iteration", "step", "loss", "masked_accuracy", "lr", "grad_norm", "seconds"}


class NoiseCorpus:
    """Stands in for a train split: `random_crop` as `workbench.data.loaders` has it, audio drawn from `rng`."""

    def random_crop(self, seconds: float, rng: np.random.Generator):
        return None, 0.0, (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


@pytest.fixture
def setup():
    before = torch.get_num_threads()
    torch.manual_seed(0)
    audio = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal((4, 2 * SAMPLE_RATE))).astype(np.float32))
    teacher = Tokenizer("mfcc_kmeans", CFG, torch.zeros(()), torch.ones(()))
    fit_norm(teacher, audio)
    fit_kmeans(teacher, audio, seed=0)
    student = Tokenizer("learned", CFG, torch.zeros(()), torch.ones(()), encoder=Encoder(CFG))
    fit_norm(student, audio)
    yield student, teacher
    torch.set_num_threads(before)


def far() -> float:
    return time.time() + 1e7  # a deadline that never binds: progress is steps / steps


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_train_config_carries_the_presets_loop_settings(preset):
    cfg = PRESETS[preset]
    tc = cfg.train_config(4.5, iteration=2)
    assert type(tc) is TrainConfig
    assert (tc.steps, tc.max_minutes, tc.batch_size, tc.lr, tc.warmup_steps, tc.weight_decay, tc.threads) == (
        cfg.steps, 4.5, cfg.batch_size, cfg.lr, cfg.warmup_steps, cfg.weight_decay, cfg.threads)
    assert tc.betas == (0.9, 0.98) and tc.grad_clip == 1.0 and tc.min_lr_ratio == 0.0  # cosine to zero
    assert tc.log_every == 1 and tc.seed == cfg.seed + 2  # every step in the history; other crops per iteration


def test_training_iteration_runs_through_the_shared_loop(setup, monkeypatch):
    student, teacher = setup
    calls = []

    def spy(task, cfg, run, **kw):
        calls.append((task, cfg, run))
        return fit(task, cfg, run, **kw)

    monkeypatch.setattr(tok_train, "fit", spy)
    head = student.encoder.head.weight.detach().clone()
    logged = []
    history = train_iteration(student, teacher, NoiseCorpus(), CFG, far(), iteration=1, log=logged.append)

    (task, tc, run), = calls
    assert isinstance(task, tok_train.MaskedPrediction) and task.model is student.encoder
    assert run.out_dir is None and tc == CFG.train_config(tc.max_minutes, 1) and tc.max_minutes > 1e4
    assert not torch.equal(student.encoder.head.weight, head) and not student.encoder.training
    # a step budget of N gives N records, one per step, lr on the shared schedule
    assert [h["step"] for h in history] == list(range(1, CFG.steps + 1))
    for h in history:
        assert set(h) == KEYS and h["iteration"] == 1
        assert h["lr"] == pytest.approx(CFG.lr * lr_factor(tc, h["step"] - 1, (h["step"] - 1) / CFG.steps), abs=1e-6)
        assert h["loss"] > 0 and 0 <= h["masked_accuracy"] <= 1
    assert history[0]["lr"] == pytest.approx(CFG.lr / CFG.warmup_steps, abs=1e-6)  # linear warmup from step 1
    assert [h["seconds"] for h in history] == sorted(h["seconds"] for h in history)
    assert logged and logged[0].startswith("iteration 1 step 1: loss")


def test_training_iteration_batches_are_the_loops_draws(setup):
    """Same weights, same (seed + iteration, step): the same crops, masks and warps, so the same losses;
    another iteration draws other batches."""
    student, teacher = setup
    twin = Tokenizer("learned", CFG, student.mean, student.std, encoder=copy.deepcopy(student.encoder))
    cfg = CFG.replace(steps=3)
    torch.manual_seed(1)
    a = train_iteration(student, teacher, NoiseCorpus(), cfg, far(), iteration=1, log=lambda m: None)
    torch.manual_seed(1)  # the fresh head
    b = train_iteration(twin, teacher, NoiseCorpus(), cfg, far(), iteration=1, log=lambda m: None)
    assert [h["loss"] for h in a] == [h["loss"] for h in b]
    torch.manual_seed(1)
    c = train_iteration(twin, teacher, NoiseCorpus(), cfg, far(), iteration=2, log=lambda m: None)
    assert [h["loss"] for h in c] != [h["loss"] for h in b]


def test_training_iteration_stops_at_its_time_budget(setup):
    student, teacher = setup
    history = train_iteration(student, teacher, NoiseCorpus(), CFG, time.time() - 1.0, iteration=2, log=lambda m: None)
    assert len(history) == 1 and history[0]["iteration"] == 2  # a spent budget still trains one step (the loop's rule)


def test_training_iteration_with_the_cross_speaker_loss(setup):
    student, teacher = setup
    rng = np.random.default_rng(3)
    audio = [(0.1 * rng.standard_normal(n * FRAME)).astype(np.float32) for n in (30, 25)]
    identity = np.where(np.arange(25) % 5 == 0, -1, np.arange(25))  # B frame j -> A frame j, a few without one
    pairs = [(1, 0, identity), (0, 1, np.minimum(np.arange(num_frames(len(audio[0]))), 24))]
    parallel = ParallelSet(audio, [[], []], ["a", "b"], [0, 0], pairs)
    cfg = CFG.replace(parallel_weight=0.5, steps=3)
    history = train_iteration(student, teacher, NoiseCorpus(), cfg, far(), iteration=1, log=lambda m: None,
                              parallel=parallel)
    assert len(history) == 3 and all(set(h) == KEYS | {"parallel_loss"} and h["parallel_loss"] > 0 for h in history)
