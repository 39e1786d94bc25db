"""Long-form extrapolation (notebook 05, `extrapolate`): the paper's "4 minutes in training, 16 at generation".

Both LMs, trained on short crops (10 s at the laptop preset), are prompted with the first seconds of the same
held-out recording and continue it for `minutes` (16 at laptop: 24,000 tokens at 25 Hz). Griffin decodes through
`workbench.lm.generate.stream` with its constant-size cache; the SpeechTransformer through its growing KV cache,
and only for `transformer_minutes` (its decode cost grows with every token: on 2 CPU cores 16 minutes of it would
take most of an hour; notebook 06 measures that cost). The real continuation of the recording is measured the
same way, as the reference a healthy stream should resemble.

Measured per time bin of each stream (`workbench.eval.longform.token_measures`): repeat rate, distinct-n, unit
entropy, longest run (degeneration into loops or a stuck unit) and the NLL of the stream under a scorer LM (the
Griffin run: the paper scores transcripts with a text LM; we have no text here, so this says how plausible the
stream is to a speech-token LM, and loops are plausible -- read it beside the repeat rate). Plus each model's cache
size as the stream grows (Griffin's is constant) and its decode speed per bin. On a CPU the streams are decoded by
one worker process per core, the longest first (`generate_streams`): the tokens are those of decoding them one
after another, the speeds those of a core whose neighbour is busy too (notebook 06 times decoding alone).

Audio: where the tokens come from a corpus (tokens.json names it), the ground truth's audio gets SC-L and speaker
similarity over time (`audio_measures`) -- the ceiling for a generated continuation. The continuations are
rendered by the acoustic stage (`workbench.acoustic`: SoundStorm + codec, in the voice of the prompt) -- the first
`audio_minutes` of each and the last minute of the longer ones -- and measured the same way; the LLM judge then
compares their transcripts. What cannot run (no acoustic model, tokens of another tokenizer, no endpoint) is
reported as skipped, with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from workbench.core.audio import SAMPLE_RATE
from workbench.core.cli import add_output_args, emit
from workbench.core.config import Config, override, pick_preset
from workbench.core.device import pick_device
from workbench.core.errors import UserError
from workbench.core.io import reports_dir
from workbench.core.paths import lm_run_dir
from workbench.core.progress import announce
from workbench.core.progress import report as report_progress
from workbench.core.workers import process_pool, torch_threads
from workbench.eval.longform import (
    JUDGE_NOT_CONFIGURED,
    JUDGE_URL_ENV,
    collapse_onset_s,
    judge_pair,
    loop_onset_s,
    token_measures,
)
from workbench.eval.stats import excludes, mean_interval, share_interval, slope
from workbench.lm.config import TOKENS_PER_SECOND, train_config
from workbench.lm.data import TokenCorpus, resolve_tokens
from workbench.lm.evaluate import position_nll
from workbench.lm.generate import stream
from workbench.lm.model import SpeechLM, load_model, model_config
from workbench.lm.train import train_or_reuse

DEFAULT_RUNS = Path("runs/lm")
UNITS_SHOWN_S = 20.0  # the end of each stream, kept in the JSON for the unit raster
MAX_MINUTES = 120.0  # 3,000 tokens a minute; beyond two hours a CPU run is a mistake, not a measurement


@dataclass(frozen=True)
class ExtrapolationConfig(Config):
    minutes: float = 16.0  # Griffin's continuation (of the first `long_streams` streams of the set)
    transformer_minutes: float | None = 4.0  # the Transformer's cap (None: as far as Griffin)
    prompt_seconds: float = 10.0  # the paper's long-form prompt
    bin_seconds: float = 60.0
    temperature: float = 1.0  # the paper samples at temperature 1
    top_p: float | None = None
    seed: int = 0
    record_every_s: float = 5.0  # cache size and decode speed are sampled this often
    audio_minutes: float = 2.0  # ground-truth audio measured (ASR, speaker embeddings) this far
    # the set: `prompts` held-out recordings (taken across voices) x `seeds` samplings; the first `long_streams`
    # streams continue for `minutes`, the others for `set_minutes` (both models capped by transformer_minutes)
    prompts: int = 1
    seeds: int = 1
    long_streams: int = 1
    set_minutes: float = 4.0
    workers: int | None = None  # decoding processes; None: one per CPU core (one on a GPU)

    def __post_init__(self):
        problems = []
        if self.workers is not None and not (isinstance(self.workers, int) and self.workers >= 1):
            problems.append(f"workers must be a whole number >= 1 (or None: one per core), got {self.workers}")
        for name in ("prompts", "seeds", "long_streams"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                problems.append(f"{name} must be a whole number >= 1, got {getattr(self, name)}")
        if not 0 < self.set_minutes <= MAX_MINUTES:
            problems.append(f"set_minutes must be in (0, {MAX_MINUTES:.0f}], got {self.set_minutes}")
        for name in ("minutes", "prompt_seconds", "bin_seconds", "record_every_s", "audio_minutes"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("minutes", "transformer_minutes"):
            value = getattr(self, name)
            if value is not None and value > MAX_MINUTES:
                problems.append(f"{name}={value} is more than {MAX_MINUTES:.0f} minutes of speech")
        if self.transformer_minutes is not None and self.transformer_minutes < 0:
            problems.append("transformer_minutes must be >= 0 (0: skip the Transformer)")
        if self.temperature < 0:
            problems.append("temperature must be >= 0")
        if problems:
            raise UserError("bad extrapolation settings: " + "; ".join(problems))


PRESETS = {
    "smoke": ExtrapolationConfig(minutes=0.5, transformer_minutes=0.5, prompt_seconds=2.0, bin_seconds=5.0,
                                 record_every_s=1.0, audio_minutes=0.25, prompts=2, seeds=2, set_minutes=0.25),
    # within the 90-minute reproduction: one 16-minute stream (Transformer: 3) and three 1-minute ones (2 prompts
    # x 2 seeds), the first minute of each rendered and measured as audio; 30 s bins, so that every stream spans
    # two bins and has a slope: with 60 s bins the short streams had one each and the set's drift claims were
    # undetermined in every timed run
    "laptop": ExtrapolationConfig(transformer_minutes=3.0, bin_seconds=30.0, prompts=2, seeds=2, set_minutes=1.0,
                                  audio_minutes=1.0),
    # the full grid, its own preset (hours on a CPU): 6 prompts x 3 seeds, every stream 16 minutes for Griffin
    # and 4 for the Transformer
    "laptop-grid": ExtrapolationConfig(prompts=6, seeds=3, long_streams=18, set_minutes=16.0),
    "small": ExtrapolationConfig(transformer_minutes=16.0, prompts=4, seeds=2, long_streams=8),
    "paper": ExtrapolationConfig(transformer_minutes=16.0, audio_minutes=16.0, prompts=8, seeds=4, long_streams=32),
}


def extrapolation_config(preset: str, **changes: Any) -> ExtrapolationConfig:
    return override(pick_preset(PRESETS, preset, "extrapolation"),
                    **{k: v for k, v in changes.items() if v is not None})


# ----------------------------------------------------------------------------------------------- models


def run_path(preset: str, model: str, runs: str | Path | None = None) -> Path:
    """Where (preset, model) is trained: `runs/<model>` if a folder of runs is given, else runs/lm/<preset>/<model>
    (where `lm train` and notebook 03 put it)."""
    return Path(runs) / model if runs else lm_run_dir(preset, model)


def find_run(preset: str, model: str, runs: str | Path | None = None) -> Path | None:
    """The trained run for (preset, model), or None. A run in the layout before runs/lm/<preset>/<model> is one
    line saying how to move it."""
    run = run_path(preset, model, runs)
    if (run / "checkpoint.json").is_file():
        return run
    for old in (DEFAULT_RUNS / f"{preset}-{model}", DEFAULT_RUNS / "notebook" / f"{preset}-{model}"):
        if runs is None and (old / "checkpoint.json").is_file():
            raise UserError(f"{old} is a {model} run in the old layout; move it where runs now live: "
                            f"mkdir -p {run.parent} && mv {old} {run}")
    return None


def train_or_load(preset: str, models: tuple[str, ...] = ("griffin", "transformer"), *,
                  runs: str | Path | None = None, tokens: str | Path | None = None, train_missing: bool = True,
                  device: str | None = None, log: Callable[[str], None] = print
                  ) -> tuple[dict[str, tuple[SpeechLM, dict, Path]], Path]:
    """name -> (model, checkpoint meta, run dir) and the token directory they share. Missing runs are trained at
    the preset's settings (seconds at smoke, 5 minutes each at laptop) when `train_missing`, else a UserError
    names the command that trains them. Tokens: `tokens`, else those the first existing run trained on, else the
    tokenizer's output for the preset, else the synthetic corpus."""
    found = {m: find_run(preset, m, runs) for m in models}
    if not train_missing and (missing := [m for m in models if found[m] is None]):
        raise UserError(f"no trained {missing[0]} for preset {preset!r} in {run_path(preset, missing[0], runs)}; "
                        f"train it: python -m workbench lm train --preset {preset} --model {missing[0]}")
    if tokens is None and (first := next((r for r in found.values() if r), None)) is not None:
        tokens = load_model(first)[1]["tokens"]
    token_dir = resolve_tokens(tokens, preset)
    dev = pick_device(device)
    out = {}
    for name in models:
        run = found[name]
        if run is None:
            run = run_path(preset, name, runs)
            log(f"training {name} ({preset}) into {run} ...")
            mcfg = model_config(preset, name)
            vocab = int(json.loads((token_dir / "tokens.json").read_text())["num_units"]) \
                if (token_dir / "tokens.json").is_file() else mcfg.vocab_size
            if vocab > mcfg.vocab_size:
                raise UserError(f"{token_dir} has {vocab} units but the {preset} LM's vocabulary is "
                                f"{mcfg.vocab_size}: use the tokenizer of the same preset")
            train_or_reuse(run, mcfg, train_config(preset), token_dir, preset=preset, progress=False)
        model, meta = load_model(run, dev)
        meta = {**meta, "trained_now": found[name] is None}
        if Path(meta["tokens"]).resolve() != token_dir.resolve():
            log(f"NOTE: {name} ({run}) was trained on {meta['tokens']}, not {token_dir}")
        out[name] = (model, meta, run)
    return out, token_dir


# ------------------------------------------------------------------------------------------ generation


def continue_tracked(model: SpeechLM, prompt: torch.Tensor, new_tokens: int, cfg: ExtrapolationConfig,
                     desc: str = "", progress: bool = True, num_units: int | None = None,
                     seed: int | None = None) -> dict[str, Any]:
    """Continue `prompt` (1, t0) by `new_tokens` (ids below `num_units` only, when given), recording the cache's
    size and the decode speed every `record_every_s` seconds of generated speech. Returns the tokens (prompt
    included) and the traces."""
    from tqdm.auto import tqdm

    every = max(1, round(cfg.record_every_s * TOKENS_PER_SECOND))
    trace: list[dict[str, float]] = []
    steps = [0]
    clock = [time.perf_counter()]

    def observe(cache) -> None:
        done = steps[0]  # generated tokens this cache holds (0: right after the prefill)
        steps[0] += 1
        if done % every == 0 or done == new_tokens - 1:  # the last token sampled is never fed back
            now = time.perf_counter()
            last = trace[-1] if trace else None
            rate = (done - last["generated"]) / (now - clock[0]) if last and now > clock[0] else None
            trace.append({"t_s": done / TOKENS_PER_SECOND, "generated": done, "cache_bytes": cache.nbytes(),
                          "tokens_per_s": rate})
            clock[0] = now

    started = time.perf_counter()
    out = []
    bar = tqdm(total=new_tokens, desc=desc, unit="tok", disable=not progress, mininterval=2.0)
    for token in stream(model, prompt, new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                        seed=cfg.seed if seed is None else seed, observe=observe, num_units=num_units):
        out.append(int(token[0]))
        bar.update(1)
        if len(out) % 250 == 0 or len(out) == new_tokens:  # to `reproduce`'s terminal (a no-op elsewhere)
            report_progress(desc or "continuation", len(out), new_tokens, "token", time.perf_counter() - started)
    bar.close()
    wall = time.perf_counter() - started
    tokens = np.concatenate([prompt[0].cpu().numpy(), np.asarray(out, dtype=np.int64)])
    return {"tokens": tokens, "cache": trace, "wall_s": wall, "tokens_per_s": new_tokens / wall if wall else None}


def score(scorer: SpeechLM, tokens: np.ndarray, chunk: int) -> np.ndarray:
    """Per-token NLL of a stream under `scorer` (position_nll, one row)."""
    return position_nll(scorer, torch.as_tensor(tokens, dtype=torch.long)[None], chunk)[0].numpy()


# The worker processes of `generate_streams`: the models, loaded once per worker from their run folders.
_WORKER_MODELS: dict[str, SpeechLM] = {}
SCORER = "griffin"  # every stream's NLL per bin is under the Griffin LM (see the module docstring)


def generation_workers(cfg: ExtrapolationConfig, jobs: int, device: torch.device) -> int:
    """How many processes decode the set: `cfg.workers`, else one per CPU core (batch-1 decoding is bound by
    Python's per-op overhead, so a process per core is what uses them: `workbench.core.workers`); one on a GPU."""
    if cfg.workers is not None:
        return max(1, min(cfg.workers, jobs))
    return 1 if device.type != "cpu" else max(1, min(os.cpu_count() or 1, jobs))


def _continuation(model: SpeechLM, scorer: SpeechLM, job: dict[str, Any], cfg: ExtrapolationConfig
                  ) -> dict[str, Any]:
    """One stream of one model: decoded (`continue_tracked`) and scored per token by the scorer LM."""
    out = continue_tracked(model, torch.from_numpy(job["prompt"])[None], job["new_tokens"], cfg, desc=job["model"],
                           progress=job["progress"], num_units=job["num_units"], seed=job["seed"])
    return {**out, "new_tokens": job["new_tokens"], "nll": score(scorer, out["tokens"], job["chunk"])}


def _start_worker(runs: dict[str, str]) -> None:
    torch.set_num_threads(1)  # one core each: the pool is the parallelism
    for name, run in runs.items():
        _WORKER_MODELS[name] = load_model(run)[0]


def _worker_job(task: tuple[dict[str, Any], ExtrapolationConfig]) -> tuple[dict[str, Any], dict[str, Any]]:
    job, cfg = task
    return job, _continuation(_WORKER_MODELS[job["model"]], _WORKER_MODELS[SCORER], job, cfg)


def generate_streams(jobs: list[dict[str, Any]], models: dict[str, tuple[SpeechLM, dict, Path]],
                     cfg: ExtrapolationConfig, workers: int, log: Callable[[str], None] = print
                     ) -> dict[tuple[int, str], dict[str, Any]]:
    """Decode every (stream, model) job: (stream index, model name) -> continuation. With several `workers` the
    jobs go to a spawned pool, the longest first (so the 16-minute stream does not start last); each stream has
    its own seeded generator, so the tokens are the same as decoding them one after another here (tested)."""
    outputs: dict[tuple[int, str], dict[str, Any]] = {}
    if workers <= 1:
        on_cpu = next(models[SCORER][0].parameters()).device.type == "cpu"
        with torch_threads(1 if on_cpu else torch.get_num_threads()):  # batch-1 decoding: one thread is fastest
            for job in jobs:
                log(f"{job['what']}: continuing {len(job['prompt'])} prompt tokens by {job['new_tokens']:,} tokens")
                model = models[job["model"]][0]
                outputs[job["stream"], job["model"]] = _continuation(model, models[SCORER][0], job, cfg)
        return outputs
    log(f"decoding {len(jobs)} continuations ({sum(j['new_tokens'] for j in jobs):,} tokens) on {workers} worker "
        "processes, one core each, the longest first")
    runs = {name: str(run) for name, (_, _, run) in models.items()}
    order = sorted(jobs, key=lambda j: -j["new_tokens"])
    with process_pool(workers, _start_worker, (runs,)) as pool:
        for job, out in pool.imap_unordered(_worker_job, [(j, cfg) for j in order]):
            log(f"{job['what']}: {job['new_tokens']:,} tokens at {out['tokens_per_s']:.1f} tokens/s")
            outputs[job["stream"], job["model"]] = out
    return outputs


def choose_prompts(corpus: TokenCorpus, prompt_seconds: float, count: int = 1) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """`count` held-out recordings as (recording, prompt, whole token stream): the longest first (the longest
    real continuation), then round-robin across speakers, so that a set of two holds two voices."""
    n = round(prompt_seconds * TOKENS_PER_SECOND)
    recs = sorted((r for r in corpus.split(corpus.held_out_split()) if r.num_tokens > n),
                  key=lambda r: (-r.num_tokens, r.id))
    if not recs:
        longest = max(corpus.split(corpus.held_out_split()), key=lambda r: r.num_tokens)
        raise UserError(f"the longest held-out recording ({longest.id}, {longest.num_tokens / TOKENS_PER_SECOND:.1f} s)"
                        f" is not longer than the {prompt_seconds} s prompt")
    by_speaker: dict[str, list] = {}
    for rec in recs:
        by_speaker.setdefault(rec.speaker, []).append(rec)
    order, rank = [], 0
    while len(order) < min(count, len(recs)):
        for queue in sorted(by_speaker.values(), key=lambda q: (-q[0].num_tokens, q[0].id)):
            if rank < len(queue) and len(order) < count:
                order.append(queue[rank])
        rank += 1
    chosen = []
    for rec in order:
        tokens = np.asarray(corpus.tokens(rec), dtype=np.int64)
        chosen.append((rec, tokens[:n], tokens))
    return chosen


def stream_plan(cfg: ExtrapolationConfig, prompts: int) -> list[dict[str, Any]]:
    """The set's streams in order: prompt-major, seed-minor; the first `long_streams` run for `minutes`."""
    plan = []
    for i in range(prompts):
        for j in range(cfg.seeds):
            minutes = cfg.minutes if len(plan) < cfg.long_streams else min(cfg.minutes, cfg.set_minutes)
            transformer = minutes if cfg.transformer_minutes is None else min(minutes, cfg.transformer_minutes)
            plan.append({"prompt": i, "seed": cfg.seed + j, "minutes": {"griffin": minutes, "transformer": transformer}})
    return plan


def drift_untestable(cfg: ExtrapolationConfig, prompts: int) -> str | None:
    """Why these settings cannot state the set's drift claims, or None. A stream's slope needs two bins (of
    tokens; of rendered audio for speaker similarity and naturalness), and a model's mean slope two streams."""
    plan = stream_plan(cfg, prompts)
    if len(plan) < 2:
        return f"the set has {len(plan)} stream (prompts x seeds); a model's mean slope needs two"
    shortest = min(min(v for v in item["minutes"].values() if v > 0) for item in plan)
    if shortest * 60 < 2 * cfg.bin_seconds:
        return (f"the shortest stream ({shortest:g} min) spans fewer than two bins of {cfg.bin_seconds:g} s, "
                "so it has no slope")
    if min(cfg.audio_minutes, shortest) * 60 < 2 * cfg.bin_seconds:
        return (f"the rendered audio ({min(cfg.audio_minutes, shortest):g} min a stream) spans fewer than two bins "
                f"of {cfg.bin_seconds:g} s: speaker similarity and naturalness have no slope")
    return None


def acoustic_renderer(preset: str, token_dir: str | Path | None = None, acoustic_run: str | Path | None = None
                      ) -> tuple[Callable[..., np.ndarray] | None, str | None]:
    """(render, None) or (None, why not). render(semantic_tokens, speaker_wav, seed=0) -> waveform: the acoustic
    stage (SoundStorm over the codec, `workbench.acoustic.synthesize.Synthesizer`) in the voice of the first
    seconds of `speaker_wav`. `token_dir`, if given, must hold units of the acoustic model's own tokenizer."""
    if importlib.util.find_spec("workbench.acoustic") is None:
        return None, "the acoustic stage (workbench.acoustic: SoundStorm + codec) is not in this checkout"
    from workbench.acoustic.synthesize import Synthesizer
    from workbench.acoustic.train import default_paths
    from workbench.tokenizer.model import fingerprint

    run = Path(acoustic_run or default_paths(preset)["run"])
    if not (run / "checkpoint.json").is_file():
        return None, (f"no trained acoustic model in {run}; train it: python -m workbench acoustic train "
                      f"--preset {preset}")
    synth = Synthesizer.load(run)
    if token_dir is not None:
        meta = Path(token_dir) / "tokens.json"
        theirs = json.loads(meta.read_text()).get("fingerprint") if meta.is_file() else None
        if theirs != fingerprint(synth.tokenizer):
            return None, (f"the LM's tokens ({token_dir}) are not units of the acoustic model's tokenizer "
                          f"({synth.meta.get('tokenizer')}): audio would be noise")

    def render(tokens: np.ndarray, speaker_wav: np.ndarray, seed: int = 0) -> np.ndarray:
        return synth.synthesize(np.asarray(tokens, dtype=np.int64), synth.prompt(speaker_wav), seed)

    return render, None


def corpus_recording(token_dir: Path, rec_id: str):
    """The corpus recording a token file was encoded from (tokens.json names the corpus), or None."""
    meta = token_dir / "tokens.json"
    if not meta.is_file():
        return None
    corpus = json.loads(meta.read_text()).get("corpus")
    if not corpus or not Path(corpus).is_dir():
        return None
    from workbench.data.loaders import open_dataset

    try:
        return next((r for r in open_dataset(corpus).recordings if r.id == rec_id), None)
    except (OSError, ValueError):
        return None


def measure_audio(wav: np.ndarray, prompt_wav: np.ndarray, cfg: ExtrapolationConfig, offset_s: float = 0.0,
                  **extra: Any) -> dict[str, Any]:
    """SC-L and speaker similarity over time of `wav`, which starts `offset_s` into a continuation of
    `prompt_wav`; an unmeasurable clip is an error entry with its reason."""
    from workbench.eval.longform import audio_measures

    seconds = len(wav) / SAMPLE_RATE
    try:
        measured = audio_measures(wav, prompt_wav, bin_seconds=min(cfg.bin_seconds, seconds))
    except ValueError as err:  # unreadable audio (AudioError), a prompt without speech for a speaker embedding
        return {"status": "error", "reason": str(err), **extra}
    return {"status": "ok", "offset_s": offset_s, **extra, **measured, **naturalness(wav, cfg)}


def naturalness(wav: np.ndarray, cfg: ExtrapolationConfig) -> dict[str, Any]:
    """{"naturalness": DNSMOS per bin} (the proxy of N-MOS-T), or {"naturalness_note": why not}."""
    from workbench.eval import naturalness as proxy

    why = proxy.available()
    if why:
        return {"naturalness": None, "naturalness_note": why}
    return {"naturalness": proxy.naturalness_over_time(wav, bin_seconds=min(cfg.bin_seconds, len(wav) / SAMPLE_RATE))}


def render_continuations(render: Callable[..., np.ndarray], streams: dict[str, np.ndarray], prompt_tokens: int,
                         prompt_wav: np.ndarray, cfg: ExtrapolationConfig, out_dir: Path,
                         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Render and measure the first `audio_minutes` of each continuation and, where it is longer, its last
    minute ("<name>_end"); the clips are written to `out_dir` as extrapolation-<entry>.wav."""
    from workbench.core.audio import save_audio

    head = round(cfg.audio_minutes * 60 * TOKENS_PER_SECOND)
    tail = min(head, 60 * TOKENS_PER_SECOND)
    out: dict[str, Any] = {}
    for name in ("griffin", "transformer"):
        if name not in streams:
            continue
        cont = streams[name][prompt_tokens:]
        pieces = [(name, 0, cont[:head])]
        if len(cont) >= head + tail:  # a last stretch that does not overlap the first
            pieces.append((f"{name}_end", len(cont) - tail, cont[-tail:]))
        for entry, start, tokens in pieces:
            log(f"rendering {entry}: {len(tokens) / TOKENS_PER_SECOND:.0f} s of audio from "
                f"{start / TOKENS_PER_SECOND / 60:.1f} min")
            wav = render(tokens, prompt_wav, seed=cfg.seed)
            path = save_audio(out_dir / f"extrapolation-{entry}.wav", wav)
            out[entry] = measure_audio(wav, prompt_wav, cfg, start / TOKENS_PER_SECOND, audio=str(path))
    return out


def ground_truth_audio(token_dir: Path, rec, cfg: ExtrapolationConfig) -> tuple[dict[str, Any], np.ndarray | None]:
    """The real continuation's audio measures and the prompt's audio (None where the tokens have no audio)."""
    audio_rec = corpus_recording(token_dir, rec.id)
    if audio_rec is None:
        why = "SYNTHETIC tokens have no audio" if (token_dir / "SYNTHETIC").exists() else \
            f"no corpus recording found for {rec.id} (tokens.json names no readable corpus)"
        return {"status": "skipped", "reason": why}, None
    seconds = min(cfg.audio_minutes * 60, audio_rec.duration - cfg.prompt_seconds)
    try:
        prompt_wav = audio_rec.load(0.0, cfg.prompt_seconds)
        wav = audio_rec.load(cfg.prompt_seconds, seconds)
    except ValueError as err:
        return {"status": "error", "recording": audio_rec.id, "reason": str(err)}, None
    return measure_audio(wav, prompt_wav, cfg, recording=audio_rec.id, audio=str(audio_rec.audio)), prompt_wav


# ------------------------------------------------------------------------------------------------ job


def run_extrapolation(preset: str, cfg: ExtrapolationConfig, *, runs: str | Path | None = None,
                      tokens: str | Path | None = None, train_missing: bool = True, device: str | None = None,
                      audio: bool = True, acoustic_run: str | Path | None = None, reports: str | Path | None = None,
                      progress: bool = True, log: Callable[[str], None] = print
                      ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Train-or-load both LMs, continue a set of held-out prompts x seeds with each, measure every stream, and
    state the long-form claims over the set with their intervals. Returns the JSON payload (extrapolation.json)
    and the token streams (name -> prompt + continuation). The first stream of the set is also reported whole
    (cache and speed traces, units, audio, LLM judge) under "models", "ground_truth", "audio"; every stream's
    per-bin measures, their means with 95% intervals and the claims are under "set"."""
    shown = log
    log = lambda line: (shown(line), announce(line))  # noqa: E731 -- each step also on `reproduce`'s terminal
    models, token_dir = train_or_load(preset, runs=runs, tokens=tokens, train_missing=train_missing,
                                      device=device, log=log)
    corpus = TokenCorpus(token_dir)
    prompts = choose_prompts(corpus, cfg.prompt_seconds, cfg.prompts)
    plan = stream_plan(cfg, len(prompts))
    why = drift_untestable(cfg, len(prompts))
    if why:
        log(f"warning: the set's drift claims will be undetermined: {why}")
    rec, prompt, truth = prompts[0]
    scorer, scorer_meta, _ = models[SCORER]
    chunk = scorer_meta["train_config"]["window_tokens"]
    payload: dict[str, Any] = {
        "preset": preset, "config": cfg.to_dict(), "tokens": str(token_dir),
        "synthetic_tokens": corpus.synthetic, "scorer": SCORER,
        "prompt": {"recording": rec.id, "speaker": rec.speaker, "split": rec.split, "tokens": len(prompt),
                   "seconds": len(prompt) / TOKENS_PER_SECOND},
        "machine": {"torch_threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
                    "device": str(pick_device(device))},
        "models": {},
    }
    streams: dict[str, np.ndarray] = {}
    members: dict[str, list[dict[str, Any]]] = {name: [] for name in (*models, "ground_truth")}
    jobs = []
    for k, item in enumerate(plan):
        rec_k, prompt_k, _ = prompts[item["prompt"]]
        for name, (_, meta, run) in models.items():
            new = round(item["minutes"][name] * 60 * TOKENS_PER_SECOND)
            if k == 0:
                payload["models"][name] = {"run": str(run), "parameters": meta["parameters"]["total"],
                                           "steps": meta["step"], "trained_now": meta["trained_now"],
                                           "train_window_s": meta["train_config"]["window_tokens"] / TOKENS_PER_SECOND,
                                           "minutes": item["minutes"][name]}
            if new == 0:
                payload["models"][name]["skipped"] = "transformer_minutes is 0"
                continue
            jobs.append({"stream": k, "model": name, "prompt": prompt_k, "new_tokens": new, "seed": item["seed"],
                         "num_units": corpus.num_units, "chunk": chunk, "progress": progress,
                         "what": f"{name} [stream {k + 1}/{len(plan)}: {rec_k.id}, seed {item['seed']}]"})
    workers = generation_workers(cfg, len(jobs), pick_device(device))
    payload["machine"]["generation_workers"] = workers
    outputs = generate_streams(jobs, models, cfg, workers, log)
    for k, item in enumerate(plan):
        rec_k, prompt_k, truth_k = prompts[item["prompt"]]
        for name, (_, meta, _) in models.items():
            if (k, name) not in outputs:
                continue
            out, new, window = outputs[k, name], outputs[k, name]["new_tokens"], meta["train_config"]["window_tokens"]
            bins = token_measures(out["tokens"], len(prompt_k), bin_seconds=cfg.bin_seconds, nll=out["nll"])
            members[name].append({"prompt": rec_k.id, "speaker": rec_k.speaker, "seed": item["seed"],
                                  "minutes": item["minutes"][name], "measures": bins,
                                  "loop_onset_s": loop_onset_s(bins), "collapse_onset_s": collapse_onset_s(bins),
                                  "tokens_per_s": out["tokens_per_s"], "tokens": out["tokens"][len(prompt_k):]})
            streams[name if k == 0 else f"{name}-{k}"] = out["tokens"]
            if k == 0:
                sizes = [c["cache_bytes"] for c in out["cache"]]
                payload["models"][name].update({
                    "generated_tokens": new, "generated_s": new / TOKENS_PER_SECOND,
                    "times_train_window": round((len(prompt_k) + new) / window, 1),
                    "wall_s": out["wall_s"], "tokens_per_s": out["tokens_per_s"],
                    "measures": bins, "loop_onset_s": loop_onset_s(bins), "collapse_onset_s": collapse_onset_s(bins),
                    "cache": out["cache"], "cache_bytes_start": sizes[0], "cache_bytes_end": sizes[-1],
                    "cache_growth": sizes[-1] / sizes[0] if sizes[0] else None,
                })
        if item["seed"] == cfg.seed and len(truth_k) > len(prompt_k):  # each prompt's real continuation, once
            real = truth_k[: len(prompt_k) + round(item["minutes"]["griffin"] * 60 * TOKENS_PER_SECOND)]
            bins = token_measures(real, len(prompt_k), bin_seconds=cfg.bin_seconds, nll=score(scorer, real, chunk))
            members["ground_truth"].append({"prompt": rec_k.id, "speaker": rec_k.speaker, "seed": None,
                                            "minutes": (len(real) - len(prompt_k)) / TOKENS_PER_SECOND / 60,
                                            "measures": bins, "loop_onset_s": loop_onset_s(bins),
                                            "collapse_onset_s": collapse_onset_s(bins)})
            if k == 0:
                streams["ground_truth"] = real
                payload["ground_truth"] = {"seconds": (len(real) - len(prompt_k)) / TOKENS_PER_SECOND,
                                           "measures": bins, "loop_onset_s": loop_onset_s(bins),
                                           "collapse_onset_s": collapse_onset_s(bins)}
    payload["set"] = set_statistics({n: [{k: v for k, v in m.items() if k != "tokens"} for m in ms]
                                     for n, ms in members.items()}, cfg, [p[0] for p in prompts])
    tail = round(UNITS_SHOWN_S * TOKENS_PER_SECOND)
    firsts = {n: s for n, s in streams.items() if n in ("griffin", "transformer", "ground_truth")}
    payload["units_end"] = {"seconds": UNITS_SHOWN_S,
                            "streams": {name: s[len(prompt):][-tail:].tolist() for name, s in firsts.items()}}
    payload["audio"] = {}
    if not audio:
        off = {"status": "skipped", "reason": "audio measures were turned off"}
        payload["audio"] = {"ground_truth": off, "continuations": off}
        payload["llm_judge"] = judge_verdict(payload["audio"])
        return payload, streams
    log("ground-truth audio: ASR, sentence and speaker embeddings ...")
    payload["audio"]["ground_truth"], prompt_wav = ground_truth_audio(token_dir, rec, cfg)
    render, why = acoustic_renderer(preset, token_dir, acoustic_run)
    if render is not None and prompt_wav is None:
        render, why = None, "no audio of the prompt to take the voice from: " + payload["audio"]["ground_truth"]["reason"]
    if render is None:
        payload["audio"]["continuations"] = {"status": "skipped", "reason": why}
    else:
        payload["audio"].update(render_continuations(render, firsts, len(prompt), prompt_wav, cfg,
                                                     reports_dir(reports), log))
        voice_over_set(render, members, payload["audio"], prompts, token_dir, cfg, log)
        payload["set"] = set_statistics(members, cfg, [p[0] for p in prompts])
    payload["sc_l_floor"] = sc_l_floor(token_dir, corpus, rec, payload["audio"]["ground_truth"].get("prompt_transcript"),
                                       cfg, log)
    payload["llm_judge"] = judge_verdict(payload["audio"])
    return payload, streams


FLOOR_PASSAGES = 4


def sc_l_floor(token_dir: Path, corpus: TokenCorpus, prompt_rec, prompt_text: str | None, cfg: ExtrapolationConfig,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """SC-L's own floor in this run: the similarity of the prompt's transcript to *unrelated* real speech --
    `FLOOR_PASSAGES` passages of other held-out recordings (other texts), each as long as an SC-L bin, from their
    middle -- scored exactly as a continuation's bin. A continuation's SC-L means something only above it."""
    from workbench.eval.longform import semantic_coherence

    if not prompt_text or not prompt_text.strip():
        return {"status": "skipped", "reason": "no prompt transcript (no audio, or ASR heard nothing)"}
    prompt_audio = corpus_recording(token_dir, prompt_rec.id)
    own_text = (prompt_audio.text or "")[:200] if prompt_audio is not None else ""
    candidates = []
    for rec in sorted(corpus.split(corpus.held_out_split()), key=lambda r: (-r.num_tokens, r.id)):
        audio_rec = corpus_recording(token_dir, rec.id)
        if audio_rec is None or rec.id == prompt_rec.id or audio_rec.duration < cfg.bin_seconds + 1.0:
            continue
        if own_text and (audio_rec.text or "")[:200] == own_text:  # the same chapter in another voice
            continue
        candidates.append(audio_rec)
    if not candidates:
        return {"status": "skipped", "reason": f"no other held-out recording of at least {cfg.bin_seconds:g} s"}
    passages = []
    for audio_rec in candidates[:FLOOR_PASSAGES]:
        start = (audio_rec.duration - cfg.bin_seconds) / 2
        log(f"SC-L floor: {cfg.bin_seconds:g} s of {audio_rec.id} from {start:.0f} s")
        try:
            wav = audio_rec.load(start, cfg.bin_seconds)
            (scored,) = semantic_coherence(wav, {"prompt": prompt_text}, bin_seconds=cfg.bin_seconds + 1.0)
        except ValueError as err:
            passages.append({"recording": audio_rec.id, "similarity": None, "note": str(err)})
            continue
        passages.append({"recording": audio_rec.id, "speaker": audio_rec.speaker, "from_s": round(start, 2),
                         "seconds": cfg.bin_seconds, "similarity": scored["similarity"]["prompt"],
                         "words": scored["words"]})
    return {"status": "ok", "passages": passages, **mean_interval([p["similarity"] for p in passages])}


def voice_over_set(render: Callable[..., np.ndarray], members: dict[str, list[dict[str, Any]]],
                   first_audio: dict[str, Any], prompts: list, token_dir: Path, cfg: ExtrapolationConfig,
                   log: Callable[[str], None] = print) -> None:
    """Speaker similarity to the prompt and the naturalness proxy over time for every stream of the set (the first
    `audio_minutes` of each, rendered in its own prompt's voice), added to each member as "speaker_similarity"
    and "naturalness"; the first stream's come from its full audio measures, the real continuations' from their
    recordings. Streams whose prompt has no audio are left without."""
    from workbench.eval.longform import speaker_similarity_over_time

    voices: dict[str, np.ndarray | None] = {}
    real: dict[str, np.ndarray | None] = {}
    for rec, _, _ in prompts:
        audio_rec = corpus_recording(token_dir, rec.id)
        try:
            voices[rec.id] = None if audio_rec is None else audio_rec.load(0.0, cfg.prompt_seconds)
            real[rec.id] = None if audio_rec is None else audio_rec.load(
                cfg.prompt_seconds, min(cfg.audio_minutes * 60, audio_rec.duration - cfg.prompt_seconds))
        except ValueError:
            voices[rec.id] = real[rec.id] = None
    head = round(cfg.audio_minutes * 60 * TOKENS_PER_SECOND)
    for name, streams in members.items():
        for k, member in enumerate(streams):
            if k == 0:
                entry = first_audio.get(name) or {}
                if entry.get("status") == "ok":
                    member["speaker_similarity"] = entry["speaker_similarity"]
                    member["naturalness"] = entry.get("naturalness")
                continue
            voice = voices.get(member["prompt"])
            if voice is None:
                continue
            if name == "ground_truth":  # the real continuation: the ceiling of both measures
                if (wav := real.get(member["prompt"])) is not None:
                    member["speaker_similarity"] = speaker_similarity_over_time(wav, voice,
                                                                                bin_seconds=cfg.bin_seconds)
                    member.update(naturalness(wav, cfg))
                continue
            if "tokens" not in member:
                continue
            log(f"voice of {name} stream {k + 1}/{len(streams)} ({member['prompt']}, seed {member['seed']})")
            wav = render(member["tokens"][:head], voice, seed=cfg.seed)
            member["speaker_similarity"] = speaker_similarity_over_time(wav, voice, bin_seconds=cfg.bin_seconds)
            member.update(naturalness(wav, cfg))
    for streams in members.values():
        for member in streams:
            member.pop("tokens", None)


# ------------------------------------------------------------------------------------- the set's claims

SET_MEASURES = ("entropy_bits", "stuck_share", "longest_run_s", "repeat_rate", "distinct_n", "nll")
DRIFT_MEASURES = ("entropy_bits", "stuck_share", "longest_run_s")  # what a collapse moves
# measures of the rendered audio, per bin: field of a stream -> the value in each of its bins
AUDIO_MEASURES = {"speaker_similarity": "similarity", "naturalness": "ovrl"}


def set_statistics(members: dict[str, list[dict[str, Any]]], cfg: ExtrapolationConfig, recordings: list
                   ) -> dict[str, Any]:
    """Per model: every stream's bins, each measure per bin as a mean with its 95% interval over the streams
    that reach that bin, and the long-form claims stated as tests over the set."""
    summary = {name: {key: bin_intervals(streams, key) for key in SET_MEASURES} for name, streams in members.items()}
    for name, streams in members.items():
        for field, key in AUDIO_MEASURES.items():
            voiced = [s for s in streams if s.get(field)]
            if voiced:
                summary[name][field] = bin_intervals(voiced, key, field=field)
    return {
        "prompts": [{"recording": r.id, "speaker": r.speaker, "seconds": r.num_tokens / TOKENS_PER_SECOND}
                    for r in recordings],
        "voices": sorted({r.speaker for r in recordings}),
        "seeds": list(range(cfg.seed, cfg.seed + cfg.seeds)),
        "streams": members, "summary": summary, "claims": claims(members),
    }


def bin_intervals(streams: list[dict[str, Any]], key: str, field: str = "measures") -> list[dict[str, Any]]:
    """Bin by bin: the measure's mean, 95% interval and count across the streams that reach the bin (`field`:
    the streams' per-bin token measures, or their "speaker_similarity" bins)."""
    longest = max((s[field] for s in streams), key=len, default=[])
    out = []
    for i, b in enumerate(longest):
        values = [s[field][i].get(key) for s in streams if len(s[field]) > i]
        out.append({"from_s": b["from_s"], "to_s": b["to_s"], **mean_interval(values)})
    return out


def claims(members: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The paper's long-form claims as tests over the set (each with its statistic, interval and stream count):
    - drift: per stream, the least-squares slope of each collapse-sensitive measure per minute; a model's
      measure is "flat" when the 95% interval of its mean slope holds 0, "drifts" when it excludes 0,
      "undetermined" with fewer than two streams;
    - the voice and the naturalness proxy: the same slope test on each stream's speaker similarity to its prompt
      and on its DNSMOS OVRL, where streams were rendered (reported beside the token measures, not part of the
      flat-vs-drifting statement);
    - failures: the share of streams that loop or collapse, per model, with its Wilson interval."""
    drift: dict[str, Any] = {}
    for name, streams in members.items():
        drift[name] = {}
        for key in DRIFT_MEASURES:
            slopes = [slope([(b["from_s"] + b["to_s"]) / 120 for b in s["measures"]],
                            [b.get(key) for b in s["measures"]]) for s in streams]
            interval = mean_interval(slopes)
            verdict = {None: "undetermined", True: "drifts", False: "flat"}[excludes(interval)]
            drift[name][key] = {"slope_per_minute": interval, "verdict": verdict}
    for name, streams in members.items():  # the voice, the naturalness: do they fall as the stream goes on?
        for field, key in AUDIO_MEASURES.items():
            voiced = [s[field] for s in streams if s.get(field)]
            if voiced:
                interval = mean_interval([slope([(b["from_s"] + b["to_s"]) / 120 for b in v],
                                                [b.get(key) for b in v]) for v in voiced])
                verdict = {None: "undetermined", True: "drifts", False: "flat"}[excludes(interval)]
                drift[name][field] = {"slope_per_minute": interval, "verdict": verdict}
    failures = {name: {what: share_interval(sum(s[f"{what}_onset_s"] is not None for s in streams), len(streams))
                       for what in ("loop", "collapse")} for name, streams in members.items()}
    griffin = {k: v for k, v in drift.get("griffin", {}).items() if k in DRIFT_MEASURES}
    transformer = {k: v for k, v in drift.get("transformer", {}).items() if k in DRIFT_MEASURES}
    flat = all(v["verdict"] == "flat" for v in griffin.values()) if griffin else None
    drifts = any(v["verdict"] == "drifts" for v in transformer.values()) if transformer else None
    undetermined = any(v["verdict"] == "undetermined" for m in (griffin, transformer) for v in m.values())
    if undetermined:
        statement = "undetermined: a model has fewer than two streams with a slope (each needs two bins)"
    elif flat and drifts:
        statement = "supported: Griffin's measures are flat over the set while the Transformer's drift"
    elif flat:
        statement = "not supported: Griffin is flat, but so is the Transformer (no drift to contrast)"
    else:
        statement = "not supported: Griffin's measures drift over the set"
    return {"drift": drift, "failures": failures, "griffin_flat_transformer_drifts": statement}


def transcript(entry: dict[str, Any] | None) -> str | None:
    """The whole ASR transcript of a measured clip (its SC-L bins joined), or None."""
    if not entry or entry.get("status") != "ok" or not entry.get("sc_l"):
        return None
    return " ".join(b["transcript"] for b in entry["sc_l"] if b["transcript"]) or None


def judge_verdict(audio: dict[str, Any]) -> dict[str, Any]:
    """LLM-as-judge on the transcripts of the first minutes of both continuations (`judge_pair`: side by side,
    both orders), or why it did not run (no audio, no transcripts, no endpoint)."""
    texts = {name: transcript(audio.get(name)) for name in ("griffin", "transformer")}
    prompt_text = (audio.get("ground_truth") or {}).get("prompt_transcript")
    if missing := [name for name, text in texts.items() if not text]:
        return {"status": "skipped", "winner": None,
                "reason": f"no transcript of the {' and '.join(missing)} continuation (no audio, or ASR heard nothing)"}
    if not os.environ.get(JUDGE_URL_ENV):
        return {"status": "skipped", "winner": None, "reason": JUDGE_NOT_CONFIGURED}
    return judge_pair(prompt_text or "", texts["griffin"], texts["transformer"], names=("griffin", "transformer"))


def save_streams(path: str | Path, streams: dict[str, np.ndarray]) -> Path:
    """The token streams behind the figures, as one .npz (name -> prompt + continuation), written atomically."""
    from workbench.core.io import atomic_path

    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **streams)
    return Path(path)


# --------------------------------------------------------------------------------------------- figures


COLOURS = {"griffin": "31, 119, 180", "transformer": "214, 39, 40", "ground_truth": "44, 160, 44"}


def measure_figure(payload: dict[str, Any], key: str, title: str, yaxis: str, field: str = "measures"):
    """One per-bin measure against time: for each model and the real continuations, the mean over the set's
    streams with its 95% band, and every stream faintly behind it (a set of one stream: just its line). `field`:
    the streams' token measures, or a measure of their rendered audio ("speaker_similarity", "naturalness")."""
    import plotly.graph_objects as go

    fig = go.Figure()
    set_ = payload.get("set") or {"streams": {**{n: [m] for n, m in payload["models"].items() if "measures" in m},
                                              **({"ground_truth": [payload["ground_truth"]]}
                                                 if "ground_truth" in payload else {})}}
    if not any(s.get(field) for streams in set_["streams"].values() for s in streams):
        raise ValueError(f"no stream of this run has {field.replace('_', ' ')} (no rendered audio)")
    for name, all_streams in set_["streams"].items():
        streams = [s for s in all_streams if s.get(field)]
        if not streams:
            continue
        rgb = COLOURS.get(name, "100, 100, 100")
        label = "real continuation" if name == "ground_truth" else name
        for s in streams:  # the individual streams, faint
            bins = s[field]
            fig.add_scatter(x=[(b["from_s"] + b["to_s"]) / 120 for b in bins], y=[b.get(key) for b in bins],
                            mode="lines", line=dict(color=f"rgba({rgb}, 0.25)", width=1), showlegend=False,
                            hoverinfo="skip" if len(streams) > 1 else None, name=label)
        rows = bin_intervals(streams, key, field=field) if len(streams) > 1 else []
        if rows:
            x = [(b["from_s"] + b["to_s"]) / 120 for b in rows]
            banded = [(xi, b) for xi, b in zip(x, rows) if b["low"] is not None]
            if banded:
                fig.add_scatter(x=[xi for xi, _ in banded] + [xi for xi, _ in banded][::-1],
                                y=[b["high"] for _, b in banded] + [b["low"] for _, b in banded][::-1],
                                fill="toself", fillcolor=f"rgba({rgb}, 0.18)", line=dict(width=0),
                                hoverinfo="skip", showlegend=False)
            fig.add_scatter(x=x, y=[b["mean"] for b in rows], mode="lines+markers", line=dict(color=f"rgb({rgb})"),
                            name=f"{label} (mean of {len(streams)}, 95% band)",
                            customdata=[b["n"] for b in rows], hovertemplate="%{y:.3f} (n=%{customdata})")
    # where the stream (prompt included) outgrows the models' training crops
    beyond = max(0.0, payload["models"]["griffin"]["train_window_s"] - payload["prompt"]["seconds"]) / 60
    fig.add_vline(x=beyond, line_dash="dash", annotation_text="past the training window")
    fig.update_layout(title=title, xaxis_title="minutes into the continuation", yaxis_title=yaxis, height=380)
    return fig


def cache_figure(payload: dict[str, Any]):
    """Decode cache (MB) against generated minutes: Griffin flat, the Transformer's KV cache a ramp."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, entry in payload["models"].items():
        if "cache" in entry:
            fig.add_scatter(x=[c["t_s"] / 60 for c in entry["cache"]], y=[c["cache_bytes"] / 2**20 for c in entry["cache"]],
                            mode="lines", name=name)
    fig.update_layout(title="Decode state size while generating", xaxis_title="minutes generated",
                      yaxis_title="cache (MB, batch 1)", height=380)
    return fig


def speed_figure(payload: dict[str, Any]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, entry in payload["models"].items():
        pts = [c for c in entry.get("cache", []) if c["tokens_per_s"]]
        fig.add_scatter(x=[c["t_s"] / 60 for c in pts], y=[c["tokens_per_s"] for c in pts], mode="lines", name=name)
    fig.update_layout(title="Decode speed while generating (batch 1)", xaxis_title="minutes generated",
                      yaxis_title="tokens / s", height=380)
    return fig


def tokens_figure(payload: dict[str, Any]):
    """The units themselves as a raster (unit id against time) over the last seconds of each continuation
    (`units_end` of the payload): a loop shows as a repeating pattern, a stuck unit as a flat line."""
    from plotly.subplots import make_subplots

    shown = payload["units_end"]["streams"]
    fig = make_subplots(rows=len(shown), cols=1, subplot_titles=list(shown), vertical_spacing=0.08)
    for i, (name, units) in enumerate(shown.items(), 1):
        total = payload["models"][name]["generated_s"] if name in payload["models"] else payload[name]["seconds"]
        t = total - len(units) / TOKENS_PER_SECOND + np.arange(len(units)) / TOKENS_PER_SECOND
        fig.add_scatter(x=t, y=units, mode="markers", marker=dict(size=3), name=name, row=i, col=1)
        fig.update_yaxes(title_text="unit", row=i, col=1)
    fig.update_xaxes(title_text="seconds into the continuation", row=len(shown), col=1)
    fig.update_layout(title=f"Units at the end of each continuation (last {payload['units_end']['seconds']:g} s)",
                      showlegend=False, height=200 * len(shown) + 80)
    return fig


def minute_figure(streams: dict[str, np.ndarray], prompt_tokens: int, minute: int, seconds: float = 20.0):
    """The units of the first stream of each model (and the real continuation) from `minute` into the
    continuation, `seconds` long: step through a 16-minute stream and see where it holds or falls apart."""
    from plotly.subplots import make_subplots

    start = prompt_tokens + minute * 60 * TOKENS_PER_SECOND
    shown = {n: s[start: start + round(seconds * TOKENS_PER_SECOND)]
             for n, s in streams.items() if n in ("griffin", "transformer", "ground_truth") and len(s) > start}
    fig = make_subplots(rows=max(1, len(shown)), cols=1, subplot_titles=list(shown) or ["(no stream this long)"],
                        vertical_spacing=0.08)
    for i, (name, units) in enumerate(shown.items(), 1):
        t = minute * 60 + np.arange(len(units)) / TOKENS_PER_SECOND
        fig.add_scatter(x=t, y=units, mode="markers", marker=dict(size=3), name=name, row=i, col=1)
        fig.update_yaxes(title_text="unit", row=i, col=1)
    fig.update_layout(title=f"Units from minute {minute} of each continuation ({seconds:g} s)", showlegend=False,
                      height=200 * max(1, len(shown)) + 80)
    return fig


def last_minute(streams: dict[str, np.ndarray], prompt_tokens: int) -> int:
    """The index of the last (possibly partial) minute of the longest continuation."""
    longest = max((len(s) - prompt_tokens for s in streams.values()), default=0)
    return max(0, (longest - 1) // (60 * TOKENS_PER_SECOND))


def minute_explorer(streams: dict[str, np.ndarray], prompt_tokens: int):
    """A slider over the minutes of the continuations redrawing `minute_figure`; None without ipywidgets (the
    static figures stand in for it, as under papermill)."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    last = last_minute(streams, prompt_tokens)

    def draw(minute: int) -> None:
        minute_figure(streams, prompt_tokens, minute).show()

    return widgets.interactive(draw, minute=widgets.IntSlider(value=0, min=0, max=last, description="minute"))


def audio_figure(payload: dict[str, Any]):
    """SC-L, speaker similarity and the naturalness proxy over time of every measured clip (continuations and
    the ground truth), with SC-L's floor (unrelated passages) as a band."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("SC-L: similarity to the prompt's transcript",
                                                        "speaker similarity to the prompt",
                                                        "naturalness proxy (DNSMOS OVRL)"))
    floor = payload.get("sc_l_floor") or {}
    if floor.get("mean") is not None:
        low, high = floor.get("low"), floor.get("high")
        if low is not None:
            fig.add_hrect(y0=low, y1=high, fillcolor="grey", opacity=0.2, line_width=0, row=1, col=1)
        fig.add_hline(y=floor["mean"], line_dash="dot", line_color="grey", row=1, col=1,
                      annotation_text=f"floor: unrelated passages (n={floor['n']})")
    for name, entry in payload["audio"].items():
        if not entry or entry.get("status") != "ok":
            continue
        at = entry.get("offset_s", 0.0)
        if entry.get("sc_l"):
            fig.add_scatter(x=[(at + (b["from_s"] + b["to_s"]) / 2) / 60 for b in entry["sc_l"]],
                            y=[b["similarity"].get("prompt") for b in entry["sc_l"]], mode="lines+markers",
                            name=f"{name} SC-L", row=1, col=1)
        fig.add_scatter(x=[(at + (b["from_s"] + b["to_s"]) / 2) / 60 for b in entry["speaker_similarity"]],
                        y=[b["similarity"] for b in entry["speaker_similarity"]], mode="lines+markers",
                        name=f"{name} speaker", row=1, col=2)
        if entry.get("naturalness"):
            fig.add_scatter(x=[(at + (b["from_s"] + b["to_s"]) / 2) / 60 for b in entry["naturalness"]],
                            y=[b["ovrl"] for b in entry["naturalness"]], mode="lines+markers",
                            name=f"{name} DNSMOS", row=1, col=3)
    fig.update_xaxes(title_text="minutes into the continuation")
    fig.update_yaxes(title_text="cosine", row=1, col=1)
    fig.update_yaxes(title_text="MOS (1-5), a proxy", row=1, col=3)
    fig.update_layout(height=380)
    return fig


def summary(payload: dict[str, Any]) -> str:
    lines = [f"prompt: {payload['prompt']['recording']} ({payload['prompt']['seconds']:.0f} s)"
             + (" -- SYNTHETIC tokens" if payload["synthetic_tokens"] else "")]
    rows = {**payload["models"], **({"ground_truth": payload["ground_truth"]} if "ground_truth" in payload else {})}
    for name, m in rows.items():
        if "measures" not in m:
            lines.append(f"{name}: {m.get('skipped', 'not generated')}")
            continue
        head = f"{name}: {m.get('generated_s', m.get('seconds', 0)) / 60:.2f} min"
        if "wall_s" in m:
            head += (f" in {m['wall_s']:.0f} s ({m['tokens_per_s']:.0f} tok/s), {m['times_train_window']}x its training "
                     f"window; cache {m['cache_bytes_start'] / 1e3:,.1f} -> {m['cache_bytes_end'] / 1e3:,.1f} kB")
        for what, onset in (("loop", m["loop_onset_s"]), ("collapse", m["collapse_onset_s"])):
            head += f"; no {what}" if onset is None else f"; {what} from {onset / 60:.1f} min"
        lines.append(head)
        lines.append("   " + "  ".join(f"{b['from_s'] / 60:.1f}m rep {_fmt(b['repeat_rate'])} stuck {b['stuck_share']:.2f} "
                                       f"H {b['entropy_bits']:.2f} "
                                       f"nll {_fmt(b.get('nll'))}" for b in m["measures"]))
    for name, a in payload["audio"].items():
        line = f"audio ({name}): {a['status']}" + (f" -- {a['reason']}" if a.get("reason") else "")
        if a["status"] == "ok":
            sc = [b["similarity"].get("prompt") for b in a["sc_l"] or []]
            line += (f": SC-L {' '.join(_fmt(x) for x in sc)}; speaker "
                     f"{' '.join(_fmt(b['similarity']) for b in a['speaker_similarity'])}")
            if a.get("naturalness"):
                line += f"; DNSMOS OVRL {' '.join(_fmt(b['ovrl']) for b in a['naturalness'])}"
        lines.append(line)
    floor = payload.get("sc_l_floor")
    if floor:
        lines.append(f"SC-L floor (unrelated held-out passages): {floor['status']}" + (
            f" -- {floor['reason']}" if floor.get("reason") else
            f": {_fmt(floor.get('mean'))} [{_fmt(floor.get('low'))}, {_fmt(floor.get('high'))}] (n={floor.get('n')})"))
    lines.append(f"LLM judge: {payload['llm_judge']['status']} -- {payload['llm_judge'].get('reason', '')}")
    lines += set_lines(payload.get("set"))
    return "\n".join(lines)


def set_lines(set_: dict[str, Any] | None) -> list[str]:
    """The set's claims, each with its interval and stream count."""
    if not set_:
        return []
    counts = {n: len(s) for n, s in set_["streams"].items()}
    lines = [f"set: {len(set_['prompts'])} prompts ({', '.join(set_['voices'])}) x {len(set_['seeds'])} seeds; streams "
             + ", ".join(f"{n} {c}" for n, c in counts.items())]
    for name, per in set_["claims"]["drift"].items():
        parts = []
        for key, d in per.items():
            i = d["slope_per_minute"]
            ci = "" if i["low"] is None else f" [{i['low']:+.3f}, {i['high']:+.3f}]"
            parts.append(f"{key} {_fmt_signed(i['mean'])}/min{ci} {d['verdict']}")
        lines.append(f"   {name} (n={counts[name]}): " + "; ".join(parts))
    for name, f in set_["claims"]["failures"].items():
        lines.append(f"   {name}: " + "; ".join(f"{what} {v['k']}/{v['n']} [{v['low']:.2f}, {v['high']:.2f}]"
                                               for what, v in f.items() if v["n"]))
    lines.append("   claim: " + set_["claims"]["griffin_flat_transformer_drifts"])
    return lines


def _fmt_signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


# ---------------------------------------------------------------------------------------------- command


def cmd_extrapolate(args) -> None:
    cfg = extrapolation_config(args.preset, minutes=args.minutes, transformer_minutes=args.transformer_minutes,
                               prompt_seconds=args.prompt_seconds, bin_seconds=args.bin_seconds,
                               temperature=args.temperature, seed=args.seed, workers=args.workers)
    log = (lambda m: None) if args.json else (lambda m: print(m, flush=True))
    payload, streams = run_extrapolation(args.preset, cfg, runs=args.runs, tokens=args.tokens,
                                         train_missing=not args.no_train, device=args.device,
                                         audio=not args.no_audio, acoustic_run=args.acoustic_run,
                                         reports=args.reports, progress=not args.json, log=log)
    payload["streams"] = str(save_streams(reports_dir(args.reports) / "extrapolation-tokens.npz", streams))
    emit(args, payload, summary, report_name="extrapolation.json")


def register(subparsers) -> None:
    p = subparsers.add_parser("extrapolate", help="continue one held-out prompt for minutes with Griffin and the "
                              "Transformer, render and measure the streams over time (extrapolation.json)")
    p.add_argument("--preset", default="laptop", choices=tuple(PRESETS))
    p.add_argument("--minutes", type=float, default=None, help="Griffin's continuation (laptop default: 16)")
    p.add_argument("--transformer-minutes", type=float, default=None,
                   help="the Transformer's continuation (laptop default: 4; it slows down with length)")
    p.add_argument("--prompt-seconds", type=float, default=None)
    p.add_argument("--bin-seconds", type=float, default=None, help="measures per bin (laptop default: 60)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (default: one per CPU core; one on a GPU)")
    p.add_argument("--runs", default=None, help="folder holding griffin/ and transformer/ runs "
                   "(default runs/lm/<preset>)")
    p.add_argument("--tokens", default=None, help="token directory (default: the one the runs trained on)")
    p.add_argument("--no-train", action="store_true", help="fail instead of training missing runs")
    p.add_argument("--no-audio", action="store_true", help="no audio: no rendering, no ASR / speaker measures")
    p.add_argument("--acoustic-run", default=None, help="SoundStorm run (default runs/acoustic/<preset>)")
    p.add_argument("--device", default=None)
    add_output_args(p)
    p.set_defaults(func=cmd_extrapolate)
