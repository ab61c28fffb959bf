"""Cutouts from survey images: one large image per band plus a catalogue of positions.

Positions come from ``ra``/``dec`` columns (degrees, ICRS; VizieR's ``RAJ2000``/``DEJ2000``
too) through each band's WCS, transformed
for the whole catalogue in one vectorised call, or from ``x``/``y`` columns (0-based pixels).
Each cutout is a numpy slice of a memory-mapped image, so a 20,000 x 20,000 image is never loaded
whole (tile-compressed images cannot be memory-mapped and are decompressed once). The pixel
window follows `astropy.nddata.Cutout2D` exactly (``mode="partial"``, lower corner
``ceil(position - size / 2)``), so cutouts are pixel-identical to it; the part outside the image
is missing (NaN: counted in ``n_bad_pixels``, filled by the bad-pixel rule, flagged
`Flag.EDGE_PADDED`, and above ``max_missing`` of the cutout `Flag.TOO_MANY_MISSING`); a position
wholly off the image gives a row flagged `Flag.ALL_BAD` (where ``Cutout2D`` would raise), and one
that the WCS cannot place (NaN) is an unreadable row.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import skycoord_to_pixel

from ..exceptions import InputError
from .catalog import find_column
from .conform import BandImage, match_bands, place, zoom_for
from .flags import Flag
from .layouts import _mask_bits, _plane_kind, pixel_scale_of
from .units import header_factor

__all__ = ["cutout_origins", "cut", "SurveyImage", "survey_positions"]


def cutout_origins(x, y, size: int):
    """Lower-left pixel (x0, y0) of ``size``-pixel cutouts centred at (x, y), as `Cutout2D`."""
    x0 = np.ceil(np.asarray(x, float) - size / 2.0)
    y0 = np.ceil(np.asarray(y, float) - size / 2.0)
    return x0, y0


def cut(image, x0: int, y0: int, size: int):
    """``size`` x ``size`` window of ``image`` at origin (x0, y0), NaN outside the image.

    Returns
    -------
    cutout : ndarray (float32 for float32 images, else float64)
    n_padded : int
        Pixels outside the image.
    """
    ny, nx = image.shape
    ya, yb = max(y0, 0), min(y0 + size, ny)
    xa, xb = max(x0, 0), min(x0 + size, nx)
    dtype = np.float32 if image.dtype.itemsize <= 2 or image.dtype == np.float32 else np.float64
    if ya == y0 and xa == x0 and yb == y0 + size and xb == x0 + size:
        return image[ya:yb, xa:xb].astype(dtype), 0
    out = np.full((size, size), np.nan, dtype)
    if ya < yb and xa < xb:
        out[ya - y0:yb - y0, xa - x0:xb - x0] = image[ya:yb, xa:xb]
    return out, size * size - max(yb - ya, 0) * max(xb - xa, 0)


class SurveyImage:
    """One band's large image: header facts now, pixels memory-mapped on first use.

    Picklable: the open file is dropped when pickled and reopened in the worker.
    """

    def __init__(self, band: str, path, flux_unit: str, *, unit=None, zeropoint=None):
        self.band, self.path = band, Path(path)
        try:
            with fits.open(self.path, memmap=True, do_not_scale_image_data=True) as hdul:
                planes = [(i, _plane_kind(h.header)) for i, h in enumerate(hdul)
                          if h.is_image and h.header.get("NAXIS", 0) == 2]
                idx = next(i for i, kind in planes if kind == "image")
                hdr, primary = hdul[idx].header, hdul[0].header
                # pipeline images: the mask / weight planes that follow the image mark bad pixels
                self.masks = [(i, kind, _mask_bits(hdul[i].header)) for i, kind in planes
                              if i > idx and kind in ("mask", "weight")]
        except StopIteration:
            raise InputError("no 2-D image HDU", self.path) from None
        except FileNotFoundError:
            raise InputError("file not found", self.path) from None
        except Exception as e:
            raise InputError(f"not a readable FITS image ({type(e).__name__}: {e})",
                             self.path) from None
        self.hdu = idx
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            self.wcs = WCS(hdr).celestial if "CTYPE1" in hdr else None
        self.pixel_scale = pixel_scale_of(hdr)

        def get(key):
            v = hdr.get(key)
            return primary.get(key) if v is None else v

        try:
            self.factor, source = header_factor(get, flux_unit, unit=unit, zeropoint=zeropoint)
        except ValueError as e:
            raise InputError(str(e), self.path) from None
        self.calibrated = source is not None
        self.bscale, self.bzero = float(hdr.get("BSCALE", 1.0)), float(hdr.get("BZERO", 0.0))
        self.blank = hdr.get("BLANK") if hdr["BITPIX"] > 0 else None
        self._data = None

    @property
    def data(self):
        if self._data is None:
            # Unscaled so that astropy keeps the memory map (scaling would load the image).
            self._data = fits.getdata(self.path, self.hdu, memmap=True,
                                      do_not_scale_image_data=True)
        return self._data

    def __getstate__(self):
        return {**self.__dict__, "_data": None, "_planes": None}

    def _plane(self, i):
        if getattr(self, "_planes", None) is None:
            self._planes = {}
        if i not in self._planes:
            self._planes[i] = fits.getdata(self.path, i, memmap=True)
        return self._planes[i]

    def band_image(self, x0: int, y0: int, size: int):
        """`BandImage` of the window at (x0, y0) and its padded pixel count."""
        data, n_pad = cut(self.data, int(x0), int(y0), size)
        if self.blank is not None:
            data[data == self.blank] = np.nan  # exact: cut() keeps integers exactly
        for i, kind, bits in self.masks:
            plane, _ = cut(self._plane(i), int(x0), int(y0), size)
            with np.errstate(invalid="ignore"):
                if kind == "mask":
                    ints = np.nan_to_num(plane, nan=0).astype(np.int64)
                    bad = (ints & bits) != 0 if bits is not None else ints != 0
                else:
                    bad = ~(plane > 0) & np.isfinite(plane)  # off-image NaN is counted already
            if bad.any():
                data = data.astype(np.float64) if data.dtype.kind in "iu" else data
                data[bad] = np.nan
        return BandImage(self.band, data, self.factor, self.bscale, self.bzero, None,
                         self.pixel_scale, calibrated=self.calibrated), n_pad


def survey_positions(table, image: SurveyImage):
    """(x, y) pixel positions of the catalogue rows on ``image`` (ra/dec preferred over x/y)."""
    # VizieR writes RAJ2000/DEJ2000 (or _RAJ2000/_DEJ2000, RA_ICRS/DE_ICRS)
    ra = find_column(table, ("ra", "ra_deg", "alpha", "raj2000", "_raj2000", "ra_icrs"))
    dec = find_column(table, ("dec", "dec_deg", "delta", "dej2000", "_dej2000", "de_icrs",
                              "dec_icrs"))
    if ra and dec and image.wcs is not None:
        coords = SkyCoord(np.asarray(table[ra], float), np.asarray(table[dec], float),
                          unit="deg", frame="icrs")
        x, y = skycoord_to_pixel(coords, image.wcs, mode="all")
        return np.asarray(x, float), np.asarray(y, float)
    xc, yc = find_column(table, ("x",)), find_column(table, ("y",))
    if xc and yc:
        return np.asarray(table[xc], float), np.asarray(table[yc], float)
    why = "the image has no celestial WCS" if ra and dec else "no ra/dec columns"
    raise InputError(f"catalogue has no usable positions ({why}, and no x/y columns)", image.path)


class SurveyCutouts:
    """Per-band geometry of cutouts for every catalogue row (used by `SurveyCutoutSet`)."""

    def __init__(self, images: dict, table, spec, *, scale_rtol=0.01, scale_max_rtol=0.25,
                 unit=None, zeropoint=None):
        bands = list(images)
        plan = match_bands(bands, spec.bands, path=", ".join(str(p) for p in images.values()))
        self.bands = []  # per spec band: (SurveyImage, zoom, window, x0, y0)
        for i in plan:
            img = SurveyImage(bands[i], images[bands[i]], spec.flux_unit, unit=unit,
                              zeropoint=zeropoint)
            zoom = zoom_for(img.pixel_scale, spec.pixel_scale, scale_rtol=scale_rtol,
                            scale_max_rtol=scale_max_rtol, path=img.path)
            if zoom != 1.0:
                warnings.warn(f"{img.path}: pixel scale {img.pixel_scale:.4g} arcsec/pix "
                              f"resampled to the model's {spec.pixel_scale:.4g}", stacklevel=4)
            # Cut enough file pixels to cover the spec size after resampling.
            window = spec.size if zoom == 1.0 else math.ceil(spec.size / zoom) + 2
            x, y = survey_positions(table, img)
            x0, y0 = cutout_origins(x, y, window)
            self.bands.append((img, zoom, window, x0, y0))

    def read_into(self, i: int, dst: np.ndarray) -> tuple[int, int]:
        """Write object ``i`` into ``dst`` (spec shape); return (flags, padded pixels)."""
        flags, n_padded = 0, 0
        for c, (img, zoom, window, x0, y0) in enumerate(self.bands):
            if not img.calibrated:
                flags |= Flag.UNCALIBRATED
            if not (np.isfinite(x0[i]) and np.isfinite(y0[i])):
                raise InputError(f"row {i}: position has no pixel coordinates on this image",
                                 img.path)
            bimg, pad = img.band_image(x0[i], y0[i], window)
            pad += place(bimg, dst[c], zoom)
            if zoom != 1.0 and pad:
                # Padded file pixels cover zoom^2 output pixels each, less what was cropped.
                pad = min(round(pad * zoom**2), int(np.count_nonzero(~np.isfinite(dst[c]))))
            if zoom != 1.0:
                flags |= Flag.RESAMPLED
            if pad:
                flags |= Flag.EDGE_PADDED
                n_padded += pad
        return int(flags), n_padded
