"""Speech synthesis with exact alignments: espeak-ng chooses phones and timing, mbrola renders them.

`espeak-ng --pho` writes the phone sequence with each phone's duration; mbrola renders exactly that timing, so
phone boundaries are known to the sample. Word boundaries come from aligning the chapter's phones with each
word's phones spoken alone (the lexicon): the two sequences agree except where context changes a word
("a" -> schwa), and those words take the boundaries interpolated between their aligned neighbours.
"""

from __future__ import annotations

import difflib
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from workbench.core.audio import SAMPLE_RATE, resample_audio
from workbench.data.texts import words as split_words
from workbench.data.voices import Voice, have_espeak, have_mbrola

PAUSE = "_"

Span = tuple[str, float, float]  # (label, start seconds, end seconds)


class SynthesisError(RuntimeError):
    """espeak-ng or mbrola failed or is missing."""


@dataclass
class Rendering:
    """One reading: 16 kHz mono audio with word, sentence and (when exact) phone timings."""

    audio: np.ndarray
    words: list[Span]
    sentences: list[Span]
    phones: list[Span] = field(default_factory=list)
    exact: bool = True  # False: native espeak fallback, word times are estimates
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def run_tool(cmd: list[str], text: str | None = None) -> str:
    """Run espeak-ng or mbrola; a missing tool or a failure is a SynthesisError naming it."""
    try:
        done = subprocess.run(cmd, input=text, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SynthesisError(f"{cmd[0]} is not installed (run `make setup`)") from None
    if done.returncode != 0:
        raise SynthesisError(f"{' '.join(cmd[:3])} ... failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return done.stdout


def espeak_pho(text: str, voice: Voice) -> list[list[str]]:
    """espeak-ng's mbrola phone list for `text`: one [phone, duration_ms, pitch points...] per line."""
    out = run_tool(["espeak-ng", "-q", "-v", voice.espeak_voice, "-s", str(voice.speed), "-p", str(voice.pitch),
                "--pho"], text)
    return [line.split() for line in out.splitlines() if line.strip() and not line.startswith(";")]


def lexicon(words: list[str], voice: Voice) -> dict[str, list[str]]:
    """Phones of each distinct (lower-cased) word spoken alone, from one espeak-ng call per batch.

    Each word is its own sentence, so pauses separate them; a batch whose pause count disagrees with its
    word count (a word that reads as two phrases) is split in half until the culprit is alone.
    """
    vocab = sorted({w.lower() for w in words})
    table: dict[str, list[str]] = {}

    def solve(batch: list[str]) -> None:
        lines = espeak_pho("\n".join(f"{w}." for w in batch), voice)
        groups, current = [], []
        for line in lines:
            if line[0] == PAUSE:
                if current:
                    groups.append(current)
                    current = []
            else:
                current.append(line[0])
        if current:
            groups.append(current)
        if len(groups) == len(batch):
            table.update(zip(batch, groups))
        elif len(batch) == 1:
            table[batch[0]] = [p for g in groups for p in g]
        else:
            solve(batch[: len(batch) // 2])
            solve(batch[len(batch) // 2:])

    for start in range(0, len(vocab), 2000):
        solve(vocab[start:start + 2000])
    return table


def align_words(spoken: list[str], per_word: list[list[str]]) -> list[tuple[int, int]]:
    """For each word, the [start, end) range of `spoken` phones it covers.

    `spoken` is the phone sequence as read in context (no pauses); `per_word` the phones of each word alone.
    Matched phones pin word boundaries exactly; the rest are interpolated between matches, monotonically.
    """
    flat = [p for phones in per_word for p in phones]
    starts = np.cumsum([0] + [len(p) for p in per_word])
    anchors_w, anchors_p = [0], [0]
    matcher = difflib.SequenceMatcher(None, spoken, flat, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size + 1):
            if block.b + k > anchors_w[-1] and block.a + k > anchors_p[-1]:
                anchors_w.append(block.b + k)
                anchors_p.append(block.a + k)
    anchors_w.append(len(flat))
    anchors_p.append(len(spoken))
    bounds = np.rint(np.interp(starts, anchors_w, anchors_p)).astype(int)
    bounds = np.maximum.accumulate(np.clip(bounds, 0, len(spoken)))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def render(sentences: list[str], voice: Voice, *, mbrola: bool | None = None) -> Rendering:
    """Read `sentences` aloud in `voice`. Uses mbrola (exact timings) when installed, else espeak-ng alone."""
    if not have_espeak():
        raise SynthesisError("espeak-ng is not installed (run `make setup`)")
    if mbrola is None:
        mbrola = have_mbrola(voice)
        if not mbrola:
            warnings.warn(f"mbrola voice {voice.base} not installed: falling back to espeak-ng's {voice.native_voice}"
                          " (robotic; ASR-based metrics degrade badly; word times are estimates)", stacklevel=2)
    rendering = _render_mbrola(sentences, voice) if mbrola else _render_native(sentences, voice)
    if voice.tract != 1.0:
        rendering = _scale_tract(rendering, voice.tract)
    return rendering


def _render_mbrola(sentences: list[str], voice: Voice) -> Rendering:
    lines = espeak_pho("\n".join(sentences), voice)
    with tempfile.TemporaryDirectory(prefix="wb-synth-") as tmp:
        pho, wav = Path(tmp) / "in.pho", Path(tmp) / "out.wav"
        pho.write_text("\n".join(" ".join(line) for line in lines) + "\n")
        run_tool(["mbrola", "-e", str(voice.mbrola_path), str(pho), str(wav)])
        audio, sr = sf.read(str(wav), dtype="float32")
    if sr != SAMPLE_RATE:
        audio = resample_audio(audio, sr, SAMPLE_RATE)
    # phone times from the durations; mbrola rounds each phone to samples, so rescale onto the true length
    durations = np.array([float(line[1]) for line in lines]) / 1000.0
    ends = np.cumsum(durations) * (len(audio) / SAMPLE_RATE) / max(durations.sum(), 1e-9)
    starts = np.concatenate([[0.0], ends[:-1]])
    phones = [(line[0], float(s), float(e)) for line, s, e in zip(lines, starts, ends)]

    spoken = [(p, s, e) for p, s, e in phones if p != PAUSE]
    sentence_words = [split_words(s) for s in sentences]
    all_words = [w for ws in sentence_words for w in ws]
    table = lexicon(all_words, voice)
    spans = align_words([p for p, _, _ in spoken], [table[w.lower()] for w in all_words])
    word_spans = []
    for word, (a, b) in zip(all_words, spans):
        if b > a:
            word_spans.append((word, spoken[a][1], spoken[b - 1][2]))
        else:  # no phone of its own (merged into a neighbour): a zero-length mark at the boundary
            t = spoken[a][1] if a < len(spoken) else spoken[-1][2]
            word_spans.append((word, t, t))
    return Rendering(audio, word_spans, _sentence_spans(sentences, sentence_words, word_spans), phones, exact=True)


def _render_native(sentences: list[str], voice: Voice) -> Rendering:
    """espeak-ng's own voices, one call per sentence: sentence times exact, word times by character share."""
    speed = round(voice.speed * 1.2)  # native voices: -s is close to words per minute
    pieces, word_spans, t = [], [], 0.0
    for sentence in sentences:
        with tempfile.TemporaryDirectory(prefix="wb-synth-") as tmp:
            wav = Path(tmp) / "out.wav"  # not --stdout (its streamed WAV header has no length); no -q (mutes -w)
            run_tool(["espeak-ng", "-v", voice.native_voice, "-s", str(speed), "-p", str(voice.pitch), "-w",
                  str(wav), sentence])
            audio, sr = sf.read(str(wav), dtype="float32")
        audio = resample_audio(audio, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else audio
        duration = len(audio) / SAMPLE_RATE
        ws = split_words(sentence)
        weights = np.cumsum([0] + [len(w) + 1 for w in ws]) / max(1, sum(len(w) + 1 for w in ws))
        word_spans += [(w, t + duration * a, t + duration * b) for w, a, b in zip(ws, weights[:-1], weights[1:])]
        pieces.append(audio)
        t += duration
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    sentence_words = [split_words(s) for s in sentences]
    return Rendering(audio, word_spans, _sentence_spans(sentences, sentence_words, word_spans), [], exact=False)


def _sentence_spans(sentences: list[str], sentence_words: list[list[str]], word_spans: list[Span]) -> list[Span]:
    spans, i = [], 0
    for sentence, ws in zip(sentences, sentence_words):
        if ws:
            spans.append((sentence, word_spans[i][1], word_spans[i + len(ws) - 1][2]))
        i += len(ws)
    return spans


def _scale_tract(r: Rendering, tract: float) -> Rendering:
    """Play the audio `tract` times faster and resample: pitch and formants scale by `tract`, times by 1/tract."""
    audio = resample_audio(r.audio, int(round(SAMPLE_RATE * tract)), SAMPLE_RATE)
    scale = lambda spans: [(x, s / tract, e / tract) for x, s, e in spans]  # noqa: E731
    return Rendering(audio.astype(np.float32), scale(r.words), scale(r.sentences), scale(r.phones), r.exact)
