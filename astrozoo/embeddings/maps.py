"""A 2-D map of an embedding set (t-SNE or PCA from scikit-learn), drawn with cutout
thumbnails at the points."""

from __future__ import annotations

import numpy as np

__all__ = ["embedding_map"]


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """(C, H, W) fluxes -> an RGB (or grey) asinh image in [0, 1] for display."""
    img = np.asarray(image, float)
    rgb = img[[-1, len(img) // 2, 0]] if len(img) >= 3 else np.repeat(img[:1], 3, 0)
    sky = 1.4826 * np.median(np.abs(rgb - np.median(rgb)))
    z = np.arcsinh(np.clip(rgb, 0, None) / (3 * max(sky, 1e-12)))
    return np.clip(z / max(np.percentile(z, 99.5), 1e-12), 0, 1).transpose(1, 2, 0)


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
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage

        fig, ax = plt.subplots(figsize=(10, 10))
        c = None
        if labels is not None:
            names, c = np.unique(np.asarray(labels), return_inverse=True)
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=4, c=c, cmap="tab10", alpha=0.6)
        if labels is not None:
            ax.legend(sc.legend_elements()[0], [str(n) for n in names], loc="best", fontsize=8)
        if images is not None and n_thumbnails:
            g = int(np.ceil(np.sqrt(n_thumbnails)))
            lo, hi = xy.min(0), xy.max(0)
            picked = set()
            for gx in np.linspace(lo[0], hi[0], g):
                for gy in np.linspace(lo[1], hi[1], g):
                    d = np.hypot(xy[:, 0] - gx, xy[:, 1] - gy)
                    i = int(d.argmin())
                    if d[i] < 0.5 * (hi - lo).max() / g and i not in picked:
                        picked.add(i)
                        ax.add_artist(AnnotationBbox(OffsetImage(_thumbnail(images[i]), zoom=zoom),
                                                     xy[i], frameon=False))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{method.upper()} map of {len(x)} embeddings")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return xy
