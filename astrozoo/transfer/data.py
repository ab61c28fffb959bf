"""Labelled training data for fine-tuning, read through the inference input pipeline.

A training set is a table (astropy Table, DataFrame, or a FITS/ECSV/CSV/Parquet file) with a
column of cutout paths and label columns, or a pair ``(images, labels)`` of arrays. Either way
the cutouts go through `astrozoo.io.open_inputs` for the model's spec: the same band selection
by name, calibration, pixel-scale check and missing-pixel rule as ``predict``, so the model is
trained on exactly what it will see.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import InputError
from ..io import Flag, open_inputs
from ..io.catalog import as_table, find_column

__all__ = ["LabelledSet", "read_labelled", "encode_labels"]

_PATH_COLUMNS = ("path", "file", "filename", "fits", "cutout")
#: Rows with these flags are left out of training (their pixels are not the object).
_DROP = Flag.READ_ERROR | Flag.TOO_MANY_MISSING


@dataclass
class LabelledSet:
    """Cutouts in spec units with their raw label values.

    Attributes
    ----------
    x : ndarray float32 (N, C, H, W)
    labels : ndarray
        (N,) for one label column, (N, T) for several.
    ids : list
    n_dropped : int
        Rows left out (unreadable, or too many missing pixels), with a warning.
    """

    x: np.ndarray
    labels: np.ndarray
    ids: list
    n_dropped: int = 0


def read_labelled(data, spec, *, label_column="label", path_column=None, bands=None,
                  what: str = "training set", batch_size: int = 256, **io_options) -> LabelledSet:
    """Read a labelled set for `spec`.

    Parameters
    ----------
    data
        A table with a path column and label column(s) (relative paths are taken relative to
        the table file's folder), or ``(images, labels)`` with images (N, C, H, W) in the
        bands given by `bands`.
    spec : InputSpec
        The fine-tuned model's spec.
    label_column : str or list of str
        Label column(s) of a table.
    path_column : str or list of str, optional
        Column of cutout paths (default: the first of ``path``, ``file``, ``filename``,
        ``fits``, ``cutout``); a list names one column per band file.
    bands : list of str, optional
        Band names of an array's channels, or of FITS planes that do not name their band.
    **io_options
        Passed to `astrozoo.io.open_inputs` (``unit``, ``zeropoint``, ``pixel_scale`` of
        arrays, ``on_error``, ``max_missing``, ...).
    """
    if isinstance(data, (tuple, list)) and len(data) == 2:
        inputs, labels = data
        labels = np.asarray(labels)
    else:  # a table; as_table names what it cannot read
        table = as_table(data)
        root = Path(data).parent if isinstance(data, (str, Path)) else Path(".")
        cols = [label_column] if isinstance(label_column, str) else list(label_column)
        missing = [c for c in cols if c not in table.colnames]
        if missing:
            raise InputError(f"{what}: no label column(s) {missing}; columns: {table.colnames}",
                             data if isinstance(data, (str, Path)) else None)
        labels = (np.asarray(table[cols[0]]) if len(cols) == 1 else
                  np.stack([np.asarray(table[c], dtype=float) for c in cols], 1))
        pcols = path_column or find_column(table, _PATH_COLUMNS)
        if pcols is None:
            raise InputError(f"{what}: no column of cutout paths (looked for {_PATH_COLUMNS}; "
                             "pass path_column=)")
        pcols = [pcols] if isinstance(pcols, str) else list(pcols)

        def resolve(p):
            p = Path(str(p).strip())
            return str(p if p.is_absolute() else root / p)

        if len(pcols) == 1:
            inputs = [resolve(p) for p in table[pcols[0]]]
        else:
            inputs = [tuple(resolve(row[c]) for c in pcols) for row in table]

    cutouts = open_inputs(inputs, spec, bands=bands, **io_options)
    if len(labels) != len(cutouts):
        raise InputError(f"{what}: {len(cutouts)} cutouts but {len(labels)} labels")
    x = np.empty((len(cutouts), *spec.shape), np.float32)
    flags = np.zeros(len(cutouts), np.int64)
    for start in range(0, len(cutouts), batch_size):
        b = cutouts.read_batch(range(start, min(start + batch_size, len(cutouts))))
        x[start:start + len(b.ids)] = b.data
        flags[start:start + len(b.ids)] = b.flags
    ids = cutouts.ids
    keep = (flags & _DROP) == 0
    n_dropped = int((~keep).sum())
    if n_dropped:
        first = [ids[i] for i in np.flatnonzero(~keep)[:5]]
        warnings.warn(f"{what}: {n_dropped} of {len(keep)} rows left out (unreadable or more "
                      f"than max_missing of their pixels missing), e.g. {first}", stacklevel=3)
        if not keep.any():
            raise InputError(f"{what}: no usable rows")
    return LabelledSet(x[keep], labels[keep], [i for i, k in zip(ids, keep) if k], n_dropped)


def encode_labels(kind: str, values: np.ndarray, labels=None, *, what: str = "labels"):
    """Raw label values -> ``(targets, labels)`` for a head.

    binary: 0/1 or booleans (or the positive label name among two names) -> float 0/1, labels
    ``(positive,)``; classes: values (names or integers) -> class indices in the order of
    `labels` (default: sorted unique values); regression: floats (N,) or (N, T); mdn: redshifts.
    """
    values = np.asarray(values)
    if kind == "binary":
        if values.dtype.kind in "US" or values.dtype == object:
            if labels is None or len(labels) != 1:
                raise ValueError(f"{what}: binary string labels need labels=(positive_name,)")
            names = set(values.astype(str))
            if len(names) > 2 or labels[0] not in names:
                raise ValueError(f"{what}: binary labels have values {sorted(names)}; the "
                                 f"positive label {labels[0]!r} must be one of two")
            return (values.astype(str) == labels[0]).astype(np.float32), tuple(labels)
        u = np.unique(values)
        if not set(u.tolist()) <= {0, 1, True, False}:
            raise ValueError(f"{what}: a binary head needs 0/1 labels, got values {u[:10].tolist()}")
        return values.astype(np.float32), tuple(labels or ("positive",))
    if kind == "classes":
        names = [str(v) for v in (np.unique(values) if labels is None else labels)]
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted({str(v) for v in values} - set(index))
        if unknown:
            raise ValueError(f"{what}: values {unknown[:10]} are not among the classes {names}")
        if len(names) < 2:
            raise ValueError(f"{what}: a classes head needs at least 2 classes, got {names}")
        return np.array([index[str(v)] for v in values], np.int64), tuple(names)
    if kind in ("regression", "mdn"):
        y = np.asarray(values, np.float32)
        if not np.isfinite(y).all():
            raise ValueError(f"{what}: {int((~np.isfinite(y)).sum())} non-finite target values")
        if kind == "mdn":
            if y.ndim != 1:
                raise ValueError(f"{what}: an mdn head takes one target (redshift)")
            if (y < 0).any():
                raise ValueError(f"{what}: redshifts must be >= 0 (the mixture is truncated at 0)")
        return (y[:, None] if y.ndim == 1 and kind == "regression" else y), labels
    raise ValueError(kind)
