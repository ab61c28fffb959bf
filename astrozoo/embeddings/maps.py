"""A 2-D map of an embedding set (t-SNE or PCA from scikit-learn), drawn with cutout
thumbnails at the points (drawn by `astrozoo.plot.embedding_map`)."""

from __future__ import annotations

import numpy as np

__all__ = ["embedding_map"]


def embedding_map(embeddings, images=None, path=None, *, method: str = "tsne",
                  n_thumbnails: int = 120, labels=None, seed: int = 0, zoom: float = 0.5):
    """2-D coordinates (N, 2) of the embeddings, and optionally a PNG of the map.

    Parameters
    ----------
    embeddings : array (N, D)
    images : array (N, C, H, W), optional
        Cutouts (fluxes) drawn as thumbnails at up to `n_thumbnails` points spread over the
        map (the objects nearest to the centres of a grid).
    path : path, optional
        Write the PNG here.
    method : {"tsne", "pca"}
        `sklearn.manifold.TSNE` (cosine metric, PCA initialisation) or `sklearn.decomposition.PCA`.
    labels : array (N,), optional
        Colour the points by these.
    """
    try:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE
    except ImportError as e:
        raise ImportError("maps need scikit-learn: pip install 'astrozoo[features]'") from e
    x = np.asarray(embeddings, np.float32)
    if method == "tsne":
        xy = TSNE(2, metric="cosine", init="pca", random_state=seed,
                  perplexity=min(30.0, max(5.0, (len(x) - 1) / 3))).fit_transform(x)
    elif method == "pca":
        xy = PCA(2, random_state=seed).fit_transform(x)
    else:
        raise ValueError(f"method must be 'tsne' or 'pca', not {method!r}")
    if path is not None:
        import matplotlib.pyplot as plt

        from ..plot import embedding_map as draw

        fig = draw(xy, images, labels=labels, n_thumbnails=n_thumbnails, zoom=zoom,
                   title=f"{method.upper()} map of {len(x)} embeddings", path=path)
        plt.close(fig)
    return xy
