"""What the tokenizer trains on: random crops of a corpus's train split, and the cross-speaker parallel set.

Crops: `crop_batch` draws (n, S) crops from recordings chosen in proportion to their length (S a multiple of the
640-sample token frame); `sample_audio` gathers the audio that normalisation statistics and k-means see.

The parallel set: train sentences rendered by several train voices, frames aligned across voices. ContentVec
(Qian et al. 2022) makes HuBERT's targets speaker-invariant by showing the student another voice saying the same
thing (there: voice conversion). Here the synthesiser gives us that directly, and textlessly: only the fact that
two renderings say the same sentence is used, never its phones as labels.

    train chapters' sentences (manifest rows with split "train", their alignment JSON)  --pick N, 1.5-7 s-->
    render(sentence, voice) for `parallel_voices` distinct train voices  (cached under the run folder)
    every ordered pair (A, B) of renderings of a sentence -> frame map: B frame j -> A frame (or -1)
    training: student hears B (VTLP too), predicts the teacher's units of A at the mapped frames

Real voices join the same way (`parallel_real`): stretches of the corpus's real *train* speech, cut at pauses
between words (aligned by pocketsphinx when the corpus was built), each beside a rendering of its transcript by a
train voice. The real stretch is only ever B, what the student hears: its units must be the rendering's. Without
it the cross-speaker loss hears mbrola voices only, and the units stay less invariant on real voices than on
synthetic ones (README).

Frame alignment: the two renderings' phone sequences (pauses dropped) are matched with difflib; every phone that
corresponds one-to-one (equal labels, or an equal-length run of differing labels: the mbrola voices spell a few
phones differently, e.g. "l" / "l=") pins its start and end, other runs pin only their ends; time in B maps to
time in A piecewise-linearly between those knots. Pairs where fewer than `min_match` of the phones correspond
one-to-one are skipped, as are B frames whose centre lies in a pause. Held-out voices and dev/test text are
never used (checked, not just assumed).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from workbench.core.audio import AudioError
from workbench.core.io import atomic_path, atomic_write_json
from workbench.data.synth import PAUSE, SynthesisError, render
from workbench.data.voices import VOICES, Voice
from workbench.tokenizer.config import FRAME, SAMPLE_RATE, TokenizerConfig
from workbench.tokenizer.features import num_frames
from workbench.tokenizer.windowed import AudioSource

FRAME_SECONDS = FRAME / SAMPLE_RATE
IGNORE = -100  # cross_entropy's ignore_index: frames without a counterpart


# -- random crops of the train split -------------------------------------------------------------------------------
def crop_batch(dataset, n: int, seconds: float, rng: np.random.Generator) -> torch.Tensor:
    """(n, S) random crops of `seconds` (S a multiple of 640 samples) from the train recordings."""
    length = int(round(seconds * SAMPLE_RATE / FRAME)) * FRAME
    crops = []
    for _ in range(n):
        audio = dataset.random_crop(length / SAMPLE_RATE, rng)[2][:length]
        crops.append(np.pad(audio, (0, length - len(audio))))
    return torch.from_numpy(np.stack(crops))


def sample_audio(dataset, total_seconds: float, config: TokenizerConfig, rng: np.random.Generator) -> torch.Tensor:
    """(n, S) crops adding up to `total_seconds`: the frames that normalisation stats and k-means see."""
    n = max(1, math.ceil(total_seconds / config.crop_seconds))
    return crop_batch(dataset, n, config.crop_seconds, rng)


# -- the parallel set: same sentence, several train voices ---------------------------------------------------------
def _manifest(corpus_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(corpus_dir) / "manifest.jsonl").read_text().splitlines() if line]


def train_voices(corpus_dir) -> list[Voice]:
    """Voices that may be rendered for training: not held out, and reading none of the corpus's dev/test."""
    heldout_speakers = {r["speaker"] for r in _manifest(corpus_dir) if r["split"] != "train"}
    return [v for v in VOICES if not v.held_out and v.name not in heldout_speakers]


def train_sentences(corpus_dir, n: int, seconds: tuple[float, float], rng: np.random.Generator) -> list[str]:
    """`n` distinct sentences of the train chapters lasting `seconds` (as read there), none of them in dev/test text."""
    rows = _manifest(corpus_dir)
    heldout_text = " ".join(r.get("text", "") for r in rows if r["split"] != "train")
    found: dict[str, None] = {}
    for row in rows:
        if row["split"] != "train" or not row.get("alignment") or row.get("source") == "real":
            continue
        for text, start, end in json.loads((Path(corpus_dir) / row["alignment"]).read_text())["sentences"]:
            if seconds[0] <= end - start <= seconds[1] and text not in heldout_text:
                found[text] = None
    pool = sorted(found)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]


def real_train_phrases(corpus_dir, n: int, seconds: tuple[float, float], rng: np.random.Generator,
                       gap: float = 0.15) -> list[dict]:
    """`n` stretches of the corpus's aligned real train speech lasting `seconds`: runs of words cut where two
    words are `gap` s or more apart (a pause: the stretch starts and ends in silence), joined while they fit.
    Each: {"audio" path, "start"/"end" s in it, "text", "phones" shifted to the stretch, "speaker"}."""
    rows = [r for r in _manifest(corpus_dir) if r["split"] == "train" and r.get("source") == "real"
            and r.get("alignment")]
    found = []
    for row in rows:
        meta = json.loads((Path(corpus_dir) / row["alignment"]).read_text())
        words, phones = meta.get("words") or [], meta.get("phones") or []
        if not words or not phones:
            continue  # a corpus built before its train utterances were aligned
        runs, current = [], [words[0]]
        for prev, word in zip(words, words[1:]):
            if word[1] - prev[2] >= gap:
                runs.append(current)
                current = []
            current.append(word)
        runs.append(current)
        bounds = [0.0] + [(a[-1][2] + b[0][1]) / 2 for a, b in zip(runs, runs[1:])] + [float(meta["duration"])]
        i = 0
        while i < len(runs):  # greedy: the longest run of phrases from phrase i within seconds[1]
            j = i + 1
            while j < len(runs) and runs[j][-1][2] - runs[i][0][1] <= seconds[1]:
                j += 1
            start, end = max(bounds[i], runs[i][0][1] - gap), min(bounds[j], runs[j - 1][-1][2] + gap)
            if seconds[0] <= runs[j - 1][-1][2] - runs[i][0][1] <= seconds[1]:
                inside = [[p, max(a, start) - start, min(b, end) - start] for p, a, b in phones if b > start and a < end]
                found.append({"audio": str(Path(corpus_dir) / row["audio"]), "start": start, "end": end,
                              "text": " ".join(w[0] for run in runs[i:j] for w in run).lower(),
                              "phones": inside, "speaker": row["speaker"]})
            i = j
    picks = sorted(rng.choice(len(found), size=min(n, len(found)), replace=False)) if found else []
    return [found[i] for i in picks]


def read_span(path: str, start: float, end: float) -> np.ndarray:
    """`start`-`end` s of a corpus recording, read as windowed tokenization reads files (`AudioSource`: an
    unreadable, missing or truncated file is an AudioError naming it); a span past the recording's end is one too."""
    source = AudioSource(path, start, end - start)
    if source.seconds < end - start - 0.01:  # 10 ms of slack: durations are stored rounded
        raise AudioError(f"{path}: {start:.2f}-{end:.2f} s lies past the end of the recording")
    return source.read(0, source.num_samples)


def frame_map(phones_b: Sequence, phones_a: Sequence, frames_b: int, frames_a: int,
              min_match: float = 0.8) -> np.ndarray | None:
    """(frames_b,) int: for each 40 ms frame of rendering B, the frame of rendering A saying the same thing, or -1
    (a pause in B, or outside the speech); None if the phone sequences do not correspond well enough.

    `phones_*`: (label, start s, end s) with pauses labelled `PAUSE`."""
    a = [p for p in phones_a if p[0] != PAUSE]
    b = [p for p in phones_b if p[0] != PAUSE]
    if not a or not b:
        return None
    knots_b, knots_a, one_to_one = [], [], 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, [p[0] for p in a], [p[0] for p in b],
                                                       autojunk=False).get_opcodes():
        if i2 - i1 == j2 - j1:  # "equal", or a same-length "replace": phone k corresponds to phone k
            one_to_one += i2 - i1
            for pa, pb in zip(a[i1:i2], b[j1:j2]):
                knots_a += [pa[1], pa[2]]
                knots_b += [pb[1], pb[2]]
        else:  # only the run's ends correspond (an empty run is a point: where the next phone starts)
            knots_a += [_start(a, i1), a[i2 - 1][2] if i2 > i1 else _start(a, i1)]
            knots_b += [_start(b, j1), b[j2 - 1][2] if j2 > j1 else _start(b, j1)]
    if one_to_one < min_match * max(len(a), len(b)):
        return None
    kb, ka = np.asarray(knots_b), np.maximum.accumulate(np.asarray(knots_a))
    order = np.argsort(kb, kind="stable")
    centres = (np.arange(frames_b) + 0.5) * FRAME_SECONDS
    out = np.floor(np.interp(centres, kb[order], ka[order]) / FRAME_SECONDS).astype(np.int64)
    out = np.clip(out, 0, frames_a - 1)
    in_speech = np.zeros(frames_b, bool)
    for _, start, end in b:  # frames whose centre lies inside a phone of B
        in_speech[(centres >= start) & (centres < end)] = True
    return np.where(in_speech, out, -1)


def _start(phones: Sequence, i: int) -> float:
    """Start of phone i, or the end of the last phone for i past the end."""
    return phones[i][1] if i < len(phones) else phones[-1][2]


@dataclass
class ParallelSet:
    """Renderings (audio, phones, voice, sentence index) and the aligned ordered pairs between them."""

    audio: list[np.ndarray]
    phones: list[list]
    voices: list[str]
    sentence: list[int]
    pairs: list[tuple[int, int, np.ndarray]]  # (B rendering, A rendering, B frame -> A frame)
    real: list[bool] | None = None  # per member: real speech (only ever B), not a rendering
    real_share: float = 0.0  # share of each batch's pairs whose B is real speech (when there are such pairs)

    @classmethod
    def build(cls, corpus_dir, config: TokenizerConfig, rng: np.random.Generator, cache_dir=None,
              log: Callable[[str], None] = print) -> "ParallelSet | None":
        """Render (or load from `cache_dir`) the configured parallel set; None if there is nothing to render with."""
        voices = train_voices(corpus_dir)
        sentences = train_sentences(corpus_dir, config.parallel_sentences, config.parallel_seconds, rng)
        if len(voices) < 2 or not sentences:
            log(f"parallel set: {len(voices)} train voices, {len(sentences)} sentences: no cross-speaker loss")
            return None
        plan = [(k, v) for k, s in enumerate(sentences)
                for v in rng.choice(len(voices), size=min(config.parallel_voices, len(voices)), replace=False)]
        # real stretch j is sentence len(sentences) + j: one rendering of its words (planned here) and the real
        # recording itself (appended after all the renderings)
        real = real_train_phrases(corpus_dir, config.parallel_real, config.parallel_seconds, rng) \
            if config.parallel_real else []
        texts = sentences + [r["text"] for r in real]
        plan += [(len(sentences) + j, int(rng.integers(len(voices)))) for j in range(len(real))]
        key = hashlib.sha256(json.dumps([sentences, [(k, voices[v].name) for k, v in plan],
                                         [(r["audio"], r["start"], r["end"]) for r in real]]).encode()).hexdigest()[:12]
        cache = Path(cache_dir) / f"parallel-{key}" if cache_dir else None
        started = time.time()
        if cache and (cache / "renderings.json").exists():
            meta = json.loads((cache / "renderings.json").read_text())
            data = np.load(cache / "audio.npy")
            audio = [data[s:e].astype(np.float32) / 32767 for s, e in meta["spans"]]
            phones, names, index = meta["phones"], meta["voices"], meta["sentence"]
            is_real = meta.get("real", [False] * len(audio))
        else:
            try:  # espeak-ng and mbrola are processes: two renderings at a time on two cores
                with ThreadPoolExecutor(max(1, config.threads)) as pool:
                    renderings = list(pool.map(lambda kv: render([texts[kv[0]]], voices[kv[1]], mbrola=True), plan))
            except SynthesisError as err:
                log(f"parallel set: synthesis unavailable ({err}): no cross-speaker loss")
                return None
            audio = [r.audio.astype(np.float32) for r in renderings]
            phones = [[list(p) for p in r.phones] for r in renderings]
            names, index = [voices[v].name for _, v in plan], [k for k, _ in plan]
            is_real = [False] * len(plan)
            for j, r in enumerate(real):
                audio.append(read_span(r["audio"], r["start"], r["end"]))
                phones.append(r["phones"])
                names.append(r["speaker"])
                index.append(len(sentences) + j)
                is_real.append(True)
            if cache:
                _save(cache, audio, phones, names, index, is_real)
        pairs = []
        for k in sorted(set(index)):
            members = [i for i, s in enumerate(index) if s == k]
            for ib, ia in permutations(members, 2):
                if is_real[ia]:  # a real stretch is heard, never a target
                    continue
                m = frame_map(phones[ib], phones[ia], num_frames(len(audio[ib])), num_frames(len(audio[ia])),
                              config.parallel_min_match)
                if m is not None and (m >= 0).any():
                    pairs.append((ib, ia, m))
        out = cls(audio, phones, names, index, pairs, is_real, config.parallel_real_share)
        real_pairs = sum(is_real[ib] for ib, _, _ in pairs)
        log(f"parallel set: {len(sentences)} sentences x {config.parallel_voices} voices + {len(real)} real "
            f"stretches, {len(audio)} recordings ({out.seconds / 60:.1f} min), {len(pairs)} aligned pairs "
            f"({real_pairs} of them real -> rendering) ({time.time() - started:.0f} s)")
        return out

    @property
    def seconds(self) -> float:
        return sum(len(a) for a in self.audio) / SAMPLE_RATE

    @torch.no_grad()
    def teacher_units(self, teacher) -> list[torch.Tensor | None]:
        """The (frozen) teacher's units of every rendering, each computed on that rendering alone (None for real
        speech, which is never a target)."""
        real = self.real or [False] * len(self.audio)
        return [None if r else teacher.units(torch.from_numpy(a)[None])[0] for a, r in zip(self.audio, real)]

    def pair_weights(self) -> np.ndarray | None:
        """Probability of drawing each pair: `real_share` spread over the pairs whose B is real, the rest over the
        others (None: uniform, when either kind is missing)."""
        heard_real = np.array([bool(self.real and self.real[ib]) for ib, _, _ in self.pairs])
        if not self.real_share or heard_real.all() or not heard_real.any():
            return None
        return np.where(heard_real, self.real_share / heard_real.sum(), (1 - self.real_share) / (~heard_real).sum())

    def batch(self, units: list[torch.Tensor], n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, S) audio of B renderings, zero-padded to the longest, and (n, T) targets: the teacher's unit of A at
        the aligned frame, IGNORE where there is none."""
        picks = [self.pairs[i] for i in rng.choice(len(self.pairs), size=n, replace=len(self.pairs) < n,
                                                   p=self.pair_weights())]
        frames = max(num_frames(len(self.audio[ib])) for ib, _, _ in picks)
        audio = torch.zeros(n, frames * FRAME)
        targets = torch.full((n, frames), IGNORE, dtype=torch.long)
        for row, (ib, ia, m) in enumerate(picks):
            audio[row, : len(self.audio[ib])] = torch.from_numpy(self.audio[ib])
            valid = torch.from_numpy(m >= 0)
            t = torch.full((len(m),), IGNORE, dtype=torch.long)
            t[valid] = units[ia][torch.from_numpy(m[m >= 0])]
            targets[row, : len(m)] = t
        return audio, targets


def _save(cache: Path, audio, phones, voices, sentence, real) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    ends = np.cumsum([len(a) for a in audio])
    with atomic_path(cache / "audio.npy") as tmp:  # 16-bit, as the corpus is stored
        with open(tmp, "wb") as f:
            np.save(f, np.concatenate([np.clip(a, -1, 1) * 32767 for a in audio]).astype(np.int16))
    atomic_write_json(cache / "renderings.json", {"spans": [[int(e - len(a)), int(e)] for a, e in zip(audio, ends)],
                                                  "phones": phones, "voices": voices, "sentence": sentence,
                                                  "real": real})
