"""Spec matching: band selection and order, missing bands, pixel scale, size."""

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astrozoo.config import InputSpec
from astrozoo.exceptions import InputError
from astrozoo.io import Flag, open_inputs
from astrozoo.io.conform import match_bands

SPEC = InputSpec(bands=("g", "r", "i"), pixel_scale=0.2, size=16)


def mef(path, bands, size=16, scale=None, value=None):
    hdus = [fits.PrimaryHDU()]
    for k, b in enumerate(bands):
        data = np.full((size, size), k + 1.0 if value is None else value, np.float32)
        h = fits.ImageHDU(data, name=b)
        if scale is not None:
            w = WCS(naxis=2)
            w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
            w.wcs.cdelt = [-scale / 3600, scale / 3600]
            w.wcs.crpix = [size / 2 + 0.5] * 2
            w.wcs.crval = [150.0, 2.0]
            h.header.update(w.to_header())
        hdus.append(h)
    fits.HDUList(hdus).writeto(path)
    return path


def test_bands_selected_and_reordered_by_name(tmp_path):
    # five bands with survey-style names, in another order; spec wants g, r, i
    p = mef(tmp_path / "o.fits", ["HSC-Z", "HSC-I", "HSC-R", "HSC-G", "HSC-Y"])
    data = open_inputs(p, SPEC)[0].data[0]
    assert [data[c, 0, 0] for c in range(3)] == [4.0, 3.0, 2.0]  # g, r, i planes


def test_match_bands_levels():
    assert match_bands(["G", "lsst_r", "i"], ["i", "g", "r"]) == [2, 0, 1]
    with pytest.raises(InputError, match="several"):
        match_bands(["a_g", "b_g"], ["g"])
    assert match_bands(["g", "G"], ["g", "G"]) == [0, 1]  # exact names win over case


def test_missing_band_names_file_and_band(tmp_path):
    p = mef(tmp_path / "two.fits", ["g", "r"])
    with pytest.raises(InputError, match=r"two\.fits.*missing band 'i'") as e:
        open_inputs(p, SPEC)[0]
    assert e.value.path.endswith("two.fits")
    assert "the input has bands ['G', 'R']" in str(e.value)  # EXTNAMEs as astropy writes them


def test_size_centre_crop_and_pad(tmp_path):
    big = np.arange(20 * 20, dtype=np.float32).reshape(20, 20)
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(big, name=b) for b in "gri"]
    fits.HDUList(hdus).writeto(tmp_path / "big.fits")
    with pytest.warns(UserWarning, match="larger than the model's 16x16"):
        batch = open_inputs(tmp_path / "big.fits", SPEC)[0]
    np.testing.assert_array_equal(batch.data[0, 0], big[2:18, 2:18])
    assert batch.flags[0] == Flag.CROPPED

    small = mef(tmp_path / "small.fits", "gri", size=12, value=5.0)
    with pytest.warns(UserWarning, match="smaller than the model's 16x16"):
        batch = open_inputs(small, SPEC, max_missing=1.0)[0]
    # the missing border is counted as missing pixels: 3 x (256 - 144)
    # asinh: scale-free, no UNCALIBRATED; the bands are constant (5 everywhere)
    assert batch.flags[0] == Flag.UNDERSIZED | Flag.BAD_PIXELS | Flag.CONSTANT
    assert batch.n_bad_pixels[0] == 3 * (256 - 144)
    # and filled by the bad-pixel rule: the band's median, here 5 everywhere
    assert (batch.data[0] == 5.0).all()


def test_pixel_scale_checked_resampled_or_refused(tmp_path):
    same = mef(tmp_path / "same.fits", "gri", scale=0.201)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "resampled")
        assert open_inputs(same, SPEC)[0].flags[0] == Flag.CONSTANT  # within 1%: used as is

    near = mef(tmp_path / "near.fits", "gri", size=16, scale=0.25, value=2.0)
    with pytest.warns(UserWarning, match="resampled"):
        batch = open_inputs(near, SPEC)[0]
    assert batch.flags[0] & Flag.RESAMPLED
    # flux per pixel scales with pixel area (0.2/0.25)^2; 16 px at 0.25" -> 20 px at 0.2",
    # centre-cropped to 16
    np.testing.assert_allclose(batch.data[0, 1], 2.0 * (0.2 / 0.25) ** 2, rtol=1e-5)

    far = mef(tmp_path / "far.fits", "gri", scale=0.4)
    with pytest.raises(InputError, match=r"far\.fits.*pixel scale 0\.4"):
        open_inputs(far, SPEC)[0]
