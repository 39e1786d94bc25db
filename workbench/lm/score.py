"""Log-likelihood of token sequences under a speech LM, the quantity zero-shot probes compare.

A sequence x_0 .. x_{n-1} is scored from its first token, as one stream from a fresh state (a stream's first
token is a reset, as in training): its log-likelihood is the sum over the scored positions i of
log p(x_i | x_0 .. x_{i-1}) in nats, from the log-softmax over the LM's whole vocabulary (the normalisation of the
training loss). The first token has no context and no BOS token exists here, so it is never scored.

A probe pair (a real item and a changed one) usually starts the same way -- a story's prefix is the same audio in
both members, and its tokens agree up to the tokenizer's receptive field before the change. `score_pair`
therefore finds the longest common prefix c of the two token sequences, runs it once, and scores each sequence
from position max(c, 1) on, from the same state. The tokens of the common prefix contribute identical terms to
both sums (same context, same token), so leaving them out changes no comparison of sums; it keeps the per-token
mean about what differs instead of diluting it in a long shared prefix.

Two normalisations (`SequenceScore`):
- ``sum``: the summed log-likelihood (ZeroSpeech 2021's and spoken StoryCloze's usual score);
- ``mean``: the sum divided by the number of scored tokens, so that a member that is a few tokens longer (a
  word spoken 40 ms longer) is not penalised for its length alone.

Sequences of any length are scored in chunks that carry the model's cache (Griffin: constant state; the
Transformer: its growing KV cache), so an 8-minute story prefix costs no more memory than decoding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.device import autocast
from workbench.lm.model import ModelCache, SpeechLM

NORMALISATIONS = ("mean", "sum")


@dataclass(frozen=True)
class SequenceScore:
    """The log-likelihood (nats) of the scored tokens of one sequence and how many were scored."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        return self.logprob / self.tokens if self.tokens else math.nan

    def value(self, normalisation: str = "mean") -> float:
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {normalisation!r}; choose one of {NORMALISATIONS}")
        return self.mean if normalisation == "mean" else self.logprob


@dataclass(frozen=True)
class PairScore:
    """A pair's two scores (the real item first) and the length of the common token prefix they share."""

    correct: SequenceScore
    incorrect: SequenceScore
    common_prefix: int

    def outcome(self, normalisation: str = "mean") -> float:
        """1 if the real item scores higher, 0 if lower, 0.5 for a tie (ZeroSpeech's convention)."""
        a, b = self.correct.value(normalisation), self.incorrect.value(normalisation)
        return 1.0 if a > b else 0.0 if a < b else 0.5


def common_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    """Length of the longest common prefix of two token sequences."""
    a, b = np.asarray(a), np.asarray(b)
    n = min(len(a), len(b))
    diff = np.nonzero(a[:n] != b[:n])[0]
    return int(diff[0]) if len(diff) else n


def _as_tokens(x: Sequence[int] | np.ndarray | torch.Tensor, vocab: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.long).reshape(-1)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= vocab):
        raise ValueError(f"token ids must lie in [0, {vocab}), got [{int(t.min())}, {int(t.max())}]")
    return t


def _run(model: SpeechLM, tokens: torch.Tensor, cache: ModelCache, chunk: int, precision: str,
         targets: torch.Tensor | None) -> tuple[torch.Tensor, ModelCache, torch.Tensor | None]:
    """Feed `tokens` (t,) from `cache` in chunks; returns the log-probs of `targets` (t,) (the token after each
    input), the new cache and the last position's log-softmax (for the token that follows)."""
    device = next(model.parameters()).device
    out, last = [], None
    for s in range(0, tokens.numel(), chunk):
        piece = tokens[s: s + chunk].to(device)[None]
        with autocast(device, precision):
            logits, cache = model(piece, None, cache)
        logp = F.log_softmax(logits[0].float(), dim=-1)
        if targets is not None:
            tgt = targets[s: s + chunk].to(device)
            out.append(logp.gather(1, tgt[:, None])[:, 0])
        last = logp[-1]
    return (torch.cat(out).cpu() if out else torch.zeros(0)), cache, last


@torch.no_grad()
def token_logprobs(model: SpeechLM, tokens: Sequence[int] | np.ndarray | torch.Tensor, *, chunk: int = 1024,
                   precision: str = "fp32") -> torch.Tensor:
    """log p(x_i | x_<i) for i = 1 .. n - 1 (n - 1 values, fp32 on the CPU) of one sequence from a fresh state."""
    t = _as_tokens(tokens, model.config.vocab_size)
    if t.numel() < 2:
        return torch.zeros(0)
    device = next(model.parameters()).device
    logp, _, _ = _run(model, t[:-1], model.init_cache(1, device), chunk, precision, t[1:])
    return logp


def sequence_score(model: SpeechLM, tokens: Sequence[int] | np.ndarray | torch.Tensor, *, chunk: int = 1024,
                   precision: str = "fp32") -> SequenceScore:
    """The log-likelihood of a whole sequence (every token but the first)."""
    logp = token_logprobs(model, tokens, chunk=chunk, precision=precision)
    return SequenceScore(float(logp.double().sum()), int(logp.numel()))


@torch.no_grad()
def score_pair(model: SpeechLM, correct: Sequence[int] | np.ndarray | torch.Tensor,
               incorrect: Sequence[int] | np.ndarray | torch.Tensor, *, chunk: int = 1024,
               precision: str = "fp32") -> PairScore:
    """Score a probe pair: the common token prefix once, then each member's remaining tokens from that state (see
    the module docstring). Each member needs at least two tokens."""
    vocab = model.config.vocab_size
    a, b = _as_tokens(correct, vocab), _as_tokens(incorrect, vocab)
    if a.numel() < 2 or b.numel() < 2:
        raise ValueError(f"a scored sequence needs at least 2 tokens, got {a.numel()} and {b.numel()}")
    c = min(common_prefix(a.numpy(), b.numpy()), a.numel() - 1, b.numel() - 1)
    device = next(model.parameters()).device
    cache = model.init_cache(1, device)
    if c >= 1:
        # the prefix's own log-probs are the same in both members: they are not needed
        _, cache, first = _run(model, a[:c], cache, chunk, precision, None)
    scores = []
    for seq in (a, b):
        if c >= 1:
            head = first[seq[c].to(first.device)].reshape(1).cpu()  # the first token after the common prefix
            rest, _, _ = _run(model, seq[c:-1], cache, chunk, precision, seq[c + 1:])
            logp = torch.cat([head, rest])
        else:
            logp, _, _ = _run(model, seq[:-1], cache, chunk, precision, seq[1:])
        scores.append(SequenceScore(float(logp.double().sum()), int(logp.numel())))
    return PairScore(scores[0], scores[1], c)


__all__ = ["NORMALISATIONS", "PairScore", "SequenceScore", "common_prefix", "score_pair", "sequence_score",
           "token_logprobs"]
