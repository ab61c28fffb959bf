"""Clustering of embeddings with scikit-learn (k-means, or HDBSCAN when the number of groups
is unknown)."""

from __future__ import annotations

import numpy as np

__all__ = ["cluster"]


def cluster(embeddings, n_clusters: int | None = 8, *, method: str = "kmeans",
            min_cluster_size: int = 20, seed: int = 0) -> np.ndarray:
    """Cluster labels (N,) of L2-normalised embeddings (cosine geometry).

    ``method="kmeans"`` (`sklearn.cluster.KMeans`, `n_clusters` groups) or ``"hdbscan"``
    (`sklearn.cluster.HDBSCAN`, groups of at least `min_cluster_size`; label -1 is noise).
    NaN rows get -1.
    """
    try:
        from sklearn.cluster import HDBSCAN, KMeans
    except ImportError as e:
        raise ImportError("clustering needs scikit-learn: pip install 'astrozoo[features]'") from e
    emb = np.asarray(embeddings, np.float32)
    ok = np.isfinite(emb).all(1)
    x = emb[ok] / np.linalg.norm(emb[ok], axis=1, keepdims=True).clip(1e-12)
    if method == "kmeans":
        if not n_clusters:
            raise ValueError("method='kmeans' needs n_clusters")
        labels = KMeans(n_clusters, n_init=4, random_state=seed).fit_predict(x)
    elif method == "hdbscan":
        labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(x)
    else:
        raise ValueError(f"method must be 'kmeans' or 'hdbscan', not {method!r}")
    out = np.full(len(emb), -1, int)
    out[ok] = labels
    return out
