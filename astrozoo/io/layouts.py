"""FITS layouts as cutout services deliver them, read safely with astropy.

One file gives one or more bands:

- **multi-extension FITS**: each image HDU is a band named by ``FILTER``, ``BAND`` or
  ``EXTNAME`` (keywords missing from an extension are inherited from the primary header);
- **3-D cube** ``(band, y, x)`` in one HDU, bands named by ``BANDS='g,r,i'`` (or ``'grz'``,
  as the Legacy Survey cutout service writes it, or space-separated) or ``BAND0``, ``BAND1``, ...;
- **2-D image**: one band, named by ``FILTER`` or ``BAND`` (per-band files are grouped per
  object by the caller);
- **pipeline images** (LSST/HSC ``calexp``, HST): ``IMAGE``/``SCI`` extensions with ``MASK``
  (or ``DQ``) and ``VARIANCE``/``IVAR``/``WEIGHT`` planes. Only the image planes are bands; the
  mask marks bad pixels (the bits of LSST's ``BAD``, ``SAT``, ``CR``, ``EDGE``, ``NO_DATA`` and
  ``SUSPECT`` planes when the header defines ``MP_*`` bits, else any non-zero value) and a zero
  inverse variance or weight does too.

Where a file names no band, the caller's ``bands=`` does (in plane or extension order); where
both name them and disagree, the file is refused rather than guessed at.

Tile-compressed HDUs, big-endian data and integer data with ``BSCALE``/``BZERO``/``BLANK`` are
decoded by astropy. Any failure (missing, truncated, corrupt or non-FITS file, unknown layout)
raises `InputError` naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from ..exceptions import InputError
from .conform import BandImage
from .units import header_factor

__all__ = ["read_fits", "pixel_scale_of", "parse_band_list", "FITS_SUFFIXES"]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz", ".fz")


def pixel_scale_of(header) -> float | None:
    """Mean celestial pixel scale in arcsec/pixel from a header's WCS, or None without one."""
    if "CTYPE1" not in header and "CD1_1" not in header and "CDELT1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        cel = WCS(header).celestial
    if cel.naxis != 2:
        return None
    scales = proj_plane_pixel_scales(cel) * np.array([u.to("arcsec") for u in cel.wcs.cunit])
    return float(np.mean(scales))


#: EXTNAMEs of planes that are not bands: masks, and uncertainty planes.
_MASK_PLANES = {"MASK", "DQ", "BITMASK", "BADPIX", "FLAGS"}
_ZERO_IS_BAD_PLANES = {"IVAR", "INVVAR", "WEIGHT", "WHT"}
_IGNORED_PLANES = {"VARIANCE", "VAR", "SIGMA", "ERR", "ERROR", "NOISE", "RMS", "STDEV"}
_IMAGE_PLANES = {"IMAGE", "SCI", "DATA"}
#: LSST/HSC mask planes whose bits mark a pixel as unusable (others: DETECTED, INTRP...).
_BAD_MASK_PLANES = ("BAD", "SAT", "CR", "EDGE", "NO_DATA", "SUSPECT")


def parse_band_list(value, n: int | None = None) -> list[str]:
    """Band names from a ``BANDS`` keyword: ``'g,r,i'``, ``'g r i'`` or ``'grz'``.

    A run of letters with no separator is read as one band per letter only when that gives
    `n` bands (the Legacy Survey writes ``BANDS='grz'``), so ``'HSC-G'`` stays one name.
    """
    text = str(value).strip()
    if "," in text:
        names = [b.strip() for b in text.split(",")]
    elif " " in text:
        names = text.split()
    elif n is not None and len(text) == n and n > 1 and text.isalpha():
        names = list(text)
    else:
        names = [text]
    return [b for b in names if b]


def _cube_bands(get, n: int, path, declared) -> list[str]:
    bands = get("BANDS")
    if bands is not None:
        names = parse_band_list(bands, n)
    elif get("BAND0") is not None:
        names = [get(f"BAND{i}") for i in range(n)]
        if any(b is None for b in names):
            raise InputError(f"3-D cube with {n} planes but BAND0..BAND{n - 1} do not name "
                             "all of them", path)
        names = [str(b).strip() for b in names]
    elif declared is not None:
        names = list(declared)
    else:
        raise InputError(f"3-D cube with {n} planes but no BANDS or BAND0..BAND{n - 1} "
                         "keywords naming them (pass bands=[...] to name them)", path)
    if len(names) != n:
        raise InputError(f"BANDS names {len(names)} bands ({names}) but the cube has {n} "
                         "planes", path)
    _check_declared(names, declared, path)
    return names


def _check_declared(names, declared, path) -> None:
    if declared is not None and [str(b) for b in declared] != list(names):
        from .conform import match_bands

        try:
            same = match_bands(list(names), list(declared), path=path) == list(range(len(names)))
        except InputError:
            same = False
        if not same:
            raise InputError(f"the file names its bands {list(names)} but bands="
                             f"{list(declared)} was given; which is right?", path)


def _mask_bits(hdr) -> int | None:
    """Bits of the unusable LSST/HSC mask planes from ``MP_*`` keywords, None without them."""
    bits = [hdr.get(f"MP_{name}") for name in _BAD_MASK_PLANES]
    if all(b is None for b in bits):
        return None
    return sum(1 << int(b) for b in bits if b is not None)


def read_fits(path, flux_unit: str, *, default_band: str | None = None, bands=None,
              unit: str | None = None, zeropoint: float | None = None):
    """Read every band of one FITS file.

    Parameters
    ----------
    path : str or Path
    flux_unit : str
        The model's unit; each band's ``factor`` converts to it.
    default_band : str, optional
        Name for a single 2-D image whose header names no band (a one-band spec, or the band
        a per-band file name gives); checked against the header when it names one.
    bands : list of str, optional
        The caller's names of the file's bands, in plane (cube) or extension (MEF) order.
    unit, zeropoint : optional
        The caller's calibration, overriding the header's (`astrozoo.io.units.header_factor`).

    Returns
    -------
    images : list of BandImage
    sources : list of (hdu_index, plane or None)
        Where each band lives in the file (for the fast-path template).
    """
    path = Path(path)
    # A broken file is reported through InputError (or a flagged row); astropy's VerifyWarnings
    # about it would only repeat that on stderr, once per file in a million-row run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        try:
            hdul = fits.open(path, memmap=False)
        except FileNotFoundError:
            raise InputError("file not found", path) from None
        except Exception as e:  # astropy raises OSError, ValueError, TypeError... on corrupt files
            raise InputError(f"not a readable FITS file ({type(e).__name__}: {e})", path) from None
        with hdul:
            try:
                return _read_hdul(hdul, path, flux_unit, default_band, bands, unit, zeropoint)
            except InputError:
                raise
            except Exception as e:
                raise InputError(f"cannot read FITS data, file corrupt or truncated? "
                                 f"({type(e).__name__}: {e})", path) from None


def _plane_kind(hdr) -> str:
    name = str(hdr.get("EXTNAME", "")).strip().upper()
    if name in _MASK_PLANES:
        return "mask"
    if name in _ZERO_IS_BAD_PLANES:
        return "weight"
    if name in _IGNORED_PLANES:
        return "ignored"
    return "image"


def _read_hdul(hdul, path, flux_unit, default_band, declared, unit, zeropoint):
    primary = hdul[0].header
    hdus = [(i, h) for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) > 0]
    if not hdus:
        raise InputError("no image data in any HDU", path)
    kinds = [_plane_kind(h.header) for _, h in hdus]
    science = [(i, h) for (i, h), k in zip(hdus, kinds) if k == "image"]
    if not science:
        raise InputError("no image plane (only mask or uncertainty planes)", path)
    pipeline = len(science) < len(hdus)
    if declared is not None and len(science) > 1 and len(declared) != len(science):
        raise InputError(f"bands={list(declared)} names {len(declared)} bands but the file "
                         f"has {len(science)} image extensions", path)
    images, sources = [], []
    for n_sci, (i, h) in enumerate(science):
        hdr = h.header

        def get(key, hdr=hdr):
            v = hdr.get(key)
            return primary.get(key) if v is None else v

        data = h.data
        if data is None:
            raise InputError(f"HDU {i} has NAXIS>0 but no data", path)
        try:
            factor, source = header_factor(get, flux_unit, unit=unit, zeropoint=zeropoint)
        except ValueError as e:
            raise InputError(str(e), path) from None
        scale = pixel_scale_of(hdr)
        blank = hdr.get("BLANK") if data.dtype.kind in "iu" else None
        mask = _pipeline_mask(hdul, hdus, kinds, i, data.shape, path) if pipeline else None
        kw = dict(factor=factor, blank=blank, pixel_scale=scale, calibrated=source is not None)
        if data.ndim == 3:
            names = _cube_bands(get, data.shape[0], path, declared)
            for k, name in enumerate(names):
                images.append(BandImage(name, data[k], mask=None if mask is None else mask[k],
                                        **kw))
                sources.append((i, k))
        elif data.ndim == 2:
            name = _image_band(hdr, primary, len(science) > 1 and not pipeline)
            if declared is not None:
                given = declared[n_sci] if len(science) > 1 else (
                    declared[0] if len(declared) == 1 else None)
                if given is not None:
                    if name is not None:
                        _check_declared([str(name).strip()], [given], path)
                    name = given
            if default_band is not None:
                if name is not None:
                    _check_declared([str(name).strip()], [default_band], path)
                name = name if name is not None else default_band
            if name is None:
                raise InputError("image names no band (no FILTER, BAND or EXTNAME keyword; "
                                 "pass bands=[...] to name it)", path)
            images.append(BandImage(str(name).strip(), data, mask=mask, **kw))
            sources.append((i, None))
        else:
            raise InputError(f"HDU {i} has {data.ndim} dimensions; expected a 2-D image or a "
                             "3-D (band, y, x) cube", path)
    return images, sources


def _image_band(hdr, primary, extname_is_band: bool):
    name = hdr.get("FILTER", hdr.get("BAND"))
    if name is None and extname_is_band:
        name = hdr.get("EXTNAME")
    if name is None:
        name = primary.get("FILTER", primary.get("BAND"))
    return name


def _pipeline_mask(hdul, hdus, kinds, image_index, shape, path):
    """Bad-pixel mask of the image at `image_index` from the mask and weight planes that follow
    it (up to the next image plane), or None when there are none."""
    pos = [i for i, _ in hdus].index(image_index)
    mask = None
    for (i, h), kind in zip(hdus[pos + 1:], kinds[pos + 1:]):
        if kind == "image":
            break
        if kind == "ignored":
            continue
        plane = np.asarray(h.data)
        if plane.shape != shape:
            raise InputError(f"{h.header.get('EXTNAME')} plane (HDU {i}) has shape {plane.shape}, "
                             f"the image {shape}", path)
        if kind == "mask":
            bits = _mask_bits(h.header)
            bad = (plane.astype(np.int64) & bits) != 0 if bits is not None else plane != 0
        else:
            bad = ~(plane > 0)
        mask = bad if mask is None else mask | bad
    return mask
