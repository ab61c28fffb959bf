"""Heads a zoo backbone can be fine-tuned with, each with its loss, metric and output columns.

``binary`` (one logit, ``p_<label>``), ``classes`` (softmax over any number of classes,
``label`` and ``p_<class>``), ``regression`` (a Gaussian mean and uncertainty per target,
``<target>`` and ``<target>_err``) and ``mdn`` (the photo-z mixture, `astrozoo.tasks.photoz.mdn`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..tasks.photoz.mdn import (MDNHead, mdn_loss, mixture_columns, pack, union_log_weights,
                                unpack)

__all__ = ["HEADS", "head_output_names", "build_head", "head_loss", "head_metric", "head_columns", "head_tta",
           "GaussianHead", "REG_SIGMA_FLOOR"]

HEADS = ("binary", "classes", "regression", "mdn")
#: Smallest predicted sigma of a regression target, in units of the target's training spread.
REG_SIGMA_FLOOR = 1e-3


class GaussianHead(nn.Module):
    """Mean and log-sigma per target, on targets standardised by the training set's ``loc`` and
    ``scale`` (buffers saved with the weights, so outputs come back in the targets' units)."""

    def __init__(self, in_features: int, n_targets: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, 2 * n_targets)
        self.register_buffer("loc", torch.zeros(n_targets))
        self.register_buffer("scale", torch.ones(n_targets))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, 2T): standardised means, then ln sigma."""
        mu, s = self.linear(self.drop(h)).float().chunk(2, dim=-1)
        return torch.cat([mu, torch.log(F.softplus(s) + REG_SIGMA_FLOOR)], dim=-1)


class _MDN(nn.Module):
    def __init__(self, in_features: int, n_components: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.mdn = MDNHead(in_features, n_components)

    def forward(self, h):
        return pack(*self.mdn(self.drop(h)))


class _Linear(nn.Module):
    def __init__(self, in_features: int, n_out: int, dropout: float = 0.0, squeeze=False):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, n_out)
        self.squeeze = squeeze

    def forward(self, h):
        out = self.linear(self.drop(h))
        return out.squeeze(-1) if self.squeeze else out


def head_output_names(kind: str, labels) -> tuple[str, ...]:
    """The output columns a head produces for `labels` (class names or target names)."""
    if kind == "binary":
        return ("label", f"p_{labels[0]}")
    if kind == "classes":
        return ("label",) + tuple(f"p_{c}" for c in labels)
    if kind == "regression":
        return tuple(c for t in labels for c in (t, f"{t}_err"))
    if kind == "mdn":
        return ("z_mean", "z_median", "z_mode", "z_std", "z_lo68", "z_hi68", "z_lo95", "z_hi95",
                "mdn_weight", "mdn_mu", "mdn_sigma")
    raise ValueError(f"head must be one of {HEADS}, not {kind!r}")


def build_head(kind: str, in_features: int, n_out: int, dropout: float = 0.0) -> nn.Module:
    """A fresh head: `n_out` is 1 (binary), the number of classes, of targets, or of mixture
    components (mdn)."""
    if kind == "binary":
        return _Linear(in_features, 1, dropout, squeeze=True)
    if kind == "classes":
        return _Linear(in_features, n_out, dropout)
    if kind == "regression":
        return GaussianHead(in_features, n_out, dropout)
    if kind == "mdn":
        return _MDN(in_features, n_out, dropout)
    raise ValueError(f"head must be one of {HEADS}, not {kind!r}")


def head_loss(kind: str, head: nn.Module, class_weight: torch.Tensor | None = None):
    """``loss(output, target)`` of a head. Targets: 0/1 (binary), class index (classes),
    (B, T) values in the targets' units (regression), redshift (mdn)."""
    if kind == "binary":
        pos_weight = None
        if class_weight is not None:  # (w_neg, w_pos)
            pos_weight = class_weight[1:] / class_weight[:1]

        def loss(out, y):
            pw = pos_weight.to(out.device) if pos_weight is not None else None
            return F.binary_cross_entropy_with_logits(out.float(), y.float(), pos_weight=pw)
    elif kind == "classes":
        def loss(out, y):
            w = class_weight.to(out.device) if class_weight is not None else None
            return F.cross_entropy(out.float(), y.long(), weight=w)
    elif kind == "regression":
        def loss(out, y):
            mu, log_s = out.float().chunk(2, dim=-1)
            z = (y.float().reshape(mu.shape) - head.loc) / head.scale
            # variance >= REG_SIGMA_FLOOR**2 = 1e-6, torch's clamp: the exact Gaussian NLL
            return F.gaussian_nll_loss(mu, z, (2 * log_s).exp(), full=True)
    elif kind == "mdn":
        def loss(out, y):
            return mdn_loss(*unpack(out.float()), y.float())
    else:
        raise ValueError(f"head must be one of {HEADS}, not {kind!r}")
    return loss


def head_metric(kind: str):
    """``metric(outputs, targets) -> dict`` on a validation set, and the key that picks the
    best epoch (``auroc``, ``accuracy``, or the loss)."""
    if kind == "binary":
        from ..evaluation.lens import auroc

        def metric(out, y):
            y = y.numpy()
            p = torch.sigmoid(out.float()).numpy()
            both = 0 < y.sum() < len(y)
            return {"auroc": auroc(y, p) if both else float("nan"),
                    "accuracy": float(((p >= 0.5) == (y >= 0.5)).mean())}
        return metric, "auroc"
    if kind == "classes":
        def metric(out, y):
            return {"accuracy": float((out.argmax(-1) == y.long()).float().mean())}
        return metric, "accuracy"
    return None, "loss"


def head_columns(kind: str, out: torch.Tensor, labels, head: nn.Module) -> dict[str, np.ndarray]:
    """Raw head output -> output columns."""
    out = out.float()
    if kind == "binary":
        p = torch.sigmoid(out).cpu().numpy()
        name = labels[0]
        return {"label": np.where(p >= 0.5, name, f"not_{name}"), f"p_{name}": p}
    if kind == "classes":
        p = torch.softmax(out, -1).cpu().numpy()
        names = np.array(labels)
        return {"label": names[p.argmax(1)], **{f"p_{c}": p[:, i] for i, c in enumerate(labels)}}
    if kind == "regression":
        mu, log_s = out.chunk(2, dim=-1)
        loc, scale = head.loc.float().to(out.device), head.scale.float().to(out.device)
        value = (loc + scale * mu).cpu().numpy()
        err = (scale * log_s.exp()).cpu().numpy()
        cols = {}
        for i, t in enumerate(labels):
            cols[t], cols[f"{t}_err"] = value[:, i], err[:, i]
        return cols
    if kind == "mdn":
        return mixture_columns(out)
    raise ValueError(kind)


def head_tta(kind: str, outs: torch.Tensor) -> torch.Tensor:
    """Merge T augmented copies of raw outputs (T, B, ...): mean probability (binary, classes),
    the Gaussian mixture's mean and spread (regression), the average mixture (mdn)."""
    outs = outs.float()
    if kind == "binary":
        return torch.logit(torch.sigmoid(outs).mean(0), eps=1e-7)
    if kind == "classes":
        return torch.log(torch.softmax(outs, -1).mean(0).clamp_min(1e-12))
    if kind == "regression":
        mu, log_s = outs.chunk(2, dim=-1)
        var = (log_s.exp() ** 2).mean(0) + mu.var(0, unbiased=False)
        return torch.cat([mu.mean(0), 0.5 * torch.log(var)], dim=-1)
    if kind == "mdn":  # concatenated components: the equal-weight average of the T densities
        logits, mu, sigma = unpack(outs)
        log_w = union_log_weights(logits, mu, sigma, outs.shape[0])
        return pack(*(a.permute(1, 0, 2).flatten(1) for a in (log_w, mu, sigma)))
    raise ValueError(kind)
