"""Offline speech recognition (pocketsphinx 5, whose wheel ships the en-us acoustic model, LM and dictionary)
and word error rate (jiwer), for scoring what generated or resynthesised speech says.

pocketsphinx is a 2000s-era HMM recogniser: on clean mbrola speech its WER is ~0.13-0.21 (us2/us1/us3), so a
WER is only meaningful next to a ceiling measured the same way (e.g. the codec's own reconstruction, or the
original audio). Long audio is cut at the quietest 100 ms near every `max_seconds` boundary, so no utterance
search runs over minutes and no word is split by the cut when there is a pause to cut at.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Sequence

import numpy as np

from workbench.core.audio import SAMPLE_RATE, check_audio
from workbench.core.workers import process_pool


@functools.lru_cache(maxsize=1)
def _decoder():
    from pocketsphinx import Decoder

    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")


def normalize_text(text: str) -> str:
    """Lower case, apostrophes kept inside words, every other non-letter a space: how both sides are compared."""
    text = re.sub(r"[^a-z']+", " ", text.lower())
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def split_points(wav: np.ndarray, max_seconds: float, sample_rate: int = SAMPLE_RATE,
                 search_seconds: float = 5.0) -> list[int]:
    """Sample indices that cut `wav` into pieces of at most `max_seconds`, each cut at the centre of the quietest
    100 ms in the `search_seconds` before its boundary."""
    hop = sample_rate // 10
    max_len = int(max_seconds * sample_rate)
    search = min(int(search_seconds * sample_rate), max_len // 2)
    cuts, start = [], 0
    while len(wav) - start > max_len:
        lo, hi = start + max_len - search, start + max_len
        frames = wav[lo:hi][: (hi - lo) // hop * hop].reshape(-1, hop)
        cut = lo + int(np.argmin((frames ** 2).mean(1))) * hop + hop // 2
        cuts.append(cut)
        start = cut
    return cuts


def transcribe(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, max_seconds: float = 30.0) -> str:
    """Words heard in `wav` (mono float), lower case, space separated ("" for speech it cannot decode)."""
    wav = check_audio(wav, sample_rate, name="audio to transcribe", allow_silence=True)
    decoder = _decoder()
    words = []
    for piece in np.split(wav, split_points(wav, max_seconds)):
        pcm = (np.clip(piece, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        # pocketsphinx carries its live cepstral-mean estimate from one utterance to the next, so a transcript
        # would depend on what was decoded before (JFK's clip read differently after a batch of noisy
        # resyntheses): every piece starts from the initial features instead
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        if hyp is not None and hyp.hypstr:
            words.append(hyp.hypstr)
    return normalize_text(" ".join(words))


def transcribe_many(wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE, max_seconds: float = 30.0,
                    workers: int | None = None) -> list[str]:
    """`transcribe` of each of `wavs`, in order, by `workers` processes (default: one per CPU core). pocketsphinx
    decodes on one thread, and every piece starts from the initial features, so a transcript does not depend on
    the process that heard it or on what it heard before (tested); a garbled resynthesis takes it ~0.5 s per
    second of audio, which made it half of `acoustic eval`'s time on one core."""
    if not len(wavs):
        return []
    workers = max(1, min(workers or os.cpu_count() or 1, len(wavs)))
    jobs = [(i, wav, sample_rate, max_seconds) for i, wav in enumerate(wavs)]
    with process_pool(workers) as pool:
        heard = dict(pool.imap_unordered(_transcribe_job, jobs))
    return [heard[i] for i in range(len(wavs))]


def _transcribe_job(job: tuple[int, np.ndarray, int, float]) -> tuple[int, str]:
    i, wav, sample_rate, max_seconds = job
    return i, transcribe(wav, sample_rate, max_seconds)


def word_error_rate(references: Sequence[str] | str, hypotheses: Sequence[str] | str) -> float:
    """Corpus WER: (substitutions + deletions + insertions) / reference words, over all pairs together."""
    import jiwer

    refs = [references] if isinstance(references, str) else list(references)
    hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    refs, hyps = [normalize_text(r) for r in refs], [normalize_text(h) for h in hyps]
    if not any(refs):
        raise ValueError("every reference transcript is empty: WER is undefined")
    kept = [(r, h) for r, h in zip(refs, hyps) if r]  # jiwer refuses empty references
    out = jiwer.process_words([r for r, _ in kept], [h for _, h in kept])
    return (out.substitutions + out.deletions + out.insertions) / sum(len(r.split()) for r, _ in kept)
