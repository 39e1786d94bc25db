"""Length extrapolation: per-position NLL on held-out long recordings, far beyond the training window.

Each held-out recording is scored from its first token, in chunks that carry the model's cache (Griffin: a
constant-size state; the Transformer: a growing KV cache over everything so far), so a model sees the whole
recording as one stream -- exactly what happens when it generates for minutes. The per-position NLL is averaged
over recordings and stratified by time (first minute, 1-2 min, ...). The paper's claim: Griffin trained on
short windows stays flat far beyond them, while a Transformer degrades past its training length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.device import autocast, pick_device
from workbench.lm.config import TOKENS_PER_SECOND
from workbench.lm.data import TokenCorpus
from workbench.lm.model import SpeechLM, load_model


@torch.no_grad()
def position_nll(model: SpeechLM, tokens: torch.Tensor, chunk: int, precision: str = "auto") -> torch.Tensor:
    """tokens (b, t) whole recordings from their start -> NLL of each next token (b, t - 1), in fp32."""
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    cache = model.init_cache(tokens.shape[0], device)
    out = []
    for s in range(0, tokens.shape[1] - 1, chunk):
        inputs, targets = tokens[:, s: s + chunk], tokens[:, s + 1: s + chunk + 1]
        inputs = inputs[:, : targets.shape[1]]
        with autocast(device, precision):
            logits, cache = model(inputs, None, cache)
        out.append(F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none"))
    return torch.cat(out, dim=1).cpu()


def held_out_tokens(corpus: TokenCorpus, max_seconds: float | None = None, max_recordings: int | None = None
                    ) -> torch.Tensor:
    """The held-out recordings as one (b, t) batch, all cut to the shortest one (and to max_seconds)."""
    recs = corpus.split(corpus.held_out_split())[:max_recordings]
    length = min(r.num_tokens for r in recs)
    if max_seconds is not None:
        length = min(length, int(max_seconds * TOKENS_PER_SECOND))
    return torch.from_numpy(np.stack([np.asarray(corpus.tokens(r)[:length], dtype=np.int64) for r in recs]))


def stratify(nll: torch.Tensor, bin_seconds: float) -> list[dict]:
    """Mean NLL over recordings and over each time bin; NLL index i is the prediction of token i + 1."""
    per_position = nll.mean(0)
    times = (torch.arange(per_position.shape[0]) + 1) / TOKENS_PER_SECOND
    bins = []
    edges = np.arange(0.0, float(times[-1]) + bin_seconds, bin_seconds)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (times >= lo) & (times < hi)
        if sel.any():
            bins.append({"from_s": float(lo), "to_s": float(hi), "nll": float(per_position[sel].mean()),
                         "positions": int(sel.sum())})
    return bins


def evaluate_runs(runs: dict[str, str | Path], tokens_dir: str | Path, *, max_seconds: float | None = None,
                  max_recordings: int | None = None, bin_seconds: float = 60.0, device: str | None = None
                  ) -> tuple[dict, dict[str, torch.Tensor]]:
    """Score each run's latest checkpoint on the same held-out recordings. Returns the JSON payload (lm.json)
    and the per-position NLL curves (name -> (t - 1,) tensor, averaged over recordings) for plotting."""
    corpus = TokenCorpus(tokens_dir)
    tokens = held_out_tokens(corpus, max_seconds, max_recordings)
    seconds = tokens.shape[1] / TOKENS_PER_SECOND
    payload = {"tokens": str(tokens_dir), "synthetic_tokens": corpus.synthetic,
               "held_out": {"split": corpus.held_out_split(), "recordings": tokens.shape[0], "seconds": seconds},
               "bin_seconds": bin_seconds, "models": {}}
    curves = {}
    for name, run in runs.items():
        model, meta = load_model(run, pick_device(device))
        window = meta["train_config"]["window_tokens"]
        nll = position_nll(model, tokens, chunk=window, precision=meta["train_config"]["precision"])
        curves[name] = nll.mean(0)
        inside, beyond = nll[:, : window - 1], nll[:, window - 1:]
        payload["models"][name] = {
            "run": str(run), "model": meta["model"], "parameters": meta["parameters"]["total"],
            "steps": meta["step"], "train_window_s": window / TOKENS_PER_SECOND,
            "extrapolation_factor": round(tokens.shape[1] / window, 2),
            "nll_within_train_window": float(inside.mean()),
            "nll_beyond_train_window": float(beyond.mean()) if beyond.numel() else None,
            "nll_by_time": stratify(nll, bin_seconds),
        }
    return payload, curves


def per_second(curve: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A per-position NLL curve averaged over each second: (times in s, mean NLL), for plotting."""
    n = curve.shape[0] // TOKENS_PER_SECOND * TOKENS_PER_SECOND
    means = curve[:n].reshape(-1, TOKENS_PER_SECOND).mean(1).numpy()
    return np.arange(len(means)) + 1.0, means
