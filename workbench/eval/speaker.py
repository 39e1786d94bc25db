"""Speaker similarity: cosine between resemblyzer d-vectors (GE2E; the wheel ships `pretrained.pt`).

resemblyzer's own preprocessing is applied (volume normalisation, webrtcvad silence trimming), as in the
papers that report it. Reference points measured here on mbrola speech: the same voice saying different text
0.945-0.959, two different voices 0.68-0.73 -- a similarity means little without such a pair beside it.
"""

from __future__ import annotations

import functools

import numpy as np

from workbench.core.audio import SAMPLE_RATE, check_audio


@functools.lru_cache(maxsize=1)
def _encoder():
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Unit-norm 256-d speaker embedding of an utterance (at least ~1.6 s of speech is advisable)."""
    from resemblyzer import preprocess_wav

    wav = check_audio(wav, sample_rate, name="audio for a speaker embedding")
    speech = preprocess_wav(wav, source_sr=SAMPLE_RATE)
    if len(speech) < SAMPLE_RATE // 4:
        raise ValueError(f"only {len(speech) / SAMPLE_RATE:.2f} s of speech after silence trimming: too little "
                         "for a speaker embedding")
    return _encoder().embed_utterance(speech).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def embedding_or_none(wav: np.ndarray) -> np.ndarray | None:
    """`speaker_embedding` of a synthesis, or None where the VAD keeps too little speech for one (a garbled decode
    of a barely trained model): an evaluation records it as unmeasured instead of stopping half-way."""
    try:
        return speaker_embedding(wav)
    except ValueError:
        return None


def similarity_or_none(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Cosine of two embeddings, None if either is missing (`embedding_or_none`)."""
    return None if a is None or b is None else cosine(a, b)


def difference_or_none(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def speaker_similarity(a: np.ndarray, b: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Cosine similarity of the speaker embeddings of two utterances."""
    return cosine(speaker_embedding(a, sample_rate), speaker_embedding(b, sample_rate))
