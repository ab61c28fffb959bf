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
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.nddata import NDData
from astropy.table import Table

from ..exceptions import InputError
from .badpixels import replace_bad_pixels
from .catalog import as_table, find_column, photometry, read_table, table_ids
from .conform import BandImage, conform
from .cutouts import SurveyCutouts
from .fastpath import FastReader, FileTemplate
from .flags import Flag
from .layouts import FITS_SUFFIXES, calibration, pixel_scale_of, read_fits
from .units import CALIBRATION_KEYWORDS

__all__ = ["Batch", "CutoutSet", "FileCutoutSet", "ArrayCutoutSet", "SurveyCutoutSet",
           "CatalogSet", "open_inputs", "group_files", "DEFAULT_GROUP", "MAX_MISSING"]

#: Default pattern grouping per-band files into objects (``obj7_g.fits``, ``obj7_r.fits``).
DEFAULT_GROUP = "{id}_{band}"
#: Default fraction of missing pixels above which a row is flagged and gets no prediction.
MAX_MISSING = 0.2


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
                 scale_max_rtol=0.25, uncalibrated="flag", max_missing=MAX_MISSING):
        if on_error not in ("raise", "flag"):
            raise ValueError(f"on_error must be 'raise' or 'flag', not {on_error!r}")
        allowed = ("raise", "unmeasured") if spec.kind == "catalog" else ("raise",)
        if missing_band not in allowed:
            raise ValueError(
                f"missing_band={missing_band!r} is not offered for {spec.kind} inputs: "
                + ("a zero-filled band is not data the model was trained on and gives silently "
                   f"wrong numbers; give every band the model needs ({list(spec.bands)}) or use "
                   "a model trained on your bands" if spec.kind == "image" else
                   "use 'raise' or 'unmeasured' (the band is treated as not measured)"))
        if uncalibrated not in ("flag", "raise"):
            raise ValueError(f"uncalibrated must be 'flag' or 'raise', not {uncalibrated!r}")
        if not 0 <= max_missing <= 1:
            raise ValueError(f"max_missing must be a fraction in [0, 1], not {max_missing!r}")
        self.spec, self._ids = spec, list(ids)
        self.on_error, self.missing_band = on_error, missing_band
        self.scale_rtol, self.scale_max_rtol = scale_rtol, scale_max_rtol
        self.uncalibrated, self.max_missing = uncalibrated, max_missing
        self._warned: set = set()
        self._plans: dict = {}

    @property
    def ids(self) -> list:
        return list(self._ids)

    def extra_columns(self, indices) -> dict[str, np.ndarray]:
        """Input columns carried into the output for these rows (``keep=``)."""
        return {}

    def _check(self, flags: int, where) -> int:
        """Apply the calibration and size policies to one object's flags (warn or raise)."""
        if flags & Flag.UNCALIBRATED:
            if self.spec.scale_free:
                flags &= ~Flag.UNCALIBRATED  # the model's output does not depend on the unit
            elif self.uncalibrated == "raise":
                raise InputError(f"no flux calibration ({', '.join(CALIBRATION_KEYWORDS)} "
                                 f"absent); pass unit= or zeropoint=", where)
            elif "uncalibrated" not in self._warned:
                self._warned.add("uncalibrated")
                warnings.warn(
                    f"{where}: no flux calibration (no {'/'.join(CALIBRATION_KEYWORDS)} header, "
                    f"no unit= or column unit); values are taken to be in the model's unit "
                    f"({self.spec.flux_unit}) and such rows "
                    "are flagged UNCALIBRATED. Pass unit= or zeropoint= (CLI --unit, "
                    "--zeropoint) to state it, or uncalibrated='raise' to refuse them.",
                    stacklevel=4)
        if flags & Flag.UNDERSIZED and "undersized" not in self._warned:
            self._warned.add("undersized")
            warnings.warn(f"{where}: cutout smaller than the model's {self.spec.size}x"
                          f"{self.spec.size} pixels; the missing border is counted in "
                          "n_bad_pixels and such rows are flagged UNDERSIZED", stacklevel=4)
        if flags & Flag.CROPPED and "cropped" not in self._warned:
            self._warned.add("cropped")
            warnings.warn(f"{where}: cutout larger than the model's {self.spec.size}x"
                          f"{self.spec.size} pixels; its central {self.spec.size}x"
                          f"{self.spec.size} pixels are used and such rows are flagged CROPPED "
                          "(a survey image is not a cutout: pass {band: path} with catalog= "
                          "positions)", stacklevel=4)
        return int(flags)

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
        return conform(images, dst, self.spec,
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
                f, n_padded[k] = self._read_into(i, data[k])
                flags[k] = self._check(f, self._where(i))
            except InputError as e:
                if self.on_error == "raise":
                    raise
                data[k], flags[k], n_padded[k], errors[k] = 0.0, Flag.READ_ERROR, 0, str(e)
        n_bad, bad_flags = replace_bad_pixels(data, self.max_missing)
        bad_flags[flags == Flag.READ_ERROR] = 0  # zero data by contract, not a constant image
        constant = np.flatnonzero(bad_flags & Flag.CONSTANT)
        if constant.size and "constant" not in self._warned:
            self._warned.add("constant")
            warnings.warn(f"{self._where(indices[constant[0]])}: a band is constant (all zeros, "
                          "a fill value or saturated): it carries no signal; such rows are "
                          "flagged CONSTANT", stacklevel=2)
        return Batch([self._ids[i] for i in indices], data, n_bad, flags | bad_flags, errors)

    def _where(self, i):
        return f"object {self._ids[i]}"


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


def _pattern_regex(pattern: str) -> re.Pattern:
    """``"{id}_{band}"`` -> a regex on file stems (an extension in the pattern is dropped)."""
    stem = _stem(pattern)
    if stem.count("{id}") != 1 or stem.count("{band}") != 1:
        raise ValueError(f"group pattern {pattern!r} must contain {{id}} and {{band}} once")
    parts = re.split(r"(\{id\}|\{band\})", stem)
    rx = "".join("(?P<id>.+)" if t == "{id}" else "(?P<band>[A-Za-z0-9]+)" if t == "{band}"
                 else re.escape(t) for t in parts)
    return re.compile(rx + r"\Z")


def group_files(paths, pattern: str, bands=None, *, strict: bool = True):
    """Group per-band files into objects by a file-name pattern.

    Parameters
    ----------
    paths : list of path
    pattern : str
        File-name pattern with ``{id}`` and ``{band}``, e.g. ``"{id}_{band}"`` or
        ``"{band}/{id}"``-free names like ``"cutout-{id}-{band}.fits"``.
    bands : list of str, optional
        Accept only these band names (matched as band names are, case-insensitively).
    strict : bool
        Raise `InputError` naming a file that does not fit; else return None.

    Returns
    -------
    list of (id, [(path, band), ...]) in first-seen id order, or None (not strict, no fit).
    """
    from .conform import match_bands

    rx = _pattern_regex(pattern)
    groups: dict[str, list] = {}
    for p in paths:
        m = rx.match(_stem(p))
        band = None if m is None else m.group("band")
        if band is not None and bands is not None:
            try:
                match_bands(list(bands), [band], path=p)
            except InputError:
                band = None
        if band is None:
            if strict:
                raise InputError(f"file name does not fit the per-band pattern {pattern!r}"
                                 + (f" with a band among {list(bands)}" if bands else ""), p)
            return None
        groups.setdefault(m.group("id"), []).append((Path(p), band))
    return list(groups.items())


class FileCutoutSet(CutoutSet):
    """Objects stored as FITS files: one file (MEF, cube, 2-D) or a tuple of per-band files.

    The first object read builds a `FastReader` (unless ``fast=False``); objects whose files
    match its templates skip astropy, the others are read safely.
    """

    def __init__(self, objects, spec, *, fast=True, ids=None, file_bands=None, bands=None,
                 unit=None, zeropoint=None, keep=(), **kw):
        self.objects = [tuple(Path(p) for p in obj) for obj in objects]
        if ids is None:
            ids = [_stem(o[0]) if len(o) == 1 else _group_id(o) for o in self.objects]
        super().__init__(spec, ids, **kw)
        self.fast = fast
        # per object, the band each file's name gives (per-band grouping), or None
        self.file_bands = file_bands
        self.bands, self.unit, self.zeropoint = bands, unit, zeropoint
        unknown = set(keep) - {"path"}
        if unknown:
            raise ValueError(f"keep={sorted(unknown)}: file inputs can carry only 'path'")
        self.keep = tuple(keep)
        self._reader = None
        self._reader_tried = False

    def extra_columns(self, indices) -> dict[str, np.ndarray]:
        if "path" not in self.keep:
            return {}
        return {"path": np.array([",".join(str(p) for p in self.objects[i]) for i in indices],
                                 dtype=str)}

    def _where(self, i):
        files = self.objects[i]
        return files[0] if len(files) == 1 else ", ".join(str(p) for p in files)

    def _read_safe(self, files, name, i):
        images, sources = [], []
        names = self.file_bands[i] if self.file_bands is not None else [None] * len(files)
        single = self.spec.bands[0] if len(self.spec.bands) == 1 else None
        for p, band in zip(files, names):
            im, src = read_fits(p, self.spec.flux_unit, default_band=band or single,
                                bands=self.bands, unit=self.unit, zeropoint=self.zeropoint)
            images.append(im)
            sources.append(src)
        if self.fast and not self._reader_tried:
            self._reader_tried = True
            tmpl = [FileTemplate.build(p, im, s) for p, im, s in zip(files, images, sources)]
            if all(t is not None for t in tmpl):
                try:
                    self._reader = FastReader(
                        tmpl, self.spec, scale_rtol=self.scale_rtol, scale_max_rtol=self.scale_max_rtol, path=name)
                except InputError:
                    pass  # this object does not conform; _conform below reports it
        return [img for im in images for img in im]

    def _read_into(self, i, dst):
        files = self.objects[i]
        name = self._where(i)
        if self._reader is not None:
            done = self._reader.read_into(files, dst)
            if done is not None:
                return done
            images = self._reader.images(files) if self._reader.steps is None else None
            if images is not None:
                return self._conform(images, dst, name)
        return self._conform(self._read_safe(files, name, i), dst, name)


class ArrayCutoutSet(CutoutSet):
    """Objects in memory: an array (N, C, H, W) with band names, unit and pixel scale."""

    def __init__(self, array, spec, *, bands, mask=None, unit=None, zeropoint=None,
                 pixel_scale=None, **kw):
        super().__init__(spec, list(range(len(array))), **kw)
        if array.dtype.kind not in "iuf":
            raise InputError(f"array of dtype {array.dtype} is not real pixel values")
        if mask is not None:
            try:
                mask = np.broadcast_to(np.asarray(mask, bool), array.shape)
            except ValueError:
                raise InputError(f"mask of shape {np.shape(mask)} does not fit the array's "
                                 f"{array.shape}") from None
        self.array, self.mask, self.bands = array, mask, list(bands)
        self.factor, source = calibration(lambda key: None, spec.flux_unit, unit, zeropoint, None)
        self.calibrated = source is not None
        self.pixel_scale = pixel_scale

    def _where(self, i):
        return f"array object {i}"

    def _read_into(self, i, dst):
        images = [BandImage(b, self.array[i, c], self.factor, pixel_scale=self.pixel_scale,
                            mask=None if self.mask is None else self.mask[i, c],
                            calibrated=self.calibrated)
                  for c, b in enumerate(self.bands)]
        return self._conform(images, dst, f"array object {i}")


class _TableColumns:
    """Carries requested catalogue columns (``keep=``) into the output."""

    def _keep(self, table, keep):
        cols = {}
        for name in keep:
            col = find_column(table, (name,))
            if col is None:
                raise InputError(f"keep={list(keep)}: no column {name!r} in the catalogue "
                                 f"(columns: {table.colnames})")
            arr = np.asarray(table[col])
            if arr.dtype.byteorder not in "=|":  # FITS columns are big-endian
                arr = arr.astype(arr.dtype.newbyteorder("="))
            cols[name] = arr
        self._kept = cols

    def extra_columns(self, indices) -> dict[str, np.ndarray]:
        idx = np.asarray(list(indices), np.int64)
        return {k: v[idx] for k, v in self._kept.items()}


class SurveyCutoutSet(_TableColumns, CutoutSet):
    """Cutouts around catalogue positions on one large image per band."""

    def __init__(self, images, table, spec, *, id_column=None, keep=(), unit=None,
                 zeropoint=None, **kw):
        super().__init__(spec, table_ids(table, id_column), **kw)
        self._keep(table, keep)
        self.geometry = SurveyCutouts(images, table, spec, on_error=self.on_error,
                                      scale_rtol=self.scale_rtol,
                                      scale_max_rtol=self.scale_max_rtol, unit=unit,
                                      zeropoint=zeropoint)

    def _where(self, i):
        return f"catalogue row {i} (id {self._ids[i]})"

    def _read_into(self, i, dst):
        return self.geometry.read_into(i, dst)


class CatalogSet(_TableColumns, CutoutSet):
    """Photometry rows for catalogue models (``spec.kind == "catalog"``)."""

    def __init__(self, table, spec, *, id_column=None, keep=(), unit=None, zeropoint=None,
                 columns=None, **kw):
        super().__init__(spec, table_ids(table, id_column), **kw)
        self._keep(table, keep)
        self.data, self.n_bad, flags = photometry(table, spec, missing_band=self.missing_band,
                                                  unit=unit, zeropoint=zeropoint,
                                                  columns=columns)
        # the calibration policy is per catalogue: one check (warn or raise) for all rows
        self.flags = flags
        if len(flags) and flags[0] & Flag.UNCALIBRATED:
            if not self._check(int(Flag.UNCALIBRATED), "catalogue"):
                self.flags = flags & ~np.int64(Flag.UNCALIBRATED)

    def read_batch(self, indices) -> Batch:
        idx = np.asarray(list(indices), np.int64)
        return Batch([self._ids[i] for i in idx], self.data[idx], self.n_bad[idx],
                     self.flags[idx], [None] * len(idx))


def _expand(item) -> list[Path]:
    """Paths named by a path, glob string or directory (sorted).

    A glob matching nothing, or a path that exists neither as a directory nor as a file and does
    not look like a FITS file (a misspelt directory), is an error of the whole call, whatever
    ``on_error`` says; a missing FITS file in a list is a bad row.
    """
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
    if not p.exists() and not p.name.lower().endswith(FITS_SUFFIXES):
        raise InputError("no such file or directory", p)
    return [p]


def _nddata_to_array(nd):
    data = np.asarray(nd.data)
    if data.ndim == 2:
        data = data[None]
    mask = None
    if nd.mask is not None:
        try:
            mask = np.broadcast_to(np.asarray(nd.mask, bool), data.shape)
        except ValueError:
            raise InputError(f"NDData mask of shape {np.shape(nd.mask)} does not fit its data "
                             f"{data.shape}") from None
    scale = None
    if nd.wcs is not None and hasattr(nd.wcs, "to_header"):
        scale = pixel_scale_of(nd.wcs.to_header())
    unit = None if nd.unit is None else nd.unit.to_string()
    return data[None], None if mask is None else mask[None], unit, scale


def _file_objects(inputs, spec, group):
    """(objects, ids or None, file bands or None) of file inputs, grouped per band if asked."""
    explicit = []  # per-object tuples the caller grouped
    loose = []
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        if isinstance(item, (list, tuple)):
            explicit.append(tuple(Path(p) for p in item))
        else:
            loose.extend(_expand(item))
    if group is None or not loose or explicit:
        return explicit + [(p,) for p in loose], None, None
    if group == "auto":
        if len(spec.bands) < 2:
            return [(p,) for p in loose], None, None
        groups = group_files(loose, DEFAULT_GROUP, spec.bands, strict=False)
        # one file per object unless every file fits and objects have several bands
        if groups is None or all(len(files) == 1 for _, files in groups):
            return [(p,) for p in loose], None, None
    else:
        groups = group_files(loose, group, spec.bands)
    objects = [tuple(p for p, _ in files) for _, files in groups]
    return objects, [gid for gid, _ in groups], [[b for _, b in files] for _, files in groups]


def open_inputs(inputs, spec, *, bands=None, catalog=None, id_column=None, on_error="raise",
                missing_band="raise", unit=None, zeropoint=None, uncalibrated="flag",
                max_missing=MAX_MISSING, group="auto", keep=(), columns=None,
                **options) -> CutoutSet:
    """Open inputs of any supported kind as a `CutoutSet` conformed to ``spec``.

    Parameters
    ----------
    inputs
        For image specs: a FITS path, glob string or directory; a list whose items are paths
        (MEF, cube or 2-D file per object) or lists/tuples of per-band 2-D files; a numpy array
        (N, C, H, W) or (C, H, W); an `~astropy.nddata.NDData`/``CCDData`` (one object); or a
        dict ``{band: survey image path}`` with ``catalog``. For catalogue specs: an astropy
        Table/QTable, pandas DataFrame, dict of arrays, Row, structured array, or a
        FITS/ECSV/CSV/Parquet path.
    spec : InputSpec
        What the model expects.
    bands : list of str, optional
        Band names of an array's or NDData's channels (required when the model has several
        bands: channel order is never guessed), or of FITS planes/extensions that do not name
        their band.
    catalog : Table or path, optional
        Positions (``ra``/``dec``, ``RAJ2000``/``DEJ2000`` or ``x``/``y``) for survey images.
    id_column : str, optional
        Catalogue column giving ids (default: an ``id``/``objid``-like column, else the index).
        Ids keep the column's type.
    on_error : {"raise", "flag"}
        Raise `InputError` on an unreadable object, or flag its row and go on.
    missing_band : {"raise", "unmeasured"}
        What to do when a spec band is absent: images always raise; catalogue models can
        treat it as not measured.
    unit, zeropoint : optional
        The inputs' flux unit or AB zero point, overriding the headers (files), or stating it
        (arrays, unitless catalogue columns).
    uncalibrated : {"flag", "raise"}
        Inputs that state no calibration: warn and flag them `Flag.UNCALIBRATED` (default), or
        refuse them. Models whose normalisation is scale-free ignore calibration.
    max_missing : float
        Fraction of missing pixels (bad, masked, off the image, outside a small cutout) above
        which a row is flagged `Flag.TOO_MANY_MISSING` (default 0.2).
    group : "auto", str or None
        Per-band files given as a folder, glob or flat list are grouped into objects by this
        file-name pattern (``{id}`` and ``{band}``, e.g. ``"{id}_{band}"``). ``"auto"``: by
        ``"{id}_{band}"`` when every file fits it with one of the model's bands; None: one
        object per file.
    keep : sequence of str
        Input columns to carry into the output: catalogue columns (``ra``, ``dec``, ...) or,
        for files, ``"path"``.
    columns : dict, optional
        Catalogue models: ``{astrozoo column: your column}`` (see `astrozoo.io.catalog`).
    **options
        ``pixel_scale`` of array inputs (default: the spec's), ``mask`` for arrays,
        ``scale_rtol`` (default 0.01: no resampling below), ``scale_max_rtol`` (default 0.25:
        refused above), ``fast`` (default True: byte-offset fast path for homogeneous files).

    Returns
    -------
    CutoutSet
    """
    common = dict(on_error=on_error, missing_band=missing_band, uncalibrated=uncalibrated,
                  max_missing=max_missing,
                  **{k: options.pop(k) for k in ("scale_rtol", "scale_max_rtol") if k in options})
    array_opts = {k: options.pop(k) for k in ("pixel_scale", "mask") if k in options}
    fast = options.pop("fast", True)
    if options:
        raise TypeError(f"open_inputs got unknown options {sorted(options)}")
    calib = dict(unit=unit, zeropoint=zeropoint)
    keep = (keep,) if isinstance(keep, str) else tuple(keep)

    if spec.kind == "catalog":
        return CatalogSet(as_table(inputs), spec, id_column=id_column, keep=keep,
                          columns=columns, **calib, **common)
    if columns:
        raise TypeError("columns= applies to catalogue models")
    if isinstance(inputs, dict):
        if catalog is None:
            raise InputError("survey images ({band: path}) need catalog= with positions")
        return SurveyCutoutSet(inputs, as_table(catalog), spec, id_column=id_column, keep=keep,
                               **calib, **common)
    if isinstance(inputs, NDData):
        data, mask, nd_unit, scale = _nddata_to_array(inputs)
        array_opts = {"pixel_scale": scale, "mask": mask, **array_opts}
        calib["unit"] = calib["unit"] or (nd_unit if zeropoint is None else None)
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
            if len(spec.bands) > 1:
                raise InputError(f"an array has no band names; pass bands=[...] naming its "
                                 f"{array.shape[1]} channels in order (the model wants "
                                 f"{list(spec.bands)}; channel order is never guessed)")
            bands = spec.bands
        if len(bands) != array.shape[1]:
            raise InputError(f"bands={list(bands)} names {len(bands)} channels but the array "
                             f"has {array.shape[1]}")
        if keep:
            raise TypeError("keep= applies to catalogue and file inputs")
        return ArrayCutoutSet(array, spec, bands=bands, **calib, **array_opts, **common)
    if array_opts:
        raise TypeError(f"options {sorted(array_opts)} apply to array inputs only")
    if isinstance(inputs, Table):
        raise InputError("a Table is catalogue input; image models need images (or pass "
                         "{band: image} with catalog=)")
    objects, ids, file_bands = _file_objects(inputs, spec, group)
    return FileCutoutSet(objects, spec, fast=fast, ids=ids, file_bands=file_bands, bands=bands,
                         keep=keep, **calib, **common)
