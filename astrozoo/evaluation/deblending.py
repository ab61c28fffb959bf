"""Deblending metrics: segments matched to the truth by IoU > 0.5 (a match at IoU > 0.5 is
unique both ways, so no assignment problem arises), count accuracy by true multiplicity,
detection precision and recall, mean IoU of the matches and the flux error of matched sources."""

from __future__ import annotations

import numpy as np

__all__ = ["iou_matrix", "match_segments", "deblending_metrics", "label_agreement"]


def iou_matrix(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU (n_truth, n_pred) of the labels 1..max of two segmentation maps of one scene."""
    nt, npred = int(truth.max(initial=0)), int(pred.max(initial=0))
    t, p = truth.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    inter = np.bincount(t * (npred + 1) + p, minlength=(nt + 1) * (npred + 1)).reshape(
        nt + 1, npred + 1)
    area_t, area_p = inter.sum(1), inter.sum(0)
    union = area_t[:, None] + area_p[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou[1:, 1:]


def match_segments(truth: np.ndarray, pred: np.ndarray, threshold: float = 0.5):
    """Matched ``(truth_label, pred_label, iou)`` arrays of one scene (IoU > `threshold` >= 0.5)."""
    iou = iou_matrix(truth, pred)
    ti, pi = np.nonzero(iou > threshold)
    return ti + 1, pi + 1, iou[ti, pi]


def label_agreement(a: np.ndarray, b: np.ndarray, where=None) -> float:
    """Fraction of pixels (of `where`, default all) on which two segmentation maps of one image
    agree, up to the numbering of the labels: each label of `a` is renamed to its best-IoU
    label of `b` (0 stays 0)."""
    iou = iou_matrix(a, b)
    best = iou.argmax(1) + 1 if iou.size else np.zeros(int(a.max(initial=0)), int)
    mapped = np.concatenate([[0], best])[a]
    same = mapped == b
    return float(same.mean() if where is None else same[where].mean())


def deblending_metrics(truth, pred, *, images=None, objects=None, snr_min: float = 20.0) -> dict:
    """Metrics of predicted segmentation maps against the truth.

    Parameters
    ----------
    truth, pred : sequence of np.ndarray
        Per-scene segmentation maps (0 background, 1..k sources).
    images : np.ndarray, optional
        (N, C, H, W) fluxes: with `objects`, the flux error of matched sources is the
        band-summed flux inside the predicted segment relative to the object's true total flux.
    objects : astropy.table.Table, optional
        Truth per object (``scene``, ``label``, ``flux``, ``snr``; the simulator's
        ``meta.meta["objects"]``); gives ``recall_snr<snr_min>`` and the flux error.

    Returns
    -------
    dict
        ``count_accuracy`` (fraction of scenes with the right number of sources),
        ``count_accuracy_n<k>`` per true multiplicity k, ``precision``, ``recall`` (all truth
        sources), ``recall_snr<snr_min>``, ``mean_iou`` (of matched pairs), ``flux_error``
        (median |relative error|), ``n_scenes``, ``n_true``, ``n_pred``.
    """
    n_true = np.array([int(t.max(initial=0)) for t in truth])
    n_pred = np.array([int(p.max(initial=0)) for p in pred])
    correct = n_true == n_pred
    out = {"count_accuracy": float(correct.mean())}
    for k in np.unique(n_true):
        out[f"count_accuracy_n{k}"] = float(correct[n_true == k].mean())
    matched, ious, flux_err, matched_labels = 0, [], [], {}
    for i, (t, p) in enumerate(zip(truth, pred)):
        tl, pl, iou = match_segments(t, p)
        matched += len(tl)
        ious += list(iou)
        matched_labels[i] = set(tl.tolist())
        if images is not None and objects is not None and len(tl):
            summed = np.asarray(images[i], float).sum(0)
            flux_seg = np.bincount(p.ravel(), weights=summed.ravel(), minlength=p.max() + 1)
            rows = objects[(objects["scene"] == i) & (objects["label"] > 0)]
            true_flux = dict(zip(np.asarray(rows["label"]).tolist(), np.asarray(rows["flux"])))
            flux_err += [abs(flux_seg[b] / true_flux[a] - 1) for a, b in zip(tl, pl)]
    out.update(precision=float(matched / max(n_pred.sum(), 1)),
               recall=float(matched / max(n_true.sum(), 1)),
               mean_iou=float(np.mean(ious)) if ious else 0.0)
    if objects is not None:
        src = objects[(objects["label"] > 0) & (objects["snr"] > snr_min)]
        hit = [int(lab) in matched_labels.get(int(s), ()) for s, lab in zip(src["scene"], src["label"])]
        out[f"recall_snr{snr_min:g}"] = float(np.mean(hit)) if hit else float("nan")
    if flux_err:
        out["flux_error"] = float(np.median(flux_err))
    out.update(n_scenes=len(n_true), n_true=int(n_true.sum()), n_pred=int(n_pred.sum()))
    return out
