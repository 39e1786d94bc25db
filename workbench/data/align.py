"""Phone and word alignments for real speech with transcripts, made offline with pocketsphinx's forced aligner.

The synthetic corpus knows its phone boundaries exactly (mbrola renders the durations espeak-ng chose); real read
speech (LibriSpeech, any folder with transcripts) gets them here, from pocketsphinx 5.1.1 (its wheel ships the
en-us acoustic model and the CMU dictionary) in alignment mode: a first pass finds the word segmentation of the
transcript, a second pass the phone segmentation inside it, on 10 ms frames.

Output: one JSON per utterance in the SAME format as the synthetic corpus's ``recordings/<split>/<id>.json``
(``text``, ``sentences``, ``words``, ``phones`` as ``[label, start_s, end_s]``), so `Recording.alignment_data()`
and the tokenizer's PNMI / phone purity (`workbench.tokenizer.metrics.frame_labels`) read both alike. The phones
tile the utterance from 0 to its end; silence is ``_`` (the synthetic corpus's pause symbol).

Phone set. The synthetic alignments use espeak-ng's phone names for the mbrola US voices (SAMPA-like; the held-out
voices that the tokenizer is measured on are us1 and us3). pocketsphinx speaks ARPAbet without stress (39 phones
plus SIL and two noise phones). `ARPABET_TO_PHONE` maps each ARPAbet phone to one mbrola-US phone; it is total
over the acoustic model's phones. It is coarser than the synthetic set: ARPAbet has no aspirated stops (p_h, t_h,
k_h), no flap (4), no syllabic l (l=) and, without stress, one symbol for both schwa (@) and the stressed
vowel of "cup" (V): AH -> @. `PHONE_TO_ARPABET` is the reverse, over every phone espeak-ng emits for the four
mbrola voices (us1-3 and the British en1); it spells words missing from the CMU dictionary (espeak-ng's
pronunciation, mapped) and puts the exact synthetic timings on a common footing with the aligner's in
`boundary_errors`.

Words missing from the dictionary (37% of mini-LibriSpeech's utterances hold at least one: names, rare words) are
added with espeak-ng's pronunciation (needs espeak-ng with an mbrola US voice, as the corpus build does); without
it such utterances are skipped with their reason. An utterance that cannot be aligned (no path through the
transcript, or an acoustic score so low that transcript and audio disagree) is skipped and counted, never a crash.

`measure_synthetic` measures the aligner where the truth is known: SynthBooks-style renderings (espeak-ng +
mbrola, exact phone timings) aligned from their text, boundary by boundary.
"""

from __future__ import annotations

import difflib
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable, Sequence

import numpy as np

from workbench.core.audio import SAMPLE_RATE
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json
from workbench.core.workers import process_pool
from workbench.data.texts import words as split_words

PAUSE = "_"
PHONE_SET = "mbrola-us"  # espeak-ng's phone names for the mbrola US voices, as in the synthetic alignments
FRAME_SECONDS = 0.01  # pocketsphinx's frame shift (100 frames per second)
ALIGNER = "pocketsphinx 5.1.1, en-us acoustic model + CMU dictionary, forced alignment (10 ms frames)"
# Mean acoustic score per speech frame below which an alignment is refused (transcript and audio disagree).
# Measured on mini-LibriSpeech: the first 442 utterances (by path) with their own transcripts score -7.3 .. -30.1
# (median -15.3); on 83 of them the next utterance's transcript finds no path (68) or scores -42.5 .. -63.
MIN_SCORE_PER_FRAME = -36.0

# pocketsphinx's en-us acoustic model: 39 ARPAbet phones (no stress), silence and two noise models
ACOUSTIC_MODEL_PHONES = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH",
    "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
    "SIL", "+NSN+", "+SPN+",
)

ARPABET_TO_PHONE: dict[str, str] = {
    # vowels (ARPAbet without stress -> espeak-ng/mbrola US)
    "AA": "A", "AE": "{", "AH": "@", "AO": "O", "AW": "aU", "AY": "AI", "EH": "E", "ER": "r=", "EY": "EI",
    "IH": "I", "IY": "i", "OW": "@U", "OY": "OI", "UH": "U", "UW": "u",
    # consonants
    "B": "b", "CH": "tS", "D": "d", "DH": "D", "F": "f", "G": "g", "HH": "h", "JH": "dZ", "K": "k", "L": "l",
    "M": "m", "N": "n", "NG": "N", "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t", "TH": "T", "V": "v",
    "W": "w", "Y": "j", "Z": "z", "ZH": "Z",
    # silence and noise: the synthetic corpus's pause
    "SIL": PAUSE, "+NSN+": PAUSE, "+SPN+": PAUSE,
}

PHONE_TO_ARPABET: dict[str, tuple[str, ...]] = {
    **{v: (k,) for k, v in ARPABET_TO_PHONE.items() if v != PAUSE},
    # mbrola US phones ARPAbet has no symbol for
    "V": ("AH",), "p_h": ("P",), "t_h": ("T",), "k_h": ("K",), "4": ("T",), "l=": ("AH", "L"), "O2": ("AO",),
    # the British en1 voice (non-rhotic: its centring diphthongs take the r the CMU dictionary writes)
    "e": ("EH",), "Q": ("AA",), "i:": ("IY",), "u:": ("UW",), "A:": ("AA",), "O:": ("AO",), "3:": ("ER",),
    "5": ("L",), "aI": ("AY",), "eI": ("EY",), "I@": ("IH", "R"), "e@": ("EH", "R"), "U@": ("UH", "R"),
}

_NOISE_WORDS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]"}
_ALT = re.compile(r"\(\d+\)$")


class AlignmentError(ValueError):
    """One utterance could not be aligned; the message says why, in one line."""


@dataclass
class AlignStats:
    aligned: int = 0
    reused: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"aligned": self.aligned, "reused": self.reused, "skipped": self.skipped,
                "aligned_hours": round(self.seconds / 3600, 4)}


def dictionary_form(word: str) -> str:
    """The CMU dictionary's spelling of a transcript word: lower case, curly apostrophes straightened."""
    return word.lower().replace("’", "'")


class Aligner:
    """pocketsphinx in forced-alignment mode, one decoder reused across utterances (recreated after a failure).

    `align(audio, text)` -> the alignment dict (words, phones, sentences; see the module doc) or AlignmentError.
    """

    def __init__(self, min_score: float = MIN_SCORE_PER_FRAME, spell_missing: bool = True):
        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            raise UserError("alignment needs pocketsphinx: .venv/bin/pip install pocketsphinx==5.1.1 "
                            "(part of the `eval` extra)") from None
        self.min_score = min_score
        self.spell_missing = spell_missing
        self._decoder = None
        self._added: dict[str, str] = {}  # words added to the dictionary (they survive a decoder reset)
        self._unspellable: set[str] = set()

    @property
    def decoder(self):
        if self._decoder is None:
            from pocketsphinx import Decoder

            # bestpath off: with it (the library's default) the first pass takes its segmentation from a lattice
            # that can give a phone fewer frames than its HMM has states, and the phone pass then fails ("Failed
            # to stop utterance processing"; cmusphinx/pocketsphinx#339, #500). The `align` command turns it off too.
            self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", bestpath=False)
            for word, phones in self._added.items():
                self._decoder.add_word(word, phones, True)
        return self._decoder

    def _ensure_words(self, words: Sequence[str]) -> None:
        missing = sorted({w for w in words if w not in self._added and self.decoder.lookup_word(w) is None})
        if not missing:
            return
        spelled = self._spell(missing) if self.spell_missing else {}
        unspellable = [w for w in missing if w not in spelled]
        if unspellable:
            self._unspellable.update(unspellable)
            raise AlignmentError(f"not in the pronunciation dictionary and espeak-ng could not spell it: "
                                 f"{', '.join(unspellable[:5])}")
        for word, phones in spelled.items():
            self.decoder.add_word(word, phones, True)
            self._added[word] = phones

    def _spell(self, words: list[str]) -> dict[str, str]:
        """ARPAbet pronunciations from espeak-ng (mbrola US voice), mapped through PHONE_TO_ARPABET."""
        from workbench.data.synth import SynthesisError, lexicon
        from workbench.data.voices import voice

        words = [w for w in words if w not in self._unspellable]
        if not words:
            return {}
        try:
            table = lexicon(words, voice("us1-a"))
        except SynthesisError as err:
            warnings.warn(f"cannot spell words missing from the dictionary: {err}", stacklevel=3)
            return {}
        out = {}
        for word in words:
            phones = table.get(word.lower(), [])
            if phones and all(p in PHONE_TO_ARPABET for p in phones):
                out[word] = " ".join(a for p in phones for a in PHONE_TO_ARPABET[p])
        return out

    def _decode(self, pcm: bytes, text: str) -> tuple[list[tuple], list[tuple]]:
        d = self.decoder
        d.set_align_text(text)
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            raise AlignmentError("the aligner found no path through the transcript")
        d.set_alignment()  # second pass: phone segmentation inside the word segmentation
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        alignment = d.get_alignment()
        if alignment is None:
            raise AlignmentError("the aligner returned no alignment")
        words = [(w.name, w.start, w.duration) for w in alignment.words()]
        phones = [(p.name, p.start, p.duration, p.score) for p in alignment.phones()]
        return words, phones

    def align(self, audio: np.ndarray, text: str) -> dict[str, Any]:
        tokens = split_words(text)
        if not tokens:
            raise AlignmentError("the transcript has no words")
        forms = [dictionary_form(t) for t in tokens]
        duration = len(audio) / SAMPLE_RATE
        if duration < 0.1:
            raise AlignmentError(f"audio of {duration:.3f} s is too short to align")
        self._ensure_words(forms)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        try:
            words, phones = self._decode(pcm, " ".join(forms))
        except RuntimeError:  # a decoder that failed before can fail again on good input: retry on a fresh one
            self._decoder = None
            try:
                words, phones = self._decode(pcm, " ".join(forms))
            except RuntimeError as err:
                self._decoder = None
                raise AlignmentError(f"the aligner failed ({' '.join(str(err).split())[:120]})") from None
        except AlignmentError:
            self._decoder = None  # a search that found no path leaves the decoder unusable
            raise
        return _alignment_dict(tokens, forms, text, words, phones, duration, self.min_score)


def _alignment_dict(tokens: list[str], forms: list[str], text: str, words: list[tuple], phones: list[tuple],
                    duration: float, min_score: float) -> dict[str, Any]:
    sec = lambda frames: round(min(frames * FRAME_SECONDS, duration), 4)  # noqa: E731
    spoken = [(_ALT.sub("", name), start, length) for name, start, length in words if name not in _NOISE_WORDS]
    if [name for name, _, _ in spoken] != forms:
        raise AlignmentError(f"the aligner's words ({len(spoken)}) do not match the transcript's ({len(forms)})")
    speech = [(s, n, score) for name, s, n, score in phones if ARPABET_TO_PHONE.get(name, PAUSE) != PAUSE]
    frames = sum(n for _, n, _ in speech)
    if not frames:
        raise AlignmentError("the aligner put no speech in the utterance")
    score = sum(score for _, _, score in speech) / frames
    if score < min_score:
        raise AlignmentError(f"acoustic score {score:.1f} per frame is below {min_score:g}: the transcript and "
                             "the audio probably disagree")
    unknown = sorted({name for name, *_ in phones if name not in ARPABET_TO_PHONE})
    if unknown:
        raise AlignmentError(f"the aligner used phones outside the model's set: {', '.join(unknown)}")
    arpabet: list[list] = []
    t = 0.0
    for name, start, length, _ in phones:  # tile [0, duration]: gaps become pauses
        s, e = sec(start), sec(start + length)
        if e <= s:
            continue
        if s > t + 1e-6:
            arpabet.append(["SIL", round(t, 4), s])
        arpabet.append([name, s, e])
        t = e
    if duration - t > 1e-6:
        arpabet.append(["SIL", round(t, 4), round(duration, 4)])
    word_spans = [[tok, sec(start), sec(start + length)] for tok, (_, start, length) in zip(tokens, spoken)]
    return {
        "text": text.strip(),
        "sentences": [[text.strip(), word_spans[0][1], word_spans[-1][2]]],
        "words": word_spans,
        "phones": [[ARPABET_TO_PHONE[p], s, e] for p, s, e in arpabet],
        "phones_arpabet": arpabet,
        "num_words": len(word_spans),
        "duration": round(duration, 4),
        "sample_rate": SAMPLE_RATE,
        "exact_alignment": False,
        "aligner": ALIGNER,
        "phone_set": PHONE_SET,
        "score_per_frame": round(score, 3),
    }


# ------------------------------------------------------------------------------------------------ a whole dataset

def alignment_path(out: Path, root: Path, audio: Path) -> Path:
    """Where the alignment of `audio` (inside dataset `root`) lives: the same relative path under `out`, .json."""
    return Path(out) / Path(audio).relative_to(root).with_suffix(".json")


ALIGN_PER_WORKER = 8  # by default, a process per this many utterances at most (one takes ~0.5-1 s to align)
_WORKER_ALIGNER: list[Aligner] = []  # the one Aligner of an aligning process (`_start_aligner`)


def _start_aligner(min_score: float) -> None:
    _WORKER_ALIGNER[:] = [Aligner(min_score=min_score)]


def _align_job(rec) -> tuple[Any, str, Any]:
    """(recording, "ok", alignment) or (recording, "unreadable" | "unaligned", why)."""
    from workbench.core.audio import AudioError

    try:
        audio = rec.load()
    except AudioError as err:
        return rec, "unreadable", " ".join(str(err).split())
    try:
        return rec, "ok", _WORKER_ALIGNER[0].align(audio, rec.text)
    except AlignmentError as err:
        return rec, "unaligned", str(err)


def align_dataset(dataset_dir: str | Path, out: str | Path | None = None, *, limit: int | None = None,
                  kind: str = "auto", force: bool = False, skip_bad: bool = False, progress: bool = True,
                  min_score: float = MIN_SCORE_PER_FRAME, only: Collection[str] | None = None,
                  workers: int | None = None) -> dict[str, Any]:
    """Align every recording with a transcript in a LibriSpeech(-Long) / folder dataset; write one JSON per
    utterance under `out` (default ``<dataset>/alignments``, where `open_dataset` finds them) mirroring the
    dataset's tree, atomically; existing ones are kept unless `force`. Returns (and writes to ``align.json``
    in `out`) the counts and why each skipped utterance was skipped.

    Missing transcripts and unreadable audio are UserErrors naming the file (with `skip_bad`: skipped and
    counted); an utterance the aligner cannot align is skipped and counted. `only`: align just the utterances
    with these ids (the corpus build aligns its held-out speakers only). `workers`: aligning processes (default
    one per CPU core, fewer for a few utterances); an utterance's alignment does not depend on which one
    aligned it."""
    from tqdm.auto import tqdm

    from workbench.core import progress as wb_progress
    from workbench.data.loaders import open_dataset

    root = Path(dataset_dir)
    try:
        dataset = open_dataset(root, kind=kind, skip_bad=skip_bad)
    except (OSError, ValueError) as err:
        raise UserError(" ".join(str(err).split())) from None
    if dataset.kind == "synthbooks":
        raise UserError(f"{root}: a SynthBooks corpus already has exact alignments; align real speech instead")
    out = Path(out) if out is not None else root / "alignments"
    recordings = sorted((r for r in dataset.recordings if only is None or r.id in only),
                        key=lambda r: str(r.audio))[: limit or None]
    if not any(r.text for r in recordings):
        raise UserError(f"{root}: no transcripts found (LibriSpeech: one <speaker>-<chapter>.trans.txt per "
                        "chapter; other layouts: a .txt beside each audio file)")
    Aligner(min_score=min_score)  # a missing pocketsphinx is said here, not inside a worker process
    stats = AlignStats()
    skipped: dict[str, str] = {}
    started = time.time()
    todo = []
    for rec in recordings:
        if alignment_path(out, root, rec.audio).is_file() and not force:
            stats.reused += 1
        elif not rec.text:
            message = f"{rec.audio}: no transcript (expected a line '{rec.id} ...' in a .trans.txt, or a .txt beside it)"
            if not skip_bad:
                raise UserError(message)
            skipped[rec.id] = "no transcript"
            stats.skipped += 1
        else:
            todo.append(rec)
    # pocketsphinx aligns on one thread: a process per core, when there is enough to pay for starting them (~3 s)
    workers = max(1, min(workers, len(todo)) if workers else min(os.cpu_count() or 1, len(todo) // ALIGN_PER_WORKER))
    bar = tqdm(total=len(todo), desc="aligning", unit="utt", disable=not progress)
    with process_pool(workers, _start_aligner, (min_score,)) as pool:
        for i, (rec, status, result) in enumerate(pool.imap_unordered(_align_job, todo)):
            bar.update(1)
            wb_progress.report("data align", i, len(todo), "utterances", time.time() - started)
            if status == "unreadable" and not skip_bad:
                raise UserError(result)
            if status != "ok":
                skipped[rec.id] = result
                stats.skipped += 1
                continue
            meta = {"id": rec.id, "speaker": rec.speaker, "chapter": rec.audio.parent.name if dataset.kind != "folder"
                    else None, "split": rec.split, "audio": str(rec.audio.relative_to(root)), **result}
            atomic_write_json(alignment_path(out, root, rec.audio), meta)
            stats.aligned += 1
            stats.seconds += rec.duration
    bar.close()
    skipped = dict(sorted(skipped.items()))
    wb_progress.report("data align", len(recordings), len(recordings), "utterances", time.time() - started)
    summary = {"dataset": str(root), "kind": dataset.kind, "out": str(out), "recordings": len(recordings),
               **stats.as_dict(), "skipped_reasons": skipped, "aligner": ALIGNER, "phone_set": PHONE_SET,
               "min_score_per_frame": min_score, "seconds": round(time.time() - started, 1)}
    atomic_write_json(out / "align.json", summary)
    return summary


# ----------------------------------------------------------------------------- measured against exact timings

def _key(phone: str) -> str:
    """A synthetic (mbrola) phone on the ARPAbet footing the aligner's phones stand on."""
    return " ".join(PHONE_TO_ARPABET.get(phone, (phone,)))


def boundary_errors(truth: Sequence[Sequence[Any]], aligned: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Signed boundary errors (aligned - truth, seconds) between exact phone spans `truth` (mbrola phone names)
    and the aligner's `aligned` (ARPAbet names, as in ``phones_arpabet``), pauses left out.

    The two phone sequences are matched (difflib, on `PHONE_TO_ARPABET`'s common footing); each matched phone
    contributes its start boundary, and its end where the next phones are not also a match (so a boundary
    shared by two matched phones counts once). Returns the errors and the share of truth phones matched."""
    t = [(p, float(s), float(e)) for p, s, e in truth if p != PAUSE and e > s]
    a = [(p, float(s), float(e)) for p, s, e in aligned if ARPABET_TO_PHONE.get(p, PAUSE) != PAUSE]
    matcher = difflib.SequenceMatcher(None, [_key(p) for p, _, _ in t], [p for p, _, _ in a], autojunk=False)
    pairs = {i: j for block in matcher.get_matching_blocks() for i, j in
             zip(range(block.a, block.a + block.size), range(block.b, block.b + block.size))}
    errors = []
    for i, j in pairs.items():
        errors.append(a[j][1] - t[i][1])
        if pairs.get(i + 1) != j + 1:
            errors.append(a[j][2] - t[i][2])
    return {"errors": errors, "matched": len(pairs), "truth_phones": len(t)}


def word_boundary_errors(truth: Sequence[Sequence[Any]], aligned: Sequence[Sequence[Any]]) -> list[float]:
    """Signed start and end errors of each word (the same words in the same order; zero-length truth words,
    merged into a neighbour by the synthesizer, left out)."""
    if [w[0] for w in truth] != [w[0] for w in aligned]:
        raise ValueError("the word sequences differ")
    return [x for (_, s, e), (_, s2, e2) in zip(truth, aligned) if e > s for x in (s2 - s, e2 - e)]


def error_summary(errors: Iterable[float]) -> dict[str, Any]:
    """Median / mean / 90th percentile of the absolute errors (ms), the share within 20 and 50 ms, and the
    median signed error (the aligner's bias: positive = late)."""
    signed = np.asarray(list(errors), dtype=np.float64)
    x = np.abs(signed)
    if x.size == 0:
        return {"boundaries": 0}
    return {
        "boundaries": int(x.size),
        "median_abs_ms": round(float(np.median(x)) * 1000, 2),
        "mean_abs_ms": round(float(x.mean()) * 1000, 2),
        "p90_abs_ms": round(float(np.percentile(x, 90)) * 1000, 2),
        "within_20ms": round(float((x <= 0.020).mean()), 4),
        "within_50ms": round(float((x <= 0.050).mean()), 4),
        "median_signed_ms": round(float(np.median(signed)) * 1000, 2),
    }


def synthetic_utterances(count: int, seed: int = 0, min_words: int = 6, max_words: int = 40) -> list[str]:
    """`count` utterance texts of one or two consecutive Austen sentences (6-40 words), chosen deterministically
    from chapters far apart in the books."""
    import random

    from workbench.data.texts import read_all

    chapters = read_all()
    random.Random(seed).shuffle(chapters)
    texts: list[str] = []
    for chapter in chapters:
        sentences = [s for s in chapter.sentences if min_words <= len(split_words(s)) <= max_words]
        if sentences:
            texts.append(sentences[0])
        if len(texts) >= count:
            break
    return texts


def measure_synthetic(count: int = 12, voices: Sequence[str] = ("us1-h", "us3-h"), seed: int = 0,
                      progress: bool = True) -> dict[str, Any]:
    """The aligner against exact phone timings: `count` utterances rendered by espeak-ng + mbrola in each of
    `voices` (default the corpus's held-out voices), aligned from their text; boundary errors overall and per
    voice (median absolute error in ms, share within 20 / 50 ms, signed median = bias), and word boundaries."""
    from tqdm.auto import tqdm

    from workbench.data.synth import SynthesisError, render
    from workbench.data.voices import have_mbrola, voice

    chosen = [voice(v) for v in voices]
    missing = [v.base for v in chosen if not have_mbrola(v)]
    if missing:
        raise UserError(f"measuring the aligner needs espeak-ng and the mbrola voices {', '.join(missing)} (exact "
                        "phone timings); run `make setup`")
    texts = synthetic_utterances(count, seed)
    aligner = Aligner()
    per_voice: dict[str, Any] = {}
    all_errors: list[float] = []
    all_word_errors: list[float] = []
    matched = total = failed = 0
    seconds = 0.0
    started = time.time()
    bar = tqdm(total=len(texts) * len(chosen), desc="aligning synthetic speech", unit="utt", disable=not progress)
    for v in chosen:
        errors: list[float] = []
        word_errors: list[float] = []
        for text in texts:
            bar.update()
            try:
                r = render([text], v, mbrola=True)
            except SynthesisError as err:
                raise UserError(f"synthesis failed: {err}") from None
            try:
                result = aligner.align(r.audio, text)
            except AlignmentError:
                failed += 1
                continue
            found = boundary_errors(r.phones, result["phones_arpabet"])
            errors += found["errors"]
            matched += found["matched"]
            total += found["truth_phones"]
            word_errors += word_boundary_errors(r.words, result["words"])
            seconds += r.duration
        per_voice[v.name] = {"phones": error_summary(errors), "words": error_summary(word_errors)}
        all_errors += errors
        all_word_errors += word_errors
    bar.close()
    return {
        "what": "pocketsphinx forced-alignment boundaries vs exact espeak-ng + mbrola phone timings",
        "aligner": ALIGNER, "voices": list(voices), "utterances": len(texts) * len(chosen), "failed": failed,
        "audio_seconds": round(seconds, 1), "phones_matched_share": round(matched / total, 4) if total else None,
        "phones": error_summary(all_errors), "words": error_summary(all_word_errors), "per_voice": per_voice,
        "seconds": round(time.time() - started, 1),
    }
