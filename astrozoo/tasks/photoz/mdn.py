"""Mixture density network (MDN) head and the truncated Gaussian mixture p(z) it predicts.

A photo-z model outputs a Gaussian mixture in z with weights ``w_k``, means ``mu_k`` and widths
``sigma_k`` (Bishop 1994; D'Isanto & Polsterer 2018). Redshift is non-negative, so the mixture
is truncated to z >= 0 and renormalised by ``Z = sum_k w_k Phi(mu_k / sigma_k)``: no probability
lies below 0, and every quantity here (NLL, pdf, cdf, moments, quantiles) is that of the
truncated mixture.

Raw network outputs are one tensor (B, 3K) packing ``(logits_w, mu, sigma)`` so the inference
engine can batch, move and concatenate them without knowing the task; `unpack` splits them.
`MixturePhotoZMixin` gives a `~astrozoo.modeling.ZooModel` the photo-z ``postprocess``,
``combine_tta`` and ``pdf``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import log_softmax, logsumexp, ndtr
from torch import nn
from torch.nn import functional as F

__all__ = ["MDNHead", "pack", "unpack", "mdn_nll", "mixture_pdf", "mixture_cdf",
           "mixture_moments", "mixture_mode", "mixture_quantiles", "mixture_summary",
           "MixturePhotoZMixin", "SUMMARY_QUANTILES"]

#: Probability levels of the summary columns (median and central 68% / 95% intervals).
SUMMARY_QUANTILES = {"z_median": 0.5, "z_lo68": 0.15865525393145707,
                     "z_hi68": 0.8413447460685429, "z_lo95": 0.025, "z_hi95": 0.975}

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class MDNHead(nn.Module):
    """Linear layer mapping features to the parameters of a K-component Gaussian mixture in z.

    Parameters
    ----------
    in_features : int
        Width of the input features.
    n_components : int
        Number of mixture components K.
    sigma_floor : float
        Smallest component width; keeps the likelihood bounded when a component collapses
        onto one training redshift.

    Returns (from ``forward``)
    --------------------------
    logits_w, mu, sigma : torch.Tensor, each (B, K)
        Unnormalised log-weights, means and widths (``softplus(.) + sigma_floor`` > 0).
    """

    def __init__(self, in_features: int, n_components: int, sigma_floor: float = 1e-3):
        super().__init__()
        self.n_components = n_components
        self.sigma_floor = sigma_floor
        self.linear = nn.Linear(in_features, 3 * n_components)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, mu, s = self.linear(h).chunk(3, dim=-1)
        return logits, mu, F.softplus(s) + self.sigma_floor


def pack(logits_w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(B, K) x 3 -> one raw output tensor (B, 3K)."""
    return torch.cat([logits_w, mu, sigma], dim=-1)


def unpack(raw):
    """Raw output (..., 3K) -> ``(logits_w, mu, sigma)``, each (..., K); torch or numpy."""
    k = raw.shape[-1] // 3
    if raw.shape[-1] != 3 * k:
        raise ValueError(f"raw MDN output has {raw.shape[-1]} columns, not a multiple of 3")
    return raw[..., :k], raw[..., k:2 * k], raw[..., 2 * k:]


def mdn_nll(logits_w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
            z: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of `z` (B,) under the mixture truncated to z >= 0.

    ``log p(z) = logsumexp_k[log w_k + log N(z; mu_k, sigma_k)] - logsumexp_k[log w_k +
    log Phi(mu_k / sigma_k)]``; `torch.special.log_ndtr` keeps the normaliser finite when a
    component sits far below zero.
    """
    log_w = torch.log_softmax(logits_w, dim=-1)
    r = (z.unsqueeze(-1) - mu) / sigma
    log_n = -0.5 * r ** 2 - torch.log(sigma) - _LOG_SQRT_2PI
    log_norm = torch.logsumexp(log_w + torch.special.log_ndtr(mu / sigma), dim=-1)
    return (log_norm - torch.logsumexp(log_w + log_n, dim=-1)).mean()


# -- numpy side: the truncated mixture as a distribution ------------------------------------
def _as_mixture(w, mu, sigma):
    w, mu, sigma = (np.asarray(a, dtype=np.float64) for a in (w, mu, sigma))
    if not (w.shape == mu.shape == sigma.shape and w.ndim == 2):
        raise ValueError(f"w, mu, sigma must share one (N, K) shape, got {w.shape}, {mu.shape}, "
                         f"{sigma.shape}")
    return w / w.sum(-1, keepdims=True), mu, sigma


def _mass_above_zero(w, mu, sigma):
    """Normaliser Z (N,) of the truncation, floored so an all-negative mixture stays finite."""
    return np.maximum((w * ndtr(mu / sigma)).sum(-1), np.finfo(np.float64).tiny)


def mixture_pdf(w, mu, sigma, zgrid) -> np.ndarray:
    """Density of the truncated mixture on a shared grid.

    Parameters
    ----------
    w, mu, sigma : array_like, (N, K)
        Mixture weights (normalised here), means and widths.
    zgrid : array_like, (G,)
        Redshifts; the density is 0 below z = 0.

    Returns
    -------
    numpy.ndarray, (N, G)
    """
    w, mu, sigma = _as_mixture(w, mu, sigma)
    z = np.asarray(zgrid, dtype=np.float64)[None, :, None]
    r = (z - mu[:, None]) / sigma[:, None]
    dens = (w[:, None] * np.exp(-0.5 * r ** 2) / (sigma[:, None] * math.sqrt(2 * math.pi))).sum(-1)
    dens /= _mass_above_zero(w, mu, sigma)[:, None]
    return np.where(z[..., 0] >= 0, dens, 0.0)


def mixture_cdf(w, mu, sigma, z) -> np.ndarray:
    """CDF of the truncated mixture at per-object redshifts.

    Parameters
    ----------
    w, mu, sigma : array_like, (N, K)
    z : array_like, (N,) or (N, M)
        One or M redshifts per object (pass ``zgrid[None, :]`` for a shared grid).

    Returns
    -------
    numpy.ndarray, shape of `z` broadcast to N rows.
    """
    w, mu, sigma = _as_mixture(w, mu, sigma)
    z = np.asarray(z, dtype=np.float64)
    squeeze = z.ndim == 1
    z = np.broadcast_to(z[:, None] if squeeze else z, (len(w), z.shape[-1] if not squeeze else 1))
    a = (0.0 - mu)[:, None] / sigma[:, None]
    b = (np.maximum(z, 0.0)[..., None] - mu[:, None]) / sigma[:, None]
    # Phi(b) - Phi(a) from the tail that avoids 1 - (1 - eps) cancellation.
    mass = np.where(a > 0, ndtr(-a) - ndtr(-b), ndtr(b) - ndtr(a))
    cdf = (w[:, None] * mass).sum(-1) / _mass_above_zero(w, mu, sigma)[:, None]
    cdf = np.clip(cdf, 0.0, 1.0)
    return cdf[:, 0] if squeeze else cdf


def mixture_moments(w, mu, sigma) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (N,) of the truncated mixture, analytically.

    For one component truncated at 0 with ``alpha = mu / sigma``:
    ``int_0^inf z N dz = mu Phi(alpha) + sigma phi(alpha)`` and
    ``int_0^inf z^2 N dz = (mu^2 + sigma^2) Phi(alpha) + mu sigma phi(alpha)``.
    """
    w, mu, sigma = _as_mixture(w, mu, sigma)
    alpha = mu / sigma
    cdf, pdf = ndtr(alpha), np.exp(-0.5 * alpha ** 2) / math.sqrt(2 * math.pi)
    norm = _mass_above_zero(w, mu, sigma)
    m1 = (w * (mu * cdf + sigma * pdf)).sum(-1) / norm
    m2 = (w * ((mu ** 2 + sigma ** 2) * cdf + mu * sigma * pdf)).sum(-1) / norm
    return m1, np.sqrt(np.maximum(m2 - m1 ** 2, 0.0))


def mixture_mode(w, mu, sigma, n_iter: int = 50) -> np.ndarray:
    """Highest-density redshift (N,) of the truncated mixture.

    Every mode of a Gaussian mixture is a fixed point of the mean-shift iteration
    ``z <- sum_k r_k(z) mu_k / sigma_k^2 / sum_k r_k(z) / sigma_k^2`` (Carreira-Perpinan 2000);
    starting it from each component mean finds them all. Candidates below 0 are clipped to the
    truncation edge, and the candidate with the highest density wins.
    """
    w, mu, sigma = _as_mixture(w, mu, sigma)
    log_w, inv_var = np.log(np.maximum(w, 1e-300)), 1.0 / sigma ** 2
    z = mu.copy()  # (N, K) starting points
    for _ in range(n_iter):
        log_r = log_w[:, None] - 0.5 * (z[..., None] - mu[:, None]) ** 2 * inv_var[:, None] \
            - np.log(sigma)[:, None]
        r = np.exp(log_r - log_r.max(-1, keepdims=True)) * inv_var[:, None]
        z = (r * mu[:, None]).sum(-1) / r.sum(-1)
    cand = np.concatenate([np.maximum(z, 0.0), np.zeros((len(w), 1))], axis=1)
    log_dens = logsumexp(log_w[:, None] - 0.5 * (cand[..., None] - mu[:, None]) ** 2
                         * inv_var[:, None] - np.log(sigma)[:, None], axis=-1)
    return cand[np.arange(len(w)), log_dens.argmax(-1)]


def mixture_quantiles(w, mu, sigma, q, n_iter: int = 60) -> np.ndarray:
    """Quantiles (N, Q) of the truncated mixture at probabilities `q` (Q,), by bisection on the
    CDF (monotone, so 60 halvings reach float64 resolution of the bracket)."""
    w, mu, sigma = _as_mixture(w, mu, sigma)
    q = np.asarray(q, dtype=np.float64)
    lo = np.zeros((len(w), len(q)))
    hi = np.broadcast_to(np.maximum((mu + 12 * sigma).max(-1), 1e-6)[:, None], lo.shape).copy()
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        below = mixture_cdf(w, mu, sigma, mid) < q
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def mixture_summary(w, mu, sigma) -> dict[str, np.ndarray]:
    """Point estimates and intervals of the truncated mixture, float32 columns (N,).

    Returns
    -------
    dict
        ``z_mean``, ``z_median``, ``z_mode``, ``z_std``, ``z_lo68``, ``z_hi68``, ``z_lo95``,
        ``z_hi95`` (68% and 95% central intervals).
    """
    mean, std = mixture_moments(w, mu, sigma)
    qs = mixture_quantiles(w, mu, sigma, list(SUMMARY_QUANTILES.values()))
    out = {"z_mean": mean, "z_median": qs[:, 0], "z_mode": mixture_mode(w, mu, sigma), "z_std": std}
    out.update({name: qs[:, i] for i, name in enumerate(SUMMARY_QUANTILES) if name != "z_median"})
    order = ("z_mean", "z_median", "z_mode", "z_std", "z_lo68", "z_hi68", "z_lo95", "z_hi95")
    return {k: out[k].astype(np.float32) for k in order}


class MixturePhotoZMixin:
    """Photo-z output hooks for a `~astrozoo.modeling.ZooModel` whose ``forward`` returns
    `pack`-ed mixture parameters (B, 3K).

    Put it before ``ZooModel`` in the bases: ``class M(MixturePhotoZMixin, ZooModel)``.
    """

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        """Raw (B, 3K) -> the photo-z columns plus ``mdn_weight``, ``mdn_mu``, ``mdn_sigma``
        (B, K) float32."""
        logits, mu, sigma = (t.detach().double().cpu().numpy() for t in unpack(out))
        w = np.exp(log_softmax(logits, axis=-1))
        cols = mixture_summary(w, mu, sigma)
        cols.update(mdn_weight=w.astype(np.float32), mdn_mu=mu.astype(np.float32),
                    mdn_sigma=sigma.astype(np.float32))
        return cols

    def combine_tta(self, outs: torch.Tensor) -> torch.Tensor:
        """(T, B, 3K) -> (B, 3TK): the equal-weight mixture of the T predicted mixtures.

        Averaging component parameters across augmentations would blur and mislabel components;
        concatenating them (each set of weights divided by T) is the mixture of the T densities.
        """
        logits, mu, sigma = unpack(outs)
        t = outs.shape[0]
        log_w = torch.log_softmax(logits, dim=-1) - math.log(t)
        return pack(*(a.permute(1, 0, 2).flatten(1) for a in (log_w, mu, sigma)))

    def pdf(self, inputs, zgrid) -> np.ndarray:
        """Density p(z) (N, G) on `zgrid` (G,) for each object.

        Parameters
        ----------
        inputs
            A table with ``mdn_weight``/``mdn_mu``/``mdn_sigma`` columns (output of
            ``predict``); a tensor or array of model inputs in spec units (run through
            ``preprocess``/``forward``); or anything ``predict`` accepts.
        zgrid : array_like, (G,)
        """
        if hasattr(inputs, "colnames") and "mdn_weight" in inputs.colnames:
            cols = inputs
        elif isinstance(inputs, (torch.Tensor, np.ndarray)):
            x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
            p = next(self.parameters())
            with torch.no_grad():
                cols = self.postprocess(self.forward(self.preprocess(x.to(p.device))))
        else:
            cols = self.predict(inputs, progress=False)
        return mixture_pdf(cols["mdn_weight"], cols["mdn_mu"], cols["mdn_sigma"], zgrid)
