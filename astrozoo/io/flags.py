"""`Flag`: the per-object bitmask returned in ``Batch.flags``."""

from __future__ import annotations

import enum

__all__ = ["Flag"]


class Flag(enum.IntFlag):
    """Why an object's tensor is not a plain copy of its pixels.

    Combine and test with bitwise operators: ``batch.flags & Flag.EDGE_PADDED``.
    """

    #: Some pixels were missing: NaN, inf, masked, or off the image / outside a small cutout
    #: (count in ``n_bad_pixels``); they were filled by the bad-pixel rule.
    BAD_PIXELS = 1
    #: At least one band had no usable pixel; that band is all zeros.
    ALL_BAD = 2
    #: The cutout ran off the survey image; the pixels outside it are missing.
    EDGE_PADDED = 4
    #: A band of a catalogue model was absent and is treated as not measured
    #: (``missing_band="unmeasured"``; image inputs must have every band).
    BAND_MISSING = 8
    #: The pixel scale differed from the spec within tolerance and the image was resampled.
    RESAMPLED = 16
    #: The object could not be read (``on_error="flag"``); data are zeros, see ``errors``.
    READ_ERROR = 32
    #: The input stated no flux calibration (no BUNIT, MAGZP, MAGZERO, FLUXMAG0 or PHOTFLAM,
    #: no ``unit=``/``zeropoint=``): its values were taken to be in the model's unit.
    UNCALIBRATED = 64
    #: More than ``max_missing`` of the pixels were missing: by default the row gets no
    #: prediction (NaN) rather than one computed mostly from filled-in pixels.
    TOO_MANY_MISSING = 128
    #: The cutout was smaller than the model's input; the border is missing.
    UNDERSIZED = 256
    #: The cutout was larger than the model's input; its central pixels were used (a whole
    #: survey image belongs in ``{band: path}`` with ``catalog=``).
    CROPPED = 512
    #: A band with usable pixels is constant (all zeros, a fill value, saturated): it carries
    #: no signal and its noise (MAD) is zero; normalisation keeps it finite.
    CONSTANT = 1024
