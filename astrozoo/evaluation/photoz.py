"""Photo-z metrics: point-estimate scatter, bias and outliers; calibration of p(z) (PIT, CRPS,
interval coverage); the benchmark's report table. Plots are in `astrozoo.evaluation.plots`.

With ``dz = (z_p - z_s) / (1 + z_s)``:

- bias = median(dz); sigma_MAD = 1.4826 median|dz - median(dz)|;
- outlier fraction: |dz| > 0.15, and the LSST-DESC rule |dz| > max(0.06, 3 sigma_IQR) with
  sigma_IQR = IQR(dz) / 1.349;
- PIT = CDF of p(z) at z_s (uniform for calibrated p(z)), with its KS statistic against U(0, 1);
- CRPS = int (F(z) - 1[z >= z_s])^2 dz, on a grid since the mixture is truncated at 0;
- coverage: fraction of z_s inside the 68% and 95% intervals.

numpy/scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..tasks.photoz.mdn import SUMMARY_QUANTILES, mixture_cdf, mixture_pdf, mixture_quantiles

__all__ = ["dz", "point_metrics", "pit", "pit_ks", "crps", "interval_coverage", "photoz_metrics",
           "pdf_norm_max_err", "metrics_table", "TABLE_ROWS",
           "OUTLIER_DZ"]

#: Catastrophic-outlier threshold on |dz|.
OUTLIER_DZ = 0.15


def dz(z_phot, z_spec) -> np.ndarray:
    """Normalised residual (z_p - z_s) / (1 + z_s)."""
    z_phot, z_spec = np.asarray(z_phot, np.float64), np.asarray(z_spec, np.float64)
    return (z_phot - z_spec) / (1.0 + z_spec)


def point_metrics(z_phot, z_spec) -> dict[str, float]:
    """Bias, sigma_MAD, sigma_IQR and outlier fractions of a point estimate.

    Returns
    -------
    dict
        ``n``, ``bias``, ``sigma_mad``, ``sigma_iqr``, ``outlier_frac`` (|dz| > 0.15),
        ``outlier_frac_desc`` (|dz| > max(0.06, 3 sigma_IQR)).
    """
    d = dz(z_phot, z_spec)
    bias = float(np.median(d))
    # The photo-z literature's rounded constants (1.4826, 1.349), not scipy's scale="normal"
    # (1.482602...), so that values compare with published ones to every digit.
    sigma_mad = float(1.4826 * np.median(np.abs(d - bias)))
    sigma_iqr = float(stats.iqr(d) / 1.349)
    return {"n": int(d.size), "bias": bias, "sigma_mad": sigma_mad, "sigma_iqr": sigma_iqr,
            "outlier_frac": float(np.mean(np.abs(d) > OUTLIER_DZ)),
            "outlier_frac_desc": float(np.mean(np.abs(d) > max(0.06, 3 * sigma_iqr)))}


def pit(z_spec, w, mu, sigma) -> np.ndarray:
    """Probability integral transform: the predicted CDF at each true redshift, (N,)."""
    return mixture_cdf(w, mu, sigma, z_spec)


def pit_ks(pit_values) -> float:
    """Kolmogorov-Smirnov statistic of the PIT values against U(0, 1)."""
    return float(stats.kstest(np.asarray(pit_values), "uniform").statistic)


def crps(z_spec, w, mu, sigma, n_grid: int = 1024, chunk: int = 2048) -> np.ndarray:
    """Continuous ranked probability score per object (N,), in units of z.

    ``int_0^z_s F^2 dz + int_z_s^top (1 - F)^2 dz``, each part by the trapezoid rule on its own
    grid (so the step at z_s costs no accuracy), the grids bounded by the 0.0001% and 99.9999%
    quantiles outside which the integrand has vanished. Exact Gaussian-mixture formulas do not
    apply: the mixture is truncated at 0.
    """
    z_spec = np.asarray(z_spec, np.float64)
    w, mu, sigma = (np.asarray(a, np.float64) for a in (w, mu, sigma))
    out = np.empty(len(z_spec))
    u = np.linspace(0.0, 1.0, n_grid)
    for s in range(0, len(z_spec), chunk):
        sl = slice(s, s + chunk)
        zs = np.maximum(z_spec[sl], 0.0)[:, None]
        q = mixture_quantiles(w[sl], mu[sl], sigma[sl], [1e-6, 1 - 1e-6])
        bottom, top = np.minimum(q[:, :1], zs), np.maximum(q[:, 1:], zs)
        below, above = bottom + (zs - bottom) * u, zs + (top - zs) * u
        out[sl] = (np.trapezoid(mixture_cdf(w[sl], mu[sl], sigma[sl], below) ** 2, below, axis=1)
                   + np.trapezoid((1 - mixture_cdf(w[sl], mu[sl], sigma[sl], above)) ** 2, above,
                                  axis=1))
    return out


def interval_coverage(z_spec, lo, hi) -> float:
    """Fraction of true redshifts inside [lo, hi]."""
    z_spec = np.asarray(z_spec)
    return float(np.mean((z_spec >= np.asarray(lo)) & (z_spec <= np.asarray(hi))))


def photoz_metrics(z_spec, z_phot, w=None, mu=None, sigma=None, intervals=None) -> dict[str, float]:
    """All metrics of one model on one data set.

    Parameters
    ----------
    z_spec : array_like, (N,)
        True (spectroscopic) redshifts.
    z_phot : array_like, (N,)
        Point estimate (e.g. ``z_median``).
    w, mu, sigma : array_like, (N, K), optional
        The predicted mixture (``mdn_weight``, ``mdn_mu``, ``mdn_sigma``); without it only the
        point metrics are computed (e.g. for a kNN baseline).
    intervals : dict, optional
        ``z_lo68``, ``z_hi68``, ``z_lo95``, ``z_hi95`` columns; default: from the mixture.

    Returns
    -------
    dict
        `point_metrics`, plus with a mixture ``pit_ks``, ``crps`` (mean), ``coverage68``,
        ``coverage95``.
    """
    out = point_metrics(z_phot, z_spec)
    if w is None:
        return out
    out["pit_ks"] = pit_ks(pit(z_spec, w, mu, sigma))
    out["crps"] = float(np.mean(crps(z_spec, w, mu, sigma)))
    if intervals is None:
        names = ("z_lo68", "z_hi68", "z_lo95", "z_hi95")
        q = mixture_quantiles(w, mu, sigma, [SUMMARY_QUANTILES[n] for n in names])
        intervals = dict(zip(names, q.T))
    out["coverage68"] = interval_coverage(z_spec, intervals["z_lo68"], intervals["z_hi68"])
    out["coverage95"] = interval_coverage(z_spec, intervals["z_lo95"], intervals["z_hi95"])
    return out


def pdf_norm_max_err(w, mu, sigma, zmax: float, n_grid: int = 50001, chunk: int = 250) -> float:
    """Largest deviation from 1 of the integral of p(z) over ``0 <= z <= zmax`` (trapezoid),
    in chunks of objects so the (chunk, n_grid) density stays small."""
    zgrid = np.linspace(0.0, zmax, n_grid)
    norm = np.concatenate([np.trapezoid(mixture_pdf(w[s:s + chunk], mu[s:s + chunk],
                                                    sigma[s:s + chunk], zgrid), zgrid, axis=1)
                           for s in range(0, len(w), chunk)])
    return float(np.abs(norm - 1).max())


#: Rows of the benchmarks' metric tables: label, metric key, format.
TABLE_ROWS = (("sigma_MAD", "sigma_mad", ".4f"), ("bias (median dz)", "bias", "+.4f"),
              ("outliers abs(dz) > 0.15", "outlier_frac", ".2%"),
              ("outliers LSST-DESC rule", "outlier_frac_desc", ".2%"),
              ("PIT KS statistic", "pit_ks", ".3f"), ("CRPS", "crps", ".4f"),
              ("68% interval coverage", "coverage68", ".3f"),
              ("95% interval coverage", "coverage95", ".3f"))


def metrics_table(model: str, m: dict, baseline: str, b: dict, goals: dict) -> list[str]:
    """Markdown table of a model's metrics `m` beside a baseline's `b` and the goals; a metric
    the baseline lacks (no p(z)) reads "n/a"."""
    lines = [f"| metric | {model} | {baseline} | goal |", "| --- | --- | --- | --- |"]
    for label, key, fmt in TABLE_ROWS:
        base = format(b[key], fmt) if key in b else "n/a (no p(z))"
        lines.append(f"| {label} | {m[key]:{fmt}} | {base} | {goals.get(key, '')} |")
    return lines
