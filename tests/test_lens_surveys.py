"""Lens simulator in other surveys: the same population through DES's pixels, PSF, depth; z band."""

from __future__ import annotations

import numpy as np
import pytest

from astrozoo.surveys import get_survey
from astrozoo.tasks.lens_finding.simulate import (ARC_SNR_MIN, BANDS, SEEING_FACTOR, _grid,
                                                   _sersic_img, simulate)

GRIZ = ("g", "r", "i", "z")


@pytest.fixture(scope="module")
def des_ellipticals():
    return simulate(8, 11, kind="elliptical", survey="des", bands=GRIZ)


def _half_light_radius(img, pixel_scale, aperture=6.0):
    """Radius (pixels) about the cutout centre enclosing half the flux within `aperture` arcsec."""
    n = img.shape[-1]
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    r = np.hypot(xx, yy).ravel()
    order = np.argsort(r)
    r = r[order]
    out = []
    for im in img.reshape(len(img), -1)[:, order]:
        cum = np.cumsum(np.where(r < aperture / pixel_scale, im, 0.0))
        out.append(r[np.searchsorted(cum, cum[-1] / 2)])
    return np.array(out)


def test_des_griz_output_is_seeded_and_shaped():
    x1, y1, m1 = simulate(6, 3, survey="des", bands=GRIZ)
    x2, y2, _ = simulate(6, 3, survey="des", bands=GRIZ)
    assert x1.shape == (6, 4, 64, 64) and x1.dtype == np.float32 and np.isfinite(x1).all()
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    # per-object seeing around the DES preset's median, over the simulator's training range
    des = get_survey("des")
    lo, hi = SEEING_FACTOR
    factor = np.asarray(m1["seeing_r"]) / des.seeing("r")[0]
    assert ((factor >= lo) & (factor <= hi)).all()
    lenses = m1[m1["kind"] == "lens"]
    assert (lenses["arc_snr_g"] >= ARC_SNR_MIN).all()
    # another size, band subset and order
    x3, _, _ = simulate(2, 3, survey="des", bands=("z", "g"), size=40)
    assert x3.shape == (2, 2, 40, 40)


def test_des_sky_noise_matches_the_preset(des_ellipticals):
    x = des_ellipticals[0]
    w = 6
    corners = np.concatenate([x[:, :, :w, :w], x[:, :, :w, -w:], x[:, :, -w:, :w],
                              x[:, :, -w:, -w:]], -1)
    # the scatter of neighbouring-pixel differences is sqrt(2) x the per-pixel sky sigma
    sigma = np.diff(corners, axis=-1).reshape(len(x), 4, -1).std(-1).mean(0) / np.sqrt(2)
    np.testing.assert_allclose(sigma, get_survey("des").sky_sigma(GRIZ), rtol=0.15)


def test_ellipticals_are_red_into_z(des_ellipticals):
    centre = des_ellipticals[0][:, :, 28:36, 28:36].sum((-2, -1))
    # g-r, r-i > 0 and i-z = 0.6 (r-i) > 0: the flux rises from g to z
    assert (np.diff(centre, axis=1) > 0).all()


def test_same_objects_span_fewer_pixels_at_des_scale(des_ellipticals):
    x_des, _, m_des = des_ellipticals
    x_lsst, _, m_lsst = simulate(8, 11, kind="elliptical", bands=GRIZ)
    # the survey takes no random draws before the noise: the same physical galaxies
    for c in ("mag_i_main", "r_eff_main", "q_main"):
        np.testing.assert_array_equal(m_des[c], m_lsst[c])
    r_des = _half_light_radius(x_des[:, 2], 0.263)
    r_lsst = _half_light_radius(x_lsst[:, 2], 0.2)
    ratio = r_des / r_lsst
    assert (ratio < 0.92).all()  # 0.2 / 0.263 = 0.76, widened a little by DES's poorer seeing
    # in arcsec the sizes agree (physical angular sizes, DES's PSF ~25% wider)
    assert 0.9 < np.median(ratio * 0.263 / 0.2) < 1.2

    # noiseless: one Sersic profile on both grids has second moments in the ratio of the scales^2
    def moment(grid):
        img = _sersic_img(grid, 1.0, 1.0, 0.7, 0.3)
        return (img * (grid.x ** 2 + grid.y ** 2)).sum() / grid.fine_scale ** 2

    lsst, des = _grid(0.2, 64), _grid(0.263, 64)
    assert moment(des) / moment(lsst) == pytest.approx((0.2 / 0.263) ** 2, rel=0.02)
    # the PSF kernel covers the same ~5.1" on the sky
    assert lsst.kernel == 51 and des.kernel % 2 == 1
    assert des.kernel * des.fine_scale == pytest.approx(lsst.kernel * lsst.fine_scale, abs=0.15)


def test_z_takes_no_random_draw_and_defaults_are_unchanged():
    x_gri, y_gri, _ = simulate(5, 4, kind="nonlens")
    x_griz, y_griz, _ = simulate(5, 4, kind="nonlens", bands=GRIZ)
    np.testing.assert_array_equal(y_gri, y_griz)
    np.testing.assert_allclose(x_griz[:, :3], x_gri, rtol=1e-6, atol=1e-6)
    x_def, _, _ = simulate(4, 123)
    x_exp, _, _ = simulate(4, 123, survey=get_survey("lsst"), bands=BANDS, size=64)
    np.testing.assert_array_equal(x_def, x_exp)
    # summed fluxes of simulate(4, 123) from the simulator the shipped model was trained on: a
    # change of the default draw order or rendering would move them by far more than 1e-6
    np.testing.assert_allclose(x_def.astype(np.float64).sum((0, 2, 3)),
                               [97802.79547654, 257233.02215898, 405697.12819479], rtol=1e-6)


@pytest.mark.parametrize("kw,match", [
    (dict(bands=("u", "g")), "cannot colour band"),
    (dict(survey="des", bands=("g", "r", "i", "z", "Y")), "cannot colour band"),
    (dict(bands=("g", "y")), "cannot colour band"),
    (dict(survey="sdss"), "no imaging noise model"),
    (dict(bands=("g", "g")), "distinct"),
    (dict(size=4), "size"),
])
def test_bad_options_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        simulate(1, 0, **kw)
