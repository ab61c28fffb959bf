"""Plots of cutouts and of model results (matplotlib, safe under the Agg backend).

Every function returns the matplotlib ``Figure``; those that draw one panel accept ``ax=`` (draw
into an existing axes) and all accept ``path=`` (also save a PNG there). matplotlib is imported
only when a function is called; it ships with the ``features`` and ``train`` extras.

RGB images use the asinh stretch of Lupton et al. (2004), ``astropy.visualization.make_lupton_rgb``,
with the reddest band as red and the bluest as blue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["asinh_rgb", "cutout_grid", "roc_curve", "roc_curves", "zphot_vs_zspec",
           "pit_histogram", "confusion_matrix", "segmentation_overlay", "embedding_map",
           "segment_boundaries"]

#: effective wavelengths (nm) used to order bands blue -> red
_WAVELENGTH = {"u": 365, "g": 480, "r": 620, "i": 760, "z": 870, "y": 970, "Y": 1020,
               "VIS": 715, "J": 1250, "H": 1650, "K": 2200, "Ks": 2150}


def _plt():
    try:
        import matplotlib  # noqa: F401  (headless: matplotlib falls back to Agg itself)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("astrozoo.plot needs matplotlib: pip install 'astrozoo[features]' "
                          "(or 'astrozoo[train]')") from e
    import matplotlib.pyplot as plt

    return plt


def _axes(ax, figsize):
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, dpi=110)
        return fig, ax
    return ax.figure, ax


def _finish(fig, path, dpi=110):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    return fig


def _band_order(n: int, bands) -> list[int]:
    """Indices of the (blue, green, red) planes of an image with `n` bands."""
    if bands is not None:
        bands = list(bands)
        if len(bands) != n:
            raise ValueError(f"{len(bands)} band names for {n} image planes")
        if all(b in _WAVELENGTH for b in bands):
            order = sorted(range(n), key=lambda k: _WAVELENGTH[bands[k]])
        else:  # unknown names: take the given order as blue -> red
            order = list(range(n))
    else:
        order = list(range(n))
    if n == 1:
        return [0, 0, 0]
    if n == 2:
        return [order[0], order[0], order[1]]
    return [order[0], order[len(order) // 2], order[-1]]


def asinh_rgb(image, bands=None, *, stretch=None, Q: float = 8.0, minimum=None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image of a (C, H, W) cutout with the Lupton et al. (2004) stretch.

    Parameters
    ----------
    image : array (C, H, W) or (H, W)
        Fluxes, sky-subtracted.
    bands : sequence of str, optional
        The band of each plane (e.g. ``"gri"``); the reddest is drawn red, the bluest blue. Without
        names the planes are taken to run from blue to red.
    stretch : float, optional
        The linear scale of the asinh stretch; by default 5 x the robust sky sigma.
    Q : float
        The asinh softening parameter of ``make_lupton_rgb``.
    minimum : float, optional
        The black level; by default 0.
    """
    from astropy.visualization import make_lupton_rgb

    img = np.asarray(image, float)
    if img.ndim == 2:
        img = img[None]
    img = np.nan_to_num(img)
    b, g, r = (img[k] for k in _band_order(len(img), bands))
    if stretch is None:
        sky = 1.4826 * np.median(np.abs(img - np.median(img)))
        stretch = max(5 * sky, 1e-3 * float(np.abs(img).max()), 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):  # all-zero pixels: black
        return make_lupton_rgb(r, g, b, minimum=0.0 if minimum is None else minimum,
                               stretch=stretch, Q=Q)


def cutout_grid(images, bands=None, captions=None, ncols: int = 6, *, size: float = 1.8,
                stretch=None, Q: float = 8.0, path=None, title=None):
    """A grid of cutouts as RGB images with captions (e.g. the predictions).

    Parameters
    ----------
    images : array (N, C, H, W)
    bands : sequence of str, optional
        Band names of the C planes, see `asinh_rgb`.
    captions : sequence of str, optional
        One caption per cutout (e.g. ``f"p={p:.2f}"``).
    ncols : int
        Cutouts per row.
    stretch, Q : float
        Passed to `asinh_rgb`.
    path : path, optional
        Also save a PNG here.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * bool(title)),
                             squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(asinh_rgb(images[k], bands, stretch=stretch, Q=Q), origin="lower")
        if captions is not None:
            ax.set_title(str(captions[k]), fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def _roc(y_true, score):
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, float)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # one point per distinct threshold
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    tpr = np.r_[0, tp / max(y.sum(), 1)]
    fpr = np.r_[0, fp / max((~y).sum(), 1)]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def roc_curve(y_true, score, *, label=None, log_fpr: bool = False, ax=None, path=None):
    """The ROC curve of a binary classifier's scores, with its AUROC in the legend.

    Parameters
    ----------
    y_true : array (N,) of bool
    score : array (N,)
        Higher means more likely positive.
    log_fpr : bool
        A logarithmic false-positive axis (FPR 0 is drawn at 1e-4).
    ax : matplotlib axes, optional
    path : path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fpr, tpr, area = _roc(y_true, score)
    fig, ax = _axes(ax, (4.5, 4.2))
    _draw_roc(ax, {label or "model": (fpr, tpr, area)}, log_fpr)
    return _finish(fig, path)


def _draw_roc(ax, curves, log_fpr):
    for name, (fpr, tpr, area) in curves.items():
        x = np.maximum(fpr, 1e-4) if log_fpr else fpr
        ax.plot(x, tpr, label=f"{name} (AUROC {area:.4f})")
    if log_fpr:
        ax.set(xscale="log", xlim=(1e-4, 1), xlabel="false-positive rate (log; 0 drawn at 1e-4)",
               ylabel="true-positive rate", title="low false-positive end")
    else:
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC",
               xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right", fontsize=8)


def roc_curves(curves: dict, *, path=None):
    """Precomputed ROC curves ``{label: (fpr, tpr, auroc)}``, linear and log-FPR side by side."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    _draw_roc(ax1, curves, False)
    _draw_roc(ax2, curves, True)
    return _finish(fig, path)


def zphot_vs_zspec(z_spec, z_phot, *, err=None, title: str = "", ax=None, path=None):
    """z_phot against z_spec with the 1:1 line, the |dz|/(1+z) = 0.15 outlier boundaries and
    sigma_MAD, bias and outlier fraction in the title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .evaluation.photoz import OUTLIER_DZ, point_metrics

    z_spec, z_phot = np.asarray(z_spec, float), np.asarray(z_phot, float)
    pm = point_metrics(z_phot, z_spec)
    top = float(max(z_spec.max(), z_phot.max())) * 1.05
    fig, ax = _axes(ax, (4.5, 4.5))
    if err is None:
        ax.scatter(z_spec, z_phot, s=2, alpha=0.4, lw=0)
    else:
        ax.errorbar(z_spec, z_phot, yerr=err, fmt=".", ms=2, alpha=0.3, elinewidth=0.3)
    line = np.array([0, top])
    ax.plot(line, line, "k-", lw=0.8)
    for sgn in (1, -1):
        ax.plot(line, line + sgn * OUTLIER_DZ * (1 + line), "k:", lw=0.8)
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="z_spec", ylabel="z_phot", aspect="equal",
           title=(f"{title}\nsigma_MAD={pm['sigma_mad']:.4f} bias={pm['bias']:+.4f} "
                  f"out={pm['outlier_frac']:.2%}").strip())
    return _finish(fig, path, 120)


def pit_histogram(pit, *, bins: int = 20, title: str = "", ax=None, path=None):
    """Histogram (density) of PIT values: flat at 1 when the PDFs are calibrated; the KS
    statistic against uniform in the title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .evaluation.photoz import pit_ks

    pit = np.asarray(pit, float)
    fig, ax = _axes(ax, (4.5, 3.5))
    ax.hist(pit, bins=bins, range=(0, 1), density=True, color="C0", alpha=0.8)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set(xlabel="PIT", ylabel="density", xlim=(0, 1),
           title=f"{title}  KS = {pit_ks(pit):.3f}".strip())
    return _finish(fig, path, 120)


def confusion_matrix(cm=None, labels=None, *, y_true=None, y_pred=None, normalize: bool = True,
                     title: str = "", cmap: str = "Blues", ax=None, path=None):
    """A confusion matrix (rows true, columns predicted), row-normalised by default, each cell
    annotated with its fraction and count.

    Parameters
    ----------
    cm : array (K, K), optional
        Counts; or give `y_true` and `y_pred` (integer class indices or names in `labels`).
    labels : sequence of str
        Class names.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if cm is None:
        if y_true is None or y_pred is None:
            raise ValueError("give cm, or y_true and y_pred")
        names = list(labels) if labels is not None else sorted(set(np.r_[y_true, y_pred]))
        index = {n: k for k, n in enumerate(names)}
        t = np.array([index.get(v, v) for v in y_true], int)
        p = np.array([index.get(v, v) for v in y_pred], int)
        cm = np.zeros((len(names), len(names)), int)
        np.add.at(cm, (t, p), 1)
        labels = [str(n) for n in names]
    cm = np.asarray(cm, float)
    k = len(cm)
    labels = [str(i) for i in range(k)] if labels is None else list(labels)
    frac = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    vmax = 1.0 if normalize else max(float(cm.max()), 1.0)
    fig, ax = _axes(ax, (4.6, 4.2))
    ax.imshow(frac, vmin=0, vmax=vmax, cmap=cmap)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{frac[i, j]:.2f}\n({int(cm[i, j])})" if normalize else str(int(cm[i, j])),
                    ha="center", va="center", fontsize=7,
                    color="white" if frac[i, j] > 0.6 * vmax else "black")
    ax.set_xticks(range(k), labels, rotation=30, fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _finish(fig, path)


def segment_boundaries(segmap) -> np.ndarray:
    """Boolean (H, W): labelled pixels with a 4-neighbour of another label (inner outlines)."""
    seg = np.asarray(getattr(segmap, "data", segmap))
    pad = np.pad(seg, 1, mode="edge")
    edge = np.zeros(seg.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= pad[dy:dy + seg.shape[0], dx:dx + seg.shape[1]] != seg
    return edge & (seg > 0)


def segmentation_overlay(image, segmap, bands=None, *, mode: str = "outline",
                         color=(0.0, 1.0, 0.2), alpha: float = 0.5, title=None, stretch=None,
                         ax=None, path=None):
    """An image with a segmentation map drawn over it.

    Parameters
    ----------
    image : array (C, H, W) or (H, W)
    segmap : array (H, W) of int or photutils ``SegmentationImage``
        0 is background.
    mode : {"outline", "cmap"}
        Outlines of the segments in `color`, or the segments filled with photutils' random
        colour map at `alpha`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    seg = np.asarray(getattr(segmap, "data", segmap))
    rgb = asinh_rgb(image, bands, stretch=stretch)
    fig, ax = _axes(ax, (4.2, 4.2))
    if mode == "outline":
        over = rgb.copy()
        over[segment_boundaries(seg)] = np.round(np.asarray(color) * 255).astype(np.uint8)
        ax.imshow(over, origin="lower", interpolation="nearest")
    elif mode == "cmap":
        from photutils.segmentation import SegmentationImage

        ax.imshow(rgb, origin="lower", interpolation="nearest")
        si = SegmentationImage(seg.astype(int))
        ax.imshow(np.ma.masked_equal(seg, 0), origin="lower", cmap=si.cmap, alpha=alpha,
                  interpolation="nearest", vmin=0, vmax=max(int(seg.max()), 1))
    else:
        raise ValueError(f"mode must be 'outline' or 'cmap', not {mode!r}")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{int(seg.max())} segments" if title is None else title, fontsize=8)
    return _finish(fig, path)


def embedding_map(xy, thumbnails=None, *, labels=None, bands=None, n_thumbnails: int = 120,
                  zoom: float = 0.5, title=None, ax=None, path=None):
    """A 2-D map (e.g. t-SNE) of an embedding set with cutout thumbnails at spread-out points.

    Parameters
    ----------
    xy : array (N, 2)
        Map coordinates (see `astrozoo.embeddings.embedding_map` to compute them).
    thumbnails : array (N, C, H, W), optional
        Drawn at up to `n_thumbnails` points, the objects nearest to the nodes of a grid.
    labels : array (N,), optional
        Colour the points by these.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _plt()
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    xy = np.asarray(xy, float)
    fig, ax = _axes(ax, (10, 10))
    c = None
    if labels is not None:
        names, c = np.unique(np.asarray(labels), return_inverse=True)
    sc = ax.scatter(xy[:, 0], xy[:, 1], s=4, c=c, cmap="tab10", alpha=0.6)
    if labels is not None:
        ax.legend(sc.legend_elements()[0], [str(n) for n in names], loc="best", fontsize=8)
    if thumbnails is not None and n_thumbnails:
        g = int(np.ceil(np.sqrt(n_thumbnails)))
        lo, hi = xy.min(0), xy.max(0)
        picked = set()
        for gx in np.linspace(lo[0], hi[0], g):
            for gy in np.linspace(lo[1], hi[1], g):
                d = np.hypot(xy[:, 0] - gx, xy[:, 1] - gy)
                i = int(d.argmin())
                if d[i] < 0.5 * max((hi - lo).max(), 1e-12) / g and i not in picked:
                    picked.add(i)
                    im = OffsetImage(asinh_rgb(thumbnails[i], bands)[::-1], zoom=zoom)
                    ax.add_artist(AnnotationBbox(im, xy[i], frameon=False))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"map of {len(xy)} embeddings" if title is None else title)
    return _finish(fig, path, 100)
