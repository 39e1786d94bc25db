"""Which RVQ levels of SoundStorm's output carry the words and the voice?

Each evaluation clip of `acoustic eval` (the same clips, the same seeds) is synthesized once with a prompt of its
own speaker and once with the other held-out speaker's; both code streams are then decoded by the codec from their
first L levels only (every prefix is a codec: quantizer dropout), beside the codec's own reconstruction at L
levels. Per kind of voice and L: pooled pocketsphinx WER of both, the same-prompt gap, the swap gap (similarity to
the prompt's voice minus to the source speaker) and the similarity to the prompt. If SoundStorm's finer levels were
noise that hurts the words, WER would fall as L falls; if its level 0 is the limit, WER stays flat while the codec's
falls with every level.

The other direction (`--given`): the first L levels of each clip are *given* -- its own codes, as the codec codes
it -- and SoundStorm decodes only the finer ones (from the clip's own speaker's prompt, the whole clip in one window),
then the codec decodes every level. L = 0 is plain synthesis in that one window. If a right level 0 were all the
words needed, WER at L = 1 would fall to the codec's; what it does fall to is what SoundStorm's finer levels cost.

    python scripts/acoustic_levels_study.py RUN_DIR CORPUS_DIR OUT.json [--levels 1,2,3,4,6] [--preset laptop]
    python scripts/acoustic_levels_study.py RUN_DIR CORPUS_DIR OUT.json --given 0,1,2,3 [--preset laptop]
    python scripts/acoustic_levels_study.py RUN_DIR CORPUS_DIR OUT.json --soft 1,0.5 [--preset laptop]

Soft decoding (`--soft`): a weak model's sampled codes are often wrong, and the codec decodes a wrong code as
confidently as a right one. Instead, decode the model's *expected* latent: for every level q, one pass with levels
q.. of the window masked (the coarser ones its own decoded codes) gives p(code); the codec's decoder hears
sum_q sum_k p_q(k) codebook_q[k] (at temperature T: p^(1/T), renormalised) instead of the sum of the chosen codes.
Beside the plain decode of the same synthesis (one window, the clip's own speaker's prompt) and the codec.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.acoustic.config import PRESETS, EvalConfig
from workbench.acoustic.data import upsample_semantic
from workbench.acoustic.evaluate import eval_clips
from workbench.acoustic.synthesize import Synthesizer
from workbench.acoustic.windowed import Prompt, synthesize_codes
from workbench.codec.stream import reconstruct
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json
from workbench.eval.asr import transcribe_many, word_error_rate
from workbench.eval.speaker import difference_or_none, embedding_or_none, similarity_or_none, speaker_embedding
from workbench.eval.stats import mean_interval


def _table(rows: list[dict], key: str, values: list[int], measures) -> list[dict]:
    """Per kind of voice (synthetic, real, all) and value of `key`: clip count, pooled WER of the synthesis and of the
    codec, and what `measures(group)` adds."""
    table = []
    for kind in ("synthetic", "real", "all"):
        for n in values:
            group = [r for r in rows if r[key] == n and kind in ("all", r["kind"])]
            if group:
                texts = [r["text"] for r in group]
                table.append({"kind": kind, key: n, "clips": len(group),
                              "wer": word_error_rate(texts, [r["transcript"] for r in group]),
                              "wer_codec": word_error_rate(texts, [r["transcript_codec"] for r in group]),
                              **measures(group)})
    return table


def study(synth: Synthesizer, corpus: str, levels: list[int], cfg: EvalConfig) -> dict:
    clips = eval_clips(corpus, cfg.clips, cfg.clip_seconds, synth.decode.prompt_seconds)
    rows, heard = [], []
    for j, clip in enumerate(tqdm(clips, desc="levels study", unit="clip")):
        semantic = synth.semantic_tokens(clip.audio)
        own, swapped = synth.synthesize_codes([semantic, semantic],
                                              [synth.prompt(clip.prompt), synth.prompt(clip.other_prompt)], seed=j)
        prompt, other = speaker_embedding(clip.prompt), speaker_embedding(clip.other_prompt)
        for n in levels:
            wav = synth.audio(own[:n])[: len(clip.audio)]
            swap = embedding_or_none(synth.audio(swapped[:n])[: len(clip.audio)])
            codec = reconstruct(synth.codec, clip.audio, n_q=n)
            emb, sim = embedding_or_none(wav), similarity_or_none  # None: too garbled to embed, left out of means
            rows.append({"clip": clip.id, "kind": clip.kind, "levels": n, "text": clip.text,
                         "sim_prompt": sim(emb, prompt),
                         "same_gap": difference_or_none(sim(emb, prompt), sim(emb, other)),
                         "swap_gap": difference_or_none(sim(swap, other), sim(swap, prompt)),
                         "codec_sim_prompt": sim(embedding_or_none(codec), prompt)})
            heard += [wav, codec]
    said = transcribe_many(heard)  # one process per core, after the syntheses
    for i, row in enumerate(rows):
        row["transcript"], row["transcript_codec"] = said[2 * i], said[2 * i + 1]
    table = _table(rows, "levels", levels, lambda group: {
        "same_prompt_gap": mean_interval([r["same_gap"] for r in group]),
        "swap_gap": mean_interval([r["swap_gap"] for r in group]),
        "sim_prompt": mean_interval([r["sim_prompt"] for r in group])["mean"],
        "codec_sim_prompt": mean_interval([r["codec_sim_prompt"] for r in group])["mean"],
        # decodes too garbled for a speaker embedding (None): left out of the means
        "unmeasured": sum(r[k] is None for r in group for k in ("sim_prompt", "swap_gap", "codec_sim_prompt"))})
    return {"model": {"trained_steps": synth.meta.get("step"), "levels": synth.levels}, "table": table, "rows": rows}


FORCED = -1e4  # the logit of every code but the given one: exp(-1e4) is 0, so even sampling picks the given code


@torch.inference_mode()
def given_codes(synth: Synthesizer, semantic: np.ndarray, prompt: Prompt, truth: np.ndarray, given: int,
                seed: int = 0) -> np.ndarray:
    """SoundStorm's codes (q, frames) for one clip in one window after `prompt`, its first `given` levels forced to
    `truth` (q, t), the clip's own codes: what the finer levels make of a right coarse stream."""
    frames = synth.rates.frames(len(semantic))
    truth = np.pad(truth[: synth.levels, :frames], ((0, 0), (0, max(0, frames - truth.shape[1]))), mode="edge")
    row = torch.from_numpy(np.concatenate([prompt.codes[: synth.levels], truth], axis=1)).long().to(synth.device)

    def logits_fn(sem, codes, level, pad):
        if level >= given:
            return synth.model.level_logits(sem, codes, level, pad)
        forced = torch.full((*sem.shape, synth.model.cfg.codebook_size), FORCED, device=sem.device)
        return forced.scatter_(-1, row[level][None, : sem.shape[1], None].expand(sem.shape[0], -1, 1), 0.0)

    cfg = dataclasses.replace(synth.decode, window_seconds=frames / synth.rates.codec_rate)
    generator = torch.Generator(synth.device).manual_seed(seed)
    return synthesize_codes(logits_fn, [semantic], [prompt], synth.rates, synth.levels, synth.model.mask_id, cfg,
                            generator, device=synth.device)[0]


def given_study(synth: Synthesizer, corpus: str, given: list[int], cfg: EvalConfig) -> dict:
    clips = eval_clips(corpus, cfg.clips, cfg.clip_seconds, synth.decode.prompt_seconds)
    rows, heard = [], []
    for j, clip in enumerate(tqdm(clips, desc="given-levels study", unit="clip")):
        semantic, truth, prompt = synth.semantic_tokens(clip.audio), synth.codes(clip.audio), synth.prompt(clip.prompt)
        reference = speaker_embedding(clip.prompt)
        for n in given:
            wav = synth.audio(given_codes(synth, semantic, prompt, truth, n, seed=j))[: len(clip.audio)]
            rows.append({"clip": clip.id, "kind": clip.kind, "given": n, "text": clip.text,
                         "sim_prompt": similarity_or_none(embedding_or_none(wav), reference)})
            heard.append(wav)
        heard.append(reconstruct(synth.codec, clip.audio))
    said = transcribe_many(heard)  # one process per core, after the syntheses
    per_clip = len(given) + 1
    for i, row in enumerate(rows):
        clip_index, k = divmod(i, len(given))
        row["transcript"] = said[clip_index * per_clip + k]
        row["transcript_codec"] = said[clip_index * per_clip + len(given)]
    table = _table(rows, "given", given, lambda group: {
        "sim_prompt": mean_interval([r["sim_prompt"] for r in group])["mean"],
        "unmeasured": sum(r["sim_prompt"] is None for r in group)})
    return {"model": {"trained_steps": synth.meta.get("step"), "levels": synth.levels}, "table": table, "rows": rows}


@torch.inference_mode()
def soft_latent(synth: Synthesizer, semantic: np.ndarray, prompt: Prompt, codes: np.ndarray,
                temperature: float = 1.0) -> torch.Tensor:
    """The expected codec latent (D, frames) of one window after `prompt` whose decoded codes (q, frames) are given:
    level q's code distribution read with levels q.. masked and the coarser ones as decoded."""
    frames, p = codes.shape[1], prompt.frames
    sem = torch.from_numpy(np.concatenate([prompt.semantic, upsample_semantic(semantic, synth.rates, 0, frames)]))
    row = torch.from_numpy(np.concatenate([prompt.codes[: synth.levels], codes], axis=1)).long()[None]
    latent = 0
    for q, vq in enumerate(synth.codec.quantizer.levels[: synth.levels]):
        masked = row.clone()
        masked[:, q:, p:] = synth.model.mask_id
        logits = synth.model.level_logits(sem.long()[None].to(synth.device), masked.to(synth.device), q)[0, p:]
        latent = latent + torch.softmax(logits.float() / temperature, -1) @ vq.codebook
    return latent.t()


def soft_study(synth: Synthesizer, corpus: str, temperatures: list[float], cfg: EvalConfig) -> dict:
    clips = eval_clips(corpus, cfg.clips, cfg.clip_seconds, synth.decode.prompt_seconds)
    names = ["plain"] + [f"soft T={t:g}" for t in temperatures]
    rows, heard = [], []
    for j, clip in enumerate(tqdm(clips, desc="soft-decoding study", unit="clip")):
        semantic, truth, prompt = synth.semantic_tokens(clip.audio), synth.codes(clip.audio), synth.prompt(clip.prompt)
        codes = given_codes(synth, semantic, prompt, truth, 0, seed=j)
        with torch.inference_mode():
            wavs = [synth.audio(codes)] + [synth.codec.decoder(soft_latent(synth, semantic, prompt, codes, t)[None])
                                           [0, 0].cpu().numpy() for t in temperatures]
        own, other = speaker_embedding(clip.prompt), speaker_embedding(clip.other_prompt)
        for name, wav in zip(names, wavs):
            emb = embedding_or_none(wav[: len(clip.audio)])
            rows.append({"clip": clip.id, "kind": clip.kind, "decoding": name, "text": clip.text,
                         "sim_prompt": similarity_or_none(emb, own),
                         "same_gap": difference_or_none(similarity_or_none(emb, own), similarity_or_none(emb, other))})
            heard.append(wav[: len(clip.audio)])
        heard.append(reconstruct(synth.codec, clip.audio))
    said = transcribe_many(heard)  # one process per core, after the syntheses
    for i, row in enumerate(rows):
        clip_index, k = divmod(i, len(names))
        row["transcript"] = said[clip_index * (len(names) + 1) + k]
        row["transcript_codec"] = said[clip_index * (len(names) + 1) + len(names)]
    table = _table(rows, "decoding", names, lambda group: {
        "same_prompt_gap": mean_interval([r["same_gap"] for r in group]),
        "sim_prompt": mean_interval([r["sim_prompt"] for r in group])["mean"],
        "unmeasured": sum(r["sim_prompt"] is None for r in group)})
    return {"model": {"trained_steps": synth.meta.get("step"), "levels": synth.levels}, "table": table, "rows": rows}


def _report(result: dict, key: str, out: str) -> None:
    """Print the table of a given-levels or soft-decoding study, one row per kind of voice and `key`; save it."""
    for r in result["table"]:
        sim = "-" if r["sim_prompt"] is None else f"{r['sim_prompt']:.3f}"
        mean = r.get("same_prompt_gap", {}).get("mean")
        gap = "" if "same_prompt_gap" not in r else f", same-prompt gap {'-' if mean is None else f'{mean:+.3f}'}"
        print(f"{r['kind']:>9} {key} {r[key]}: WER {r['wer']:.3f} (codec {r['wer_codec']:.3f}){gap}, to the prompt {sim}")
    atomic_write_json(out, result)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run"), p.add_argument("corpus"), p.add_argument("out")
    p.add_argument("--levels", default="1,2,3,4,6", help="level counts to decode, comma-separated")
    p.add_argument("--given", default=None, help="instead: level counts given as the clip's own codes, "
                   "comma-separated (0 = none), SoundStorm decoding the rest")
    p.add_argument("--soft", default=None, help="instead: compare plain decoding with the expected latent at these "
                   "temperatures, comma-separated (1 = the model's probabilities)")
    p.add_argument("--preset", default="laptop", help="whose `acoustic eval` clips (count, length) to use")
    args = p.parse_args()
    try:
        synth = Synthesizer.load(args.run)
        if args.soft is not None:
            temperatures = [float(x) for x in args.soft.split(",")]
            if not temperatures or min(temperatures) <= 0:
                raise UserError(f"--soft {args.soft}: temperatures must be > 0")
            result = soft_study(synth, args.corpus, temperatures, PRESETS[args.preset].eval)
            return _report(result, "decoding", args.out)
        if args.given is not None:
            given = sorted({int(x) for x in args.given.split(",") if 0 <= int(x) < synth.levels})
            if not given:
                raise UserError(f"--given {args.given}: none in 0..{synth.levels - 1}")
            result = given_study(synth, args.corpus, given, PRESETS[args.preset].eval)
            return _report(result, "given", args.out)
        levels = sorted({int(x) for x in args.levels.split(",") if 1 <= int(x) <= synth.levels})
        if not levels:
            raise UserError(f"--levels {args.levels}: none in 1..{synth.levels}")
        result = study(synth, args.corpus, levels, PRESETS[args.preset].eval)
    except (UserError, ValueError) as err:  # no checkpoint, no corpus, levels not numbers: one line
        p.error(str(err))
    for r in result["table"]:
        print(f"{r['kind']:>9} L{r['levels']}: WER {r['wer']:.3f} (codec {r['wer_codec']:.3f}), same-prompt gap "
              f"{r['same_prompt_gap']['mean']:+.3f}, swap gap {r['swap_gap']['mean']:+.3f}, to the prompt "
              f"{r['sim_prompt']:.3f} (codec {r['codec_sim_prompt']:.3f})")
    atomic_write_json(args.out, result)


if __name__ == "__main__":  # transcribe_many starts processes by spawning: they re-import this module
    main()
