"""Spec matching: bands by name, pixel scale, cutout size and flux scaling into the model's tensor.

Each reader (FITS layouts, arrays, survey images) yields `BandImage` objects; `conform` writes
them into one row of the output batch in ``spec.bands`` order (the fast path computes the same
plan once per file set with these functions):

- bands are matched by name (exact, then case-insensitive, then the last alphanumeric token, so
  ``HSC-G``, ``LSST_g`` and ``DECam g`` match ``g``; then the first token, for DECam's
  ``FILTER = 'g DECam SDSS c0001 4720.0 1520.0'``); a missing band raises `InputError` naming
  the file, the band and the bands the input has (a zero-filled band would be silent nonsense);
- the pixel scale (from the WCS) is compared with ``spec.pixel_scale``: within ``scale_rtol`` it
  is used as is, within ``scale_max_rtol`` the image is resampled (bilinear, flux per pixel
  rescaled by the pixel area ratio) with a warning and flagged, beyond that it is refused;
- the cutout is centre-cropped or centre-padded to ``spec.size`` (padding is NaN: missing
  pixels, counted, filled by the bad-pixel rule and flagged `Flag.UNDERSIZED`; a crop is
  flagged `Flag.CROPPED`, and the input set warns once: cutouts are centred on their object,
  so the central pixels are the right ones, but a whole image passed as a cutout is not);
- values are scaled as ``(raw * BSCALE + BZERO) * unit_factor``; integer ``BLANK`` becomes NaN.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from ..exceptions import InputError
from .flags import Flag

__all__ = ["BandImage", "match_bands", "zoom_for", "spans", "write_scaled", "place", "cropped",
           "conform"]

_TOKENS = re.compile(r"[A-Za-z0-9]+")


@dataclass
class BandImage:
    """One band of one object as read, before conforming.

    ``data`` may be raw big-endian integers (fast path) or already scaled floats (astropy);
    ``(data * bscale + bzero) * factor`` is the flux in the model's unit.
    """

    band: str
    data: np.ndarray
    factor: float = 1.0
    bscale: float = 1.0
    bzero: float = 0.0
    blank: int | None = None
    pixel_scale: float | None = None
    mask: np.ndarray | None = None
    calibrated: bool = True


def _band_keys(name: str):
    s = str(name).strip()
    tokens = _TOKENS.findall(s)
    return (s, s.lower(), tokens[-1].lower() if tokens else "",
            tokens[0].lower() if tokens else "")


def match_bands(available, wanted, *, missing_ok=False, path=None) -> list[int | None]:
    """Index into ``available`` for each band of ``wanted`` (None: absent, with `missing_ok`).

    Raises
    ------
    InputError
        A wanted band is absent (and not `missing_ok`), or a band name is ambiguous.
    """
    keys = [_band_keys(a) for a in available]
    out = []
    for w in wanted:
        wk = _band_keys(w)
        for level in range(4):
            hits = [i for i, k in enumerate(keys) if k[level] and k[level] == wk[level]]
            if hits:
                break
        if len(hits) > 1:
            raise InputError(f"band {w!r} matches several inputs {[available[i] for i in hits]}",
                             path)
        if not hits:
            if not missing_ok:
                raise InputError(f"missing band {w!r}: the input has bands {list(available)}, "
                                 f"the model needs {list(wanted)}", path)
            out.append(None)
        else:
            out.append(hits[0])
    return out


def zoom_for(pixel_scale, spec_scale, *, scale_rtol=0.01, scale_max_rtol=0.25, path=None) -> float:
    """Resampling zoom factor (1.0: none) for an image of ``pixel_scale`` arcsec/pixel.

    Raises
    ------
    InputError
        If the scales differ by more than ``scale_max_rtol`` (relative).
    """
    if pixel_scale is None or spec_scale is None:
        return 1.0
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise InputError(f"the WCS gives a pixel scale of {pixel_scale!r} arcsec/pix, not a "
                         "positive number (CDELT/CD keywords)", path)
    rel = abs(pixel_scale - spec_scale) / spec_scale
    if rel <= scale_rtol:
        return 1.0
    if rel > scale_max_rtol:
        raise InputError(f"pixel scale {pixel_scale:.4g} arcsec/pix differs from the model's "
                         f"{spec_scale:.4g} by {100 * rel:.1f}%, more than the "
                         f"{100 * scale_max_rtol:.0f}% that is resampled (scale_max_rtol=, CLI "
                         f"--scale-max-rtol). Cut the cutouts at {spec_scale:.4g}\"/px, or use a "
                         f"model trained at your survey's scale (Legacy Survey 0.262\", HSC "
                         f"0.168\", DES 0.263\", LSST 0.2\"; astrozoo.surveys)", path)
    return pixel_scale / spec_scale


def _span(n: int, s: int):
    if n >= s:
        start = (n - s) // 2
        return slice(start, start + s), slice(0, s)
    off = (s - n) // 2
    return slice(0, n), slice(off, off + n)


def spans(src_shape, dst_shape):
    """Source slices, destination slices and padded pixel count to centre-crop or centre-pad
    a ``src_shape`` image into ``dst_shape``."""
    (sy, dy), (sx, dx) = _span(src_shape[0], dst_shape[0]), _span(src_shape[1], dst_shape[1])
    padded = dst_shape[0] * dst_shape[1] - (dy.stop - dy.start) * (dx.stop - dx.start)
    return (sy, sx), (dy, dx), padded


def write_scaled(src, out, bscale=1.0, bzero=0.0, factor=1.0) -> None:
    """``out[...] = (src * bscale + bzero) * factor`` in float32, casting from any dtype.

    Separate steps, in astropy's order, so that reading by offsets matches astropy's scaling.
    """
    s = src
    if bscale != 1.0:
        np.multiply(s, np.float32(bscale), out=out, casting="unsafe")
        s = out
    if bzero != 0.0:
        np.add(s, np.float32(bzero), out=out, casting="unsafe")
        s = out
    if factor != 1.0:
        np.multiply(s, np.float32(factor), out=out, casting="unsafe")
    elif s is not out:
        out[...] = s


def place(img: BandImage, dst: np.ndarray, zoom: float = 1.0) -> int:
    """Write ``img`` conformed into ``dst`` (2-D float32, spec size); return padded pixels."""
    src = img.data
    bscale, bzero = img.bscale, img.bzero
    needs_float = zoom != 1.0 or img.mask is not None or (
        img.blank is not None and src.dtype.kind in "iu")
    if needs_float:
        raw = src
        src = raw.astype(np.float64) * bscale + bzero
        bscale, bzero = 1.0, 0.0
        if img.blank is not None and raw.dtype.kind in "iu":
            src[raw == img.blank] = np.nan
        if img.mask is not None:
            src[np.asarray(img.mask, bool)] = np.nan
        if zoom != 1.0:
            from scipy import ndimage  # photutils' dependency; only needed when resampling

            # Flux per pixel scales with the pixel area: (spec/file)^2 = 1/zoom^2.
            src = ndimage.zoom(src, zoom, order=1, mode="nearest", grid_mode=True) / zoom**2
    src_sl, dst_sl, padded = spans(src.shape, dst.shape)
    if padded:
        dst[...] = np.nan
    write_scaled(src[src_sl], dst[dst_sl], bscale, bzero, img.factor)
    return padded


def cropped(shape, size: int, zoom: float = 1.0) -> bool:
    """Whether an image of ``shape``, resampled by ``zoom``, is larger than ``size``."""
    # scipy.ndimage.zoom's output shape: round(n * zoom)
    return any(int(round(n * zoom)) > size for n in shape[-2:])


def conform(images, dst: np.ndarray, spec, *, scale_rtol=0.01,
            scale_max_rtol=0.25, path=None, warned=None, plans=None) -> tuple[int, int]:
    """Write one object's band images into ``dst`` (float32, ``spec.shape``).

    Parameters
    ----------
    images : list of BandImage
    dst : ndarray
        The object's row of the output batch.
    spec : InputSpec
    warned : set, optional
        Pixel scales already warned about, so a set of files warns once.
    plans : dict, optional
        Cache of band plans by available band names (a set of files repeats them).

    Returns
    -------
    flags : int
    n_padded : int
    """
    available = tuple(im.band for im in images)
    plan = None if plans is None else plans.get(available)
    if plan is None:
        plan = match_bands(available, spec.bands, path=path)
        if plans is not None:
            plans[available] = plan
    flags, n_padded = 0, 0
    for c, i in enumerate(plan):
        img = images[i]
        zoom = zoom_for(img.pixel_scale, spec.pixel_scale, scale_rtol=scale_rtol,
                        scale_max_rtol=scale_max_rtol, path=path)
        if zoom != 1.0:
            flags |= Flag.RESAMPLED
            if warned is None or img.pixel_scale not in warned:
                warnings.warn(f"{path}: pixel scale {img.pixel_scale:.4g} arcsec/pix resampled "
                              f"to the model's {spec.pixel_scale:.4g}", stacklevel=3)
                if warned is not None:
                    warned.add(img.pixel_scale)
        if not img.calibrated:
            flags |= Flag.UNCALIBRATED
        if cropped(img.data.shape, spec.size, zoom):
            flags |= Flag.CROPPED
        pad = place(img, dst[c], zoom)
        if pad:
            flags |= Flag.UNDERSIZED
            n_padded += pad
    return int(flags), n_padded
