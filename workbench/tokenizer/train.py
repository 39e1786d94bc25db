"""Training both tokenizers on a corpus's train split, within a wall-clock budget (`config.max_minutes`).

1. Baseline (``mfcc_kmeans``): global mean/std of stacked MFCCs, then k-means over `kmeans_seconds` of frames.
2. Learned, HuBERT-style masked prediction (Hsu et al. 2021), made speaker-invariant ContentVec-style
   (Qian et al. 2022) by perturbing only the student and normalising only the teacher:
     teacher: clean crop -> units (iteration 1: the baseline's k-means units; iteration 2: k-means over the
              iteration-1 encoder's block-`teacher_layer` features, standardised over each crop: CropNormTeacher)
     student: the same crop with VTLP (alpha ~ U[0.8, 1.2], a different vocal tract, same timing) -> encoder
              with ~45% of frames replaced by a mask vector -> predict the teacher's unit at masked frames
   plus, with a parallel set (data.py), the cross-speaker loss. Each iteration is a `MaskedPrediction` task
   trained by the shared loop (`workbench.core.train.fit`, schedule and optimizer there; nothing written to
   disk). Iteration 2 continues from the iteration-1 weights with a fresh prediction head (cheaper than
   restarting, which matters on 2 CPU cores). Phone labels are never read here: the tokenizer is textless.
3. Final k-means over the trained encoder's block-`feature_layer` features gives the learned tokenizer's units.

Budget: iteration 1 trains until 45% of `max_minutes`; iteration 2 until the budget minus the time the
k-means step took after iteration 1 (the final k-means costs the same): each share is the loop's `max_minutes`
for that iteration; `steps` caps each iteration too.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core import reuse
from workbench.core.device import DistInfo
from workbench.core.train import Run, Task, fit
from workbench.data.loaders import open_dataset
from workbench.tokenizer.config import TokenizerConfig
from workbench.tokenizer.data import IGNORE, ParallelSet, crop_batch, sample_audio
from workbench.tokenizer.encoder import Encoder, span_mask
from workbench.tokenizer.kmeans import assign, kmeans
from workbench.tokenizer.model import KINDS, Tokenizer


def batched(fn: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Apply `fn` to (n, S) audio in batches; returns the per-frame outputs flattened to (n T, D)."""
    out = [fn(chunk) for chunk in audio.split(size)]
    return torch.cat([o.reshape(-1, o.shape[-1]) for o in out])


def fit_norm(tok: Tokenizer, audio: torch.Tensor) -> None:
    """Global (training-set) mean/std of the model input: the same for every utterance, so features stay local."""
    tok.mean, tok.std = torch.zeros(()), torch.ones(())
    with torch.no_grad():
        x = batched(tok.model_input, audio)
    tok.mean, tok.std = x.mean(0), x.std(0).clamp_min(1e-3)


def fit_kmeans(tok: Tokenizer, audio: torch.Tensor, seed: int) -> dict[str, Any]:
    started = time.time()
    x = batched(tok.features, audio)
    tok.centroids, summary = kmeans(x, tok.config.num_units, tok.config.kmeans_iters, seed=seed)
    summary["seconds"] = round(time.time() - started, 1)
    return summary


class CropNormTeacher:
    """Training targets from a frozen encoder whose features are standardised over each crop (8 s) before k-means.

    Per-utterance normalisation removes much of what is constant over a crop (largely the speaker), so the
    targets depend less on the voice; the student, which must predict them from its +-1.2 s view of perturbed
    audio, learns to normalise the voice away itself. Only the teacher uses it: the tokenizer's own features must
    stay local in time (windowing), so they are never normalised per utterance. (Measured on laptop dev, k-means
    over iteration-1 features: PNMI 0.33 -> 0.43 with crop normalisation.)
    """

    def __init__(self, tok: Tokenizer):
        self.tok, self.config, self.centroids = tok, tok.config, None

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        f = self.tok.features(audio, self.config.teacher_layer)  # (B, T, D)
        return (f - f.mean(1, keepdim=True)) / f.std(1, keepdim=True).clamp_min(1e-3)

    @torch.no_grad()
    def units(self, audio: torch.Tensor) -> torch.Tensor:
        f = self.features(audio)
        return assign(f.reshape(-1, f.shape[-1]), self.centroids)[0].reshape(f.shape[:2])


class MaskedPrediction(Task):
    """One HuBERT iteration as a task of the shared loop: predict `teacher`'s units at the masked frames of
    VTLP-perturbed crops; with a parallel set, plus the cross-speaker loss (`parallel_weight`): predict the
    teacher's units of voice A from voice B's (perturbed, unmasked) audio. One micro-batch per step."""

    def __init__(self, student: Tokenizer, teacher, dataset, config: TokenizerConfig,
                 parallel: ParallelSet | None = None):
        self.student, self.teacher, self.dataset, self.config = student, teacher, dataset, config
        self.model = student.encoder
        self.parallel = parallel if parallel is not None and parallel.pairs and config.parallel_weight > 0 else None
        self.parallel_units = self.parallel.teacher_units(teacher) if self.parallel is not None else None

    def _alpha(self, n: int, g: torch.Generator) -> torch.Tensor:
        lo, hi = self.config.vtlp
        return lo + (hi - lo) * torch.rand(n, generator=g)

    def micro_batches(self, step: int, rng: np.random.Generator, info: DistInfo) -> list[dict[str, torch.Tensor]]:
        c = self.config
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        audio = crop_batch(self.dataset, c.batch_size, c.crop_seconds, rng)
        targets = self.teacher.units(audio)  # (B, T) from the clean audio
        micro = {"audio": audio, "targets": targets, "alpha": self._alpha(len(audio), g),
                 "mask": span_mask(targets.shape[0], targets.shape[1], c.mask_prob, c.mask_span, g)}
        if self.parallel is not None:
            micro["audio_b"], micro["targets_a"] = self.parallel.batch(self.parallel_units, c.parallel_batch, rng)
            micro["alpha_b"] = self._alpha(len(micro["audio_b"]), g)
        return [micro]

    def loss(self, model: torch.nn.Module, micro: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        mask, targets = micro["mask"], micro["targets"]
        x = self.student.model_input(micro["audio"], micro["alpha"])  # (B, T, 4M): another vocal tract
        logits = self.model.logits(model(x, mask)[-1])  # (B, T, K)
        masked_loss = F.cross_entropy(logits[mask], targets[mask])
        accuracy = (logits[mask].argmax(-1) == targets[mask]).float().mean()
        stats = {"masked_loss": masked_loss.item(), "masked_accuracy": accuracy.item()}
        if self.parallel is None:
            return masked_loss, stats
        # no mask: every aligned frame of B must already carry A's unit
        logits_b = self.model.logits(model(self.student.model_input(micro["audio_b"], micro["alpha_b"]))[-1])
        parallel_loss = F.cross_entropy(logits_b.flatten(0, 1), micro["targets_a"].flatten(), ignore_index=IGNORE)
        stats["parallel_loss"] = parallel_loss.item()
        return masked_loss + self.config.parallel_weight * parallel_loss, stats


def train_iteration(student: Tokenizer, teacher, dataset, config: TokenizerConfig, deadline: float, iteration: int,
                    log: Callable[[str], None] = print, parallel: ParallelSet | None = None) -> list[dict[str, Any]]:
    """Train `student`'s encoder (fresh head) on `MaskedPrediction` with `core.train.fit` until `config.steps` or
    the wall-clock `deadline` (time.time()); returns the history, a record per step: iteration, step, loss (the
    masked loss), masked_accuracy, parallel_loss (with a parallel set), lr, grad_norm, seconds."""
    student.encoder.head.reset_parameters()
    task = MaskedPrediction(student, teacher, dataset, config, parallel)
    history: list[dict[str, Any]] = []

    def on_record(r: dict) -> None:
        if "masked_loss" not in r:
            return
        h = {"iteration": iteration, "step": r["step"], "loss": round(r["masked_loss"], 4),
             "masked_accuracy": round(r["masked_accuracy"], 4), "lr": r["lr"], "grad_norm": round(r["grad_norm"], 4),
             "seconds": r["elapsed_s"]}
        if "parallel_loss" in r:
            h["parallel_loss"] = round(r["parallel_loss"], 4)
        history.append(h)
        if r["step"] == 1 or r["step"] % 50 == 0:
            extra = f", parallel loss {h['parallel_loss']:.3f}" if "parallel_loss" in h else ""
            log(f"iteration {iteration} step {h['step']}: loss {h['loss']:.3f}, "
                f"masked accuracy {h['masked_accuracy']:.3f}{extra}")

    minutes = max(1e-3, deadline - time.time()) / 60
    fit(task, config.train_config(minutes, iteration),
        Run(out_dir=None, identity={}, meta={}, desc=f"tokenizer iteration {iteration}", progress=False,
            on_record=on_record), device=torch.device("cpu"))
    student.encoder.eval()
    return history


def train_tokenizers(corpus_dir, config: TokenizerConfig, log: Callable[[str], None] = print,
                     cache_dir: str | os.PathLike | None = None) -> dict[str, Tokenizer]:
    """Train the baseline and the learned tokenizer on the train split of `corpus_dir`; the parallel renderings
    of the cross-speaker loss are cached in `cache_dir` when given."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    started = time.time()
    deadline = started + 60 * config.max_minutes
    train = open_dataset(corpus_dir, split="train")
    source = {"corpus": str(corpus_dir), "train_hours": round(train.hours, 3), "speakers": len({r.speaker for r in train.recordings})}

    norm_audio = sample_audio(train, config.norm_seconds, config, rng)
    km_audio = sample_audio(train, config.kmeans_seconds, config, rng)

    baseline = Tokenizer("mfcc_kmeans", config, torch.zeros(()), torch.ones(()))
    fit_norm(baseline, norm_audio)
    km = fit_kmeans(baseline, km_audio, config.seed)
    baseline.training = dict(source, kmeans=km, seconds=round(time.time() - started, 1))
    log(f"baseline: k-means over {km['frames']} frames, {km['used']}/{config.num_units} units used ({km['seconds']} s)")

    parallel = (ParallelSet.build(corpus_dir, config, np.random.default_rng(config.seed + 1), cache_dir, log)
                if config.parallel_weight > 0 else None)
    learned = Tokenizer("learned", config, torch.zeros(()), torch.ones(()), encoder=Encoder(config))
    fit_norm(learned, norm_audio)
    teacher, history, kms = baseline, [], []
    for iteration in range(1, config.iterations + 1):
        if iteration == 1:
            until = started + (0.45 if config.iterations > 1 else 0.85) * 60 * config.max_minutes
        else:
            until = deadline - 1.1 * kms[-1]["seconds"]
        history += train_iteration(learned, teacher, train, config, until, iteration, log, parallel)
        if iteration < config.iterations:  # next targets: k-means over this encoder's crop-normalised features
            teacher = CropNormTeacher(Tokenizer("learned", config, learned.mean, learned.std,
                                                encoder=copy.deepcopy(learned.encoder)))
            kms.append(fit_kmeans(teacher, km_audio, config.seed + iteration))
        else:  # the tokenizer's own k-means: global features only, so that it stays local in time
            kms.append(fit_kmeans(learned, km_audio, config.seed + iteration))
        log(f"iteration {iteration}: {sum(h['iteration'] == iteration for h in history)} steps, k-means "
            f"{kms[-1]['used']}/{config.num_units} units used ({kms[-1]['seconds']} s)")
    parallel_summary = None if parallel is None else {
        "renderings": len(parallel.audio), "pairs": len(parallel.pairs), "minutes": round(parallel.seconds / 60, 2),
        "voices": sorted(set(parallel.voices)), "sentences": len(set(parallel.sentence))}
    learned.training = dict(source, kmeans=kms[-1], kmeans_per_iteration=kms, history=_thin(history),
                            parallel=parallel_summary, final_parallel_loss=_mean_tail(history, "parallel_loss"),
                            steps=len(history), seconds=round(time.time() - started, 1),
                            final_loss=_mean_tail(history, "loss"), final_masked_accuracy=_mean_tail(history, "masked_accuracy"))
    return {"mfcc_kmeans": baseline, "learned": learned}


def _mean_tail(history: list[dict], key: str, n: int = 20) -> float | None:
    last = history[-1]["iteration"] if history else None
    tail = [h[key] for h in history if h["iteration"] == last and key in h][-n:]
    return round(float(np.mean(tail)), 4) if tail else None


def _thin(history: list[dict], keep: int = 400) -> list[dict]:
    step = max(1, len(history) // keep)
    return history[::step]


def train_or_load(corpus_dir, config: TokenizerConfig, out_dir: str | os.PathLike,
                  log: Callable[[str], None] = print) -> dict[str, Tokenizer]:
    """Both tokenizers from `out_dir` if they were made there from this config, this code and this corpus
    (`workbench.core.reuse`); else train them and save them there. Training is not resumable part-way (k-means
    and two HuBERT iterations): an interrupted one starts again."""
    out = Path(out_dir)
    parts = {"config": config.to_dict(), "corpus": reuse.input_fingerprint(corpus_dir),
             "code": reuse.code_version("workbench.tokenizer.train")}

    def build(resume: bool) -> None:
        for kind, tok in train_tokenizers(corpus_dir, config, log, cache_dir=out).items():
            tok.save(out / kind)

    reuse.make(out, parts, build, what="the tokenizers", resumable=lambda d: False, log=log)
    return {kind: Tokenizer.load(out / kind) for kind in KINDS}
