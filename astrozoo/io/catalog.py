"""Catalogues: reading tables, finding columns, and photometry rows for catalogue models.

For ``spec.kind == "catalog"`` each object's row is ``[flux_b for b in spec.bands] +
[flux_err_b ...] + [extinction_b ...]`` in ``spec.flux_unit`` (extinction in magnitudes, 0 when
absent). Per band, the first of these that the table has is used (case-insensitively; a
``columns=`` mapping renames the user's columns to these names first):

- fluxes ``flux_<b>``, ``<b>_flux``, ``modelflux_<b>`` (SDSS ``modelFlux_u``), ``cmodelflux_<b>``,
  or a 2-D ``MODELFLUX`` / ``FLUX`` column (N, bands) in the survey's band order (SDSS: ugriz);
- errors ``flux_err_<b>``, ``fluxerr_<b>``, ``<b>_flux_err``, ``modelfluxerr_<b>``, or inverse
  variances ``flux_ivar_<b>``, ``modelfluxivar_<b>``, ``<b>_flux_ivar``, 2-D ``*_IVAR``
  (``ivar <= 0``: not measured);
- or AB magnitudes ``mag_<b>``, ``<b>_mag`` with ``magerr_<b>``, ``mag_err_<b>``, ``<b>_magerr``
  (99, NaN or masked: not measured);
- extinction ``extinction_<b>``, ``a_<b>`` or a 2-D ``EXTINCTION``.

Units: a flux column with an astropy unit is converted; a unitless one is in the unit the caller
declares (``unit=``/``zeropoint=``); with neither it is taken to be in the model's unit, with a
warning and the `Flag.UNCALIBRATED` flag on every row. Non-finite or masked fluxes are passed
through as NaN (photo-z models treat unmeasured bands themselves), counted in ``n_bad_pixels``
and flagged `Flag.BAD_PIXELS`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from astropy.table import Row, Table

from ..exceptions import InputError
from .flags import Flag
from .units import unit_factor, zeropoint_factor

__all__ = ["as_table", "read_table", "find_column", "table_ids", "photometry",
           "expected_columns"]

_ID_COLUMNS = ("id", "objid", "object_id", "objectid", "source_id")
_FLUX = ("flux_{b}", "{b}_flux", "modelflux_{b}", "cmodelflux_{b}")
_ERR = ("flux_err_{b}", "fluxerr_{b}", "{b}_flux_err", "{b}_fluxerr", "modelfluxerr_{b}",
        "cmodelfluxerr_{b}")
_IVAR = ("flux_ivar_{b}", "fluxivar_{b}", "{b}_flux_ivar", "modelfluxivar_{b}",
         "modelflux_ivar_{b}", "cmodelfluxivar_{b}")
_MAG = ("mag_{b}", "{b}_mag", "{b}mag")
_MAGERR = ("magerr_{b}", "mag_err_{b}", "{b}_magerr", "{b}_mag_err", "e_{b}mag")
_EXT = ("extinction_{b}", "a_{b}")
_FLUX_2D, _EXT_2D = ("modelflux", "flux"), ("extinction",)
_NOT_DETECTED_MAG = 90.0  # SDSS and SExtractor write 99 for "no measurement"


def as_table(src) -> Table:
    """An astropy Table from a Table/QTable, `Row`, pandas DataFrame, dict of arrays, numpy
    structured array, or a FITS/ECSV/CSV/Parquet path (format from the suffix)."""
    if isinstance(src, Table):
        return src
    if isinstance(src, Row):
        return src.table[src.index:src.index + 1]
    if type(src).__module__.startswith("pandas") and hasattr(src, "columns"):
        return Table.from_pandas(src)
    if isinstance(src, dict):
        return Table({k: np.atleast_1d(v) for k, v in src.items()})
    if isinstance(src, np.ndarray) and src.dtype.names:
        return Table(np.atleast_1d(src))
    if isinstance(src, (str, Path)):
        return read_table(src)
    raise InputError(f"a catalogue must be an astropy Table, pandas DataFrame, dict of arrays, "
                     f"Row, structured array or a table file, not {type(src).__name__}")


def read_table(src) -> Table:
    """An astropy Table from a Table or a FITS/ECSV/CSV/Parquet path (format from the suffix)."""
    if not isinstance(src, (str, Path)):
        return as_table(src)
    path = Path(src)
    if not path.exists():
        raise InputError("catalogue file not found", path)
    try:
        return Table.read(path, format="parquet" if path.suffix.lower() == ".pq" else None)
    except Exception as e:  # each astropy reader raises its own error types
        raise InputError(f"not a readable table ({type(e).__name__}: {e})", path) from None


def find_column(table, names) -> str | None:
    """First column of ``table`` whose name is one of ``names``, case-insensitively."""
    lower = {c.lower(): c for c in table.colnames}
    return next((lower[n.lower()] for n in names if n.lower() in lower), None)


def table_ids(table, id_column=None) -> list:
    """Row ids, in the column's own type: ``id_column``, else a column named
    id/objid/object_id..., else the row index."""
    if id_column is not None:
        if id_column not in table.colnames:
            raise InputError(f"id column {id_column!r} not in the catalogue "
                             f"(columns: {table.colnames})")
        col = id_column
    else:
        col = find_column(table, _ID_COLUMNS)
    if col is None:
        return list(range(len(table)))
    return np.asarray(table[col]).tolist()


def expected_columns(spec) -> str:
    """What a catalogue for `spec` must hold, for error messages and ``astrozoo info``."""
    bands = ",".join(spec.bands)
    return (f"per band b in {bands}: flux_<b> and flux_err_<b> (or flux_ivar_<b>) in "
            f"{spec.flux_unit} (or with astropy units, or unit=), optionally extinction_<b> "
            "(mag); SDSS modelFlux_<b>/modelFluxIvar_<b> or 2-D MODELFLUX/MODELFLUX_IVAR/"
            "EXTINCTION, and AB magnitudes mag_<b>/magerr_<b>, are recognised; rename others "
            "with columns={'flux_<b>': 'your_column', ...}")


def _values(table, name) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(table[name], dtype=np.float64), np.nan)


def _find(table, patterns, band):
    return find_column(table, [p.format(b=band) for p in patterns])


def _two_d(table, names, n):
    col = find_column(table, names)
    if col is not None and np.ndim(table[col]) == 2 and np.shape(table[col])[1] == n:
        return col
    return None


class _Photometry:
    """Where each spec band's flux, error and extinction come from, in one table."""

    def __init__(self, table, spec, unit, zeropoint):
        self.table, self.spec = table, spec
        self.declared = unit is not None or zeropoint is not None
        try:
            self.factor = (zeropoint_factor(zeropoint, spec.flux_unit) if zeropoint is not None
                           else 1.0 if unit is None else unit_factor(str(unit), spec.flux_unit))
        except Exception as e:
            raise InputError(f"unit {unit!r} cannot be converted to {spec.flux_unit} ({e})") \
                from None
        self.uncalibrated = False

    def _flux_unit_factor(self, name) -> float:
        col = self.table[name]
        if getattr(col, "unit", None) is not None:
            try:
                return unit_factor(col.unit.to_string(), self.spec.flux_unit)
            except Exception as e:
                raise InputError(f"column {name!r} in {col.unit} cannot be converted to "
                                 f"{self.spec.flux_unit} ({e})") from None
        if not self.declared:
            self.uncalibrated = True
        return self.factor

    def band(self, band: str, k: int):
        """(flux, err, extinction) arrays of spec band `band` (the k-th), or None if absent."""
        t, n = self.table, len(self.spec.bands)
        flux_col = _find(t, _FLUX, band)
        if flux_col is not None:
            f = self._flux_unit_factor(flux_col)
            flux = _values(t, flux_col) * f
            err_col, ivar_col = _find(t, _ERR, band), _find(t, _IVAR, band)
            if err_col is not None:
                err = _values(t, err_col) * (self._flux_unit_factor(err_col)
                                             if getattr(t[err_col], "unit", None) else f)
            elif ivar_col is not None:
                ivar = _values(t, ivar_col)
                with np.errstate(divide="ignore", invalid="ignore"):
                    err = np.where(ivar > 0, 1 / np.sqrt(ivar), np.nan) * f
            else:
                raise InputError(f"catalogue has {flux_col} but no error or inverse-variance "
                                 f"column for band {band} ({expected_columns(self.spec)})")
        elif (col := _two_d(t, _FLUX_2D, n)) is not None and self.spec.survey == "sdss":
            f = self._flux_unit_factor(col)
            flux = np.ma.filled(np.ma.asarray(t[col], np.float64)[:, k], np.nan) * f
            ivar_col = find_column(t, (f"{col}_ivar", f"{col}ivar"))
            if ivar_col is None:
                raise InputError(f"catalogue has a 2-D {col} but no {col}_IVAR column")
            ivar = np.ma.filled(np.ma.asarray(t[ivar_col], np.float64)[:, k], np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                err = np.where(ivar > 0, 1 / np.sqrt(ivar), np.nan) * f
        elif (mag_col := _find(t, _MAG, band)) is not None:
            err_col = _find(t, _MAGERR, band)
            if err_col is None:
                raise InputError(f"catalogue has {mag_col} but no magnitude error column for "
                                 f"band {band} ({expected_columns(self.spec)})")
            mag, magerr = _values(t, mag_col), _values(t, err_col)
            mag = np.where(mag < _NOT_DETECTED_MAG, mag, np.nan)
            flux = zeropoint_factor(0.0, self.spec.flux_unit) * 10 ** (-0.4 * mag)
            err = flux * magerr * math.log(10) / 2.5
        else:
            return None
        ext_col = _find(t, _EXT, band)
        if ext_col is not None:
            ext = _values(t, ext_col)
        elif (col := _two_d(t, _EXT_2D, n)) is not None and self.spec.survey == "sdss":
            ext = np.ma.filled(np.ma.asarray(t[col], np.float64)[:, k], np.nan)
        else:
            ext = np.zeros(len(t))
        return flux, err, ext


def photometry(table, spec, *, missing_band="raise", unit=None, zeropoint=None, columns=None):
    """Rows ``[flux..., flux_err..., extinction...]`` for a catalogue model.

    Parameters
    ----------
    table : Table
    spec : InputSpec
    missing_band : {"raise", "unmeasured"}
        An absent band raises `InputError` listing the expected columns, or is treated as not
        measured (NaN; flagged `Flag.BAND_MISSING`).
    unit, zeropoint : optional
        Unit (or AB zero point) of unitless flux columns.
    columns : dict, optional
        ``{astrozoo name: your column}``, e.g. ``{"flux_g": "FLUX_AUTO_G"}``.

    Returns
    -------
    data : ndarray float32, shape (N, 3 * len(spec.bands))
    n_bad : ndarray int64, shape (N,)
        Non-finite fluxes and errors per row.
    flags : ndarray int64, shape (N,)
    """
    if columns:
        missing = [v for v in columns.values() if v not in table.colnames]
        if missing:
            raise InputError(f"columns= names {missing}, not in the catalogue (columns: "
                             f"{table.colnames})")
        table = Table({**{c: table[c] for c in table.colnames if c not in columns.values()},
                       **{ours: table[theirs] for ours, theirs in columns.items()}})
    phot = _Photometry(table, spec, unit, zeropoint)
    n, nb = len(table), len(spec.bands)
    data = np.zeros((n, 3 * nb), np.float32)
    flags = np.zeros(n, np.int64)
    absent = []
    for k, band in enumerate(spec.bands):
        got = phot.band(band, k)
        if got is None:
            absent.append(band)
            data[:, k] = data[:, nb + k] = np.nan
            continue
        data[:, k], data[:, nb + k], data[:, 2 * nb + k] = got
    if absent:
        if missing_band != "unmeasured":
            raise InputError(f"catalogue has no photometry for bands {absent} (columns: "
                             f"{table.colnames}). Expected {expected_columns(spec)}; or pass "
                             "missing_band='unmeasured' to treat them as not measured")
        flags |= Flag.BAND_MISSING
    # a band absent from the catalogue is not a bad value of a row: count only what is there
    present = [k for k, b in enumerate(spec.bands) if b not in absent]
    vals = data[:, present + [nb + k for k in present]]
    n_bad = (~np.isfinite(vals)).sum(axis=1).astype(np.int64)
    flags |= np.where(n_bad > 0, int(Flag.BAD_PIXELS), 0)
    if phot.uncalibrated:
        flags |= Flag.UNCALIBRATED
    return data, n_bad, flags
