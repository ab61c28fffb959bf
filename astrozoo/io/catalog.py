"""Catalogues: reading tables, finding columns, and photometry rows for catalogue models.

For ``spec.kind == "catalog"`` each object's row is ``[flux_b for b in spec.bands] +
[flux_err_b ...] + [extinction_b ...]``. Fluxes and errors are converted to ``spec.flux_unit``
when their column has a unit (a unitless column is taken to be in it already); extinction is in
magnitudes and 0 when its column is absent. NaN (or masked) fluxes are passed through as NaN,
since photo-z models treat non-detections themselves, but counted in ``n_bad_pixels`` and flagged
`Flag.BAD_PIXELS`. With ``missing_band="zero"`` an absent band's flux and error are NaN (not
measured) and the row is flagged `Flag.BAND_ZERO_FILLED`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from ..exceptions import InputError
from .conform import match_bands
from .flags import Flag
from .units import unit_factor

__all__ = ["read_table", "find_column", "table_ids", "photometry"]

_ID_COLUMNS = ("id", "objid", "object_id", "objectid", "source_id")


def read_table(src) -> Table:
    """An astropy Table from a Table or a FITS/ECSV/CSV/Parquet path (format from the suffix)."""
    if isinstance(src, Table):
        return src
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


def table_ids(table, id_column=None) -> list[str]:
    """Row ids: ``id_column``, else a column named id/objid/object_id..., else the row index."""
    if id_column is not None:
        if id_column not in table.colnames:
            raise InputError(f"id column {id_column!r} not in the catalogue "
                             f"(columns: {table.colnames})")
        col = id_column
    else:
        col = find_column(table, _ID_COLUMNS)
    if col is None:
        return [str(i) for i in range(len(table))]
    return [str(v) for v in table[col]]


def _column(table, name, unit) -> np.ndarray:
    col = table[name]
    values = np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan)
    if unit is not None and getattr(col, "unit", None) is not None:
        try:
            values = values * unit_factor(col.unit.to_string(), unit)
        except Exception as e:
            raise InputError(f"column {name!r} in {col.unit} cannot be converted to {unit} "
                             f"({e})") from None
    return values


def photometry(table, spec, *, missing_band="raise"):
    """Rows ``[flux..., flux_err..., extinction...]`` for a catalogue model.

    Returns
    -------
    data : ndarray float32, shape (N, 3 * len(spec.bands))
    n_bad : ndarray int64, shape (N,)
        Non-finite fluxes and errors per row.
    flags : ndarray int64, shape (N,)
    """
    fluxes = {}
    for c in table.colnames:
        if c.lower().startswith("flux_") and not c.lower().startswith("flux_err_"):
            fluxes[c[5:]] = c
    plan = match_bands(list(fluxes), spec.bands, missing_band=missing_band,
                       path="catalogue flux_<band> columns")
    n, nb = len(table), len(spec.bands)
    data = np.zeros((n, 3 * nb), np.float32)
    flags = np.zeros(n, np.int64)
    for k, (band, i) in enumerate(zip(spec.bands, plan)):
        if i is None:
            data[:, k] = data[:, nb + k] = np.nan
            flags |= Flag.BAND_ZERO_FILLED
            continue
        name = list(fluxes)[i]
        data[:, k] = _column(table, fluxes[name], spec.flux_unit)
        err = find_column(table, (f"flux_err_{name}", f"fluxerr_{name}"))
        if err is None:
            raise InputError(f"catalogue has flux_{name} but no flux_err_{name} column")
        data[:, nb + k] = _column(table, err, spec.flux_unit)
        ext = find_column(table, (f"extinction_{name}",))
        if ext is not None:
            data[:, 2 * nb + k] = _column(table, ext, None)
    n_bad = (~np.isfinite(data[:, :2 * nb])).sum(axis=1).astype(np.int64)
    flags |= np.where(n_bad > 0, int(Flag.BAD_PIXELS), 0)
    return data, n_bad, flags
