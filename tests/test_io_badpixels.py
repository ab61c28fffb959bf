"""Bad pixels: replaced by the band median of good pixels, counted, all-bad rows flagged."""

import numpy as np

from astrozoo.config import InputSpec
from astrozoo.io import Flag, open_inputs
from astrozoo.io.badpixels import replace_bad_pixels

SPEC = InputSpec(bands=("g", "r"), pixel_scale=0.2, size=4)


def test_rule_and_counts():
    x = np.arange(2 * 2 * 4 * 4, dtype=np.float32).reshape(2, 2, 4, 4)
    x[0, 0, 0, 0] = np.nan
    x[0, 1, 1, 1] = np.inf
    x[0, 1, 2, 2] = -np.inf
    n_bad, flags = replace_bad_pixels(x)
    assert n_bad.tolist() == [3, 0] and flags.tolist() == [Flag.BAD_PIXELS, 0]
    assert x[0, 0, 0, 0] == np.median(np.arange(1, 16))
    good = np.delete(np.arange(16, 32), [5, 10])
    assert x[0, 1, 1, 1] == x[0, 1, 2, 2] == np.median(good)
    assert np.isfinite(x).all()


def test_all_nan_cutout_is_a_flagged_row_not_a_crash():
    arr = np.ones((3, 2, 4, 4), np.float32)
    arr[1] = np.nan  # whole object
    arr[2, 1] = np.nan  # one band
    batch = open_inputs(arr, SPEC, bands=SPEC.bands, unit='nJy', max_missing=1.0)[:]
    assert batch.n_bad_pixels.tolist() == [0, 32, 16]
    assert batch.flags[1] == Flag.BAD_PIXELS | Flag.ALL_BAD
    assert batch.flags[2] == Flag.BAD_PIXELS | Flag.ALL_BAD | Flag.CONSTANT  # band 0: all ones
    assert (batch.data[1] == 0).all() and (batch.data[2, 0] == 1).all()
    assert (batch.data[2, 1] == 0).all()


def test_masked_array_pixels_are_bad():
    arr = np.ma.masked_array(np.ones((1, 2, 4, 4)) * 7, mask=np.zeros((1, 2, 4, 4), bool))
    arr.data[0, 0, 1, 1] = 1e30
    arr.mask[0, 0, 1, 1] = True
    batch = open_inputs(arr, SPEC, bands=SPEC.bands, unit='nJy')[0]
    assert batch.n_bad_pixels[0] == 1 and (batch.data == 7).all()
