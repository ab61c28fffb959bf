"""Bad pixels: NaN, inf and masked pixels, replaced by one documented rule.

Rule: every bad pixel of a cutout is replaced by the **median of the good pixels of the same band
in the same cutout**, or by 0 when that band has no good pixel. The median tracks the local sky,
so the replacement adds no artificial edge for the network and does not bias the robust
statistics of the normalisation presets. Readers mark masked pixels (NDData masks, FITS
``BLANK``, mask planes) and pixels outside the image or the cutout (`Flag.EDGE_PADDED`,
`Flag.UNDERSIZED`) as NaN before this step, so all of them are missing pixels, counted alike:
a network must never read zeros (or a constant fill) off the edge as signal. A cutout with more
than ``max_missing`` of its pixels missing is flagged `Flag.TOO_MANY_MISSING`; the engine gives
it no prediction by default. A band whose usable pixels all have one value (all zeros, a fill
value, saturated) is flagged `Flag.CONSTANT`: it carries no signal, and its zero MAD would make
per-object noise estimates meaningless (normalisation floors them so values stay finite).
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
        `Flag.TOO_MANY_MISSING` above `max_missing`, `Flag.CONSTANT` where a band with good
        pixels has a single value.
    """
    b, c = data.shape[:2]
    flat = data.reshape(b, c, -1)
    n_bad = np.zeros(b, np.int64)
    flags = np.zeros(b, np.int64)
    all_bad = np.zeros((b, c), bool)
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
        all_bad[rows] = n_good == 0
        flags[rows] |= np.where(all_bad[rows].any(axis=-1), int(Flag.ALL_BAD), 0)
        sub[~good] = np.nan  # inf too, so nanmedian sees only good pixels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN band -> NaN -> 0 below
            med = np.nan_to_num(np.nanmedian(sub, axis=-1, keepdims=True), nan=0.0)
        flat[rows] = np.where(good, sub, med)
    flags |= np.where(n_bad > 0, int(Flag.BAD_PIXELS), 0)
    flags |= np.where(n_bad > max_missing * flat[0].size, int(Flag.TOO_MANY_MISSING), 0)
    flags |= np.where((_constant_bands(flat) & ~all_bad).any(axis=-1), int(Flag.CONSTANT), 0)
    return n_bad, flags


def _constant_bands(flat: np.ndarray) -> np.ndarray:
    """(B, C) mask of bands whose pixels all have one value."""
    n = flat.shape[-1]
    if n < 2:
        return np.zeros(flat.shape[:2], bool)
    # Only bands whose 16 sample pixels agree can be constant: the exact check then runs on
    # those alone, so a batch of noisy cutouts pays for one small gather, not a pass.
    sample = flat[..., np.linspace(0, n - 1, min(n, 16)).astype(np.intp)]
    out = (sample == sample[..., :1]).all(axis=-1)
    for i, j in zip(*np.nonzero(out)):
        out[i, j] = (flat[i, j] == flat[i, j, 0]).all()
    return out
