"""Flux units: BUNIT and MAGZP to the model's unit."""

import numpy as np
import pytest
from astropy.io import fits

from astrozoo.config import InputSpec
from astrozoo.exceptions import InputError
from astrozoo.io import open_inputs
from astrozoo.io.units import ab_zero_point, unit_factor

SPEC = InputSpec(bands=("r",), pixel_scale=0.2, size=8, flux_unit="nJy")
ZP_NJY = 2.5 * np.log10(3631e9)  # 31.40007, "31.4" rounded


def test_zero_points_and_factors():
    assert ab_zero_point("nJy") == pytest.approx(31.4, abs=1e-3)
    assert ab_zero_point("nanomaggy") == pytest.approx(22.5, abs=1e-9)
    assert unit_factor("nanomaggy", "nJy") == pytest.approx(3631.0)
    assert unit_factor("uJy", "nJy") == pytest.approx(1e3)
    assert unit_factor("nanomaggies", "mJy") == pytest.approx(3.631e-3)


@pytest.mark.parametrize("cards, factor", [
    ({"BUNIT": "nJy"}, 1.0),
    ({"BUNIT": "uJy"}, 1e3),
    ({"BUNIT": "mJy"}, 1e6),
    ({"BUNIT": "Jy"}, 1e9),
    ({"BUNIT": "nanomaggy"}, 3631.0),
    ({"MAGZP": 27.0}, 10 ** (-0.4 * (27.0 - ZP_NJY))),
    # MAGZP wins over a non-flux BUNIT
    ({"MAGZP": 31.4, "BUNIT": "ADU"}, 10 ** (-0.4 * (31.4 - ZP_NJY))),
    ({}, 1.0),  # no calibration: taken to be in the model's unit
])
def test_file_units_converted(tmp_path, cards, factor):
    h = fits.PrimaryHDU(np.full((8, 8), 2.0, np.float32))
    h.header.update(FILTER="r", **cards)
    h.writeto(tmp_path / "u.fits")
    data = open_inputs(tmp_path / "u.fits", SPEC)[0].data
    np.testing.assert_allclose(data, 2.0 * factor, rtol=1e-5)


def test_magzp_into_nanomaggies_and_bad_bunit(tmp_path):
    h = fits.PrimaryHDU(np.full((8, 8), 10.0, np.float32))
    h.header.update(FILTER="r", MAGZP=30.0)
    h.writeto(tmp_path / "zp.fits")
    spec = InputSpec(bands=("r",), pixel_scale=0.2, size=8, flux_unit="nanomaggy")
    # 10 counts at ZP 30 is mag 27.5, i.e. 10**(-0.4 * 5) = 0.01 nanomaggies
    np.testing.assert_allclose(open_inputs(tmp_path / "zp.fits", spec)[0].data, 0.01, rtol=1e-5)

    h.header.remove("MAGZP")
    h.header["BUNIT"] = "ADU"
    h.writeto(tmp_path / "adu.fits")
    with pytest.raises(InputError, match=r"adu\.fits.*BUNIT='ADU'"):
        open_inputs(tmp_path / "adu.fits", SPEC)[0]


def test_array_unit_option():
    arr = np.ones((2, 1, 8, 8))
    np.testing.assert_allclose(open_inputs(arr, SPEC, unit="nanomaggy")[:].data, 3631.0,
                               rtol=1e-6)
