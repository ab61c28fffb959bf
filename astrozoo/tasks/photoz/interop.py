"""Photo-z PDFs as `qp <https://github.com/LSSTDESC/qp>`_ ensembles, the format of LSST DESC's
RAIL (``pip install astrozoo[rail]``).

The ``mdn_weight`` / ``mdn_mu`` / ``mdn_sigma`` columns describe a Gaussian mixture truncated to
z >= 0 and renormalised (`astrozoo.tasks.photoz.mdn`). qp's own ``mixmod`` reads them as an
untruncated mixture, which differs from the model's PDF by the mass the mixture puts below zero
(kept under 0.5 % on average by the recipes' loss, and reported per row by
`mass_below_zero`). `to_qp` gives the model's PDF exactly: ``trunc_mixmod``, a qp
parameterisation registered here with mixmod's parameters and the truncation. A file written
with it is read back by qp after ``import astrozoo.tasks.photoz.interop``; for readers without
astrozoo, ``to_qp(..., truncated=False)`` gives the plain ``mixmod``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from .mdn import _as_mixture

__all__ = ["to_qp", "from_qp", "mass_below_zero", "TRUNCATION_META"]

#: What the photo-z Table's ``meta`` declares about the ``mdn_*`` columns (FITS-safe keys).
TRUNCATION_META = {
    "PZ_PDF": "Gaussian mixture mdn_weight/mdn_mu/mdn_sigma truncated to z >= 0, renormalised",
    "PZ_ZMIN": 0.0,
}


def _qp():
    try:
        import qp
    except ImportError as e:
        raise ImportError("to_qp needs qp: pip install 'astrozoo[rail]'") from e
    return qp


def _columns(table):
    try:
        cols = [np.asarray(table[c], np.float64) for c in ("mdn_weight", "mdn_mu", "mdn_sigma")]
    except KeyError as e:
        raise KeyError(f"a photo-z table needs mdn_weight, mdn_mu and mdn_sigma columns; "
                       f"missing {e}") from None
    return _as_mixture(*cols)


def mass_below_zero(table) -> np.ndarray:
    """Probability (N,) below z = 0 of the columns read as an untruncated mixture: how much a
    plain reading (``qp.mixmod``) differs from the model's PDF."""
    w, mu, sigma = _columns(table)
    return (w * ndtr(-mu / sigma)).sum(-1)


_CLASS = None


def _trunc_mixmod():
    """qp parameterisation of the truncated mixture, defined and registered on first use."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    qp = _qp()
    from qp.parameterizations.mixmod.mixmod import mixmod_gen

    class trunc_mixmod_gen(mixmod_gen):  # noqa: N801 - qp's naming: <name>_gen
        """mixmod's Gaussian mixture, truncated to x >= 0 and renormalised (astrozoo photo-z).

        The density and CDF are mixmod's divided by the mass above zero and zeroed below it;
        the quantiles invert that CDF by bisection.
        """

        name = "trunc_mixmod"
        version = 0

        def __init__(self, means, stds, weights, *args, **kwargs):
            super().__init__(means, stds, weights, *args, **kwargs)
            # each row's untruncated mass below 0, once (the quantile bisection calls _cdf 50x)
            self._mass_below = (self._weights * ndtr(-self._means / self._stds)).sum(-1)

        def _below(self, row):
            return self._mass_below[np.asarray(row)]

        def _pdf(self, x, row):
            dens = super()._pdf(x, row) / (1.0 - self._below(row))
            return np.where(np.asarray(x) >= 0, dens, 0.0)

        def _cdf(self, x, row):
            below = self._below(row)
            cdf = (super()._cdf(np.maximum(x, 0.0), row) - below) / (1.0 - below)
            return np.clip(cdf, 0.0, 1.0)

        def _ppf(self, x, row):
            # bisection on the exact CDF (mixmod interpolates a 201-point grid: ~1e-3 off);
            # scipy passes x and row broadcast to one shape
            x = np.asarray(x, np.float64)
            lo = np.zeros(np.broadcast(x, row).shape)
            hi = np.full(lo.shape, max(float((self._means + 12 * self._stds).max()), 1e-6))
            for _ in range(50):  # brackets of width < 100 to below 1e-13
                mid = 0.5 * (lo + hi)
                below = self._cdf(mid, row) < x
                lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
            return 0.5 * (lo + hi)

        @classmethod
        def add_mappings(cls) -> None:
            cls._add_creation_method(cls.create, None)

    if "trunc_mixmod" not in qp.stats:
        qp.add_class(trunc_mixmod_gen)
    _CLASS = qp.stats.trunc_mixmod
    return _CLASS


def to_qp(table, *, truncated: bool = True):
    """The photo-z PDFs of a `predict` table as a `qp.Ensemble`.

    Parameters
    ----------
    table : astropy.table.Table or mapping
        With ``mdn_weight``, ``mdn_mu``, ``mdn_sigma`` (N, K) columns; an ``id`` column, when
        present, becomes the ensemble's ancillary ``id``.
    truncated : bool
        True (default): ``trunc_mixmod``, exactly the model's PDF. False: qp's plain
        ``mixmod`` of the same columns (readable without astrozoo; off by `mass_below_zero`).

    Returns
    -------
    qp.Ensemble
    """
    qp = _qp()
    w, mu, sigma = _columns(table)
    ancil = {"id": np.asarray(table["id"])} if "id" in getattr(table, "colnames", table) else None
    cls = _trunc_mixmod() if truncated else qp.mixmod
    return qp.Ensemble(cls, data={"weights": w, "means": mu, "stds": sigma}, ancil=ancil)


def from_qp(ensemble) -> dict[str, np.ndarray]:
    """``mdn_weight`` / ``mdn_mu`` / ``mdn_sigma`` (N, K) of a ``trunc_mixmod`` or ``mixmod``
    ensemble (a plain mixmod is then read as truncated at zero)."""
    name = ensemble.gen_class.name
    if name not in ("trunc_mixmod", "mixmod"):
        raise ValueError(f"a {name!r} ensemble has no mixture columns; convert it with "
                         "qp.convert first")
    d = ensemble.objdata
    return {"mdn_weight": np.asarray(d["weights"]), "mdn_mu": np.asarray(d["means"]),
            "mdn_sigma": np.asarray(d["stds"])}
