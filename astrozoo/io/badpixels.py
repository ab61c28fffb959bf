"""Bad pixels: NaN, inf and masked pixels, replaced by one documented rule.

Rule: every bad pixel of a cutout is replaced by the **median of the good pixels of the same band
in the same cutout**, or by 0 when that band has no good pixel. The median tracks the local sky,
so the replacement adds no artificial edge for the network and does not bias the robust
statistics of the normalisation presets. Readers mark masked pixels (NDData masks, FITS
``BLANK``, mask planes) and pixels outside the image or the cutout (`Flag.EDGE_PADDED`,
`Flag.UNDERSIZED`) as NaN before this step, so all of them are missing pixels, counted alike:
a network must never read zeros (or a constant fill) off the edge as signal. A cutout with more
than ``max_missing`` of its pixels missing is flagged `Flag.TOO_MANY_MISSING`; the engine gives
it no prediction by default.
"""

from __future__ import annotations

import warnings

import numpy as np

from .flags import Flag

__all__ = ["replace_bad_pixels"]


def replace_bad_pixels(data: np.ndarray, max_missing: float = 1.0):
    """Replace non-finite pixels in place and count them per object.

    Parameters
    ----------
    data : ndarray, float32, shape (B, C, H, W)
        Conformed cutouts; NaN marks missing pixels.
    max_missing : float
        Fraction of missing pixels above which a row is flagged `Flag.TOO_MANY_MISSING`.

    Returns
    -------
    n_bad : ndarray of int64, shape (B,)
    flags : ndarray of int64, shape (B,)
        `Flag.BAD_PIXELS` where ``n_bad > 0``, `Flag.ALL_BAD` where a band has no good pixel,
        `Flag.TOO_MANY_MISSING` above `max_missing`.
    """
    b, c = data.shape[:2]
    flat = data.reshape(b, c, -1)
    n_bad = np.zeros(b, np.int64)
    flags = np.zeros(b, np.int64)
    # A band's sum is finite iff all its pixels are (or it overflowed, which the exact count
    # below handles): one SIMD reduction instead of a boolean mask for clean batches.
    with np.errstate(over="ignore", invalid="ignore"):
        rows = np.flatnonzero(~np.isfinite(flat.sum(axis=-1)).all(axis=-1))
    if rows.size:
        sub = flat[rows]
        good = np.isfinite(sub)
        n_good = good.sum(axis=-1)  # (R, C)
        n_nonfinite = sub[0].size - n_good.sum(axis=-1)
        n_bad[rows] = n_nonfinite
        flags[rows] |= np.where((n_good == 0).any(axis=-1), int(Flag.ALL_BAD), 0)
        sub[~good] = np.nan  # inf too, so nanmedian sees only good pixels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN band -> NaN -> 0 below
            med = np.nan_to_num(np.nanmedian(sub, axis=-1, keepdims=True), nan=0.0)
        flat[rows] = np.where(good, sub, med)
    flags |= np.where(n_bad > 0, int(Flag.BAD_PIXELS), 0)
    flags |= np.where(n_bad > max_missing * flat[0].size, int(Flag.TOO_MANY_MISSING), 0)
    return n_bad, flags
