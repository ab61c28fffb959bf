"""`open_inputs`: any supported input -> a `CutoutSet` whose batches are tensors in the spec.

A `CutoutSet` is a lazy, picklable `collections.abc.Sequence`: opening reads at most headers
(survey images) or a table; pixels are read in `CutoutSet.read_batch`, so it can be handed to
torch ``DataLoader`` worker processes. ``cs[i]`` is ``cs.read_batch([i])`` and ``cs[indices]`` is
``cs.read_batch(indices)``, so a DataLoader with ``batch_size=None`` and a batch sampler gets
whole batches.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.nddata import NDData
from astropy.table import Table

from ..exceptions import InputError
from .badpixels import replace_bad_pixels
from .catalog import photometry, read_table, table_ids
from .conform import BandImage, conform
from .cutouts import SurveyCutouts
from .fastpath import FastReader, FileTemplate
from .flags import Flag
from .layouts import FITS_SUFFIXES, pixel_scale_of, read_fits
from .units import unit_factor

__all__ = ["Batch", "CutoutSet", "FileCutoutSet", "ArrayCutoutSet", "SurveyCutoutSet",
           "CatalogSet", "open_inputs"]


@dataclass
class Batch:
    """One batch of conformed inputs.

    Attributes
    ----------
    ids : list of str
    data : ndarray float32, shape (B, *spec.shape)
    n_bad_pixels : ndarray int64, shape (B,)
    flags : ndarray int64, shape (B,)
        `Flag` bitmask.
    errors : list of str or None
        The error message of rows that could not be read (``on_error="flag"``).
    """

    ids: list
    data: np.ndarray
    n_bad_pixels: np.ndarray
    flags: np.ndarray
    errors: list


class CutoutSet(Sequence):
    """Lazy sequence of input objects conformed to an `InputSpec`; see `open_inputs`.

    Subclasses implement ``_read_into(i, dst) -> (flags, n_padded)``, writing object ``i``
    into its row ``dst`` with NaN for bad and padded pixels, or raising `InputError`.
    """

    def __init__(self, spec, ids, *, on_error="raise", missing_band="raise", scale_rtol=0.01,
                 scale_max_rtol=0.25):
        if on_error not in ("raise", "flag"):
            raise ValueError(f"on_error must be 'raise' or 'flag', not {on_error!r}")
        if missing_band not in ("raise", "zero"):
            raise ValueError(f"missing_band must be 'raise' or 'zero', not {missing_band!r}")
        self.spec, self._ids = spec, list(ids)
        self.on_error, self.missing_band = on_error, missing_band
        self.scale_rtol, self.scale_max_rtol = scale_rtol, scale_max_rtol
        self._warned: set = set()
        self._plans: dict = {}

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, index) -> Batch:
        if isinstance(index, slice):
            return self.read_batch(range(len(self))[index])
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(index)
            return self.read_batch([index % len(self)])
        return self.read_batch(index)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)} objects, shape {self.spec.shape}>"

    def _conform(self, images, dst, path):
        return conform(images, dst, self.spec, missing_band=self.missing_band,
                       scale_rtol=self.scale_rtol, scale_max_rtol=self.scale_max_rtol,
                       path=path, warned=self._warned, plans=self._plans)

    def read_batch(self, indices) -> Batch:
        """Read and conform the objects at ``indices``.

        Raises
        ------
        InputError
            An object cannot be read or conformed and ``on_error == "raise"``.
        """
        indices = [int(i) for i in indices]
        b = len(indices)
        data = np.empty((b, *self.spec.shape), np.float32)
        flags = np.zeros(b, np.int64)
        n_padded = np.zeros(b, np.int64)
        errors = [None] * b
        for k, i in enumerate(indices):
            try:
                flags[k], n_padded[k] = self._read_into(i, data[k])
            except InputError as e:
                if self.on_error == "raise":
                    raise
                data[k], flags[k], n_padded[k], errors[k] = 0.0, Flag.READ_ERROR, 0, str(e)
        n_bad, bad_flags = replace_bad_pixels(data, n_padded)
        return Batch([self._ids[i] for i in indices], data, n_bad, flags | bad_flags, errors)


def _stem(path) -> str:
    name = Path(path).name
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _group_id(paths) -> str:
    """Common prefix of per-band file stems (``obj7_g``, ``obj7_r`` -> ``obj7``)."""
    stems = [_stem(p) for p in paths]
    prefix = os.path.commonprefix(stems).rstrip("_-. ")
    return prefix or stems[0]


class FileCutoutSet(CutoutSet):
    """Objects stored as FITS files: one file (MEF, cube, 2-D) or a tuple of per-band files.

    The first object read builds a `FastReader` (unless ``fast=False``); objects whose files
    match its templates skip astropy, the others are read safely.
    """

    def __init__(self, objects, spec, *, fast=True, **kw):
        self.objects = [tuple(Path(p) for p in obj) for obj in objects]
        ids = [_stem(o[0]) if len(o) == 1 else _group_id(o) for o in self.objects]
        super().__init__(spec, ids, **kw)
        self.fast = fast
        self._reader = None
        self._reader_tried = False

    def _read_safe(self, files, name):
        images, sources = [], []
        default = self.spec.bands[0] if len(self.spec.bands) == 1 else None
        for p in files:
            im, src = read_fits(p, self.spec.flux_unit, default_band=default)
            images.append(im)
            sources.append(src)
        if self.fast and not self._reader_tried:
            self._reader_tried = True
            tmpl = [FileTemplate.build(p, im, s) for p, im, s in zip(files, images, sources)]
            if all(t is not None for t in tmpl):
                try:
                    self._reader = FastReader(
                        tmpl, self.spec, missing_band=self.missing_band,
                        scale_rtol=self.scale_rtol, scale_max_rtol=self.scale_max_rtol, path=name)
                except InputError:
                    pass  # this object does not conform; _conform below reports it
        return [img for im in images for img in im]

    def _read_into(self, i, dst):
        files = self.objects[i]
        name = files[0] if len(files) == 1 else ", ".join(str(p) for p in files)
        if self._reader is not None:
            done = self._reader.read_into(files, dst)
            if done is not None:
                return done
            images = self._reader.images(files) if self._reader.steps is None else None
            if images is not None:
                return self._conform(images, dst, name)
        return self._conform(self._read_safe(files, name), dst, name)


class ArrayCutoutSet(CutoutSet):
    """Objects in memory: an array (N, C, H, W) with band names, unit and pixel scale."""

    def __init__(self, array, spec, *, bands, mask=None, unit=None, pixel_scale=None, **kw):
        super().__init__(spec, [str(i) for i in range(len(array))], **kw)
        self.array, self.mask, self.bands = array, mask, list(bands)
        try:
            self.factor = 1.0 if unit is None else unit_factor(str(unit), spec.flux_unit)
        except Exception as e:
            raise InputError(f"unit {unit!r} cannot be converted to {spec.flux_unit} ({e})") \
                from None
        self.pixel_scale = pixel_scale

    def _read_into(self, i, dst):
        images = [BandImage(b, self.array[i, c], self.factor, pixel_scale=self.pixel_scale,
                            mask=None if self.mask is None else self.mask[i, c])
                  for c, b in enumerate(self.bands)]
        return self._conform(images, dst, f"array object {i}")


class SurveyCutoutSet(CutoutSet):
    """Cutouts around catalogue positions on one large image per band."""

    def __init__(self, images, table, spec, *, id_column=None, **kw):
        super().__init__(spec, table_ids(table, id_column), **kw)
        self.geometry = SurveyCutouts(images, table, spec, missing_band=self.missing_band,
                                      scale_rtol=self.scale_rtol,
                                      scale_max_rtol=self.scale_max_rtol)

    def _read_into(self, i, dst):
        return self.geometry.read_into(i, dst)


class CatalogSet(CutoutSet):
    """Photometry rows for catalogue models (``spec.kind == "catalog"``)."""

    def __init__(self, table, spec, *, id_column=None, **kw):
        super().__init__(spec, table_ids(table, id_column), **kw)
        self.data, self.n_bad, self.flags = photometry(table, spec, missing_band=self.missing_band)

    def read_batch(self, indices) -> Batch:
        idx = np.asarray(list(indices), np.int64)
        return Batch([self._ids[i] for i in idx], self.data[idx], self.n_bad[idx],
                     self.flags[idx], [None] * len(idx))


def _expand(item) -> list[Path]:
    """Paths named by a path, glob string or directory (sorted)."""
    s = str(item)
    if any(ch in s for ch in "*?["):
        paths = sorted(glob.glob(os.path.expanduser(s)))
        if not paths:
            raise InputError(f"glob {s!r} matches no file")
        return [Path(p) for p in paths]
    p = Path(s).expanduser()
    if p.is_dir():
        paths = sorted(q for q in p.iterdir() if q.name.lower().endswith(FITS_SUFFIXES))
        if not paths:
            raise InputError("directory holds no FITS file", p)
        return paths
    return [p]


def _nddata_to_array(nd):
    data = np.asarray(nd.data)
    if data.ndim == 2:
        data = data[None]
    mask = None if nd.mask is None else np.broadcast_to(np.asarray(nd.mask, bool), data.shape)
    scale = None
    if nd.wcs is not None and hasattr(nd.wcs, "to_header"):
        scale = pixel_scale_of(nd.wcs.to_header())
    unit = None if nd.unit is None else nd.unit.to_string()
    return data[None], None if mask is None else mask[None], unit, scale


def open_inputs(inputs, spec, *, bands=None, catalog=None, id_column=None, on_error="raise",
                missing_band="raise", **options) -> CutoutSet:
    """Open inputs of any supported kind as a `CutoutSet` conformed to ``spec``.

    Parameters
    ----------
    inputs
        For image specs: a FITS path, glob string or directory; a list whose items are paths
        (MEF, cube or 2-D file per object) or lists/tuples of per-band 2-D files; a numpy array
        (N, C, H, W) or (C, H, W); an `~astropy.nddata.NDData`/``CCDData`` (one object); or a
        dict ``{band: survey image path}`` with ``catalog``. For catalogue specs: an astropy
        Table or a FITS/ECSV/CSV/Parquet path.
    spec : InputSpec
        What the model expects.
    bands : list of str, optional
        Band names of an array or NDData's channels (default: ``spec.bands`` when the channel
        count matches).
    catalog : Table or path, optional
        Positions (``ra``/``dec`` or ``x``/``y``) for survey images.
    id_column : str, optional
        Catalogue column giving ids (default: an ``id``/``objid``-like column, else the index).
    on_error : {"raise", "flag"}
        Raise `InputError` on an unreadable object, or flag its row and go on.
    missing_band : {"raise", "zero"}
        What to do when a spec band is absent.
    **options
        ``unit`` and ``pixel_scale`` of array inputs (default: the spec's), ``mask`` for arrays,
        ``scale_rtol`` (default 0.01: no resampling below), ``scale_max_rtol`` (default 0.25:
        refused above), ``fast`` (default True: byte-offset fast path for homogeneous files).

    Returns
    -------
    CutoutSet
    """
    common = dict(on_error=on_error, missing_band=missing_band,
                  **{k: options.pop(k) for k in ("scale_rtol", "scale_max_rtol") if k in options})
    array_opts = {k: options.pop(k) for k in ("unit", "pixel_scale", "mask") if k in options}
    fast = options.pop("fast", True)
    if options:
        raise TypeError(f"open_inputs got unknown options {sorted(options)}")

    if spec.kind == "catalog":
        return CatalogSet(read_table(inputs), spec, id_column=id_column, **common)
    if isinstance(inputs, dict):
        if catalog is None:
            raise InputError("survey images ({band: path}) need catalog= with positions")
        return SurveyCutoutSet(inputs, read_table(catalog), spec, id_column=id_column, **common)
    if isinstance(inputs, NDData):
        data, mask, unit, scale = _nddata_to_array(inputs)
        array_opts = {"unit": unit, "pixel_scale": scale, "mask": mask, **array_opts}
        inputs = data
    if isinstance(inputs, np.ndarray) or hasattr(inputs, "__array_interface__"):
        array = np.ma.getdata(inputs)
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4:
            raise InputError(f"array input must be (N, C, H, W) or (C, H, W), not {array.shape}")
        if np.ma.isMaskedArray(inputs) and "mask" not in array_opts:
            array_opts["mask"] = np.ma.getmaskarray(inputs).reshape(array.shape)
        if bands is None:
            if array.shape[1] != len(spec.bands):
                raise InputError(f"array has {array.shape[1]} channels but the model wants "
                                 f"{len(spec.bands)} bands {list(spec.bands)}; pass bands=[...]")
            bands = spec.bands
        if len(bands) != array.shape[1]:
            raise InputError(f"bands={list(bands)} names {len(bands)} channels but the array "
                             f"has {array.shape[1]}")
        return ArrayCutoutSet(array, spec, bands=bands, **array_opts, **common)
    if array_opts:
        raise TypeError(f"options {sorted(array_opts)} apply to array inputs only")
    if isinstance(inputs, Table):
        raise InputError("a Table is catalogue input; image models need images (or pass "
                         "{band: image} with catalog=)")
    if isinstance(inputs, (str, os.PathLike)):
        objects = [(p,) for p in _expand(inputs)]
    else:
        objects = []
        for item in inputs:
            if isinstance(item, (list, tuple)):
                objects.append(tuple(Path(p) for p in item))
            else:
                objects.extend((p,) for p in _expand(item))
    return FileCutoutSet(objects, spec, fast=fast, **common)
