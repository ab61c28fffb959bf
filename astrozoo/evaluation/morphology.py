"""Morphology metrics: classification (accuracy, macro-F1, confusion matrix, expected calibration
error) and the two regressions (scatter, bias and 68 % interval coverage), plus the confusion
matrix figure.

Definitions:

- macro-F1: the unweighted mean over classes of F1 = 2 P R / (P + R);
- ECE: top-label expected calibration error, 15 equal-width bins of the highest class
  probability, sum over bins of (bin share) x |accuracy - mean confidence|;
- r_half: fractional error ``e = (r_pred - r_true) / r_true``; NMAD = 1.4826 median|e -
  median(e)|, bias = median(e), outliers |e| > 0.3;
- bulge fraction (B/T, on [0, 1], often near 0): absolute error ``d = bt_pred - bt_true``; NMAD
  as above, and RMS;
- coverage68: fraction of objects whose truth lies within ``pred +- err`` (0.683 when the
  Gaussian uncertainties are calibrated).

numpy only (matplotlib for the figure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "confusion_matrix", "macro_f1", "expected_calibration_error", "nmad",
           "coverage", "classification_metrics", "regression_metrics", "morphology_metrics",
           "plot_confusion"]

CLASSES = ("smooth", "disk", "edge-on", "clumpy", "merger")


def _indices(labels, classes) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        return labels.astype(int)
    if labels.dtype.kind == "f":
        return np.rint(labels).astype(int)
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[str(v)] for v in labels], int)


def confusion_matrix(true, pred, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(true, int), np.asarray(pred, int)), 1)
    return cm


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in a confusion matrix (a present class
    that is never predicted has F1 = 0)."""
    cm = np.asarray(cm, float)
    tp = np.diag(cm)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp),
                   where=(precision + recall) > 0)
    present = cm.sum(1) > 0
    return float(f1[present].mean())


def expected_calibration_error(probs, true, n_bins: int = 15) -> float:
    """Top-label ECE of class probabilities (N, K) against true class indices (N,)."""
    probs = np.asarray(probs, float)
    conf = probs.max(1)
    correct = probs.argmax(1) == np.asarray(true, int)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def nmad(x) -> float:
    """Normalised median absolute deviation, 1.4826 median|x - median(x)|."""
    x = np.asarray(x, float)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def coverage(pred, err, truth) -> float:
    """Fraction of `truth` within ``pred +- err``."""
    pred, err, truth = (np.asarray(a, float) for a in (pred, err, truth))
    return float(np.mean(np.abs(pred - truth) <= err))


def classification_metrics(true, probs, classes=CLASSES) -> dict:
    """Accuracy, macro-F1, ECE, log loss and per-class recall of probabilities (N, K)."""
    true = _indices(true, classes)
    probs = np.asarray(probs, float)
    pred = probs.argmax(1)
    cm = confusion_matrix(true, pred, len(classes))
    recall = np.diag(cm) / np.maximum(cm.sum(1), 1)
    out = {"accuracy": float(np.mean(pred == true)), "macro_f1": macro_f1(cm),
           "ece": expected_calibration_error(probs, true),
           "log_loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(true)), true], 1e-12, 1))))}
    out.update({f"recall_{c}": float(r) for c, r in zip(classes, recall)})
    return out


def regression_metrics(bt_pred, bt_err, bt_true, r_pred, r_err, r_true) -> dict:
    """Scatter, bias and 68 % coverage of B/T (absolute errors) and r_half (fractional)."""
    bt_pred, bt_true = np.asarray(bt_pred, float), np.asarray(bt_true, float)
    r_pred, r_true = np.asarray(r_pred, float), np.asarray(r_true, float)
    d = bt_pred - bt_true
    e = (r_pred - r_true) / r_true
    return {"r_half_nmad": nmad(e), "r_half_bias": float(np.median(e)),
            "r_half_outlier_frac": float(np.mean(np.abs(e) > 0.3)),
            "r_half_coverage68": coverage(r_pred, r_err, r_true),
            "bulge_fraction_nmad": nmad(d), "bulge_fraction_rms": float(np.sqrt(np.mean(d ** 2))),
            "bulge_fraction_bias": float(np.median(d)),
            "bulge_fraction_coverage68": coverage(bt_pred, bt_err, bt_true)}


def morphology_metrics(truth, predictions, classes=CLASSES) -> dict:
    """All metrics of a scored set.

    Parameters
    ----------
    truth : Table or mapping
        ``label`` (class names or indices into `classes`), ``bulge_fraction``, ``r_half_arcsec``.
    predictions : Table or mapping
        The task's columns: ``p_<class>`` for each class, ``bulge_fraction``,
        ``bulge_fraction_err``, ``r_half_arcsec``, ``r_half_arcsec_err``.
    """
    probs = np.stack([np.asarray(predictions[f"p_{c}"], float) for c in classes], 1)
    out = {"n": int(len(probs))}
    out.update(classification_metrics(truth["label"], probs, classes))
    out.update(regression_metrics(predictions["bulge_fraction"], predictions["bulge_fraction_err"],
                                  truth["bulge_fraction"], predictions["r_half_arcsec"],
                                  predictions["r_half_arcsec_err"], truth["r_half_arcsec"]))
    return out


def plot_confusion(matrices: dict, path: str | Path, classes=CLASSES) -> Path:
    """Row-normalised confusion matrices ``{title: counts (K, K)}`` side by side, as a PNG
    (drawn by `astrozoo.plot.confusion_matrix`)."""
    from .. import plot

    plt = plot._plt()
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices), 4.2), squeeze=False)
    for ax, (title, cm) in zip(axes[0], matrices.items()):
        plot.confusion_matrix(cm, classes, title=title, ax=ax)
    plot._finish(fig, path)
    plt.close(fig)
    return Path(path)
