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


def codec_fingerprint(codec) -> str:
    """A short hash of the codec's config and weights: what decides its codes."""
    h = hashlib.sha256(json.dumps(codec.cfg.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(codec.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def pair_meta(tokenizer, codec) -> dict[str, Any]:
    return {"format": FORMAT, "tokenizer_fingerprint": fingerprint(tokenizer), "semantic_vocab": tokenizer.num_units,
            "codec_fingerprint": codec_fingerprint(codec), "levels": codec.cfg.num_quantizers,
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


@dataclass
class Batch:
    semantic: torch.Tensor  # (b, t) at the codec rate
    codes: torch.Tensor  # (b, q, t)
    min_prompt: torch.Tensor  # (b,) frames that must stay in the unmasked prefix


def sample_batch(pairs: Sequence[Pair], rates: Rates, batch_size: int, crop_frames: int, prompt_frames: int,
                 prompt_elsewhere: float, levels: int, rng: np.random.Generator) -> Batch:
    """`batch_size` crops of prompt_frames + crop_frames codec frames. With probability `prompt_elsewhere` the
    first prompt_frames come from elsewhere in the same recording (as a 3 s prompt precedes each window at
    inference) and must stay unmasked; otherwise the crop is contiguous and the prefix length is free."""
    total = prompt_frames + crop_frames
    usable = [p for p in pairs if p.codes.shape[1] >= total]
    if not usable:
        longest = max((p.codes.shape[1] for p in pairs), default=0)
        raise ValueError(f"no recording is {total} codec frames long (longest: {longest})")
    weights = np.array([p.codes.shape[1] - total + 1.0 for p in usable])
    semantic, codes, min_prompt = [], [], []
    for _ in range(batch_size):
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
