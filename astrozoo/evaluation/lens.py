"""Lens-finding metrics with the definitions of the Strong Gravitational Lens Finding Challenge
(Metcalf et al. 2019, A&A 625, A119): AUROC, TPR0 and TPR10.

The ROC curve and its area are scikit-learn's (part of ``astrozoo[train]``); only the
challenge's true-positive rate at a fixed false-positive count is written here.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["auroc", "tpr_at_fp", "lens_metrics"]


def auroc(labels, scores) -> float:
    """Area under the ROC curve (ties count one half)."""
    return float(roc_auc_score(np.asarray(labels).astype(bool), scores))


def tpr_at_fp(labels, scores, max_fp: int) -> float:
    """Highest true-positive rate whose threshold leaves at most `max_fp` false positives.

    ``max_fp=0`` is Metcalf et al.'s TPR0 (threshold above the highest-scoring non-lens);
    their TPR10 is the TPR where fewer than 10 false positives remain, i.e. ``max_fp=9``.
    """
    labels = np.asarray(labels).astype(bool)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fp = np.rint(fpr * (~labels).sum())
    return float(tpr[fp <= max_fp].max())


def lens_metrics(labels, scores) -> dict[str, float]:
    """AUROC, TPR0 and TPR10 (literal: fewer than 10 false positives on this set) of a scored set."""
    labels = np.asarray(labels).astype(bool)
    return {"auroc": auroc(labels, scores), "tpr0": tpr_at_fp(labels, scores, 0),
            "tpr10": tpr_at_fp(labels, scores, 9), "n_lenses": int(labels.sum()),
            "n_nonlenses": int((~labels).sum())}
