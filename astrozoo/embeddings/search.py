"""Exact cosine nearest-neighbour search over embeddings, in blocks.

Written here (about forty lines) rather than taken from FAISS or Annoy: the zoo's embedding
sets are ~1e5-1e7 vectors of 256-1536 floats, for which a blocked matrix product is exact, as
fast as a flat FAISS index on a CPU, and needs no compiled dependency; embeddings memory-mapped
from a ``.npy`` file are read one block at a time, so the index may exceed memory. For
approximate search over billions of vectors, hand the same arrays to FAISS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

__all__ = ["SimilarityIndex", "save_embeddings", "load_embeddings"]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1)


def save_embeddings(path, embeddings, ids=None) -> Path:
    """Write embeddings (N, D) as ``path`` (``.npy``, float32) and their ids beside it
    (``<path>.ids.npy``), for `load_embeddings` / a memory-mapped `SimilarityIndex`."""
    path = Path(path).with_suffix(".npy")
    np.save(path, np.asarray(embeddings, np.float32))
    if ids is not None:
        np.save(path.with_suffix(".ids.npy"), np.asarray(ids))
    return path


def load_embeddings(path, mmap: bool = True):
    """``(embeddings, ids or None)`` saved by `save_embeddings`, memory-mapped by default."""
    path = Path(path).with_suffix(".npy")
    emb = np.load(path, mmap_mode="r" if mmap else None)
    ids_path = path.with_suffix(".ids.npy")
    return emb, (np.load(ids_path, allow_pickle=False) if ids_path.is_file() else None)


class SimilarityIndex:
    """Cosine similarity search.

    Parameters
    ----------
    embeddings : array (N, D)
        In memory or memory-mapped (`load_embeddings`); rows that are NaN (unreadable
        inputs) are never returned.
    ids : sequence, optional
        Returned in ``id`` (default the row index).
    block : int
        Rows compared per step (memory ~ block x queries x 4 bytes).
    """

    def __init__(self, embeddings, ids=None, block: int = 65536):
        self.embeddings = embeddings
        self.ids = np.arange(len(embeddings)) if ids is None else np.asarray(ids)
        if len(self.ids) != len(embeddings):
            raise ValueError(f"{len(self.ids)} ids for {len(embeddings)} embeddings")
        self.block = int(block)

    def __len__(self) -> int:
        return len(self.embeddings)

    def search_arrays(self, queries, k: int = 10, exclude_self: bool = False):
        """``(indices, similarities)``, each (Q, k), best first. `exclude_self` drops each
        query's own row (queries given as row indices of the index)."""
        own = None
        if exclude_self:
            own = np.asarray(queries, int)
            queries = np.asarray(self.embeddings[own])
        q = _unit(np.atleast_2d(queries))
        k = min(k, len(self) - (1 if exclude_self else 0))
        best_s = np.full((len(q), 0), -np.inf, np.float32)
        best_i = np.zeros((len(q), 0), np.int64)
        for start in range(0, len(self), self.block):
            e = _unit(np.asarray(self.embeddings[start:start + self.block]))
            s = q @ e.T
            s[~np.isfinite(s)] = -np.inf
            if own is not None:
                rows = np.flatnonzero((own >= start) & (own < start + len(e)))
                s[rows, own[rows] - start] = -np.inf
            s = np.concatenate([best_s, s], 1)
            i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(e)),
                                                        (len(q), len(e)))], 1)
            if s.shape[1] > k:  # keep the k best so far
                top = np.argpartition(-s, k - 1, axis=1)[:, :k]
                s, i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
            best_s, best_i = s, i
        order = np.argsort(-best_s, axis=1, kind="stable")
        return np.take_along_axis(best_i, order, 1), np.take_along_axis(best_s, order, 1)

    def search(self, queries, k: int = 10) -> Table:
        """Top-`k` most similar rows for each query embedding (Q, D) or (D,).

        Returns
        -------
        astropy.table.Table
            One row per (query, rank): ``query`` (0-based), ``rank`` (1 = best), ``id``,
            ``index`` (row in the index), ``similarity`` (cosine).
        """
        idx, sim = self.search_arrays(queries, k)
        nq, kk = idx.shape
        return Table({"query": np.repeat(np.arange(nq), kk), "rank": np.tile(np.arange(1, kk + 1), nq),
                      "id": self.ids[idx.ravel()], "index": idx.ravel(),
                      "similarity": sim.ravel()})
