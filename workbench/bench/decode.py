"""`bench decode`: decoding time, throughput and memory against length, Griffin vs the SpeechTransformer
(SpeechSSM, Figures 7 and 8).

Both models have matched parameter counts (`matched_transformer`) and decode through their real streaming
path, `workbench.lm.generate.stream` (Griffin: RG-LRU state + conv buffer + a constant-size ring buffer of the
local-attention window; Transformer: a KV cache that grows by one slot per token), sampling included. Weights
are random unless trained runs are given (`--griffin-run/--transformer-run`): the cost of a step does not
depend on the weights' values.

Method, per model, along one batch-1 stream that is prefilled (in chunks, untimed) to each length L in turn:

- latency: the median time of `latency_window` decode steps (after `warmup_steps`) starting at context L
  (and at the end of the prompt);
- decode time per sample (Figure 7, batch 1): a real full decode -- prefill of a fixed `prompt_tokens` prompt,
  then step-by-step generation -- up to `full_decode_max` tokens, read off at every length on the way (the
  work up to L is the same as a run that stops at L). Beyond `full_decode_max` the step-by-step part is
  integrated from the measured latencies (linear between measured contexts; both models' step cost is affine
  in context), marked `integrated` in the JSON and `*` in the table. Lengths up to `full_decode_max` report
  both, which checks the integration;
- peak memory: bytes of tensors alive during one decode step at context L (the cache going in, the new cache
  and every activation; model weights excluded, they are the same for both models). On CUDA this is
  `torch.cuda.max_memory_allocated` over the step less what was allocated before it other than the cache; on
  CPU, which keeps no allocator statistics, a dispatch-mode tracker adds up the storages every ATen op
  allocates and drops them when freed (exact at tensor level; kernels' internal scratch is not seen);
- throughput (Figure 8): the largest batch whose measured step peak fits `budget_mb` at context L, searched:
  an analytic estimate (2x the exact cache bytes, since the old and new cache coexist during a step, plus
  activations) starts the fixed-point iteration B <- floor(B * budget / peak(B)) on measured peaks (peak is
  affine in B), and only measured batches are reported. The batch-1 cache is tiled to that batch, step latency
  is timed at context L and at the end of the prompt, and throughput = B * (L - prompt) / the integrated
  decode time (prompt prefill excluded).

The headline latency ratio (`griffin_latency_ratio_16k_vs_128`) comes from `flatness_rounds` windows timed
alternately at the two contexts, so load drift on a shared machine hits both sides of each ratio alike.

Measured, laptop preset (Griffin 11.1M / Transformer 11.4M parameters, random weights, 1 torch thread on 2 CPU
cores shared with two training jobs, load average 3.7 at start / 3.6 at end, 366 s in all):

    length   decode s/sample (G / T)   ms/token (G / T)   batch in 2 GB (G / T)   tok/s (G / T)   G/T
       128        0.84 / 1.12              8.5 / 9.4          3001 / 1115         1590 / 1138     1.4
      2048       22.5  / 34.9             12.9 / 16.5         3001 / 70           1594 / 126     12.6
     16384      227*   / 667*             17.2 / 69.3         3001 / 8            1679 / 16     105

    (* integrated from step latencies; at lengths decoded in full the integral was within 35% of the real
    decode.) Griffin latency 16k/128: 0.86x (interleaved rounds 0.65-1.71: flat within this machine's noise);
    Transformer: 7.3x. Peak step memory at batch 1: Griffin 0.68 MB at every length; Transformer 1.8 MB at 128,
    233 MB at 16k. The Transformer's cache grows by `torch.cat`, so every step also copies it: a preallocated
    cache would be faster by a constant factor, not asymptotically, and would halve its transient memory.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from typing import Any, Callable, Iterable

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from workbench.bench.machine import machine_info
from workbench.lm.config import ATTENTION, MODELS, ModelConfig
from workbench.lm.generate import stream
from workbench.lm.model import ModelCache, SpeechLM, build_model, count_parameters, model_config

MB = 2**20
TARGETS = {  # from the issue; recorded next to the measurements, never asserted
    "griffin_latency_ratio_16k_vs_128_at_most": 1.2,
    "throughput_ratio_16k_at_least": 20.0,
}


@dataclasses.dataclass(frozen=True)
class DecodeBenchConfig:
    model_preset: str = "laptop"  # workbench.lm preset; the Transformer is its parameter-matched twin
    lengths: tuple[int, ...] = tuple(128 * 2**i for i in range(8))  # 128 .. 16384 tokens
    prompt_tokens: int = 64
    budget_mb: float = 2048.0  # decode state + activations of one step at the throughput batch (no weights)
    full_decode_max: int = 2048  # batch-1 real full decodes up to this length; integrated beyond
    latency_window: int = 16  # timed steps per latency figure (median)
    throughput_steps: int = 3  # timed steps per throughput figure (median)
    warmup_steps: int = 2
    flatness_rounds: int = 5  # interleaved latency windows at the short and the long context (see `flatness`)
    prefill_chunk: int = 1024  # chunk size when building caches (bounds the Transformer's attention mask)
    max_batch: int = 65536  # guard for the batch search
    threads: int | None = None  # torch threads; None: torch's default
    device: str = "auto"  # auto: cuda if available
    precision: str = "auto"  # as in `lm generate`: bf16 autocast on CUDA, fp32 on CPU
    seed: int = 0
    griffin_run: str | None = None  # trained run directories instead of random weights
    transformer_run: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "lengths", tuple(sorted(set(self.lengths))))
        problems = []
        if not self.lengths or self.lengths[0] <= self.prompt_tokens:
            problems.append(f"every length must exceed the prompt ({self.prompt_tokens} tokens)")
        if min(self.prompt_tokens, self.latency_window, self.throughput_steps, self.flatness_rounds) < 1 \
                or self.warmup_steps < 0:
            problems.append("prompt_tokens, latency_window, throughput_steps and flatness_rounds must be positive")
        if self.budget_mb <= 0 or self.prefill_chunk < 1 or self.max_batch < 1:
            problems.append("budget_mb, prefill_chunk and max_batch must be positive")
        if problems:
            from workbench.core.errors import UserError

            raise UserError("bad decode bench config: " + "; ".join(problems))


PRESETS = {
    "smoke": DecodeBenchConfig(model_preset="smoke", lengths=(16, 32, 64, 128, 256), prompt_tokens=8,
                               budget_mb=8.0, full_decode_max=256, latency_window=4, throughput_steps=2,
                               warmup_steps=1, flatness_rounds=2, prefill_chunk=64, max_batch=4096,
                               threads=1),
    "laptop": DecodeBenchConfig(),
    # RecurrentGemma-2B scale on one 80 GB GPU: ~11 GB of fp32 weights, 40 GB for decoding, the rest spare
    "paper": DecodeBenchConfig(model_preset="paper", lengths=tuple(128 * 2**i for i in range(9)),
                               budget_mb=40_000.0, full_decode_max=32768, latency_window=32, throughput_steps=8,
                               prefill_chunk=2048),
}


# ------------------------------------------------------------------------------------ memory accounting


def state_bytes(config: ModelConfig, length: int, batch: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Exact bytes of the decode cache after `length` tokens (what `cache_nbytes` of the real cache gives):
    per recurrent block the fp32 RG-LRU state and c - 1 conv inputs; per attention block keys and values
    (head dim each, multi-query) and an int64 stream index per slot, with `window` slots (Griffin's ring
    buffer, allocated full) or `length` slots (the Transformer's growing cache)."""
    size = torch.empty((), dtype=dtype).element_size()
    lru = config.lru_width or config.width
    total = 8  # ModelCache.positions: one int64 per row
    for kind in config.block_types:
        if kind == ATTENTION:
            slots = config.attention_window if config.attention_window is not None else length
            total += slots * (2 * config.head_dim * size + 8)
        else:
            total += lru * 4 + (config.conv_width - 1) * lru * size
    return batch * total


def activation_bytes_estimate(config: ModelConfig, length: int, batch: int = 1) -> int:
    """Rough bytes of one decode step's temporaries (the search's starting point only; peaks are measured):
    the fp32 logits and their soft-cap copies, the MLP's hidden activations, and for an attention block over
    s slots its int64 index/distance tensors, masks and per-head scores."""
    s = (config.attention_window or length) + 1
    attention = s * (4 * 8 + 4 + 2 * config.num_heads * 4 + 2 * config.head_dim * 4)
    mlp = 4 * config.mlp_expansion * config.width * 4
    logits = 3 * config.vocab_size * 4
    return batch * (logits + max(mlp, attention if ATTENTION in config.block_types else 0) + 8 * config.width * 4)


def estimated_step_bytes(config: ModelConfig, length: int, batch: int = 1) -> int:
    # the old and the new cache coexist while a step runs (cat / index_copy are out of place)
    return 2 * state_bytes(config, length, batch) + activation_bytes_estimate(config, length, batch)


class _LiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storages alive, counting `start` tensors and every storage ATen ops allocate
    while active; a storage leaves the count when it is freed."""

    def __init__(self, start: Iterable[torch.Tensor]):
        super().__init__()
        self.live: dict[StorageWeakRef, int] = {}
        self.current = self.peak = 0
        for t in start:
            self._add(t)

    def _add(self, t: object) -> None:
        if isinstance(t, torch.Tensor):
            storage = t.untyped_storage()
            ref = StorageWeakRef(storage)
            if ref not in self.live:
                self.live[ref] = storage.nbytes()
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for ref in [r for r in self.live if r.expired()]:  # freed since the last op
            self.current -= self.live.pop(ref)
        # an output sharing an input's storage (a view, an in-place op) allocated nothing: this keeps views of
        # the untracked weights out of the count
        inputs = {StorageWeakRef(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and StorageWeakRef(t.untyped_storage()) not in inputs:
                self._add(t)
        return out


def _tensors(obj: object) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if dataclasses.is_dataclass(obj):
        return [t for f in dataclasses.fields(obj) for t in _tensors(getattr(obj, f.name))]
    return []


def step_peak_bytes(model: SpeechLM, cache: ModelCache, token: torch.Tensor, precision: str = "auto") -> int:
    """Measured peak bytes of one real decode step from `cache` (cache + activations + new cache)."""
    device = token.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        others = torch.cuda.memory_allocated(device) - cache.nbytes()
        torch.cuda.reset_peak_memory_stats(device)
        for _ in stream(model, token, 1, cache=cache, precision=precision):
            pass
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - others)
    with _LiveBytes(_tensors(cache) + [token]) as tracker:
        for _ in stream(model, token, 1, cache=cache, precision=precision):
            pass
    return tracker.peak


def tile_cache(cache: ModelCache, batch: int) -> ModelCache:
    """A batch-`batch` copy of a batch-1 cache (every row the same context; a step's cost does not depend on
    the rows' contents, only on their shapes)."""

    def tile(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.expand(batch, *obj.shape[1:]).clone()
        if isinstance(obj, list):
            return [tile(o) for o in obj]
        if dataclasses.is_dataclass(obj):
            return dataclasses.replace(obj, **{f.name: tile(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
        return obj

    return tile(cache)


def find_max_batch(model: SpeechLM, cache: ModelCache, budget_bytes: int, *, max_batch: int = 65536,
                   precision: str = "auto", start: int | None = None) -> dict[str, Any]:
    """The largest batch whose measured decode-step peak at `cache`'s context fits `budget_bytes`.

    Starts from `start` (else the analytic estimate) and iterates B <- floor(B * budget / peak(B)) on measured
    peaks, never above a batch that failed; returns batch 0 if batch 1 does not fit. Every trial is recorded."""
    length = cache.index
    token = torch.zeros(1, 1, dtype=torch.long, device=cache.positions.device)
    if start is None:
        start = budget_bytes // max(1, estimated_step_bytes(model.config, length))
    trials: list[dict[str, int]] = []
    best, best_peak, failed = 0, None, max_batch + 1
    b = max(1, min(int(start), max_batch))
    for _ in range(8):
        peak = step_peak_bytes(model, tile_cache(cache, b), token.expand(b, 1), precision)
        trials.append({"batch": b, "peak_bytes": peak})
        if peak <= budget_bytes:
            best, best_peak = b, peak
        else:
            failed = min(failed, b)
        nxt = min(int(b * budget_bytes / peak), failed - 1, max_batch)
        if peak > budget_bytes:
            nxt = min(nxt, b - 1)
        if nxt < 1 or nxt == best or any(t["batch"] == nxt for t in trials):
            break
        b = nxt
    return {"batch": best, "peak_bytes": best_peak, "trials": trials,
            "estimate_bytes_per_row": estimated_step_bytes(model.config, length)}


# ------------------------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def time_steps(model: SpeechLM, cache: ModelCache, batch: int, steps: int, warmup: int, precision: str = "auto",
               seed: int = 0) -> float:
    """Median seconds per decode step (forward + sampling) continuing `cache` (tiled to `batch`)."""
    device = cache.positions.device
    sync = _sync(device)
    cache = cache if batch == cache.positions.shape[0] else tile_cache(cache, batch)
    token = torch.zeros(batch, 1, dtype=torch.long, device=device)
    stamps = []
    sync()
    # the first yield follows the step that consumes `token`; each later one follows one more step
    for _ in stream(model, token, warmup + steps + 1, cache=cache, precision=precision, seed=seed):
        sync()
        stamps.append(time.perf_counter())
    diffs = [b - a for a, b in zip(stamps, stamps[1:])][warmup:]
    return statistics.median(diffs)


def extend(model: SpeechLM, cache: ModelCache, length: int, chunk: int, generator: torch.Generator) -> ModelCache:
    """Prefill random tokens (in chunks) until the cache holds `length` tokens."""
    device = cache.positions.device
    with torch.no_grad():
        while cache.index < length:
            n = min(chunk, length - cache.index)
            tokens = torch.randint(0, model.config.vocab_size, (cache.positions.shape[0], n), generator=generator)
            _, cache = model(tokens.to(device), None, cache)
    return cache


def full_decode(model: SpeechLM, prompt: torch.Tensor, length: int, precision: str, seed: int) -> list[float]:
    """Seconds from the start of a batch-1 decode (prompt prefill included) until the sample holds
    prompt + 1, prompt + 2, ..., `length` tokens."""
    device = prompt.device
    sync = _sync(device)
    sync()
    start = time.perf_counter()
    times = []
    for _ in stream(model, prompt, length - prompt.shape[1], precision=precision, seed=seed):
        sync()
        times.append(time.perf_counter() - start)
    return times


def integrate(latency: dict[int, float], start: int, stop: int) -> float:
    """Seconds for the steps taking a sample from `start` to `stop` tokens, the step at context p costing the
    latency interpolated linearly between measured contexts (held constant outside them)."""
    points = sorted(latency.items())

    def at(p: float) -> float:
        if p <= points[0][0]:
            return points[0][1]
        for (p0, l0), (p1, l1) in zip(points, points[1:]):
            if p <= p1:
                return l0 + (l1 - l0) * (p - p0) / (p1 - p0)
        return points[-1][1]

    # trapezoids between the breakpoints inside [start, stop] (exact for a piecewise-linear latency)
    cuts = sorted({start, stop, *(p for p, _ in points if start < p < stop)})
    return sum((b - a) * (at(a) + at(b)) / 2 for a, b in zip(cuts, cuts[1:]))


# ----------------------------------------------------------------------------------------- the bench


def load_models(config: DecodeBenchConfig, device: torch.device) -> dict[str, SpeechLM]:
    from workbench.lm.model import load_model

    models = {}
    for name in MODELS:
        run = getattr(config, f"{name}_run")
        if run:
            models[name] = load_model(run, device)[0]
        else:
            torch.manual_seed(config.seed)
            models[name] = build_model(model_config(config.model_preset, name), device).eval()
    return models


def bench_model(model: SpeechLM, config: DecodeBenchConfig, device: torch.device,
                log: Callable[[str], None]) -> dict[str, Any]:
    """Every figure for one model (see the module docstring for the method)."""
    p, budget = config.prompt_tokens, int(config.budget_mb * MB)
    generator = torch.Generator().manual_seed(config.seed)
    prompt = torch.randint(0, model.config.vocab_size, (1, p), generator=generator).to(device)
    timed = dict(warmup=config.warmup_steps, precision=config.precision, seed=config.seed)

    full_to = min(config.full_decode_max, config.lengths[-1])
    for _ in stream(model, prompt, config.warmup_steps + 1, precision=config.precision):  # untimed: first-call costs
        pass
    full = full_decode(model, prompt, full_to, config.precision, config.seed) if full_to > p else []
    log(f"  full batch-1 decode to {full_to} tokens: {full[-1] if full else 0:.1f}s")

    with torch.no_grad():
        cache = model(prompt, None, model.init_cache(1, device))[1]
    prompt_cache = cache
    latency = {p: time_steps(model, cache, 1, config.latency_window, **timed)}
    batch_latency: dict[tuple[int, int], float] = {}  # (batch, context) -> s/step: Griffin reuses its batch
    rows, start, kept = [], None, {}
    short, long = ratio_lengths(config.lengths)
    for length in config.lengths:
        cache = extend(model, cache, length, config.prefill_chunk, generator)
        if length in (short, long):
            kept[length] = cache
        latency[length] = time_steps(model, cache, 1, config.latency_window, **timed)
        token = torch.zeros(1, 1, dtype=torch.long, device=device)
        row: dict[str, Any] = {
            "length": length,
            "latency_s": latency[length],
            "state_bytes": state_bytes(model.config, length),
            "cache_bytes_measured": cache.nbytes(),
            "peak_bytes_batch1": step_peak_bytes(model, cache, token, config.precision),
        }
        search = find_max_batch(model, cache, budget, max_batch=config.max_batch, precision=config.precision,
                                start=start)
        row["batch"], row["peak_bytes_batch"], row["batch_search"] = (search["batch"], search["peak_bytes"],
                                                                       search["trials"])
        if not search["batch"] and length == config.lengths[0]:
            from workbench.core.errors import UserError

            raise UserError(f"budget {config.budget_mb:g} MB does not fit one {model.config.kind} row at {length} "
                            f"tokens (measured step peak {search['trials'][-1]['peak_bytes'] / MB:.2f} MB); "
                            "raise --budget-mb")
        if search["batch"]:
            b = start = search["batch"]
            for context, c in ((p, prompt_cache), (length, cache)):
                if (b, context) not in batch_latency:
                    batch_latency[(b, context)] = time_steps(model, c, b, config.throughput_steps, **timed)
            seconds = integrate({p: batch_latency[(b, p)], length: batch_latency[(b, length)]}, p, length)
            row["batch_latency_s"] = batch_latency[(b, length)]
            row["throughput_tok_s"] = b * (length - p) / seconds
        else:
            row["batch_latency_s"] = row["throughput_tok_s"] = None
        rows.append(row)
        log(f"  L={length}: {latency[length] * 1e3:.1f} ms/token, batch {row['batch']}, "
            f"{row['throughput_tok_s'] or 0:.0f} tok/s")
    flat = flatness(model, kept[short], kept[long], config)
    prefill_s = full[0] if full else None
    for row in rows:
        length = row["length"]
        row["decode_s_integrated"] = (prefill_s or 0.0) + integrate(latency, p, length)
        row["decode_s_measured"] = full[length - p - 1] if length <= full_to else None
        row["decode_s"] = row["decode_s_measured"] if row["decode_s_measured"] is not None else row["decode_s_integrated"]
        row["integrated"] = row["decode_s_measured"] is None
    return {
        "config": model.config.to_dict(),
        "parameters": count_parameters(model.config)["total"],
        "prompt_latency_s": latency[p],
        "prefill_s": prefill_s,
        "full_decode_tokens": full_to,
        "flatness": flat,
        "lengths": rows,
    }


def ratio_lengths(lengths: Iterable[int]) -> tuple[int, int]:
    """The contexts of the headline latency ratio: the length nearest 128 and the longest up to 16k."""
    lengths = sorted(lengths)
    return (min(lengths, key=lambda length: abs(length - 128)),
            max((length for length in lengths if length <= 16384), default=lengths[-1]))


def flatness(model: SpeechLM, short: ModelCache, long: ModelCache, config: DecodeBenchConfig) -> dict[str, Any]:
    """Batch-1 latency at the long context over the short one, from windows timed in alternation: on a shared
    machine the load drifts, so each round's ratio compares windows measured seconds apart."""
    timed = dict(warmup=config.warmup_steps, precision=config.precision, seed=config.seed)
    rounds = []
    for _ in range(config.flatness_rounds):
        a = time_steps(model, short, 1, config.latency_window, **timed)
        b = time_steps(model, long, 1, config.latency_window, **timed)
        rounds.append({"short_s": a, "long_s": b, "ratio": b / a})
    return {"short": short.index, "long": long.index, "rounds": rounds,
            "short_latency_s": statistics.median(r["short_s"] for r in rounds),
            "long_latency_s": statistics.median(r["long_s"] for r in rounds),
            "ratio": statistics.median(r["ratio"] for r in rounds)}


def run_decode_bench(config: DecodeBenchConfig, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Measure both models; returns the JSON payload of `bench decode`."""
    from workbench.core.errors import UserError

    device = torch.device(config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available()
                                                                         else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device here")
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        started = time.perf_counter()
        payload: dict[str, Any] = {"config": dataclasses.asdict(config), "machine": machine_info(),
                                   "device": str(device), "weights": "random (timing does not depend on them)"
                                   if not (config.griffin_run or config.transformer_run) else "trained runs",
                                   "memory_method": "torch.cuda.max_memory_allocated" if device.type == "cuda"
                                   else "dispatch-mode tensor storage tracker (weights excluded)",
                                   "targets": TARGETS, "models": {}}
        models = load_models(config, device)
        for name, model in models.items():  # fail fast on what is certain: the old + new cache of one row
            need = 2 * state_bytes(model.config, config.lengths[0])
            if need > config.budget_mb * MB:
                raise UserError(f"budget {config.budget_mb:g} MB is too small for one {name} row at "
                                f"{config.lengths[0]} tokens (its caches alone take {need / MB:.2f} MB); "
                                "raise --budget-mb")
        for name, model in models.items():
            log(f"{name}: {count_parameters(model.config)['total']:,} parameters")
            payload["models"][name] = bench_model(model, config, device, log)
        payload.update(ratios(payload["models"]))
        payload["load_average_end"] = list(os.getloadavg())
        payload["elapsed_s"] = time.perf_counter() - started
        return payload
    finally:
        torch.set_num_threads(threads)


def ratios(models: dict[str, Any]) -> dict[str, Any]:
    """Griffin against the Transformer per length, and the two headline figures."""
    g = {r["length"]: r for r in models["griffin"]["lengths"]}
    t = {r["length"]: r for r in models["transformer"]["lengths"]}
    per_length = []
    for length in g:
        per_length.append({
            "length": length,
            "decode_time_ratio": t[length]["decode_s"] / g[length]["decode_s"],  # > 1: Griffin faster
            "latency_ratio": t[length]["latency_s"] / g[length]["latency_s"],
            "throughput_ratio": _ratio(g[length]["throughput_tok_s"], t[length]["throughput_tok_s"]),
            "batch_ratio": _ratio(g[length]["batch"], t[length]["batch"]),
            "peak_memory_ratio_batch1": t[length]["peak_bytes_batch1"] / g[length]["peak_bytes_batch1"],
        })
    short, long = ratio_lengths(g)
    return {
        "ratios": per_length,
        "ratio_lengths": {"short": short, "long": long},
        # from the interleaved windows (`flatness`), not the per-length ones measured minutes apart
        "griffin_latency_ratio_16k_vs_128": models["griffin"]["flatness"]["ratio"],
        "transformer_latency_ratio_16k_vs_128": models["transformer"]["flatness"]["ratio"],
        "griffin_peak_memory_ratio_16k_vs_128": g[long]["peak_bytes_batch1"] / g[short]["peak_bytes_batch1"],
        "throughput_ratio_16k": _ratio(g[long]["throughput_tok_s"], t[long]["throughput_tok_s"]),
        "decode_time_ratio_16k": t[long]["decode_s"] / g[long]["decode_s"],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b and math.isfinite(a) else None


def summary(payload: dict[str, Any]) -> str:
    """Markdown: the machine, one table row per length, the headline ratios (printed, and saved as decode.md)."""
    m, cfg = payload["machine"], payload["config"]
    g, t = payload["models"]["griffin"], payload["models"]["transformer"]
    load = ", ".join(f"{v:.2f}" for v in m["load_average"])
    lines = [
        f"# Decoding efficiency: Griffin vs SpeechTransformer ({cfg['model_preset']} models)",
        "",
        f"{payload['device']} · {m['cpu_name']} · {m['torch_threads']} torch threads · torch {m['torch_version']} · "
        f"load average {load} at start · {payload['weights']} weights · Griffin {g['parameters']:,} / "
        f"Transformer {t['parameters']:,} parameters · prompt {cfg['prompt_tokens']} tokens · "
        f"budget {cfg['budget_mb']:g} MB · {payload['elapsed_s']:.0f} s",
        "",
        "| length | decode s/sample G | T | T/G | ms/token G | T | batch G | T | tok/s G | T | G/T | "
        "peak MB b=1 G | T |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rg, rt, r in zip(g["lengths"], t["lengths"], payload["ratios"]):
        star = lambda row: "*" if row["integrated"] else ""  # noqa: E731
        lines.append(
            f"| {rg['length']} | {rg['decode_s']:.2f}{star(rg)} | {rt['decode_s']:.2f}{star(rt)} | "
            f"{r['decode_time_ratio']:.2f} | {rg['latency_s'] * 1e3:.1f} | {rt['latency_s'] * 1e3:.1f} | "
            f"{rg['batch']} | {rt['batch']} | {_num(rg['throughput_tok_s'])} | {_num(rt['throughput_tok_s'])} | "
            f"{_num(r['throughput_ratio'], '.1f')} | {rg['peak_bytes_batch1'] / MB:.2f} | "
            f"{rt['peak_bytes_batch1'] / MB:.2f} |")
    lens = payload["ratio_lengths"]
    lines += [
        "",
        f"\\* integrated from measured per-step latencies (real full decodes up to "
        f"{g['full_decode_tokens']} tokens). Throughput: largest batch whose measured step peak fits the budget.",
        "",
        f"- Griffin per-token latency at {lens['long']} vs {lens['short']}: "
        f"{payload['griffin_latency_ratio_16k_vs_128']:.2f}x (target <= "
        f"{TARGETS['griffin_latency_ratio_16k_vs_128_at_most']}); Transformer: "
        f"{payload['transformer_latency_ratio_16k_vs_128']:.2f}x (median of {cfg['flatness_rounds']} interleaved "
        "rounds)",
        f"- Griffin peak memory at {lens['long']} vs {lens['short']}: "
        f"{payload['griffin_peak_memory_ratio_16k_vs_128']:.2f}x",
        f"- throughput Griffin/Transformer at {lens['long']}: {_num(payload['throughput_ratio_16k'], '.1f')}x "
        f"(target >= {TARGETS['throughput_ratio_16k_at_least']:g}x)",
        f"- decode time per sample Transformer/Griffin at {lens['long']}: {payload['decode_time_ratio_16k']:.2f}x",
    ]
    return "\n".join(lines)


def _num(value: float | None, fmt: str = ".0f") -> str:
    return "n/a" if value is None else format(value, fmt)


# ------------------------------------------------------------------------------------------ figures

COLORS = {"griffin": "#1f77b4", "transformer": "#d62728"}


def decode_time_figure(payload: dict[str, Any]):
    """Figure 7: decode time per sample (batch 1) against sample length; hollow markers were integrated."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, m in payload["models"].items():
        rows = m["lengths"]
        fig.add_trace(go.Scatter(
            x=[r["length"] for r in rows], y=[r["decode_s"] for r in rows], name=name, mode="lines+markers",
            line=dict(color=COLORS.get(name)),
            marker=dict(symbol=["circle-open" if r["integrated"] else "circle" for r in rows], size=9)))
    fig.update_layout(title="Decode time per sample, batch 1 (hollow: integrated from per-step latencies)",
                      xaxis_type="log", yaxis_type="log", xaxis_title="sample length (tokens)",
                      yaxis_title="seconds")
    return fig


def speedup_figure(payload: dict[str, Any]):
    """Figure 8: Griffin's throughput over the Transformer's at the largest batch each fits in the budget,
    with the batch-1 decode-time ratio for comparison."""
    import plotly.graph_objects as go

    ratios = payload["ratios"]
    x = [r["length"] for r in ratios]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[r["throughput_ratio"] for r in ratios], mode="lines+markers",
                             name=f"throughput, batch fitting {payload['config']['budget_mb']:g} MB"))
    fig.add_trace(go.Scatter(x=x, y=[r["decode_time_ratio"] for r in ratios], mode="lines+markers",
                             name="decode time per sample, batch 1"))
    fig.add_hline(y=1.0, line_dash="dot")
    fig.update_layout(title="Griffin speed-up over the SpeechTransformer", xaxis_type="log", yaxis_type="log",
                      xaxis_title="sample length (tokens)", yaxis_title="Griffin / Transformer (x)")
    return fig


def memory_figure(payload: dict[str, Any]):
    """Peak memory of one decode step at batch 1 (measured) and the cache alone (exact), against length."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, m in payload["models"].items():
        x = [r["length"] for r in m["lengths"]]
        fig.add_trace(go.Scatter(x=x, y=[r["peak_bytes_batch1"] / MB for r in m["lengths"]], mode="lines+markers",
                                 name=f"{name}: step peak", line=dict(color=COLORS.get(name))))
        fig.add_trace(go.Scatter(x=x, y=[r["state_bytes"] / MB for r in m["lengths"]], mode="lines",
                                 name=f"{name}: cache", line=dict(color=COLORS.get(name), dash="dash")))
    fig.update_layout(title=f"Decode memory at batch 1 ({payload['memory_method']})", xaxis_type="log",
                      yaxis_type="log", xaxis_title="context (tokens)", yaxis_title="MB")
    return fig
