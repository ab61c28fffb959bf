"""Cutouts from survey images: one large image per band plus a catalogue of positions.

Positions come from ``ra``/``dec`` columns (degrees, ICRS; VizieR's ``RAJ2000``/``DEJ2000``
too) through each band's WCS, transformed for the whole catalogue in one vectorised call, or
from ``x``/``y`` columns (0-based pixels). Each cutout is a numpy slice of a memory-mapped image,
so a 20,000 x 20,000 image is never loaded whole (tile-compressed images cannot be memory-mapped
and are decompressed once).

Centring: a cutout is, pixel for pixel, the one ``astropy.nddata.Cutout2D(data,
SkyCoord(ra, dec, unit="deg"), size, wcs=WCS(header, fobj=hdul), mode="partial")`` gives, under
every WCS astropy reads: all celestial projections, SIP, TPV, ``-TAB`` axes and lookup-table
distortions (``D2IMARR``/``WCSDVARR``; they need the open file, and are applied). The position
is astropy's ``skycoord_to_pixel(..., mode="all")`` (0-based, pixel centres at integers) and the
window's lower corner is ``ceil(position - size / 2)`` on each axis. The vectorised call can
differ from ``Cutout2D``'s one-row call in the last digits (a few 1e-6 pixel with a distortion,
whose iterative inverse runs until the slowest row converges), so rows within 1e-3 pixel (1e-6
without a distortion) of a window edge are converted again one by one. One exception, on
purpose: on images whose first axis is latitude (``CTYPE1='DEC--TAN'``) ``skycoord_to_pixel``
swaps x and y (astropy issues #4976, #10468), so there positions come from
``WCS.world_to_pixel``, which does not. The part outside the image is missing (NaN: counted in
``n_bad_pixels``, filled by the bad-pixel rule, flagged `Flag.EDGE_PADDED`, and above
``max_missing`` of the cutout `Flag.TOO_MANY_MISSING`); a position wholly off the image gives a
row flagged `Flag.ALL_BAD` (where ``Cutout2D`` would raise).

Failures: a WCS that astropy cannot build (an invalid ``CUNIT``, a missing lookup-table or
``-TAB`` extension) or whose celestial frame it does not know is an `InputError` naming the file
and astropy's reason, raised when the inputs are opened, or with ``on_error="flag"`` given to
every row as a `Flag.READ_ERROR` row with that reason. A header with no celestial axes
(``CTYPE1='PIXEL'``) has no WCS: ``ra``/``dec`` then need ``x``/``y`` columns too. A row the WCS
cannot place (NaN or ``|dec| > 90``, beyond the projection's reach such as the far side of the
sky for ``TAN``, or where a distortion's inverse does not converge, typically far from the
image) has no pixel position: that row alone is an `InputError` ("position has no pixel
coordinates", with the reason in `UNPLACED`), a `Flag.READ_ERROR` row with ``on_error="flag"``;
a row placed far off the image is an `Flag.ALL_BAD` row, never another part of the image.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import NoConvergence
from astropy.wcs.utils import skycoord_to_pixel, wcs_to_celestial_frame

from ..exceptions import InputError
from .catalog import find_column
from .conform import BandImage, match_bands, place, zoom_for
from .flags import Flag
from .layouts import _mask_bits, _plane_kind, _wcs_pixel_scale, celestial_wcs
from .units import header_factor

__all__ = ["cutout_origins", "cut", "SurveyImage", "survey_positions", "UNPLACED"]


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

    ``wcs`` is its celestial WCS (None without one); ``wcs_error`` the `InputError` of a WCS
    that astropy cannot build or use (then ``wcs`` and ``pixel_scale`` are None).

    Picklable: the open file is dropped when pickled and reopened in the worker, and so is the
    WCS (positions are computed before workers start; astropy cannot pickle a ``-TAB`` WCS).
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
                self.wcs, self.wcs_error = _usable_wcs(hdr, hdul, self.path)
        except StopIteration:
            raise InputError("no 2-D image HDU", self.path) from None
        except FileNotFoundError:
            raise InputError("file not found", self.path) from None
        except Exception as e:
            raise InputError(f"not a readable FITS image ({type(e).__name__}: {e})",
                             self.path) from None
        self.hdu = idx
        self.pixel_scale = None if self.wcs is None else _wcs_pixel_scale(self.wcs)

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
        return {**self.__dict__, "_data": None, "_planes": None, "wcs": None}

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


def _usable_wcs(header, hdul, path):
    """(celestial WCS or None, None), or (None, InputError) for one astropy cannot use."""
    try:
        wcs = celestial_wcs(header, hdul, path)
    except InputError as e:
        return None, e
    if wcs is not None:
        try:
            wcs_to_celestial_frame(wcs)
        except ValueError:  # skycoord_to_pixel would raise it for the whole catalogue
            return None, InputError(f"the WCS's celestial frame is unknown to astropy (CTYPE "
                                    f"{list(wcs.wcs.ctype)}, RADESYS {wcs.wcs.radesys!r})", path)
    return wcs, None


#: Why a row has no pixel position: the codes `survey_positions` returns.
UNPLACED = {1: "ra/dec is not a sky position (NaN, or |dec| > 90)",
            2: "the WCS projection does not reach this sky position",
            3: "the WCS distortion's inverse does not converge here (far from the image?)",
            4: "x/y is not finite"}


def survey_positions(table, image: SurveyImage):
    """Pixel positions of the catalogue rows on ``image`` (ra/dec preferred over x/y).

    Returns
    -------
    x, y : ndarray of float
        0-based pixel positions, NaN for the rows that have none.
    why : ndarray of int8
        0, or the `UNPLACED` code saying why a row has no position.

    Raises
    ------
    InputError
        If the catalogue has neither ra/dec (with a celestial WCS) nor x/y columns.
    """
    # VizieR writes RAJ2000/DEJ2000 (or _RAJ2000/_DEJ2000, RA_ICRS/DE_ICRS)
    ra = find_column(table, ("ra", "ra_deg", "alpha", "raj2000", "_raj2000", "ra_icrs"))
    dec = find_column(table, ("dec", "dec_deg", "delta", "dej2000", "_dej2000", "de_icrs",
                              "dec_icrs"))
    if ra and dec and image.wcs is not None:
        return _sky_to_pixel(np.asarray(table[ra], float), np.asarray(table[dec], float),
                             image.wcs)
    xc, yc = find_column(table, ("x",)), find_column(table, ("y",))
    if xc and yc:
        x, y = np.asarray(table[xc], float), np.asarray(table[yc], float)
        return x, y, np.where(np.isfinite(x) & np.isfinite(y), 0, 4).astype(np.int8)
    why = "the image has no celestial WCS" if ra and dec else "no ra/dec columns"
    raise InputError(f"catalogue has no usable positions ({why}, and no x/y columns)", image.path)


def _to_pixel(coords, wcs):
    """Pixel (x, y) of SkyCoords as `Cutout2D` computes them, but right on (dec, ra) images."""
    if wcs.wcs.lng == 0:
        return skycoord_to_pixel(coords, wcs, mode="all")
    # skycoord_to_pixel swaps x and y where the first axis is latitude (astropy #4976, #10468)
    return wcs.world_to_pixel(coords)


def _sky_to_pixel(ra, dec, wcs):
    """`survey_positions` of ICRS ra/dec (degrees): astropy's conversion, one row failing alone."""
    n = len(ra)
    xy_all = np.full((n, 2), np.nan)
    why = np.zeros(n, np.int8)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    why[~ok] = 1  # SkyCoord would refuse the whole catalogue for one dec = 95
    rows = np.flatnonzero(ok)
    if len(rows):
        coords = SkyCoord(ra[rows], dec[rows], unit="deg", frame="icrs")
        try:
            xy = np.column_stack(_to_pixel(coords, wcs))
        except NoConvergence as e:
            # keep the converged rows of astropy's best solution, drop the others
            xy = np.array(e.best_solution, float)
            failed = np.concatenate([i for i in (e.divergent, e.slow_conv) if i is not None])
            why[rows[failed]] = np.where(np.isfinite(xy[failed]).all(axis=1), 3, 2)
            xy[failed] = np.nan
        # The vectorised call differs from Cutout2D's one-row call in the last digits (more
        # with a distortion: all_world2pix iterates until the slowest row converges); where
        # that could move the window by a pixel (x or y near a multiple of 0.5), redo the row.
        edge = 1e-3 if wcs.has_distortion else 1e-6
        with np.errstate(invalid="ignore"):
            near = np.flatnonzero((np.abs(xy - np.round(2 * xy) / 2) < edge).any(axis=1))
        for k in near:
            try:
                xy[k] = _to_pixel(coords[k], wcs)
            except NoConvergence:
                xy[k], why[rows[k]] = np.nan, 3
        lost = ~np.isfinite(xy).all(axis=1)
        why[rows[lost & (why[rows] == 0)]] = 2  # wcslib's NaN: outside the projection
        xy[lost] = np.nan
        xy_all[rows] = xy
    return xy_all[:, 0], xy_all[:, 1], why


class SurveyCutouts:
    """Per-band geometry of cutouts for every catalogue row (used by `SurveyCutoutSet`).

    An image whose WCS astropy cannot use raises its `InputError` here, or with
    ``on_error="flag"`` at each row's `read_into` (which the caller turns into flagged rows).
    """

    def __init__(self, images: dict, table, spec, *, on_error="raise", scale_rtol=0.01,
                 scale_max_rtol=0.25, unit=None, zeropoint=None):
        bands = list(images)
        plan = match_bands(bands, spec.bands, path=", ".join(str(p) for p in images.values()))
        self.bands = []  # per spec band: (SurveyImage, zoom, window, x0, y0, why)
        for i in plan:
            img = SurveyImage(bands[i], images[bands[i]], spec.flux_unit, unit=unit,
                              zeropoint=zeropoint)
            if img.wcs_error is not None:
                if on_error == "raise":
                    raise img.wcs_error
                self.bands.append((img, 1.0, spec.size, None, None, None))  # rows: READ_ERROR
                continue
            zoom = zoom_for(img.pixel_scale, spec.pixel_scale, scale_rtol=scale_rtol,
                            scale_max_rtol=scale_max_rtol, path=img.path)
            if zoom != 1.0:
                warnings.warn(f"{img.path}: pixel scale {img.pixel_scale:.4g} arcsec/pix "
                              f"resampled to the model's {spec.pixel_scale:.4g}", stacklevel=4)
            # Cut enough file pixels to cover the spec size after resampling.
            window = spec.size if zoom == 1.0 else math.ceil(spec.size / zoom) + 2
            x, y, why = survey_positions(table, img)
            x0, y0 = cutout_origins(x, y, window)
            self.bands.append((img, zoom, window, x0, y0, why))

    def read_into(self, i: int, dst: np.ndarray) -> tuple[int, int]:
        """Write object ``i`` into ``dst`` (spec shape); return (flags, padded pixels)."""
        flags, n_padded = 0, 0
        for c, (img, zoom, window, x0, y0, why) in enumerate(self.bands):
            if img.wcs_error is not None:
                raise InputError(img.wcs_error.reason, img.path)
            if not img.calibrated:
                flags |= Flag.UNCALIBRATED
            if why[i]:
                raise InputError(f"row {i}: position has no pixel coordinates on this image "
                                 f"({UNPLACED[why[i]]})", img.path)
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
