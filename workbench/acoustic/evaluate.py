"""`acoustic eval`: resynthesis of held-out speakers from their ground-truth semantic tokens, with a 3 s prompt.

For each clip (`clip_seconds` of a test recording, cut at word boundaries; the test speakers never occur in
training) we take its semantic tokens (our tokenizer) and synthesize them twice:

- with a prompt of the same speaker (`prompt_seconds` from another of their recordings, or a distant part of the
  same one): `spkr_sim_prompt` = speaker similarity of the result to that prompt, `spkr_sim_other` = similarity of
  the same result to a prompt of the other held-out speaker. The gap says whether the voice follows the prompt
  rather than the semantic tokens (which are meant to be speaker-invariant);
- with the other speaker's prompt (the "another voice" case): `spkr_sim_swap_prompt` (to the prompt it was given)
  and `spkr_sim_swap_source` (to the clip's own speaker).

Words: pocketsphinx transcripts against the clip's text, pooled WER over all clips (`wer`). Ceilings measured the
same way on the same clips: the codec's own reconstruction (`wer_codec`, `spkr_sim_codec`, and
`spkr_sim_codec_other` against the other speaker: how much of the voice gap survives the codec) and the original
audio (`wer_original`, `spkr_sim_original`, and `spkr_sim_original_other`: the natural gap between the two
voices). Speed: `realtime_factor` = seconds of audio per wall second for semantic tokens -> codes -> audio on a
`speed_seconds` stream, on `threads` torch threads.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workbench.acoustic.config import EvalConfig
from workbench.acoustic.data import load_pairs, sample_batch
from workbench.acoustic.synthesize import Synthesizer
from workbench.acoustic.train import masked_loss
from workbench.codec.stream import reconstruct
from workbench.core.errors import UserError
from workbench.data.loaders import open_dataset
from workbench.eval.asr import transcribe, word_error_rate
from workbench.eval.speaker import cosine, speaker_embedding


@dataclass
class EvalClip:
    id: str
    speaker: str
    audio: np.ndarray
    text: str
    prompt: np.ndarray  # same speaker, elsewhere
    other_speaker: str
    other_prompt: np.ndarray


def _word_window(rec, start: float, seconds: float) -> tuple[float, float, str]:
    """[t0, t1) starting at the first word at or after `start`, ending with the last word that fits in `seconds`."""
    words = rec.alignment_data()["words"]
    first = next((i for i, w in enumerate(words) if w[1] >= start), 0)
    t0 = words[first][1]
    inside = [w for w in words[first:] if w[2] <= t0 + seconds]
    if not inside:
        inside = [words[first]]
    return t0, inside[-1][2], " ".join(w[0] for w in inside)


def _prompt_audio(rec, centre_fraction: float, seconds: float) -> np.ndarray:
    start = max(0.0, min(rec.duration - seconds, centre_fraction * rec.duration))
    start = _word_window(rec, start, seconds)[0] if start + seconds < rec.duration else start
    start = min(start, max(0.0, rec.duration - seconds))
    return rec.load(start, seconds)


def eval_clips(corpus_dir: str | Path, n: int, clip_seconds: float, prompt_seconds: float) -> list[EvalClip]:
    """`n` clips spread over the test recordings (round robin), each with a same-speaker and an other-speaker
    prompt."""
    try:
        test = open_dataset(corpus_dir, split="test")
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"cannot open the evaluation corpus: {err}") from None
    recs = sorted((r for r in test.recordings if r.duration >= clip_seconds + prompt_seconds), key=lambda r: r.id)
    speakers = sorted({r.speaker for r in recs})
    if len(speakers) < 2:
        raise UserError(f"{corpus_dir}: the test split needs recordings of two speakers at least "
                        f"{clip_seconds + prompt_seconds:g} s long (found speakers {speakers})")
    rounds = -(-n // len(recs))
    clips = []
    for i in range(n):
        rec, r = recs[i % len(recs)], i // len(recs)
        fraction = (r + 0.25) / rounds
        t0, t1, text = _word_window(rec, fraction * (rec.duration - clip_seconds), clip_seconds)
        same = [x for x in recs if x.speaker == rec.speaker and x.id != rec.id]
        # the same speaker elsewhere: another recording, else half a recording away from the clip
        prompt = (_prompt_audio(same[i % len(same)], 0.5, prompt_seconds) if same
                  else _prompt_audio(rec, (fraction + 0.5) % 1.0, prompt_seconds))
        others = [x for x in recs if x.speaker != rec.speaker]
        other = others[i % len(others)]
        clips.append(EvalClip(f"{rec.id}@{t0:.1f}s", rec.speaker, rec.load(t0, t1 - t0), text, prompt, other.speaker,
                              _prompt_audio(other, (fraction + 0.5) % 1.0, prompt_seconds)))
    return clips


def evaluate(synth: Synthesizer, cfg: EvalConfig, corpus_dir: str | Path, progress: bool = True, seed: int = 0) -> dict:
    from tqdm.auto import tqdm

    clips = eval_clips(corpus_dir, cfg.clips, cfg.clip_seconds, synth.decode.prompt_seconds)
    rows, refs = [], []
    hyps: dict[str, list[str]] = {"synth": [], "codec": [], "original": []}
    for j, clip in enumerate(tqdm(clips, desc="acoustic eval", unit="clip", disable=not progress)):
        semantic = synth.semantic_tokens(clip.audio)
        own = synth.synthesize(semantic, synth.prompt(clip.prompt), seed + j)[: len(clip.audio)]
        swapped = synth.synthesize(semantic, synth.prompt(clip.other_prompt), seed + j)[: len(clip.audio)]
        codec = reconstruct(synth.codec, clip.audio)
        emb = {name: speaker_embedding(x) for name, x in (("own", own), ("swapped", swapped), ("codec", codec),
                                                           ("original", clip.audio), ("prompt", clip.prompt),
                                                           ("other", clip.other_prompt))}
        said = {"synth": transcribe(own), "codec": transcribe(codec), "original": transcribe(clip.audio)}
        for k, v in said.items():
            hyps[k].append(v)
        refs.append(clip.text)
        rows.append({
            "clip": clip.id, "speaker": clip.speaker, "other_speaker": clip.other_speaker,
            "seconds": round(len(clip.audio) / synth.rates.sample_rate, 2), "text": clip.text,
            "spkr_sim_prompt": cosine(emb["own"], emb["prompt"]), "spkr_sim_other": cosine(emb["own"], emb["other"]),
            "spkr_sim_swap_prompt": cosine(emb["swapped"], emb["other"]),
            "spkr_sim_swap_source": cosine(emb["swapped"], emb["prompt"]),
            "spkr_sim_codec": cosine(emb["codec"], emb["prompt"]),
            "spkr_sim_codec_other": cosine(emb["codec"], emb["other"]),
            "spkr_sim_original": cosine(emb["original"], emb["prompt"]),
            "spkr_sim_original_other": cosine(emb["original"], emb["other"]),
            "transcript": said["synth"], "transcript_codec": said["codec"], "transcript_original": said["original"],
            "wer": word_error_rate(clip.text, said["synth"]),
        })
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    sims = {k: mean(k) for k in ("spkr_sim_prompt", "spkr_sim_other", "spkr_sim_swap_prompt", "spkr_sim_swap_source",
                                 "spkr_sim_codec", "spkr_sim_codec_other", "spkr_sim_original",
                                 "spkr_sim_original_other")}
    speed = measure_speed(synth, clips[0], cfg.speed_seconds, seed)
    return {
        **sims,
        "spkr_sim_gap": sims["spkr_sim_prompt"] - sims["spkr_sim_other"],
        "spkr_sim_swap_gap": sims["spkr_sim_swap_prompt"] - sims["spkr_sim_swap_source"],
        "wer": word_error_rate(refs, hyps["synth"]), "wer_codec": word_error_rate(refs, hyps["codec"]),
        "wer_original": word_error_rate(refs, hyps["original"]),
        **speed,
        "masked_prediction_by_level": masked_prediction_by_level(synth, seed=seed),
        "clips": len(rows), "seconds": round(sum(r["seconds"] for r in rows), 2),
        "speakers": sorted({r["speaker"] for r in rows}),
        "decode": {**dataclasses.asdict(synth.decode), "iterations": list(synth.decode.iterations(synth.levels))},
        "model": {"trained_steps": synth.meta.get("step"), "parameters": synth.meta.get("parameters"),
                  "levels": synth.levels, "codebook_size": synth.model.cfg.codebook_size,
                  "codec": synth.meta.get("codec"), "tokenizer": synth.meta.get("tokenizer")},
        "rows": rows,
    }


def masked_prediction_by_level(synth: Synthesizer, batches: int = 4, ratio: float = 0.5, batch_size: int = 8,
                               seed: int = 0) -> list[dict]:
    """Per RVQ level, on fixed held-out crops (dev split of the training pairs: held-out speakers) with a prompt
    in front: cross-entropy and accuracy of the model on `ratio` of the level's tokens masked (coarser levels
    given, finer masked), beside `unigram_loss`, the cross-entropy of the level's code frequencies in the training
    pairs: what a model that ignored its input would score."""
    pairs_dir, meta = Path(synth.meta["pairs"]), synth.meta
    if not (pairs_dir / "manifest.jsonl").is_file():
        return []
    held = load_pairs(pairs_dir, "dev") or load_pairs(pairs_dir, "train")
    counts = np.ones((synth.levels, synth.model.cfg.codebook_size))  # add-one smoothing
    for line in (pairs_dir / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["split"] == "train":
            with np.load(pairs_dir / row["path"]) as z:
                for q in range(synth.levels):
                    counts[q] += np.bincount(z["codes"][q].astype(np.int64), minlength=counts.shape[1])
    probs = counts / counts.sum(1, keepdims=True)
    crop = synth.rates.seconds_to_frames(meta["train_config"]["crop_seconds"])
    prompt = synth.rates.seconds_to_frames(synth.decode.prompt_seconds)
    rng = np.random.default_rng([seed, 17])
    data = [sample_batch(held, synth.rates, batch_size, crop, prompt, 1.0, synth.levels, rng) for _ in range(batches)]
    rows = []
    with torch.inference_mode():
        for q in range(synth.levels):
            results = [masked_loss(synth.model, b, torch.Generator().manual_seed(seed + j), level=q, ratio=ratio)
                       for j, b in enumerate(data)]
            codes = np.concatenate([b.codes[:, q].numpy().ravel() for b in data])
            rows.append({"level": q, "loss": float(np.mean([l.item() for l, _ in results])),
                         "accuracy": float(np.mean([r["accuracy"] for _, r in results])),
                         "unigram_loss": float(-np.log(probs[q][codes]).mean()),
                         "code_perplexity": float(np.exp(-(probs[q] * np.log(probs[q])).sum()))})
    return rows


def measure_speed(synth: Synthesizer, clip: EvalClip, seconds: float, seed: int = 0) -> dict:
    """Semantic tokens -> codes -> audio on a `seconds` stream (the clip's tokens repeated), timed."""
    semantic = synth.semantic_tokens(clip.audio)
    tokens = int(round(seconds * synth.rates.semantic_rate))
    stream = np.resize(semantic, tokens)
    prompt = synth.prompt(clip.prompt)
    started = time.perf_counter()
    wav = synth.synthesize(stream, prompt, seed)
    wall = time.perf_counter() - started
    return {"realtime_factor": round(len(wav) / synth.rates.sample_rate / wall, 3), "speed_seconds": seconds,
            "speed_wall_s": round(wall, 3), "threads": torch.get_num_threads()}


def summary_text(p: dict) -> str:
    return "\n".join([
        f"acoustic eval: {p['clips']} clips ({p['seconds']} s) of held-out speakers {', '.join(p['speakers'])}; "
        f"decoding iterations {p['decode']['iterations']}",
        f"speaker similarity: to the prompt {p['spkr_sim_prompt']:.3f}, to the other speaker {p['spkr_sim_other']:.3f} "
        f"(gap {p['spkr_sim_gap']:+.3f}); other speaker's prompt: {p['spkr_sim_swap_prompt']:.3f} to it, "
        f"{p['spkr_sim_swap_source']:.3f} to the source (gap {p['spkr_sim_swap_gap']:+.3f})",
        f"ceilings: codec {p['spkr_sim_codec']:.3f} (vs other speaker {p['spkr_sim_codec_other']:.3f}), "
        f"original {p['spkr_sim_original']:.3f} (vs other speaker {p['spkr_sim_original_other']:.3f})",
        f"WER: resynthesis {p['wer']:.3f}, codec {p['wer_codec']:.3f}, original {p['wer_original']:.3f}",
        f"speed: {p['realtime_factor']}x real time on {p['threads']} thread(s) ({p['speed_seconds']} s stream)",
        *[f"level {r['level']}: held-out masked loss {r['loss']:.3f} (unigram {r['unigram_loss']:.3f}), "
          f"accuracy {r['accuracy']:.3f}" for r in p.get("masked_prediction_by_level", [])],
    ])
