"""Token streams for the speech LM: manifests, long-form random crops, packing with resets, a synthetic source.

Token data format (what the tokenizer writes; everything here reads exactly this):

    DIR/manifest.jsonl   one JSON object per recording:
        {"id": "rec-0001", "split": "train", "path": "rec-0001.npy", "num_tokens": 4512, "speaker": "spk-03"}
    DIR/<path>           a 1-D integer .npy array: the recording's semantic tokens at 25 tokens/s

`path` is relative to DIR (or absolute). Splits: "train" for training; the held-out split is the first of
"valid", "dev", "test" present.

Training rows are random crops of `window` tokens from whole recordings. There is no BOS/EOS and no silence
padding: when a recording ends inside a row, the next (random) recording is packed straight after it with a
reset flag at its first token. Resets reach the RG-LRU, the conv state and the attention masks, and the
prediction across the seam is masked out of the loss, so the model never learns an implicit end of speech.

`write_synthetic_tokens` writes a SYNTHETIC stand-in in the same format for tests and for runs before the
tokenizer exists: a hidden-topic Markov process (each topic its own sparse bigram chain; the topic persists for
about a minute) -- long-range structure a model can exploit, but not speech.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workbench.core.errors import UserError
from workbench.core.io import atomic_path, atomic_write_text
from workbench.lm.config import TOKENS_PER_SECOND

HELD_OUT_SPLITS = ("valid", "dev", "test")
# Where the tokenizer writes each preset's tokens (data/build/tokens/<preset>); used when no --tokens is given
# (else the synthetic source is used).
DEFAULT_TOKENS_DIR = Path("data/build/tokens")
SYNTHETIC_ROOT = Path("data/build/synthetic-lm-tokens")


def parse_window(text: str | int) -> int:
    """'30s' -> 750 tokens (25 tokens/s); '750' -> 750 tokens."""
    s = str(text).strip().lower()
    try:
        tokens = round(float(s[:-1]) * TOKENS_PER_SECOND) if s.endswith("s") else int(s)
    except (ValueError, OverflowError):  # 'nans', 'infs'
        raise UserError(f"bad window {text!r}: give tokens (e.g. 750) or seconds (e.g. 30s)") from None
    if tokens < 2:
        raise UserError(f"window {text!r} is shorter than 2 tokens")
    return tokens


@dataclass(frozen=True)
class Recording:
    id: str
    split: str
    path: Path
    num_tokens: int
    speaker: str


class TokenCorpus:
    """A token directory (see the module docstring). Arrays are memory-mapped and checked when first read."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest = self.root / "manifest.jsonl"
        if not manifest.is_file():
            raise UserError(f"no token manifest at {manifest} (expected one JSON line per recording)")
        self.recordings: list[Recording] = []
        for n, line in enumerate(manifest.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                path = Path(d["path"])
                self.recordings.append(Recording(str(d["id"]), str(d["split"]), path if path.is_absolute()
                                                 else self.root / path, int(d["num_tokens"]), str(d["speaker"])))
            except (ValueError, KeyError, TypeError) as err:
                raise UserError(f"{manifest}:{n}: bad manifest line ({err!r})") from None
        if not self.recordings:
            raise UserError(f"token manifest {manifest} lists no recordings")
        self._arrays: dict[str, np.ndarray] = {}

    def split(self, name: str) -> list[Recording]:
        recs = [r for r in self.recordings if r.split == name and r.num_tokens > 0]
        if not recs:
            raise UserError(f"no recordings with tokens in split {name!r} of {self.root}")
        return recs

    def held_out_split(self) -> str:
        present = {r.split for r in self.recordings}
        for name in HELD_OUT_SPLITS:
            if name in present:
                return name
        raise UserError(f"{self.root} has no held-out split (one of {HELD_OUT_SPLITS}); splits: {sorted(present)}")

    def tokens(self, rec: Recording) -> np.ndarray:
        if rec.id not in self._arrays:
            if not rec.path.is_file():
                raise UserError(f"token file {rec.path} of recording {rec.id} is missing")
            arr = np.load(rec.path, mmap_mode="r")
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or len(arr) != rec.num_tokens:
                raise UserError(f"{rec.path}: expected a 1-D integer array of {rec.num_tokens} tokens, "
                                f"got {arr.dtype} {arr.shape}")
            self._arrays[rec.id] = arr
        return self._arrays[rec.id]

    @property
    def synthetic(self) -> bool:
        return (self.root / "SYNTHETIC").exists()

    @property
    def num_units(self) -> int | None:
        """The tokenizer's codebook size (tokens.json), or None where the folder does not say."""
        meta = self.root / "tokens.json"
        try:
            return int(json.loads(meta.read_text())["num_units"]) if meta.is_file() else None
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class Batch:
    tokens: torch.Tensor  # (b, t) long: inputs
    targets: torch.Tensor  # (b, t) long: next tokens
    resets: torch.Tensor  # (b, t) bool: first token of a recording
    mask: torch.Tensor  # (b, t) bool: target belongs to the same recording (loss is taken here only)

    def to(self, device) -> "Batch":
        return Batch(*(x.to(device) for x in (self.tokens, self.targets, self.resets, self.mask)))

    def rows(self, sl: slice) -> "Batch":
        return Batch(self.tokens[sl], self.targets[sl], self.resets[sl], self.mask[sl])


def sample_batch(corpus: TokenCorpus, recs: list[Recording], rng: np.random.Generator, batch: int,
                 window: int) -> Batch:
    """`batch` rows of `window` inputs: a random crop of a length-weighted random recording, packed with further
    recordings (each from its start, with a reset) where it runs out."""
    lengths = np.array([r.num_tokens for r in recs], dtype=np.float64)
    probs = lengths / lengths.sum()
    need = window + 1  # inputs plus the last target
    toks = np.empty((batch, need), dtype=np.int64)
    rec_of = np.empty((batch, need), dtype=np.int64)
    starts = np.zeros((batch, need), dtype=bool)
    for row in range(batch):
        filled, first = 0, True
        while filled < need:
            i = int(rng.choice(len(recs), p=probs))
            n = recs[i].num_tokens
            begin = int(rng.integers(0, max(0, n - need) + 1)) if first else 0
            take = min(n - begin, need - filled)
            toks[row, filled:filled + take] = corpus.tokens(recs[i])[begin:begin + take]
            rec_of[row, filled:filled + take] = filled  # any id unique within the row
            starts[row, filled] = True
            filled, first = filled + take, False
    return Batch(tokens=torch.from_numpy(toks[:, :-1].copy()), targets=torch.from_numpy(toks[:, 1:].copy()),
                 resets=torch.from_numpy(starts[:, :-1].copy()),
                 mask=torch.from_numpy(rec_of[:, 1:] == rec_of[:, :-1]))


# ----------------------------------------------------------------------------------------------- synthetic


@dataclass(frozen=True)
class SyntheticConfig:
    vocab_size: int = 256
    num_topics: int = 8
    branching: int = 4  # likely successors of a token within one topic
    smoothing: float = 0.02  # probability mass spread uniformly over the whole vocabulary
    mean_topic_seconds: float = 60.0
    train_recordings: int = 40
    train_seconds: tuple[float, float] = (60.0, 240.0)
    held_out_recordings: int = 6
    held_out_seconds: float = 240.0
    seed: int = 1234


SYNTHETIC_PRESETS = {
    "smoke": SyntheticConfig(vocab_size=64, num_topics=4, mean_topic_seconds=8.0, train_recordings=12,
                             train_seconds=(4.0, 20.0), held_out_recordings=3, held_out_seconds=24.0),
    "laptop": SyntheticConfig(),
    "small": SyntheticConfig(vocab_size=1024, num_topics=32, train_recordings=400, held_out_recordings=16,
                             held_out_seconds=600.0),
    "paper": SyntheticConfig(vocab_size=32_768, num_topics=64, train_recordings=2000, held_out_recordings=16,
                                held_out_seconds=960.0),
}


def synthetic_tokens(cfg: SyntheticConfig, num_tokens: int, rng: np.random.Generator,
                     chains: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """One recording of the hidden-topic Markov process."""
    successors, cum_probs = chains  # (topics, v, branching), (topics, v, branching)
    switch_p = 1.0 / (cfg.mean_topic_seconds * TOKENS_PER_SECOND)
    out = np.empty(num_tokens, dtype=np.int32)
    topic, tok = int(rng.integers(cfg.num_topics)), int(rng.integers(cfg.vocab_size))
    u = rng.random((num_tokens, 4))
    for i in range(num_tokens):
        if u[i, 0] < switch_p:
            topic = (topic + 1 + int(u[i, 1] * (cfg.num_topics - 1))) % cfg.num_topics
        if u[i, 2] < cfg.smoothing:
            tok = int(u[i, 3] * cfg.vocab_size)
        else:
            r = (u[i, 2] - cfg.smoothing) / (1.0 - cfg.smoothing)
            tok = int(successors[topic, tok, np.searchsorted(cum_probs[topic, tok], r, side="right")
                                 .clip(max=cfg.branching - 1)])
        out[i] = tok
    return out


def write_synthetic_tokens(out_dir: str | Path, cfg: SyntheticConfig = SyntheticConfig()) -> Path:
    """Write a seeded synthetic token corpus (manifest.jsonl + .npy files + a SYNTHETIC marker) to `out_dir`."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(cfg.seed)
    successors = np.stack([np.stack([rng.choice(cfg.vocab_size, cfg.branching, replace=False)
                                     for _ in range(cfg.vocab_size)]) for _ in range(cfg.num_topics)])
    probs = rng.dirichlet(np.ones(cfg.branching), size=(cfg.num_topics, cfg.vocab_size))
    chains = (successors, np.cumsum(probs, axis=-1))
    lines = []
    plan = [("train", float(rng.uniform(*cfg.train_seconds))) for _ in range(cfg.train_recordings)]
    plan += [("valid", cfg.held_out_seconds) for _ in range(cfg.held_out_recordings)]
    for n, (split, seconds) in enumerate(plan):
        rec_id = f"synthetic-{split}-{n:04d}"
        tokens = synthetic_tokens(cfg, int(seconds * TOKENS_PER_SECOND), rng, chains)
        with atomic_path(out_dir / f"{rec_id}.npy") as tmp:
            np.save(tmp, tokens)
        lines.append(json.dumps({"id": rec_id, "split": split, "path": f"{rec_id}.npy", "num_tokens": len(tokens),
                                 "speaker": f"synthetic-topicset-{n % 4}"}))
    atomic_write_text(out_dir / "SYNTHETIC", "Synthetic hidden-topic Markov tokens, not speech.\n"
                      + json.dumps(cfg.__dict__) + "\n")
    atomic_write_text(out_dir / "manifest.jsonl", "\n".join(lines) + "\n")  # last: its presence means complete
    return out_dir


def resolve_tokens(tokens: str | Path | None, preset: str) -> Path:
    """The token directory to use: `tokens` if given; else the tokenizer's output if it exists; else the
    preset's synthetic corpus (written on first use)."""
    if tokens is not None:
        path = Path(tokens)
        if not (path / "manifest.jsonl").is_file():
            raise UserError(f"token directory {path} has no manifest.jsonl")
        return path
    if (DEFAULT_TOKENS_DIR / preset / "manifest.jsonl").is_file():
        return DEFAULT_TOKENS_DIR / preset
    cfg = SYNTHETIC_PRESETS.get(preset, SyntheticConfig())
    path = SYNTHETIC_ROOT / f"{preset}-seed{cfg.seed}"
    if not (path / "manifest.jsonl").is_file():
        write_synthetic_tokens(path, cfg)
    return path
