"""Lens-finding metrics with the definitions of the Strong Gravitational Lens Finding Challenge
(Metcalf et al. 2019, A&A 625, A119): AUROC, TPR0 and TPR10. numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["roc_curve", "auroc", "tpr_at_fp", "lens_metrics"]


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold (descending).

    Returns
    -------
    fpr, tpr, thresholds : np.ndarray
        Starting at (0, 0) with threshold +inf; a cutout counts as positive when
        ``score >= threshold``.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    s, lab = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each tied block
    tp = np.cumsum(lab)[last]
    fp = np.cumsum(~lab)[last]
    tpr = np.r_[0.0, tp / max(lab.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~lab).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, s[last]]


def auroc(labels, scores) -> float:
    """Area under the ROC curve (trapezoidal, so ties count one half)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def tpr_at_fp(labels, scores, max_fp: int) -> float:
    """Highest true-positive rate whose threshold leaves at most `max_fp` false positives.

    ``max_fp=0`` is Metcalf et al.'s TPR0 (threshold above the highest-scoring non-lens);
    their TPR10 is the TPR where fewer than 10 false positives remain, i.e. ``max_fp=9``.
    """
    labels = np.asarray(labels).astype(bool)
    fpr, tpr, _ = roc_curve(labels, scores)
    fp = np.rint(fpr * (~labels).sum())
    return float(tpr[fp <= max_fp].max())


def lens_metrics(labels, scores) -> dict[str, float]:
    """AUROC, TPR0 and TPR10 (literal: fewer than 10 false positives on this set) of a scored set."""
    labels = np.asarray(labels).astype(bool)
    return {"auroc": auroc(labels, scores), "tpr0": tpr_at_fp(labels, scores, 0),
            "tpr10": tpr_at_fp(labels, scores, 9), "n_lenses": int(labels.sum()),
            "n_nonlenses": int((~labels).sum())}
