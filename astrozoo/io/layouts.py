"""FITS layouts as cutout services deliver them, read safely with astropy.

One file gives one or more bands:

- **multi-extension FITS**: each image HDU is a band named by ``FILTER``, ``BAND`` or
  ``EXTNAME`` (keywords missing from an extension are inherited from the primary header);
- **3-D cube** ``(band, y, x)`` in one HDU, bands named by ``BANDS='g,r,i'`` or
  ``BAND0``, ``BAND1``, ... (Legacy Survey);
- **2-D image**: one band, named by ``FILTER`` or ``BAND`` (per-band files are grouped per
  object by the caller).

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

__all__ = ["read_fits", "pixel_scale_of", "FITS_SUFFIXES"]

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


def _cube_bands(get, n: int, path) -> list[str]:
    bands = get("BANDS")
    if bands is not None:
        names = [b.strip() for b in str(bands).split(",") if b.strip()]
    else:
        names = [get(f"BAND{i}") for i in range(n)]
        if any(b is None for b in names):
            raise InputError(f"3-D cube with {n} planes but no BANDS or BAND0..BAND{n - 1} "
                             "keywords naming them", path)
        names = [str(b).strip() for b in names]
    if len(names) != n:
        raise InputError(f"BANDS names {len(names)} bands but the cube has {n} planes", path)
    return names


def read_fits(path, flux_unit: str, *, default_band: str | None = None):
    """Read every band of one FITS file.

    Parameters
    ----------
    path : str or Path
    flux_unit : str
        The model's unit; each band's ``factor`` converts to it.
    default_band : str, optional
        Name for a single 2-D image whose header names no band (a one-band spec).

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
                return _read_hdul(hdul, path, flux_unit, default_band)
            except InputError:
                raise
            except Exception as e:
                raise InputError(f"cannot read FITS data, file corrupt or truncated? "
                                 f"({type(e).__name__}: {e})", path) from None


def _read_hdul(hdul, path, flux_unit, default_band):
    primary = hdul[0].header
    hdus = [(i, h) for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) > 0]
    if not hdus:
        raise InputError("no image data in any HDU", path)
    images, sources = [], []
    for i, h in hdus:
        hdr = h.header

        def get(key, hdr=hdr):
            v = hdr.get(key)
            return primary.get(key) if v is None else v

        data = h.data
        if data is None:
            raise InputError(f"HDU {i} has NAXIS>0 but no data", path)
        try:
            factor = header_factor(get, flux_unit)
        except ValueError as e:
            raise InputError(str(e), path) from None
        scale = pixel_scale_of(hdr)
        blank = hdr.get("BLANK") if data.dtype.kind in "iu" else None
        if data.ndim == 3:
            names = _cube_bands(get, data.shape[0], path)
            for k, name in enumerate(names):
                images.append(BandImage(name, data[k], factor=factor, blank=blank,
                                        pixel_scale=scale))
                sources.append((i, k))
        elif data.ndim == 2:
            name = hdr.get("FILTER", hdr.get("BAND"))
            if name is None and len(hdus) > 1:
                name = hdr.get("EXTNAME")
            if name is None:
                name = primary.get("FILTER", primary.get("BAND", default_band))
            if name is None:
                raise InputError("image names no band (no FILTER, BAND or EXTNAME keyword)", path)
            images.append(BandImage(str(name).strip(), data, factor=factor, blank=blank,
                                    pixel_scale=scale))
            sources.append((i, None))
        else:
            raise InputError(f"HDU {i} has {data.ndim} dimensions; expected a 2-D image or a "
                             "3-D (band, y, x) cube", path)
    return images, sources
