"""`Flag`: the per-object bitmask returned in ``Batch.flags``."""

from __future__ import annotations

import enum

__all__ = ["Flag"]


class Flag(enum.IntFlag):
    """Why an object's tensor is not a plain copy of its pixels.

    Combine and test with bitwise operators: ``batch.flags & Flag.EDGE_PADDED``.
    """

    #: Some NaN, inf or masked pixels were replaced (count in ``n_bad_pixels``).
    BAD_PIXELS = 1
    #: At least one band had no usable pixel; that band is all zeros.
    ALL_BAD = 2
    #: The cutout was smaller than the spec or ran off the image; the border was filled.
    EDGE_PADDED = 4
    #: A band of the spec was absent from the input and zero-filled (``missing_band="zero"``).
    BAND_ZERO_FILLED = 8
    #: The pixel scale differed from the spec within tolerance and the image was resampled.
    RESAMPLED = 16
    #: The object could not be read (``on_error="flag"``); data are zeros, see ``errors``.
    READ_ERROR = 32
