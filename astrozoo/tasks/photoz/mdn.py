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
from scipy.special import log_softmax, ndtr
from torch import nn
from torch.nn import functional as F

__all__ = ["MDNHead", "pack", "unpack", "mdn_nll", "mass_below_zero", "mdn_loss", "SUPPORT_WEIGHT",
           "union_log_weights", "mixture_pdf",
           "mixture_cdf", "mixture_moments", "mixture_mode", "mixture_quantiles", "mixture_summary",
           "mixture_columns", "MixturePhotoZMixin", "SUMMARY_QUANTILES"]

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
    """

    def __init__(self, in_features: int, n_components: int, sigma_floor: float = 1e-3):
        super().__init__()
        self.n_components = n_components
        self.sigma_floor = sigma_floor
        self.linear = nn.Linear(in_features, 3 * n_components)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features (B, D) -> ``(logits_w, mu, sigma)``, each (B, K): unnormalised
        log-weights, means and widths (``softplus(.) + sigma_floor`` > 0)."""
        # float32 under any autocast: bfloat16's 8 significant bits would round the means by
        # up to 0.004 at z ~ 1
        with torch.autocast(h.device.type, enabled=False):
            logits, mu, s = self.linear(h.float()).chunk(3, dim=-1)
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


def mass_below_zero(logits_w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Probability (B,) the *untruncated* mixture puts below z = 0: ``sum_k w_k Phi(-mu_k /
    sigma_k)``.

    The truncated NLL does not see it (components may sit below zero at no cost), but a reader
    of the ``mdn_*`` columns as a plain Gaussian mixture (``qp.mixmod``, RAIL) does; the recipes
    add it to the loss so that both readings of the columns agree.
    """
    w = torch.softmax(logits_w.float(), dim=-1)
    return (w * torch.special.ndtr(-mu.float() / sigma.float())).sum(-1)


#: The recipes' weight of `mass_below_zero` in `mdn_loss`. On the SDSS validation split it
#: takes the mean mass below zero from 13 % to 0.04 % at a cost of 0.001 in NLL.
SUPPORT_WEIGHT = 5.0


def mdn_loss(logits_w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor,
             support_weight: float = SUPPORT_WEIGHT) -> torch.Tensor:
    """Training loss: `mdn_nll` plus ``support_weight`` x the mean `mass_below_zero`."""
    loss = mdn_nll(logits_w, mu, sigma, z)
    if support_weight:
        loss = loss + support_weight * mass_below_zero(logits_w, mu, sigma).mean()
    return loss


#: Numerical Recipes' erfc (Chebyshev fit, fractional error < 1.2e-7 for every argument).
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
         -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def _log_ndtr_onnx(x: torch.Tensor) -> torch.Tensor:
    """``log_ndtr`` from elementary operators, for ONNX (which has neither it nor erfc): the
    log of Numerical Recipes' erfc, so the far lower tail does not underflow in float32."""
    z = x.abs() / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = torch.full_like(t, _ERFC[-1])
    for c in _ERFC[-2::-1]:
        poly = poly * t + c
    log_erfc = torch.log(t) - z * z + poly  # log erfc(|x| / sqrt 2)
    return torch.where(x < 0, log_erfc - math.log(2.0), torch.log(1.0 - 0.5 * torch.exp(log_erfc)))


def union_log_weights(logits_w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                      n_mixtures: int) -> torch.Tensor:
    """Log-weights that make concatenating `n_mixtures` truncated mixtures their average density.

    Each truncated mixture is ``sum_k w_k N_k / Z`` with its own normaliser Z; dividing its weights
    by ``n_mixtures * Z`` gives every part mass ``1 / n_mixtures`` above zero, so the
    concatenation (truncated and renormalised as usual) is exactly the equal-weight average.
    Used for ensembles and test-time augmentation.
    """
    # float32 under any autocast: log_ndtr has no bfloat16 CPU kernel
    logits_w, mu, sigma = logits_w.float(), mu.float(), sigma.float()
    log_w = torch.log_softmax(logits_w, dim=-1)
    log_ndtr = _log_ndtr_onnx if torch.onnx.is_in_onnx_export() else torch.special.log_ndtr
    log_z = torch.logsumexp(log_w + log_ndtr(mu / sigma), dim=-1, keepdim=True)
    return log_w - log_z - math.log(n_mixtures)


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


def _component_blocks(n_components: int, n_values: int, budget: int = 1 << 22):
    """Slices of components to sum at once, so (N, G, block) temporaries stay near `budget`
    elements: vectorised for few evaluation points, bounded memory for fine grids."""
    step = max(1, budget // max(n_values, 1))
    return [slice(k, k + step) for k in range(0, n_components, step)]


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
    z = np.asarray(zgrid, dtype=np.float64)[None, :]
    dens = np.zeros((len(w), z.shape[1]))
    for ks in _component_blocks(w.shape[1], dens.size):
        m, s = mu[:, None, ks], sigma[:, None, ks]
        dens += (w[:, None, ks] * np.exp(-0.5 * ((z[..., None] - m) / s) ** 2)
                 / (s * math.sqrt(2 * math.pi))).sum(-1)
    dens /= _mass_above_zero(w, mu, sigma)[:, None]
    return np.where(z >= 0, dens, 0.0)


def _cdf_terms(w, mu, sigma):
    """What the truncated CDF needs besides z, computed once per mixture: the mirroring sign,
    ``Phi`` at the truncation edge and the normaliser."""
    a = -mu / sigma
    # Phi(b) - Phi(a), mirrored where a > 0 so it is a difference of small numbers rather than
    # of two numbers near 1 (no cancellation).
    sgn = np.where(a > 0, -1.0, 1.0)
    return sgn, ndtr(sgn * a), _mass_above_zero(w, mu, sigma)


def _cdf(w, mu, sigma, terms, z) -> np.ndarray:
    """Truncated CDF (N, M) at ``z`` (N, M) >= 0, with `_cdf_terms` precomputed."""
    sgn, edge, norm = terms
    cdf = np.zeros(z.shape)
    for ks in _component_blocks(w.shape[1], cdf.size):
        b = (z[..., None] - mu[:, None, ks]) / sigma[:, None, ks]
        s = sgn[:, None, ks]
        cdf += (w[:, None, ks] * s * (ndtr(s * b) - edge[:, None, ks])).sum(-1)
    cdf /= norm[:, None]
    return np.clip(cdf, 0.0, 1.0)


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
    cdf = _cdf(w, mu, sigma, _cdf_terms(w, mu, sigma), np.maximum(z, 0.0))
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


def mixture_mode(w, mu, sigma, n_grid: int = 128, n_iter: int = 30) -> np.ndarray:
    """Highest-density redshift (N,) of the truncated mixture.

    The density is evaluated on a grid over ``[max(0, min(mu - 4 sigma)), max(mu + 4 sigma)]``
    (128 points, spaced about as the narrowest component of a typical p(z) is wide), then the
    best grid point is refined by the mean-shift fixed-point iteration ``z <- sum_k r_k(z) mu_k /
    sigma_k^2 / sum_k r_k(z) / sigma_k^2`` (Carreira-Perpinan 2000), which climbs to the mode of
    that basin. A mode below 0 is clipped to the truncation edge.
    """
    w, mu, sigma = _as_mixture(w, mu, sigma)
    lo = np.maximum((mu - 4 * sigma).min(-1), 0.0)
    hi = np.maximum((mu + 4 * sigma).max(-1), lo + 1e-6)
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, n_grid)
    z = np.empty(len(w))
    for rows in np.array_split(np.arange(len(w)), max(1, len(w) * n_grid * w.shape[1] >> 22)):
        g, m, s, ww = grid[rows], mu[rows, None], sigma[rows, None], w[rows, None]
        dens = (ww * np.exp(-0.5 * ((g[..., None] - m) / s) ** 2) / s).sum(-1)
        z[rows] = g[np.arange(len(rows)), dens.argmax(-1)]
    log_w, inv_var = np.log(np.maximum(w, 1e-300)) - np.log(sigma), 1.0 / sigma ** 2
    for _ in range(n_iter):
        log_r = log_w - 0.5 * (z[:, None] - mu) ** 2 * inv_var
        r = np.exp(log_r - log_r.max(-1, keepdims=True)) * inv_var
        z = (r * mu).sum(-1) / r.sum(-1)
    return np.maximum(z, 0.0)


def mixture_quantiles(w, mu, sigma, q, n_iter: int = 40) -> np.ndarray:
    """Quantiles (N, Q) of the truncated mixture at probabilities `q` (Q,), by bisection on the
    CDF (monotone) within ``[max(0, min(mu - 12 sigma)), max(mu + 12 sigma)]``: 40 halvings
    of a bracket of width ~1 reach 1e-12."""
    w, mu, sigma = _as_mixture(w, mu, sigma)
    q = np.asarray(q, dtype=np.float64)
    shape = (len(w), len(q))
    lo = np.broadcast_to(np.maximum((mu - 12 * sigma).min(-1), 0.0)[:, None], shape).copy()
    hi = np.broadcast_to(np.maximum((mu + 12 * sigma).max(-1), 1e-6)[:, None], shape).copy()
    terms = _cdf_terms(w, mu, sigma)  # the same for every bisection step
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        below = _cdf(w, mu, sigma, terms, mid) < q
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


def mixture_columns(raw) -> dict[str, np.ndarray]:
    """Packed raw output (B, 3K), torch or numpy -> the photo-z columns: `mixture_summary`
    plus ``mdn_weight``, ``mdn_mu``, ``mdn_sigma`` (B, K) float32."""
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().cpu().numpy()
    logits, mu, sigma = (np.asarray(a, np.float64) for a in unpack(raw))
    w = np.exp(log_softmax(logits, axis=-1))
    cols = mixture_summary(w, mu, sigma)
    cols.update(mdn_weight=w.astype(np.float32), mdn_mu=mu.astype(np.float32),
                mdn_sigma=sigma.astype(np.float32))
    return cols


class MixturePhotoZMixin:
    """Photo-z output hooks for a `~astrozoo.modeling.ZooModel` whose ``forward`` returns
    `pack`-ed mixture parameters (B, 3K).

    Put it before ``ZooModel`` in the bases: ``class M(MixturePhotoZMixin, ZooModel)``.
    """

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        """Raw (B, 3K) -> `mixture_columns`."""
        return mixture_columns(out)

    def output_meta(self) -> dict:
        """The truncation of the ``mdn_*`` columns (`interop.TRUNCATION_META`)."""
        from .interop import TRUNCATION_META

        return dict(TRUNCATION_META)

    def to_qp(self, inputs, *, truncated: bool = True):
        """p(z) of `inputs` (a ``predict`` table, or anything ``predict`` accepts) as a
        `qp.Ensemble`; see `astrozoo.tasks.photoz.interop.to_qp`."""
        from .interop import to_qp

        table = inputs if hasattr(inputs, "colnames") and "mdn_weight" in inputs.colnames \
            else self.predict(inputs, progress=False)
        return to_qp(table, truncated=truncated)

    def combine_tta(self, outs: torch.Tensor) -> torch.Tensor:
        """(T, B, 3K) -> (B, 3TK): the equal-weight mixture of the T predicted mixtures.

        Averaging component parameters across augmentations would blur and mislabel components;
        concatenating them (weights from `union_log_weights`) is the average of the T densities.
        """
        logits, mu, sigma = unpack(outs)
        log_w = union_log_weights(logits, mu, sigma, outs.shape[0])
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
            param = next(self.parameters(), None)
            x = torch.as_tensor(np.ascontiguousarray(inputs, dtype=np.float32))
            x = x.to(param.device) if param is not None else x
            with torch.no_grad():
                cols = self.postprocess(self.forward(self.preprocess(x)))
        else:
            cols = self.predict(inputs, progress=False)
        return mixture_pdf(cols["mdn_weight"], cols["mdn_mu"], cols["mdn_sigma"], zgrid)
