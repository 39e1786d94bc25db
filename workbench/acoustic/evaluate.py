"""`acoustic eval`: resynthesis of held-out speakers from their ground-truth semantic tokens, with a 3 s prompt.

For each clip (`clip_seconds` of a test recording, cut at word boundaries; the test speakers never occur in
training) we take its semantic tokens (our tokenizer) and synthesize them twice:

- with a prompt of the same speaker (`prompt_seconds` from another of their recordings, or a distant part of the
  same one): `spkr_sim_prompt` = speaker similarity of the result to that prompt, `spkr_sim_other` = similarity of
  the same result to a prompt of the other held-out speaker. The gap says whether the voice follows the prompt
  rather than the semantic tokens (which are meant to be speaker-invariant);
- with the other speaker's prompt (the "another voice" case): `spkr_sim_swap_prompt` (to the prompt it was given)
  and `spkr_sim_swap_source` (to the clip's own speaker).

The swap test over all ordered pairs (`swap_test`): every clip is also synthesized with the prompt of every other
held-out synthetic voice and of `real_prompts` real voices (recorded speech, `workbench.data.loaders.REAL_SPEECH_DIRS`;
speakers of ../shared/data/mini-librispeech, which may train the models, are passed over). Per (source, prompt)
condition: the gap (similarity to the prompt's voice minus similarity to the source speaker), both similarities
and the WER, each gap as a mean with its 95% t-interval over clips, and pooled per kind of prompt voice.

Words: pocketsphinx transcripts against the clip's text, pooled WER over all clips (`wer`). Ceilings measured the
same way on the same clips: the codec's own reconstruction (`wer_codec`, `spkr_sim_codec`, and
`spkr_sim_codec_other` against the other speaker: how much of the voice gap survives the codec) and the original
audio (`wer_original`, `spkr_sim_original`, and `spkr_sim_original_other`: the natural gap between the two
voices). Speed: `realtime_factor` = seconds of audio per wall second for semantic tokens -> codes -> audio on a
`speed_seconds` stream, on `threads` torch threads.

`voice_similarities` measures the voices themselves: how far apart the corpus's synthetic voices are to the same
d-vectors (each reads the same two sentences), so a swap between two voices can be read against their distance.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workbench.acoustic.config import EvalConfig
from workbench.acoustic.data import load_pairs, sample_batch
from workbench.acoustic.synthesize import Synthesizer
from workbench.acoustic.train import masked_loss
from workbench.codec.stream import reconstruct
from workbench.core.audio import SAMPLE_RATE, AudioConversionWarning, load_audio
from workbench.core.errors import UserError
from workbench.data.loaders import corpus_speakers, open_dataset
from workbench.data.synth import render
from workbench.eval.asr import transcribe_many, word_error_rate
from workbench.eval.speaker import cosine, difference_or_none, embedding_or_none, similarity_or_none, speaker_embedding
from workbench.eval.stats import mean_interval


@dataclass
class EvalClip:
    id: str
    speaker: str
    audio: np.ndarray
    text: str
    prompt: np.ndarray  # same speaker, elsewhere
    other_speaker: str
    other_prompt: np.ndarray
    kind: str = "synthetic"  # the source voice: a "synthetic" one or "real" speech mixed into the corpus
    other_kind: str = "synthetic"


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
                              _prompt_audio(other, (fraction + 0.5) % 1.0, prompt_seconds), rec.source, other.source))
    return clips


def real_prompt_voices(count: int, seconds: float, exclude: set[str] | None = None) -> dict[str, np.ndarray]:
    """`count` real voices as `seconds`-long prompts from their first speech (one file per speaker, the longest),
    spread evenly over the speakers found, in a fixed order. Passed over: the mini-LibriSpeech speakers (which
    may be in a model's training data) and `exclude` (the voices the corpus holds: `corpus_speakers`)."""
    import soundfile as sf

    from workbench.data.loaders import MINI_LIBRISPEECH, real_speaker_of, real_speech_files

    root = MINI_LIBRISPEECH / "train-clean-5"
    exclude = set(exclude or ()) | ({f"librispeech-{d.name}" for d in root.iterdir()} if root.is_dir() else set())
    longest: dict[str, tuple[float, Path]] = {}
    for path in real_speech_files():
        speaker = real_speaker_of(path)
        if speaker in exclude or speaker == path.name.split(".")[0]:  # unknown speaker: not a voice we can name
            continue
        try:
            length = sf.info(str(path)).duration
        except Exception:  # noqa: BLE001 -- an unreadable file is simply not a candidate
            continue
        if length >= seconds + 0.5 and length > longest.get(speaker, (0.0, path))[0]:
            longest[speaker] = (length, path)
    speakers = sorted(longest)
    if count <= 0 or not speakers:
        return {}
    chosen = [speakers[round(i * len(speakers) / min(count, len(speakers)))] for i in range(min(count, len(speakers)))]
    out = {}
    for speaker in chosen:
        with warnings.catch_warnings():  # resampled or downmixed to 16 kHz mono: expected for these files
            warnings.simplefilter("ignore", AudioConversionWarning)
            audio = load_audio(longest[speaker][1])
        frame = 320
        energy = np.array([np.sqrt(np.mean(audio[i: i + frame] ** 2)) for i in range(0, len(audio) - frame, frame)])
        first = int(np.argmax(energy > 0.05 * energy.max())) * frame if len(energy) else 0
        start = min(first, max(0, len(audio) - int(seconds * SAMPLE_RATE)))
        out[speaker] = audio[start: start + int(seconds * SAMPLE_RATE)]
    return out


VOICE_TEXTS = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
               "want of a wife.",
               "However little known the feelings or views of such a man may be on his first entering a "
               "neighbourhood, this truth is well fixed.")


def voice_similarities(voices, texts: tuple[str, str] = VOICE_TEXTS) -> dict:
    """How far apart the corpus's synthetic voices are, as a listener's d-vector hears them: each voice reads the
    two `texts` (espeak-ng + mbrola, as the corpus renders them). `self`: a voice against itself on the other text
    (what "the same speaker" scores); `pairs`: every two voices on the same text (first text), so a variant of a
    diphone voice is a different speaker only as far as its pair falls below `self`."""
    emb = {(v.name, k): speaker_embedding(render([t], v).audio) for v in voices for k, t in enumerate(texts)}
    names = [v.name for v in voices]
    return {"self": {n: cosine(emb[n, 0], emb[n, 1]) for n in names},
            "pairs": {f"{a}|{b}": cosine(emb[a, 0], emb[b, 0]) for i, a in enumerate(names) for b in names[i + 1:]}}


def swap_test(synth: Synthesizer, clips: list[EvalClip], real: dict[str, np.ndarray], semantic: list[np.ndarray],
              seed: int = 0, progress: bool = True) -> dict:
    """Every clip in the voice of every other held-out synthetic speaker and of each real voice (see the module
    docstring): per ordered (source, prompt) pair and per kind of prompt voice, the gap with its 95% interval over
    clips, both similarities and the pooled WER."""
    from tqdm.auto import tqdm

    voices: dict[str, tuple[str, np.ndarray]] = {}
    for clip in clips:  # one prompt per held-out voice of the corpus, from the clips themselves
        voices.setdefault(clip.speaker, (clip.kind, clip.prompt))
        voices.setdefault(clip.other_speaker, (clip.other_kind, clip.other_prompt))
    voices.update({name: ("real", audio) for name, audio in real.items()})
    prompt_emb = {name: speaker_embedding(audio) for name, (_, audio) in voices.items()}
    rows, outputs = [], []
    jobs = [(j, clip, name) for j, clip in enumerate(clips) for name in voices if name != clip.speaker]
    for j, clip, name in tqdm(jobs, desc="swap test", unit="synthesis", disable=not progress):
        kind, audio = voices[name]
        out = synth.synthesize(semantic[j], synth.prompt(audio), seed + j)[: len(clip.audio)]
        emb = embedding_or_none(out)  # None: too garbled to embed (counted, left out of the means)
        sim_prompt = similarity_or_none(emb, prompt_emb[name])
        sim_source = similarity_or_none(emb, speaker_embedding(clip.prompt))
        rows.append({"clip": clip.id, "source": clip.speaker, "source_kind": clip.kind, "prompt": name, "kind": kind,
                     "sim_prompt": sim_prompt, "sim_source": sim_source,
                     "gap": difference_or_none(sim_prompt, sim_source), "text": clip.text})
        outputs.append(out)
    for row, heard in zip(rows, transcribe_many(outputs)):  # on every core, after the syntheses
        row["transcript"] = heard

    def pooled(group: list[dict]) -> dict:
        return {"clips": len(group), "gap": mean_interval([r["gap"] for r in group]),
                "sim_prompt": mean_interval([r["sim_prompt"] for r in group]),
                "sim_source": mean_interval([r["sim_source"] for r in group]),
                "wer": word_error_rate([r["text"] for r in group], [r["transcript"] for r in group]),
                "unmeasured": sum(r["gap"] is None for r in group)}

    pairs = sorted({(r["source"], r["prompt"], r["kind"]) for r in rows})
    return {
        "conditions": [{"source": s, "prompt": p, "kind": k,
                        **pooled([r for r in rows if (r["source"], r["prompt"]) == (s, p)])} for s, p, k in pairs],
        "by_kind": {k: pooled([r for r in rows if r["kind"] == k]) for k in ("synthetic", "real")
                    if any(r["kind"] == k for r in rows)},
        # by the kinds of both voices: "synthetic->synthetic" is the swap target, "real->real" real voices
        "by_kinds": {f"{a}->{b}": pooled(group) for a in ("synthetic", "real") for b in ("synthetic", "real")
                     for group in [[r for r in rows if (r["source_kind"], r["kind"]) == (a, b)]] if group},
        "real_voices": sorted(real), "rows": rows,
    }


def evaluate(synth: Synthesizer, cfg: EvalConfig, corpus_dir: str | Path, progress: bool = True, seed: int = 0) -> dict:
    from tqdm.auto import tqdm

    clips = eval_clips(corpus_dir, cfg.clips, cfg.clip_seconds, synth.decode.prompt_seconds)
    rows, refs, semantics = [], [], []
    heard: dict[str, list[np.ndarray]] = {"synth": [], "codec": [], "original": []}  # transcribed after the loop
    for j, clip in enumerate(tqdm(clips, desc="acoustic eval", unit="clip", disable=not progress)):
        semantic = synth.semantic_tokens(clip.audio)
        semantics.append(semantic)
        own = synth.synthesize(semantic, synth.prompt(clip.prompt), seed + j)[: len(clip.audio)]
        swapped = synth.synthesize(semantic, synth.prompt(clip.other_prompt), seed + j)[: len(clip.audio)]
        codec = reconstruct(synth.codec, clip.audio)
        emb = {name: speaker_embedding(x) for name, x in (("original", clip.audio), ("prompt", clip.prompt),
                                                           ("other", clip.other_prompt))}
        # a synthesis too garbled to embed is None: counted (`unmeasured`) and left out of the means
        emb.update({name: embedding_or_none(x) for name, x in (("own", own), ("swapped", swapped), ("codec", codec))})
        sim = lambda a, b: similarity_or_none(emb[a], emb[b])  # noqa: E731
        for k, wav in (("synth", own), ("codec", codec), ("original", clip.audio)):
            heard[k].append(wav)
        refs.append(clip.text)
        rows.append({
            "clip": clip.id, "speaker": clip.speaker, "kind": clip.kind, "other_speaker": clip.other_speaker,
            "seconds": round(len(clip.audio) / synth.rates.sample_rate, 2), "text": clip.text,
            "spkr_sim_prompt": sim("own", "prompt"), "spkr_sim_other": sim("own", "other"),
            "spkr_sim_swap_prompt": sim("swapped", "other"), "spkr_sim_swap_source": sim("swapped", "prompt"),
            "spkr_sim_codec": sim("codec", "prompt"), "spkr_sim_codec_other": sim("codec", "other"),
            "spkr_sim_original": sim("original", "prompt"), "spkr_sim_original_other": sim("original", "other"),
        })
    said = transcribe_many([wav for k in heard for wav in heard[k]])  # on every core: pocketsphinx uses one
    hyps = {k: said[i * len(rows): (i + 1) * len(rows)] for i, k in enumerate(heard)}
    for j, row in enumerate(rows):
        row.update(transcript=hyps["synth"][j], transcript_codec=hyps["codec"][j],
                   transcript_original=hyps["original"][j], wer=word_error_rate(row["text"], hyps["synth"][j]))
    mean = lambda key: mean_interval([r[key] for r in rows])["mean"]  # noqa: E731  (None where none measured)
    sims = {k: mean(k) for k in ("spkr_sim_prompt", "spkr_sim_other", "spkr_sim_swap_prompt", "spkr_sim_swap_source",
                                 "spkr_sim_codec", "spkr_sim_codec_other", "spkr_sim_original",
                                 "spkr_sim_original_other")}
    speed = measure_speed(synth, clips[0], cfg.speed_seconds, seed)
    swap = swap_test(synth, clips, real_prompt_voices(cfg.real_prompts, synth.decode.prompt_seconds,
                                                            corpus_speakers(corpus_dir)), semantics,
                     seed, progress)
    return {
        "same_prompt_gap": mean_interval([_same_prompt_gap(r) for r in rows]),
        "by_source": _resynthesis_by(rows, refs, hyps),
        "by_speaker": _resynthesis_by(rows, refs, hyps, key="speaker"),  # the per-voice table
        "swap_test": swap,
        **sims,
        "spkr_sim_gap": difference_or_none(sims["spkr_sim_prompt"], sims["spkr_sim_other"]),
        "spkr_sim_swap_gap": difference_or_none(sims["spkr_sim_swap_prompt"], sims["spkr_sim_swap_source"]),
        "unmeasured": {k: sum(r[f"spkr_sim_{k}"] is None for r in rows) for k in ("prompt", "swap_prompt", "codec")},
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


def _same_prompt_gap(row: dict) -> float | None:
    """Similarity of the same-prompt resynthesis to its prompt minus to the other speaker's (None: unmeasured)."""
    return difference_or_none(row["spkr_sim_prompt"], row["spkr_sim_other"])


def _resynthesis_by(rows: list[dict], refs: list[str], hyps: dict[str, list[str]], key: str = "kind") -> dict:
    """Resynthesis of the synthetic and of the real held-out voices apart (`key` "kind"; "speaker": each voice
    apart): same-prompt gap, similarity to the prompt's speaker, WER of the synthesis, the codec and the original."""
    out = {}
    for group in sorted({r[key] for r in rows}, key=lambda g: (g != "synthetic", g)):
        idx = [i for i, r in enumerate(rows) if r[key] == group]
        if idx:
            pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
            out[group] = {"clips": len(idx), "speakers": sorted({rows[i]["speaker"] for i in idx}),
                         "same_prompt_gap": mean_interval([_same_prompt_gap(rows[i]) for i in idx]),
                         "spkr_sim_prompt": mean_interval([rows[i]["spkr_sim_prompt"] for i in idx])["mean"],
                         "spkr_sim_codec": mean_interval([rows[i]["spkr_sim_codec"] for i in idx])["mean"],
                         **{f"wer{'' if k == 'synth' else '_' + k}": word_error_rate(pick(refs), pick(v))
                            for k, v in hyps.items()}}
    return out


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


def _interval(x: dict) -> str:
    if x.get("mean") is None:
        return "-"
    return f"{x['mean']:+.3f}" + ("" if x.get("low") is None else f" [{x['low']:+.3f}, {x['high']:+.3f}]")


def _num(x: float | None, sign: str = "") -> str:
    """x to 3 decimals ('+' in `sign`: with its sign); '-' where nothing was measured."""
    return "-" if x is None else f"{x:{sign}.3f}"


def summary_text(p: dict) -> str:
    n = _num
    return "\n".join([
        f"acoustic eval: {p['clips']} clips ({p['seconds']} s) of held-out speakers {', '.join(p['speakers'])}; "
        f"decoding iterations {p['decode']['iterations']}",
        f"speaker similarity: to the prompt {n(p['spkr_sim_prompt'])}, to the other speaker {n(p['spkr_sim_other'])} "
        f"(gap {n(p['spkr_sim_gap'], '+')}); other speaker's prompt: {n(p['spkr_sim_swap_prompt'])} to it, "
        f"{n(p['spkr_sim_swap_source'])} to the source (gap {n(p['spkr_sim_swap_gap'], '+')})",
        f"ceilings: codec {n(p['spkr_sim_codec'])} (vs other speaker {n(p['spkr_sim_codec_other'])}), "
        f"original {n(p['spkr_sim_original'])} (vs other speaker {n(p['spkr_sim_original_other'])})",
        f"WER: resynthesis {p['wer']:.3f}, codec {p['wer_codec']:.3f}, original {p['wer_original']:.3f}",
        *[f"{kind} held-out voices ({v['clips']} clips: {', '.join(v['speakers'])}): same-prompt gap "
          f"{_interval(v['same_prompt_gap'])}, to the prompt {n(v['spkr_sim_prompt'])} "
          f"(codec {n(v['spkr_sim_codec'])}), "
          f"WER resynthesis {v['wer']:.3f}, codec {v['wer_codec']:.3f}, original {v['wer_original']:.3f}"
          for kind, v in p.get("by_source", {}).items()],
        *[f"  {name}: same-prompt gap {_interval(v['same_prompt_gap'])}, WER resynthesis {v['wer']:.3f}, codec "
          f"{v['wer_codec']:.3f}" for name, v in p.get("by_speaker", {}).items()],
        *[f"swap test, {kinds} voices ({v['clips']} syntheses): gap {_interval(v['gap'])}, to the prompt "
          f"{n(v['sim_prompt']['mean'])}, to the source {n(v['sim_source']['mean'])}, WER {v['wer']:.3f}"
          for kinds, v in (p.get("swap_test") or {}).get("by_kinds", {}).items()],
        *([f"too garbled for a speaker embedding (left out of the means): {p['unmeasured']}"]
          if any((p.get("unmeasured") or {}).values()) else []),
        f"speed: {p['realtime_factor']}x real time on {p['threads']} thread(s) ({p['speed_seconds']} s stream)",
        *[f"level {r['level']}: held-out masked loss {r['loss']:.3f} (unigram {r['unigram_loss']:.3f}), "
          f"accuracy {r['accuracy']:.3f}" for r in p.get("masked_prediction_by_level", [])],
    ])
