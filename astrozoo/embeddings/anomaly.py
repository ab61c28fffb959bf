"""Anomaly ranking by the distance to the k nearest neighbours in embedding space: an object
unlike any other has no close neighbours (the kNN detector of Ramaswamy et al. 2000, used on
galaxy embeddings by e.g. Walmsley et al. 2022)."""

from __future__ import annotations

import numpy as np

from .search import SimilarityIndex

__all__ = ["anomaly_scores"]


def anomaly_scores(embeddings, k: int = 10, block: int = 65536) -> np.ndarray:
    """Anomaly score of every row: the mean cosine distance (1 - similarity) to its `k`
    nearest other rows; higher is more unusual (rank with ``np.argsort(-scores)``). NaN rows
    (unreadable inputs) score NaN."""
    emb = np.asarray(embeddings)
    ok = np.isfinite(emb).all(1)
    scores = np.full(len(emb), np.nan)
    index = SimilarityIndex(emb[ok], block=block)
    rows = np.arange(len(index))
    for s in range(0, len(rows), 4096):
        _, sim = index.search_arrays(rows[s:s + 4096], k, exclude_self=True)
        scores[np.flatnonzero(ok)[s:s + 4096]] = 1 - sim.mean(1)
    return scores
