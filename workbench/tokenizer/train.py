"""Training both tokenizers on a corpus's train split, within a wall-clock budget (`config.max_minutes`).

1. Baseline (``mfcc_kmeans``): global mean/std of stacked MFCCs, then k-means over `kmeans_seconds` of frames.
2. Learned, HuBERT-style masked prediction (Hsu et al. 2021), made speaker-invariant ContentVec-style
   (Qian et al. 2022) by perturbing only the student and normalising only the teacher:
     teacher: clean crop -> units (iteration 1: the baseline's k-means units; iteration 2: k-means over the
              iteration-1 encoder's block-`teacher_layer` features, standardised over each crop: CropNormTeacher)
     student: the same crop with VTLP (alpha ~ U[0.8, 1.2], a different vocal tract, same timing) -> encoder
              with ~45% of frames replaced by a mask vector -> predict the teacher's unit at masked frames
   Iteration 2 continues from the iteration-1 weights with a fresh prediction head (cheaper than restarting,
   which matters on 2 CPU cores). Phone labels are never read here: the tokenizer is textless.
3. Final k-means over the trained encoder's block-`feature_layer` features gives the learned tokenizer's units.

Budget: iteration 1 trains until 45% of `max_minutes`; iteration 2 until the budget minus the time the
k-means step took after iteration 1 (the final k-means costs the same); `steps` caps each iteration too.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from workbench.tokenizer.config import FRAME, SAMPLE_RATE, TokenizerConfig
from workbench.tokenizer.encoder import Encoder, span_mask
from workbench.tokenizer.kmeans import assign, kmeans
from workbench.tokenizer.parallel import IGNORE, ParallelSet
from workbench.tokenizer.tokenizer import KINDS, Tokenizer, TokenizerError


def crop_batch(dataset, n: int, seconds: float, rng: np.random.Generator) -> torch.Tensor:
    """(n, S) random crops of `seconds` (S a multiple of 640 samples) from the train recordings."""
    length = int(round(seconds * SAMPLE_RATE / FRAME)) * FRAME
    crops = []
    for _ in range(n):
        audio = dataset.random_crop(length / SAMPLE_RATE, rng)[2][:length]
        crops.append(np.pad(audio, (0, length - len(audio))))
    return torch.from_numpy(np.stack(crops))


def sample_audio(dataset, total_seconds: float, config: TokenizerConfig, rng: np.random.Generator) -> torch.Tensor:
    """(n, S) crops adding up to `total_seconds`: the frames that normalisation stats and k-means see."""
    n = max(1, math.ceil(total_seconds / config.crop_seconds))
    return crop_batch(dataset, n, config.crop_seconds, rng)


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


def train_iteration(student: Tokenizer, teacher: Tokenizer, dataset, config: TokenizerConfig, deadline: float,
                    rng: np.random.Generator, iteration: int, log: Callable[[str], None],
                    parallel: ParallelSet | None = None) -> list[dict[str, Any]]:
    """Masked prediction of `teacher`'s units from VTLP-perturbed audio until `config.steps` or `deadline`; with a
    parallel set, plus the cross-speaker loss: predict the teacher's units of voice A from voice B's audio."""
    enc = student.encoder
    use_parallel = parallel is not None and parallel.pairs and config.parallel_weight > 0
    parallel_units = parallel.teacher_units(teacher) if use_parallel else None
    enc.head.reset_parameters()
    enc.train()
    opt = torch.optim.AdamW(enc.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(config.seed + iteration)
    lo, hi = config.vtlp
    started, history = time.time(), []
    budget = max(1e-3, deadline - started)
    for step in range(config.steps):
        progress = max(step / config.steps, (time.time() - started) / budget)
        if progress >= 1.0:
            break
        lr = config.lr * min(1.0, (step + 1) / config.warmup_steps) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in opt.param_groups:
            group["lr"] = lr
        audio = crop_batch(dataset, config.batch_size, config.crop_seconds, rng)
        targets = teacher.units(audio)  # (B, T) from the clean audio
        alpha = lo + (hi - lo) * torch.rand(len(audio), generator=g)
        x = student.model_input(audio, alpha)  # (B, T, 4M) the student hears another vocal tract
        mask = span_mask(x.shape[0], x.shape[1], config.mask_prob, config.mask_span, g)
        logits = enc.logits(enc(x, mask)[-1])  # (B, T, K)
        loss = masked_loss = F.cross_entropy(logits[mask], targets[mask])
        if use_parallel:  # no mask: every aligned frame of B must already carry A's unit
            audio_b, targets_a = parallel.batch(parallel_units, config.parallel_batch, rng)
            alpha_b = lo + (hi - lo) * torch.rand(len(audio_b), generator=g)
            logits_b = enc.logits(enc(student.model_input(audio_b, alpha_b))[-1])
            parallel_loss = F.cross_entropy(logits_b.flatten(0, 1), targets_a.flatten(), ignore_index=IGNORE)
            loss = masked_loss + config.parallel_weight * parallel_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
        opt.step()
        acc = (logits[mask].argmax(-1) == targets[mask]).float().mean()
        history.append({"iteration": iteration, "step": step, "loss": round(masked_loss.item(), 4),
                        "masked_accuracy": round(acc.item(), 4), "lr": lr, "seconds": round(time.time() - started, 2)})
        if use_parallel:
            history[-1]["parallel_loss"] = round(parallel_loss.item(), 4)
        if step % 50 == 0:
            extra = f", parallel loss {parallel_loss.item():.3f}" if use_parallel else ""
            log(f"iteration {iteration} step {step}: loss {masked_loss.item():.3f}, masked accuracy {acc.item():.3f}{extra}")
    enc.eval()
    return history


def train_tokenizers(corpus_dir, config: TokenizerConfig, log: Callable[[str], None] = print,
                     cache_dir: str | os.PathLike | None = None) -> dict[str, Tokenizer]:
    """Train the baseline and the learned tokenizer on the train split of `corpus_dir`; the parallel renderings
    of the cross-speaker loss are cached in `cache_dir` when given."""
    from workbench.data.loaders import open_dataset

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
        history += train_iteration(learned, teacher, train, config, until, rng, iteration, log, parallel)
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
    """Both tokenizers from `out_dir` if they were trained there with this config on this corpus; else train
    them and save them there."""
    out = Path(out_dir)
    try:
        toks = {kind: Tokenizer.load(out / kind) for kind in KINDS}
        if all(t.config == config and t.training.get("corpus") == str(corpus_dir) for t in toks.values()):
            log(f"loaded the tokenizers trained earlier from {out}")
            return toks
    except TokenizerError:
        pass
    toks = train_tokenizers(corpus_dir, config, log, cache_dir=out)
    for kind, tok in toks.items():
        tok.save(out / kind)
    return toks
