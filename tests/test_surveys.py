"""Survey presets: one noise model per survey, checked against lenstronomy's own noise model."""

from __future__ import annotations

import numpy as np
import pytest

import astrozoo
from astrozoo.io.units import ab_zero_point
from astrozoo.registry import get_entry
from astrozoo.surveys import PSF_FAMILIES, band_wavelength, get_survey, list_surveys, psf_profile


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


@pytest.mark.parametrize("name,curves", [
    ("lsst", "lsst2016"), ("des", "decam2014"), ("sdss", "sdss2010"),
    ("legacysurvey", "decam2014"), ("hsc", "hsc2017")])
def test_band_wavelengths_are_speclite_pivot_wavelengths(name, curves):
    """The hard-coded wavelengths are the pivot wavelengths of speclite's filter curves."""
    import speclite.filters as filters
    trapezoid = getattr(np, "trapezoid", None) or np.trapz
    survey = get_survey(name)
    assert set(survey.wavelengths) == set(survey.bands)
    for band in survey.bands:
        f = filters.load_filter(f"{curves}-{band}")
        w, r = np.asarray(f.wavelength, float), np.asarray(f.response, float)  # Angstrom
        pivot_nm = np.sqrt(trapezoid(r * w, w) / trapezoid(r / w, w)) / 10
        assert survey.wavelengths[band] == pytest.approx(pivot_nm, abs=2.0)
        assert band_wavelength(band, name) == survey.wavelengths[band]


def test_band_wavelength_lookup():
    des = get_survey("des")
    assert band_wavelength("z", des) == des.wavelengths["z"] > band_wavelength("z") + 30
    # bands a preset lacks fall back to the generic table; bands are blue to red
    assert band_wavelength("u", "des") == band_wavelength("u")
    generic = [band_wavelength(b) for b in "ugrizy"]
    assert generic == sorted(generic) and band_wavelength("Y") > band_wavelength("z")
    with pytest.raises(ValueError, match="'NUV'"):
        band_wavelength("NUV")
    with pytest.raises(ValueError, match="'W1'.*survey 'sdss'"):
        band_wavelength("W1", "sdss")
