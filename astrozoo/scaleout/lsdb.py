"""Models over LSDB / HATS catalogues, partition by partition (the ``lsdb`` extra).

`predict_catalog` maps a model over an `lsdb.Catalog` with ``Catalog.map_partitions``: each
HATS partition (a HEALPix pixel of the catalogue) becomes a table, the model predicts for its
rows (a catalogue model from the row's photometry; a cutout model by cutting each row's position
out of the survey-image tile that holds it, `astrozoo.scaleout.partitions.assign_tiles`), and
the predictions come back as new columns of a lazy LSDB catalogue, to compute, crossmatch or
write (``to_hats``) like any other. Each Dask worker keeps one loaded model
(`astrozoo.scaleout.dask`).

Columns: the task's columns with an optional `prefix`, plus ``flags``, ``n_bad_pixels`` and
``error``; a vector column (``mdn_weight``, ``embedding``, ...) becomes one scalar column per
component (``mdn_weight_0``, ...), because HATS / Parquet catalogues are flat tables. Models
with image outputs (deblending's ``segmap``) are refused: a segmentation map is not a catalogue
column.
"""

from __future__ import annotations

import warnings

import numpy as np

from .dask import _Job, _worker_model
from .partitions import as_tiles, assign_tiles, check_images

__all__ = ["predict_catalog"]


def _flat_columns(table, prefix: str) -> dict[str, np.ndarray]:
    """The prediction columns of `table` as flat 1-D arrays (vectors split per component)."""
    out = {}
    for name in table.colnames:
        if name == "id":  # the catalogue's own row identity stays the LSDB index
            continue
        col = np.asarray(table[name])
        if col.ndim == 1:
            out[prefix + name] = col
        elif col.ndim == 2:
            for j in range(col.shape[1]):
                out[f"{prefix}{name}_{j}"] = col[:, j]
        else:
            raise ValueError(f"column {name!r} has shape {col.shape[1:]} per row: image outputs "
                             "cannot be catalogue columns")
    return out


def _probe_table(model):
    """Predictions for one synthetic object: the model's output columns and their dtypes."""
    from astropy.table import Table

    spec = model.spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.kind == "catalog":
            row = {f"flux_{b}": [1.0] for b in spec.bands}
            row.update({f"flux_err_{b}": [0.1] for b in spec.bands})
            t = model.predict(Table(row), unit=spec.flux_unit, progress=False)
        else:
            x = np.ones((1, len(spec.bands), spec.size, spec.size), np.float32)
            t = model.predict(x, bands=list(spec.bands), unit=spec.flux_unit, progress=False)
    t["error"] = np.array([""])
    return t


def _predict_rows(model, table, tiles, predict_kwargs):
    """Predictions (astropy Table, one row per row of `table`, in its order) for one partition."""
    from astropy.table import vstack

    kw = {"num_workers": 0, **predict_kwargs, "progress": False, "on_error": "flag"}
    if tiles is None:
        return model.predict(table, **kw)
    which = assign_tiles(table, tiles, model.spec.flux_unit)
    parts, order = [], []
    for k in np.unique(which):
        rows = np.flatnonzero(which == k)
        parts.append(model.predict(tiles[k], catalog=table[rows], **kw))
        order.append(rows)
    result = vstack(parts, metadata_conflicts="silent")
    return result[np.argsort(np.concatenate(order), kind="stable")]


def _predict_frame(df, job: _Job, tiles, prefix: str, meta):
    """``map_partitions`` function: `df` (one HATS partition) with the predictions added."""
    import pandas as pd
    from astropy.table import Table

    if len(df) == 0:
        return meta
    model = _worker_model(job)
    flat = [c for c in df.columns if not str(df[c].dtype).startswith("nested")]
    table = Table.from_pandas(df[flat].reset_index(drop=True))
    preds = _flat_columns(_predict_rows(model, table, tiles, job.predict_kwargs), prefix)
    new = pd.DataFrame({name: preds[name] if name in preds else np.full(len(df), "")
                        for name in meta.columns[len(df.columns):]}, index=df.index)
    return pd.concat([df, new], axis=1)  # one concat: column by column fragments the frame


def predict_catalog(model, catalog, *, images=None, prefix: str = "", **predict_kwargs):
    """Add a model's predictions to an LSDB catalogue, one HATS partition at a time.

    Parameters
    ----------
    model : str or path
        A registered model or task name, or a model directory (what every worker loads).
    catalog : lsdb.Catalog
        From ``lsdb.open_catalog`` / ``read_hats`` (a HATS catalogue) or ``lsdb.from_astropy``.
        A catalogue model reads its photometry columns (``flux_<b>``, ...; ``columns=``
        renames); a cutout model reads ``ra``/``dec``.
    images : dict, list of dict or Table, optional
        Survey-image tiles for cutout models, each ``{band: path}``.
    prefix : str
        Prepended to the new columns' names (e.g. ``"lens_"``).
    **predict_kwargs
        Passed to `ZooModel.predict` (``batch_size``, ``columns``, ``unit``, ``tta``, ...).
        Rows that cannot be read are always flagged (``flags``, ``error``), never raised:
        one bad row must not fail a partition of millions.

    Returns
    -------
    lsdb.Catalog
        Lazy: the catalogue's columns and the predictions; ``.compute()`` runs it (on the
        active Dask client, e.g. a `distributed.LocalCluster`).
    """
    import pandas as pd

    from .. import load
    from ..inference.writers import provenance
    from ..modeling import ZooModel

    if isinstance(model, ZooModel):
        raise TypeError("predict_catalog needs what workers can load: a registered name or a "
                        "model directory (model.save_pretrained(path), then pass path)")
    loaded = load(model)
    check_images(loaded, images)
    probe = _flat_columns(_probe_table(loaded), prefix)
    clash = sorted(set(probe) & set(catalog.columns))
    if clash:
        raise ValueError(f"the catalogue already has columns {clash}: pass prefix=")
    base = catalog.meta
    meta = base.copy()
    for name, values in probe.items():
        meta[name] = pd.Series([], dtype="str" if values.dtype.kind == "U" else values.dtype)
    job = _Job(str(model), provenance(loaded)["SHA256"], "", None, None, dict(predict_kwargs))
    return catalog.map_partitions(_predict_frame, job, as_tiles(images), prefix, meta, meta=meta)
