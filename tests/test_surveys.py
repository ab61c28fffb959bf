"""Survey presets: one noise model per survey, checked against lenstronomy's own noise model."""

from __future__ import annotations

import numpy as np
import pytest

import astrozoo
from astrozoo.io.units import ab_zero_point
from astrozoo.registry import get_entry
from astrozoo.surveys import PSF_FAMILIES, get_survey, list_surveys, psf_profile


@pytest.mark.parametrize("name,config,kwargs", [
    ("lsst", "LSST", {"coadd_years": 10}), ("des", "DES", {"coadd_years": 6})])
def test_sky_noise_is_lenstronomys(name, config, kwargs):
    """lenstronomy's SingleBand gives the background noise in e-/s; in the preset's unit it is
    that over the count rate of one unit of flux."""
    import importlib

    from lenstronomy.SimulationAPI.observation_api import SingleBand

    survey = get_survey(name)
    cls = getattr(importlib.import_module(f"lenstronomy.SimulationAPI.ObservationConfig.{config}"),
                  config)
    for band in survey.bands:
        kw = cls(band=band, **kwargs).kwargs_single_band()
        sb = SingleBand(**kw, data_count_unit="e-")
        expected = sb.background_noise / sb.magnitude2cps(ab_zero_point(survey.flux_unit))
        assert survey.sky_sigma([band])[0] == pytest.approx(expected, rel=1e-9)
        assert survey.seeing([band])[0] == kw["seeing"]
    assert survey.pixel_scale == kw["pixel_scale"]


def test_add_noise_has_the_stated_variance():
    s = get_survey("lsst")
    bands = ("g", "i")
    rng = np.random.default_rng(0)
    flat = np.full((2, 200, 200), 50.0)
    noisy = s.add_noise(flat, bands, rng)
    expected = np.sqrt(s.sky_sigma(bands) ** 2 + 50.0 * s.flux_per_electron(bands))
    np.testing.assert_allclose(noisy.std(axis=(1, 2)), expected, rtol=0.02)


@pytest.mark.parametrize("family", PSF_FAMILIES)
def test_psf_profiles_have_the_requested_fwhm(family):
    psf = psf_profile(family, 0.8)
    assert psf.flux == pytest.approx(1.0)
    img = psf.drawImage(nx=201, ny=201, scale=0.02, method="no_pixel").array
    # FWHM from the area above half maximum (exact for a round profile)
    fwhm = 2 * np.sqrt((img > img.max() / 2).sum() / np.pi) * 0.02
    assert fwhm == pytest.approx(0.8, rel=0.03)


def test_presets_and_zero_points():
    assert set(list_surveys()) >= {"lsst", "des", "sdss"}
    assert get_survey("lsst").zero_point == ab_zero_point("nJy")
    assert get_survey("sdss").zero_point == pytest.approx(22.5)
    assert get_survey("lsst").flux(get_survey("lsst").zero_point) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown survey preset 'euclid-xl'"):
        get_survey("euclid-xl")
    with pytest.raises(ValueError, match="no imaging noise model"):
        get_survey("sdss").sky_sigma(["r"])


def test_every_shipped_model_names_a_survey_preset():
    for name in astrozoo.list_models():
        spec = get_entry(name).config.input_spec
        survey = get_survey(spec.survey)
        assert set(spec.bands) <= set(survey.bands) and spec.flux_unit == survey.flux_unit
        if spec.kind == "image":
            assert spec.pixel_scale == survey.pixel_scale
