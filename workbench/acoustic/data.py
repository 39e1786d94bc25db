"""Training pairs for SoundStorm: per recording, semantic tokens (our tokenizer, windowed) and codec codes (our
codec, chunked), cached on disk; and the random crops a training step reads.

Rates come from the two models, never from constants here: the tokenizer emits a token every `semantic_hop`
samples (640 at 16 kHz = 25 Hz), the codec a frame every `codec_hop` samples (320 = 50 Hz). Codec frame f
covers samples [f codec_hop, (f + 1) codec_hop); it is conditioned on the semantic token whose span holds the
frame's centre (`upsample_semantic`), which for 25 -> 50 Hz repeats every token twice (SoundStorm).

Cache layout (DIR = data/build/acoustic/<preset>):

    DIR/pairs.json          tokenizer and codec fingerprints, rates, levels, codebook size, vocabulary
    DIR/manifest.jsonl      {"id", "split", "speaker", "path", "tokens", "frames", "seconds"} per recording
    DIR/<split>/<id>.npz    semantic (s,) int32, codes (q, t) int16

Re-running with the same tokenizer and codec keeps finished files; another one starts the folder over (the
fingerprints are checked, so codes of two codecs are never mixed).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from workbench.codec.stream import encode_long
from workbench.core.io import atomic_path, atomic_write_json, atomic_write_text
from workbench.data.loaders import open_dataset
from workbench.tokenizer.config import FRAME, SAMPLE_RATE
from workbench.tokenizer.model import fingerprint
from workbench.tokenizer.windowed import AudioSource, tokenize_windowed

FORMAT = "speechssm-workbench-acoustic-pairs"


@dataclass(frozen=True)
class Rates:
    """Samples per semantic token and per codec frame (at `sample_rate`)."""

    sample_rate: int
    semantic_hop: int
    codec_hop: int

    @property
    def codec_rate(self) -> float:
        return self.sample_rate / self.codec_hop

    @property
    def semantic_rate(self) -> float:
        return self.sample_rate / self.semantic_hop

    def frames(self, tokens: int) -> int:
        """Codec frames spanned by `tokens` semantic tokens."""
        return math.ceil(tokens * self.semantic_hop / self.codec_hop)

    def token_index(self, frames: np.ndarray) -> np.ndarray:
        """The semantic token whose span holds the centre of each codec frame."""
        return ((2 * np.asarray(frames, dtype=np.int64) + 1) * self.codec_hop) // (2 * self.semantic_hop)

    def seconds_to_frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.codec_rate)))

    def to_dict(self) -> dict[str, int]:
        return {"sample_rate": self.sample_rate, "semantic_hop": self.semantic_hop, "codec_hop": self.codec_hop}


def rates_of(tokenizer, codec) -> Rates:
    if codec.cfg.sample_rate != SAMPLE_RATE:
        raise ValueError(f"the codec runs at {codec.cfg.sample_rate} Hz, the tokenizer at {SAMPLE_RATE} Hz")
    return Rates(SAMPLE_RATE, FRAME, codec.hop)


def upsample_semantic(semantic: np.ndarray | torch.Tensor, rates: Rates, first_frame: int, frames: int) -> np.ndarray:
    """Semantic tokens repeated to codec frames [first_frame, first_frame + frames) (a frame past the last token
    takes the last token)."""
    semantic = np.asarray(semantic)
    index = rates.token_index(np.arange(first_frame, first_frame + frames))
    return semantic[np.minimum(index, len(semantic) - 1)]


def semantic_prior(pairs: Sequence["Pair"], rates: Rates, levels: int, codebook_size: int, semantic_vocab: int,
                   smoothing: float = 1.0) -> torch.Tensor:
    """(levels, semantic_vocab, codebook_size) log p(code of level q | the frame's semantic token), counted over
    every frame of `pairs` with add-`smoothing` (Laplace), so no code is ruled out: a token -> code table that
    `SoundStorm` adds to its logits. On the sixth timed run's pairs it predicts the dev speakers' level-0 codes at
    5.15 nats, against 6.82 for the code frequencies alone (finer levels 6.27-6.39 against 6.62-6.78)."""
    counts = np.zeros((levels, semantic_vocab * codebook_size))
    for pair in pairs:
        semantic = upsample_semantic(pair.semantic, rates, 0, pair.codes.shape[1])
        for q in range(levels):
            counts[q] += np.bincount(semantic * codebook_size + pair.codes[q], minlength=counts.shape[1])
    counts = counts.reshape(levels, semantic_vocab, codebook_size) + smoothing
    return torch.from_numpy(np.log(counts / counts.sum(-1, keepdims=True))).float()


def latent_table(pairs: Sequence["Pair"], rates: Rates, codebooks: torch.Tensor, semantic_vocab: int) -> torch.Tensor:
    """(semantic_vocab, D): the mean codec latent (the sum of a frame's codes over every level) of the frames that
    read each semantic token, over every frame of `pairs` (a token never read: the mean of all frames). Decoded
    as it is, the fourteenth run's table speaks the held-out clips at pocketsphinx WER 0.85 (the codec 0.58),
    in an average voice and with no model (README: perfect phones, tables)."""
    dim = codebooks.shape[-1]
    sums, counts = torch.zeros(semantic_vocab, dim, dtype=torch.float64), torch.zeros(semantic_vocab, dtype=torch.float64)
    for pair in pairs:
        codes = torch.as_tensor(np.asarray(pair.codes), dtype=torch.long)  # (q, t)
        latent = sum(codebooks[q][codes[q]] for q in range(codes.shape[0])).double()  # (t, D)
        ids = torch.as_tensor(upsample_semantic(pair.semantic, rates, 0, codes.shape[1]), dtype=torch.long)
        sums.index_add_(0, ids, latent)
        counts.index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
    table = sums / counts.clamp(min=1)[:, None]
    table[counts == 0] = sums.sum(0) / counts.sum().clamp(min=1)
    return table.float()


def codec_fingerprint(codec) -> str:
    """A short hash of the codec's config and weights: which codec it is (not the decode-time postfilter, nor the
    encoder's beam, which picks among the same codes: a model trained over greedy codes works with beam-coded
    prompts, and the pairs record the beam they were coded with)."""
    config = {k: v for k, v in codec.cfg.to_dict().items() if not k.startswith("postfilter_") and k != "rvq_beam"}
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(codec.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def pair_meta(tokenizer, codec) -> dict[str, Any]:
    return {"format": FORMAT, "tokenizer_fingerprint": fingerprint(tokenizer), "semantic_vocab": tokenizer.num_units,
            "codec_fingerprint": codec_fingerprint(codec), "rvq_beam": codec.cfg.rvq_beam,
            "levels": codec.cfg.num_quantizers,
            "codebook_size": codec.cfg.codebook_size, "rates": rates_of(tokenizer, codec).to_dict()}


def build_pairs(tokenizer, codec, corpus_dir: str | Path, out_dir: str | Path, splits: Sequence[str] = ("train", "dev"),
                progress: bool = True, chunk_seconds: float = 10.0) -> dict[str, Any]:
    """Tokenize and encode every recording of `splits`; returns pairs.json's contents."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    meta = pair_meta(tokenizer, codec)
    meta_path = out / "pairs.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if {k: old.get(k) for k in meta} != meta:  # another tokenizer or codec: start over
            shutil.rmtree(out)
    if not meta_path.is_file():
        atomic_write_json(meta_path, {**meta, "complete": False})
    dataset = open_dataset(corpus_dir)
    recordings = [r for r in dataset.recordings if (r.split or "train") in splits]
    if not recordings:
        raise ValueError(f"{corpus_dir}: no recordings in split(s) {list(splits)}")
    rows = []
    for rec in tqdm(recordings, desc="semantic tokens + codec codes", unit="recording", disable=not progress):
        rel = Path(rec.split or "train") / f"{rec.id}.npz"
        if not (out / rel).is_file():
            semantic = tokenize_windowed(tokenizer, AudioSource.of(rec)).astype(np.int32)
            codes = encode_long(codec, rec.load(), chunk_seconds=chunk_seconds).numpy().astype(np.int16)
            with atomic_path(out / rel) as tmp:
                np.savez(tmp, semantic=semantic, codes=codes)
        with np.load(out / rel) as z:
            tokens, frames = len(z["semantic"]), z["codes"].shape[1]
        rows.append({"id": rec.id, "split": rec.split or "train", "speaker": rec.speaker, "path": str(rel),
                     "tokens": tokens, "frames": frames, "seconds": round(rec.duration, 3)})
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    summary = {**meta, "corpus": str(corpus_dir), "recordings": len(rows),
               "hours": {s: round(sum(r["seconds"] for r in rows if r["split"] == s) / 3600, 3) for s in splits},
               "complete": True}
    atomic_write_json(meta_path, summary)
    return summary


@dataclass
class Pair:
    id: str
    speaker: str | None
    semantic: np.ndarray  # (s,)
    codes: np.ndarray  # (q, t)


def load_pairs(out_dir: str | Path, split: str) -> list[Pair]:
    out = Path(out_dir)
    pairs = []
    for line in (out / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["split"] == split:
            with np.load(out / row["path"]) as z:
                pairs.append(Pair(row["id"], row["speaker"], z["semantic"].astype(np.int64), z["codes"].astype(np.int64)))
    return pairs


# ------------------------------------------------------------------------------------------ across voices


def fill_unmatched(frame_map: np.ndarray) -> np.ndarray | None:
    """`frame_map` with its -1 entries (B's pauses, no counterpart in A) replaced by the nearest matched frame's
    value, so every B frame reads an A token; None if nothing is matched."""
    m = np.asarray(frame_map, dtype=np.int64)
    valid = np.flatnonzero(m >= 0)
    if not len(valid):
        return None
    nearest = valid[np.clip(np.searchsorted(valid, np.arange(len(m))), 0, len(valid) - 1)]
    before = valid[np.clip(np.searchsorted(valid, np.arange(len(m))) - 1, 0, len(valid) - 1)]
    closer = np.where(np.abs(before - np.arange(len(m))) <= np.abs(nearest - np.arange(len(m))), before, nearest)
    return m[closer]


def cross_voice_pairs(tokenizer, codec, parallel, rates: Rates) -> list[Pair]:
    """Training pairs across voices from a `workbench.tokenizer.data.ParallelSet` (the same train sentences read by
    several train voices, with exact phone timings): for each ordered pair of voices (B, A), the sentences both
    read, concatenated, with **A's semantic tokens placed on B's frames** (by the phone boundaries: B frame f reads
    A's token at `frame_map[f]`) and **B's codec codes**. A model trained on these must take the voice from the
    prompt (B's, from another recording), since the tokens come from someone else. Pair.speaker is B."""
    semantic = [tokenizer.units(torch.from_numpy(a)).numpy().astype(np.int64) for a in parallel.audio]
    codes = [encode_long(codec, a).numpy().astype(np.int64) for a in parallel.audio]
    per_token = rates.frames(1)  # codec frames per semantic token (2: 50 Hz codes under 25 Hz tokens)
    streams: dict[tuple[str, str], tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for ib, ia, frame_map in sorted(parallel.pairs, key=lambda p: (parallel.sentence[p[0]], p[0], p[1])):
        filled = fill_unmatched(frame_map)
        n = min(len(semantic[ib]), codes[ib].shape[1] // per_token, 0 if filled is None else len(filled))
        if n == 0:
            continue
        key = (parallel.voices[ib], parallel.voices[ia])
        sem, cod = streams.setdefault(key, ([], []))
        sem.append(semantic[ia][np.clip(filled[:n], 0, len(semantic[ia]) - 1)])
        cod.append(codes[ib][:, : n * per_token])
    return [Pair(f"cross-{b}-from-{a}", b, np.concatenate(sem), np.concatenate(cod, axis=1))
            for (b, a), (sem, cod) in sorted(streams.items())]


def build_cross_pairs(tokenizer, codec, corpus_dir: str | Path, out_dir: str | Path, sentences: int, seed: int = 0,
                      log=print) -> int:
    """Render `sentences` train sentences in several train voices (the tokenizer's ParallelSet, cached under
    out_dir/parallel), make the cross-voice pairs and add them to the cache as split "cross"; returns how many
    voice pairs there are (0 where nothing can be rendered: no mbrola)."""
    from workbench.core.config import override
    from workbench.tokenizer.data import ParallelSet

    out = Path(out_dir)
    config = override(tokenizer.config, parallel_sentences=sentences)
    parallel = ParallelSet.build(corpus_dir, config, np.random.default_rng([seed, 31]), cache_dir=out / "parallel",
                                 log=log)
    made = [] if parallel is None else cross_voice_pairs(tokenizer, codec, parallel, rates_of(tokenizer, codec))
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()
            if json.loads(line)["split"] != "cross"]
    for pair in made:
        rel = Path("cross") / f"{pair.id}.npz"
        with atomic_path(out / rel) as tmp:
            np.savez(tmp, semantic=pair.semantic.astype(np.int32), codes=pair.codes.astype(np.int16))
        rows.append({"id": pair.id, "split": "cross", "speaker": pair.speaker, "path": str(rel),
                     "tokens": len(pair.semantic), "frames": pair.codes.shape[1],
                     "seconds": round(pair.codes.shape[1] / rates_of(tokenizer, codec).codec_rate, 3)})
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return len(made)


@dataclass
class Batch:
    semantic: torch.Tensor  # (b, t) at the codec rate
    codes: torch.Tensor  # (b, q, t)
    min_prompt: torch.Tensor  # (b,) frames that must stay in the unmasked prefix


def sample_batch(pairs: Sequence[Pair], rates: Rates, batch_size: int, crop_frames: int, prompt_frames: int,
                 prompt_elsewhere: float, levels: int, rng: np.random.Generator,
                 cross: Sequence[Pair] = (), cross_share: float = 0.0) -> Batch:
    """`batch_size` crops of prompt_frames + crop_frames codec frames. With probability `prompt_elsewhere` the
    first prompt_frames come from elsewhere in the same recording (as a 3 s prompt precedes each window at
    inference) and must stay unmasked; otherwise the crop is contiguous and the prefix length is free. With
    probability `cross_share` a row is a cross-voice crop instead (`cross_voice_pairs`: voice A's tokens on voice
    B's codes), after a prompt from one of B's own recordings in `pairs`."""
    total = prompt_frames + crop_frames
    usable = [p for p in pairs if p.codes.shape[1] >= total]
    if not usable:
        longest = max((p.codes.shape[1] for p in pairs), default=0)
        raise ValueError(f"no recording is {total} codec frames long (longest: {longest})")
    weights = np.array([p.codes.shape[1] - total + 1.0 for p in usable])
    semantic, codes, min_prompt = [], [], []
    cross_usable = [c for c in cross if c.codes.shape[1] >= crop_frames
                    and any(p.speaker == c.speaker and p.codes.shape[1] >= prompt_frames for p in pairs)]
    for _ in range(batch_size):
        if cross_usable and rng.random() < cross_share:
            row = _cross_row(cross_usable, pairs, rates, crop_frames, prompt_frames, levels, rng)
            semantic.append(row[0])
            codes.append(row[1])
            min_prompt.append(prompt_frames)
            continue
        pair = usable[rng.choice(len(usable), p=weights / weights.sum())]
        frames = pair.codes.shape[1]
        elsewhere = rng.random() < prompt_elsewhere and frames >= total + prompt_frames
        if elsewhere:
            start = int(rng.integers(0, frames - crop_frames + 1))
            # the prompt: anywhere that does not overlap [start, start + crop_frames)
            choices = [s for s in (int(rng.integers(0, start - prompt_frames + 1)) if start >= prompt_frames else None,
                                   int(rng.integers(start + crop_frames, frames - prompt_frames + 1))
                                   if frames - prompt_frames >= start + crop_frames else None) if s is not None]
            p0 = choices[int(rng.integers(0, len(choices)))]
            spans = [(p0, prompt_frames), (start, crop_frames)]
        else:
            spans = [(int(rng.integers(0, frames - total + 1)), total)]
        semantic.append(np.concatenate([upsample_semantic(pair.semantic, rates, s, n) for s, n in spans]))
        codes.append(np.concatenate([pair.codes[:levels, s: s + n] for s, n in spans], axis=1))
        min_prompt.append(prompt_frames if elsewhere else 0)
    return Batch(torch.from_numpy(np.stack(semantic)), torch.from_numpy(np.stack(codes)), torch.tensor(min_prompt))


def _cross_row(cross: Sequence[Pair], pairs: Sequence[Pair], rates: Rates, crop_frames: int, prompt_frames: int,
               levels: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One cross-voice row: B's prompt (own tokens and codes, from a recording of B) + a crop of a cross pair."""
    weights = np.array([c.codes.shape[1] - crop_frames + 1.0 for c in cross])
    pair = cross[rng.choice(len(cross), p=weights / weights.sum())]
    voice = [p for p in pairs if p.speaker == pair.speaker and p.codes.shape[1] >= prompt_frames]
    source = voice[int(rng.integers(0, len(voice)))]
    p0 = int(rng.integers(0, source.codes.shape[1] - prompt_frames + 1))
    start = int(rng.integers(0, pair.codes.shape[1] - crop_frames + 1))
    semantic = np.concatenate([upsample_semantic(source.semantic, rates, p0, prompt_frames),
                               upsample_semantic(pair.semantic, rates, start, crop_frames)])
    codes = np.concatenate([source.codes[:levels, p0: p0 + prompt_frames],
                            pair.codes[:levels, start: start + crop_frames]], axis=1)
    return semantic, codes
