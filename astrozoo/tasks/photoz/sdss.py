"""The real SDSS spectroscopic sample shipped in the ``kcorrect`` wheel, as a photo-z data set.

``kcorrect/data/test/gst_tests_small.fits`` holds 10,000 SDSS galaxies with ugriz model fluxes
(nanomaggies) and inverse variances, Petrosian fluxes, Galactic extinction (mag) and the
spectroscopic redshift (0.01-0.58). The split is fixed by row index in that file: ``index % 5 ==
0`` is the test set (never used for training, tuning or model selection), ``== 1`` validation,
the rest training.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from astropy.table import Table

__all__ = ["BANDS", "data_path", "load_sdss", "split_of", "model_inputs"]

BANDS = ("u", "g", "r", "i", "z")
_SPLITS = {0: "test", 1: "val"}


def data_path() -> Path:
    """Path of ``gst_tests_small.fits`` inside the installed kcorrect package."""
    return Path(str(resources.files("kcorrect") / "data" / "test" / "gst_tests_small.fits"))


def split_of(index) -> np.ndarray:
    """Split name ("train", "val" or "test") of each row index of the file."""
    r = np.asarray(index) % 5
    return np.where(r == 0, "test", np.where(r == 1, "val", "train"))


def _err_from_ivar(ivar: np.ndarray) -> np.ndarray:
    # ivar <= 0 means "no measurement": NaN error, which the model flags as missing.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ivar > 0, 1.0 / np.sqrt(ivar), np.nan).astype(np.float32)


def load_sdss(split: str | None = None) -> Table:
    """The catalogue in astrozoo's column convention (shared/README section 1).

    Parameters
    ----------
    split : {"train", "val", "test"}, optional
        Keep only that split; default all rows.

    Returns
    -------
    astropy.table.Table
        ``id`` (row index in the file), ``ra``, ``dec``, ``flux_<b>``, ``flux_err_<b>`` (model
        fluxes, with unit nanomaggy), ``extinction_<b>`` (mag), ``petroflux_<b>``,
        ``petroflux_err_<b>``, ``z_spec`` and ``split``.
    """
    raw = Table.read(data_path())
    out = Table()
    out["id"] = np.arange(len(raw))
    out["ra"], out["dec"] = raw["RA"], raw["DEC"]
    for prefix, col in (("flux", "MODELFLUX"), ("petroflux", "PETROFLUX")):
        flux, err = np.asarray(raw[col], np.float32), _err_from_ivar(np.asarray(raw[col + "_IVAR"]))
        for j, b in enumerate(BANDS):
            out[f"{prefix}_{b}"] = flux[:, j]
            out[f"{prefix}_err_{b}"] = err[:, j]
            out[f"{prefix}_{b}"].unit = out[f"{prefix}_err_{b}"].unit = "nanomaggy"
    ext = np.asarray(raw["EXTINCTION"], np.float32)
    for j, b in enumerate(BANDS):
        out[f"extinction_{b}"] = ext[:, j]
    out["z_spec"] = np.asarray(raw["Z"], np.float64)
    out["split"] = split_of(out["id"])
    return out if split is None else out[out["split"] == split]


def model_inputs(table: Table, spec) -> np.ndarray:
    """The input rows a catalogue model with `spec` receives for `table`, read through the
    input pipeline (`astrozoo.io.open_inputs`), so training sees exactly what inference does."""
    from astrozoo.io import open_inputs

    cs = open_inputs(table, spec)
    return cs.read_batch(np.arange(len(cs))).data
