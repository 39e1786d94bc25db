"""Streaming decoding: prefill the prompt in parallel, then one token at a time from the model's cache.

Griffin's cache has a constant size (RG-LRU state, conv buffer of the last 3 inputs, a ring buffer of the
attention window's keys/values), so it can continue for as long as one likes; the Transformer's KV cache grows
with every token. Sampling is batched and seeded: temperature (0 = greedy), top-k, top-p.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterator

import torch

from workbench.core import validate
from workbench.core.device import autocast
from workbench.lm.model import ModelCache, SpeechLM


def sample_next(logits: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None, num_units: int | None = None) -> torch.Tensor:
    """logits (b, v) -> tokens (b,). `num_units` < v: only ids below it are drawn (an LM whose vocabulary is
    larger than its tokenizer's codebook must not emit ids that are no unit at all)."""
    if num_units is not None and num_units < logits.shape[-1]:
        logits = logits[:, :num_units]
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # drop a token once the mass before it already reaches top_p (the most likely token always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def stream(model: SpeechLM, prompt: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, seed: int = 0, precision: str = "auto",
           cache: ModelCache | None = None, observe: Callable[[ModelCache], None] | None = None,
           num_units: int | None = None) -> Iterator[torch.Tensor]:
    """Yield (b,) tokens one step at a time after prefilling `prompt` (b, t0 >= 1).

    With `cache` the stream continues from it (the prompt is then the tokens that follow the cached ones); the
    benchmark uses this to time decoding at long contexts. The given cache object itself is never modified.
    `observe`, if given, sees the cache after the prefill and after every step (long-form generation records
    the cache's size over time with it)."""
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must be (batch, time) with at least one token, got {tuple(prompt.shape)}")
    check_sampling(temperature, top_k, top_p, seed)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    if cache is None:
        cache = model.init_cache(prompt.shape[0], device)
    with autocast(device, precision):
        logits, cache = model(prompt.to(device), None, cache)
        if observe is not None:
            observe(cache)
        for i in range(max_new_tokens):
            token = sample_next(logits[:, -1], generator, temperature, top_k, top_p, num_units)
            yield token
            if i + 1 < max_new_tokens:
                logits, cache = model(token[:, None], None, cache)
                if observe is not None:
                    observe(cache)


def check_sampling(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   seed: int = 0, prefix: str = "") -> None:
    """UserError (one line naming the setting and its range) unless temperature is finite and >= 0, top_k is
    None or >= 1, top_p is None or in (0, 1], and seed in [0, 2**63 - 1]. `prefix`: "--" for CLI flags."""
    validate.temperature(temperature, f"{prefix}temperature")
    validate.top_k(top_k, f"{prefix}top{'-' if prefix else '_'}k")
    validate.top_p(top_p, f"{prefix}top{'-' if prefix else '_'}p")
    validate.seed(seed, f"{prefix}seed")


def generate(model: SpeechLM, prompt: torch.Tensor, max_new_tokens: int, progress: bool = False,
             **sampling) -> torch.Tensor:
    """The prompt followed by `max_new_tokens` sampled tokens: (b, t0 + max_new_tokens), written into one
    preallocated tensor (memory: the output itself, plus the model's cache). `progress`: a tqdm bar of tokens on
    stderr."""
    from tqdm.auto import tqdm

    validate.count("max_new_tokens", max_new_tokens, 0)
    device = next(model.parameters()).device
    b, t0 = prompt.shape[0], prompt.shape[-1]
    out = torch.empty(b, t0 + max_new_tokens, dtype=torch.long, device=device)
    out[:, :t0] = prompt.to(device)
    bar = tqdm(total=max_new_tokens, desc="sampling", unit="token", disable=not progress, file=sys.stderr)
    for i, token in enumerate(stream(model, prompt, max_new_tokens, **sampling)):
        out[:, t0 + i] = token
        bar.update(1)
    bar.close()
    return out
