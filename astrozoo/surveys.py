"""Survey presets: bands, pixel scale, flux unit, depth, noise and PSF of each survey, in one place.

Every simulator, example and test takes its numbers from here, and `InputSpec.survey` names the
preset a model was trained for. Imaging presets are built from lenstronomy's observation
configurations (``lenstronomy.SimulationAPI.ObservationConfig``), so the zoo has one noise model
per survey: the per-pixel sky sigma of the coadd (sky Poisson counts plus the read noise of every
exposure) and the flux of one effective electron, which sets the source's own shot noise.
PSFs are GalSim profiles.

Every preset also carries the pivot wavelength of each band (``wavelengths``, `band_wavelength`).

A preset's ``pixel_scale`` also documents what cutouts of that survey come at, for users matching
their data to a model (``astrozoo info`` shows the model's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

__all__ = ["BandNoise", "Survey", "GENERIC_WAVELENGTHS", "band_wavelength", "get_survey",
           "list_surveys", "psf_profile", "PSF_FAMILIES"]

#: PSF families `psf_profile` draws (GalSim profiles).
PSF_FAMILIES = ("gaussian", "moffat", "kolmogorov", "core+halo")


@dataclass(frozen=True)
class BandNoise:
    """Depth and seeing of one band of a survey's coadd.

    Attributes
    ----------
    sky_sigma : float
        Per-pixel noise of the sky background and read noise, in the survey's flux unit.
    flux_per_electron : float
        Flux (survey unit) of one detected electron over the whole coadd: a source pixel of
        flux ``f`` adds shot-noise variance ``f * flux_per_electron``.
    seeing : float
        Median PSF FWHM, arcsec.
    """

    sky_sigma: float
    flux_per_electron: float
    seeing: float


@dataclass(frozen=True)
class Survey:
    """A survey preset (see the module docstring).

    Attributes
    ----------
    name : str
        Key of the preset, as written in `~astrozoo.config.InputSpec.survey`.
    description : str
        What the preset stands for (depth, source of the numbers).
    bands : tuple of str
        Band names, blue to red.
    pixel_scale : float or None
        Arcsec per pixel of the survey's images (None for catalogue-only presets).
    flux_unit : str
        Unit of the preset's pixel values or catalogue fluxes (``nJy``, ``nanomaggy``).
    noise : dict
        ``{band: BandNoise}`` for imaging presets, empty otherwise.
    psf_families : tuple of str
        PSF families (`PSF_FAMILIES`) that describe the survey's PSFs for simulations.
    seeing_factor : (float, float)
        Range of the per-object PSF FWHM relative to each band's median seeing.
    softening : dict
        ``{band: b}`` asinh-magnitude softening (flux unit) for catalogue presets.
    wavelengths : dict
        ``{band: nm}`` effective (pivot) wavelength of each band, nm (see `band_wavelength`).
    """

    name: str
    description: str
    bands: tuple[str, ...]
    pixel_scale: float | None
    flux_unit: str = "nJy"
    noise: dict[str, BandNoise] = field(default_factory=dict)
    psf_families: tuple[str, ...] = ("gaussian", "moffat", "core+halo")
    seeing_factor: tuple[float, float] = (0.7, 1.4)
    softening: dict[str, float] = field(default_factory=dict)
    wavelengths: dict[str, float] = field(default_factory=dict)

    @property
    def zero_point(self) -> float:
        """AB magnitude of one unit of `flux_unit` (31.4 for nJy, 22.5 for nanomaggy)."""
        from .io.units import ab_zero_point

        return ab_zero_point(self.flux_unit)

    def flux(self, mag):
        """Flux in `flux_unit` of AB magnitude(s) `mag`."""
        return 10 ** (-0.4 * (np.asarray(mag, dtype=float) - self.zero_point))

    def _band(self, band: str) -> BandNoise:
        if not self.noise:
            raise ValueError(f"survey preset {self.name!r} has no imaging noise model")
        try:
            return self.noise[band]
        except KeyError:
            raise ValueError(f"survey {self.name!r} has no band {band!r}; bands: "
                             f"{list(self.bands)}") from None

    def sky_sigma(self, bands) -> np.ndarray:
        """Per-pixel sky + read noise sigma of each band, in `flux_unit`."""
        return np.array([self._band(b).sky_sigma for b in _tuple(bands)])

    def flux_per_electron(self, bands) -> np.ndarray:
        return np.array([self._band(b).flux_per_electron for b in _tuple(bands)])

    def seeing(self, bands) -> np.ndarray:
        """Median PSF FWHM (arcsec) of each band."""
        return np.array([self._band(b).seeing for b in _tuple(bands)])

    def add_noise(self, images: np.ndarray, bands, rng: np.random.Generator) -> np.ndarray:
        """Noisy copy of noiseless images (..., C, H, W) in `flux_unit`: Gaussian noise with the
        sky variance plus each pixel's own Poisson variance (in electrons)."""
        shape = (-1, 1, 1)
        sky = self.sky_sigma(bands).reshape(shape)
        gain = self.flux_per_electron(bands).reshape(shape)
        var = sky ** 2 + np.clip(images, 0, None) * gain
        return (images + rng.standard_normal(images.shape) * np.sqrt(var)).astype(np.float32)

    def draw_psf(self, rng: np.random.Generator, families=None, seeing_factor=None,
                 ellipticity_sigma: float = 0.025) -> dict:
        """Random PSF parameters of one object: ``family``, ``fwhm_factor``, ``e1``, ``e2``,
        ``beta`` (Moffat) and ``halo_fraction`` (core + halo); pass them to `psfs`."""
        families = tuple(families or self.psf_families)
        lo, hi = seeing_factor or self.seeing_factor
        e1, e2 = rng.normal(0, ellipticity_sigma, 2)
        return {"family": str(rng.choice(families)), "fwhm_factor": float(rng.uniform(lo, hi)),
                "e1": float(e1), "e2": float(e2), "beta": float(rng.uniform(2.5, 5.0)),
                "halo_fraction": float(rng.uniform(0.1, 0.3))}

    def psfs(self, bands, params: dict, gsparams=None) -> list:
        """GalSim PSF of each band for parameters from `draw_psf` (FWHM = band seeing x factor)."""
        kw = {k: params[k] for k in ("e1", "e2", "beta", "halo_fraction")}
        return [psf_profile(params["family"], s * params["fwhm_factor"], gsparams=gsparams, **kw)
                for s in self.seeing(bands)]


# Pivot wavelengths (nm, rounded to 1 nm) of speclite's filter curves ``lsst2016-*``,
# ``decam2014-*``, ``sdss2010-*`` and ``hsc2017-*`` (``speclite.filters.load_filters``):
# lambda_p^2 = int R lambda dlambda / int R / lambda dlambda for the photon-counting response R.
# Recomputed from the curves in tests/test_surveys.py.
_PIVOT_NM = {
    "lsst2016": {"u": 367.0, "g": 481.0, "r": 621.0, "i": 754.0, "z": 869.0, "y": 970.0},
    "decam2014": {"g": 482.0, "r": 642.0, "i": 781.0, "z": 916.0, "Y": 987.0},
    "sdss2010": {"u": 359.0, "g": 470.0, "r": 618.0, "i": 750.0, "z": 890.0},
    "hsc2017": {"g": 479.0, "r": 621.0, "i": 769.0, "z": 890.0, "y": 977.0},
}
#: Generic pivot wavelengths (nm) of the standard bands for `band_wavelength` without a preset:
#: LSST's (``lsst2016-*``) for u g r i z y, DECam's (``decam2014-Y``) for Y. Other surveys'
#: bands of the same name differ by up to ~50 nm (DECam z): pass the survey where it matters.
GENERIC_WAVELENGTHS = {**_PIVOT_NM["lsst2016"], "Y": _PIVOT_NM["decam2014"]["Y"]}


def band_wavelength(band: str, survey=None) -> float:
    """Effective (pivot) wavelength of `band`, nm.

    Parameters
    ----------
    band : str
        Band name (``"g"``, ``"z"``, ``"Y"``, ...).
    survey : str or Survey, optional
        Preset (name or object) whose value is used when it has the band; otherwise, and when
        not given, the generic value of a standard band (`GENERIC_WAVELENGTHS`).

    Raises
    ------
    ValueError
        When `band` is neither the survey's nor a standard band (u g r i z y Y).
    """
    if survey is not None:
        s = get_survey(survey) if isinstance(survey, str) else survey
        if band in s.wavelengths:
            return float(s.wavelengths[band])
    try:
        return float(GENERIC_WAVELENGTHS[band])
    except (KeyError, TypeError):
        where = f"a band of survey {s.name!r} nor " if survey is not None else ""
        raise ValueError(f"no wavelength for band {band!r}: neither {where}a standard band "
                         f"{tuple(GENERIC_WAVELENGTHS)}") from None


def _tuple(bands) -> tuple[str, ...]:
    return (bands,) if isinstance(bands, str) else tuple(bands)


def psf_profile(family: str, fwhm: float, *, e1: float = 0.0, e2: float = 0.0, beta: float = 3.5,
                halo_fraction: float = 0.2, gsparams=None):
    """A normalised GalSim PSF of `family` (`PSF_FAMILIES`) with the given FWHM (arcsec).

    ``core+halo`` is a Gaussian core plus a Gaussian halo 2.5x wider carrying `halo_fraction`
    of the flux (the wings of real ground-based PSFs). ``e1``, ``e2``: shape (GalSim distortion).
    """
    import galsim

    if family == "gaussian":
        psf = galsim.Gaussian(fwhm=fwhm, gsparams=gsparams)
    elif family == "moffat":
        psf = galsim.Moffat(beta=beta, fwhm=fwhm, gsparams=gsparams)
    elif family == "kolmogorov":
        psf = galsim.Kolmogorov(fwhm=fwhm, gsparams=gsparams)
    elif family == "core+halo":
        psf = galsim.Add([galsim.Gaussian(fwhm=fwhm, flux=1 - halo_fraction, gsparams=gsparams),
                          galsim.Gaussian(fwhm=2.5 * fwhm, flux=halo_fraction, gsparams=gsparams)])
    else:
        raise ValueError(f"unknown PSF family {family!r}; known: {PSF_FAMILIES}")
    return psf.shear(e1=e1, e2=e2) if (e1 or e2) else psf


def _lenstronomy_noise(config_cls, bands, unit: str, **kwargs) -> dict[str, BandNoise]:
    """Per-band `BandNoise` from a lenstronomy observation configuration.

    lenstronomy gives, per band, the exposure time and count, the zero point (magnitude of
    1 e-/s), sky brightness (mag/arcsec^2), read noise and seeing; a pixel value in `unit` is
    electrons / total exposure time, scaled by the zero point.
    """
    from .io.units import ab_zero_point

    zp_unit = ab_zero_point(unit)
    out = {}
    for b in bands:
        kw = config_cls(band=b, **kwargs).kwargs_single_band()
        t = kw["exposure_time"] * kw["num_exposures"]
        sky_e = 10 ** (0.4 * (kw["magnitude_zero_point"] - kw["sky_brightness"])) \
            * kw["pixel_scale"] ** 2 * t
        var_e = sky_e + kw["read_noise"] ** 2 * kw["num_exposures"]
        per_e = 10 ** (-0.4 * (kw["magnitude_zero_point"] - zp_unit)) / t
        out[b] = BandNoise(sky_sigma=float(math.sqrt(var_e) * per_e),
                           flux_per_electron=float(per_e), seeing=float(kw["seeing"]))
    return out


def _lsst() -> Survey:
    from lenstronomy.SimulationAPI.ObservationConfig.LSST import LSST

    bands = ("u", "g", "r", "i", "z", "y")
    return Survey(
        name="lsst", bands=bands, pixel_scale=0.2, flux_unit="nJy",
        description="Rubin LSST 10-year coadd (lenstronomy's LSST configuration, coadd_years=10)",
        noise=_lenstronomy_noise(LSST, bands, "nJy", coadd_years=10),
        wavelengths=dict(_PIVOT_NM["lsst2016"]))


def _des() -> Survey:
    from lenstronomy.SimulationAPI.ObservationConfig.DES import DES

    bands = ("g", "r", "i", "z", "Y")
    return Survey(
        name="des", bands=bands, pixel_scale=0.263, flux_unit="nJy",
        description="Dark Energy Survey 6-year (Y6) wide-field coadd (lenstronomy's DES "
                    "configuration, coadd_years=6)",
        noise=_lenstronomy_noise(DES, bands, "nJy", coadd_years=6), seeing_factor=(0.8, 1.3),
        wavelengths=dict(_PIVOT_NM["decam2014"]))


def _sdss() -> Survey:
    # Stoughton et al. (2002): b / f0 = 1.4, 0.9, 1.2, 1.8, 7.4 x 1e-10, in nanomaggies.
    return Survey(
        name="sdss", bands=("u", "g", "r", "i", "z"), pixel_scale=0.396, flux_unit="nanomaggy",
        description="SDSS imaging catalogue photometry (asinh-magnitude softening of Stoughton "
                    "et al. 2002)",
        softening={"u": 0.14, "g": 0.09, "r": 0.12, "i": 0.18, "z": 0.74},
        wavelengths=dict(_PIVOT_NM["sdss2010"]))


def _legacysurvey() -> Survey:
    return Survey(name="legacysurvey", bands=("g", "r", "i", "z"), pixel_scale=0.262,
                  flux_unit="nanomaggy",
                  description="DESI Legacy Imaging Surveys (DECaLS/BASS/MzLS) cutouts: 0.262\"/px, "
                              "nanomaggies, cubes with BANDS='grz' (no noise model here)",
                  # DECam's curves (DECaLS); the north's BASS g, r and MzLS z lie within 6 nm
                  wavelengths={b: _PIVOT_NM["decam2014"][b] for b in "griz"})


def _hsc() -> Survey:
    return Survey(name="hsc", bands=("g", "r", "i", "z", "y"), pixel_scale=0.168,
                  flux_unit="nJy",
                  description="Hyper Suprime-Cam SSP coadds: 0.168\"/px, calibrated by FLUXMAG0 "
                              "(no noise model here)",
                  wavelengths=dict(_PIVOT_NM["hsc2017"]))


_BUILDERS = {"lsst": _lsst, "des": _des, "sdss": _sdss, "legacysurvey": _legacysurvey,
             "hsc": _hsc}


@lru_cache(maxsize=None)
def get_survey(name: str) -> Survey:
    """The preset called `name` (see `list_surveys`)."""
    try:
        return _BUILDERS[name]()
    except KeyError:
        raise ValueError(f"unknown survey preset {name!r}; known: {list_surveys()}") from None


def list_surveys() -> list[str]:
    return sorted(_BUILDERS)
