"""LSST-like ugrizy cutouts of bulge + disk galaxies with CWW SEDs, for image photo-z.

Each galaxy is a de Vaucouleurs bulge and an exponential disk, each with its own SED, so the
colour changes across the galaxy (red bulge, bluer disk): information a CNN can use and total
photometry cannot. The bulge SED is the CWW E template mixed with a little Sbc; the disk SED is a
mixture along the Sbc -> Scd -> Im sequence. Templates and LSST bandpasses are those shipped with
GalSim.

Rendering is achromatic per band, which is exact for this model: with an achromatic PSF in each
band, a component's image in band b is its profile times its band flux, the integral of its
redshifted SED through the bandpass. Band fluxes come from a precomputed (template, z) table of AB
magnitudes, so one galaxy costs six achromatic GalSim draws (about 9 ms on one core).

Population (per object):

- i-band magnitude from rising number counts dN/dm ~ 10^(0.35 m), 19 <= i < 25.3 (LSST gold);
- redshift from the LSST Science Book n(z | i) ~ z^2 exp(-z / z0), z0 = 0.0417 i - 0.744
  (floored at 0.04), truncated to 0.02 <= z <= 3;
- bulge-to-total flux ratio in i ~ Beta(1.2, 2.5);
- disk half-light radius from a size-luminosity relation, 5 kpc at M_i = -21 scaling as
  L^0.2 (1+z)^-0.75 (van der Wel et al. 2014) with 0.2 dex scatter, turned into arcsec with the
  Planck18 angular diameter distance and kept within 0.15-3 arcsec; bulge radius 0.2-0.6 of
  the disk's;
- disk axis ratio of a thin disk (intrinsic 0.15) at random inclination, bulge 0.6-1;
- a sub-pixel centroid offset (uniform within +-0.5 pixel).

Observation: 0.2 arcsec pixels, 64x64 stamps, pixel values in nJy (AB zero point 31.4), a
Kolmogorov PSF per band with the LSST FWHM times a per-object factor 0.9-1.15, and Gaussian noise
with the variance of the 10-year coadd sky (set by the 5-sigma depths in `LSST_10YR`) plus the
source's own Poisson counts.
The cosmic mean redshift-magnitude relation is the only source of the prior; there is no IGM
absorption (CWW templates as shipped).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["BANDS", "PIXEL_SCALE", "STAMP_SIZE", "AB_ZP_NJY", "LSST_10YR", "APERTURE_RADII",
           "sky_sigma_njy", "template_mags", "sample_population",
           "render", "simulate", "aperture_masks", "aperture_fluxes", "load_or_simulate"]

BANDS = ("u", "g", "r", "i", "z", "y")
PIXEL_SCALE = 0.2
STAMP_SIZE = 64
AB_ZP_NJY = 31.4

#: Per-band LSST 10-year coadd: 5-sigma point-source depth and sky brightness (mag/arcsec^2)
#: from Ivezic et al. (2019, Table 1), PSF FWHM (arcsec) as in lenstronomy's LSST configuration.
LSST_10YR = {
    "u": dict(m5=26.1, sky=22.9, seeing=0.81),
    "g": dict(m5=27.4, sky=22.3, seeing=0.77),
    "r": dict(m5=27.5, sky=21.2, seeing=0.73),
    "i": dict(m5=26.8, sky=20.5, seeing=0.71),
    "z": dict(m5=26.1, sky=19.6, seeing=0.69),
    "y": dict(m5=24.9, sky=18.6, seeing=0.68),
}

#: Radii (pixels) of the circular apertures of the photometry baseline: 0.6" and 1.2".
APERTURE_RADII = (3.0, 6.0)

TEMPLATES = ("E", "Sbc", "Scd", "Im")
Z_MIN, Z_MAX = 0.02, 3.0
I_MIN, I_MAX = 19.0, 25.3
_ZGRID = np.linspace(0.0, Z_MAX, 601)
CHUNK = 500  # objects per random stream: results do not depend on the number of workers


def sky_sigma_njy(band: str) -> float:
    """Per-pixel sky noise (nJy) of the 10-year coadd in `band`, from its 5-sigma depth: a point
    source of magnitude m5 has S/N 5 over n_eff = 2.266 (FWHM / pixel)^2 pixels."""
    c = LSST_10YR[band]
    n_eff = 2.266 * (c["seeing"] / PIXEL_SCALE) ** 2
    return float(10 ** (-0.4 * (c["m5"] - AB_ZP_NJY)) / (5 * np.sqrt(n_eff)))


def _njy_per_electron(band: str) -> float:
    """nJy per effective electron: the sky level divided by its Poisson count, so the source's
    own shot noise has the right size relative to the sky's."""
    c = LSST_10YR[band]
    sky_njy = 10 ** (-0.4 * (c["sky"] - AB_ZP_NJY)) * PIXEL_SCALE ** 2
    return float(sky_sigma_njy(band) ** 2 / sky_njy)


@lru_cache(maxsize=1)
def template_mags() -> np.ndarray:
    """AB magnitudes (template, z, band) of the CWW templates on the redshift grid, normalised to
    i = 0, from the GalSim SEDs and LSST bandpasses."""
    import galsim

    bps = [galsim.Bandpass(f"LSST_{b}.dat", "nm").withZeropoint("AB") for b in BANDS]
    out = np.empty((len(TEMPLATES), len(_ZGRID), len(BANDS)))
    for t, name in enumerate(TEMPLATES):
        sed = galsim.SED(f"CWW_{name}_ext_more.sed", wave_type="Ang", flux_type="flambda")
        for j, z in enumerate(_ZGRID):
            s = sed.atRedshift(z)
            out[t, j] = [s.calculateMagnitude(bp) for bp in bps]
    return out - out[..., BANDS.index("i"):BANDS.index("i") + 1]


def _template_flux_ratios(z: np.ndarray) -> np.ndarray:
    """f_b / f_i (N, template, band) at redshifts `z`, interpolated in magnitude."""
    mags = template_mags()
    m = np.stack([[np.interp(z, _ZGRID, mags[t, :, b]) for b in range(len(BANDS))]
                  for t in range(len(TEMPLATES))])  # (template, band, N)
    return 10 ** (-0.4 * m.transpose(2, 0, 1))


def sample_population(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw `n` galaxies' physical and observed parameters (see the module docstring).

    Returns
    -------
    dict of numpy arrays, first axis n
        ``z``, ``i_mag``, ``bt`` (bulge fraction in i), ``bulge_flux`` and ``disk_flux`` (n, 6)
        in nJy, ``disk_hlr``, ``bulge_hlr`` (arcsec), ``disk_q``, ``bulge_q``, ``beta`` (rad),
        ``offset`` (n, 2) pixels, ``psf_fwhm`` (n, 6) arcsec.
    """
    from astropy.cosmology import Planck18

    # Rising counts: inverse CDF of 10^(0.35 m) on [I_MIN, I_MAX].
    a = 0.35 * np.log(10)
    u = rng.random(n)
    i_mag = np.log(np.exp(a * I_MIN) + u * (np.exp(a * I_MAX) - np.exp(a * I_MIN))) / a
    z0 = np.maximum(0.0417 * i_mag - 0.744, 0.04)
    z = rng.gamma(3.0, z0)
    while (bad := np.flatnonzero((z < Z_MIN) | (z > Z_MAX))).size:
        z[bad] = rng.gamma(3.0, z0[bad])
    bt = rng.beta(1.2, 2.5, n)

    # SED mixtures: bulge = E + up to 30% Sbc; disk walks Sbc -> Scd -> Im.
    w_bulge = np.zeros((n, 4))
    f_sbc = rng.uniform(0.0, 0.3, n)
    w_bulge[:, 0], w_bulge[:, 1] = 1 - f_sbc, f_sbc
    t = rng.uniform(0.0, 2.0, n)
    w_disk = np.zeros((n, 4))
    lo = t < 1
    w_disk[lo, 1], w_disk[lo, 2] = 1 - t[lo], t[lo]
    w_disk[~lo, 2], w_disk[~lo, 3] = 2 - t[~lo], t[~lo] - 1
    ratios = _template_flux_ratios(z)  # (n, template, band), each template has f_i = 1
    flux_i = 10 ** (-0.4 * (i_mag - AB_ZP_NJY))
    bulge_flux = (bt * flux_i)[:, None] * np.einsum("nt,ntb->nb", w_bulge, ratios)
    disk_flux = ((1 - bt) * flux_i)[:, None] * np.einsum("nt,ntb->nb", w_disk, ratios)

    dist_mod = Planck18.distmod(z).value
    abs_mag = i_mag - dist_mod + 2.5 * np.log10(1 + z)  # crude K-correction
    r_kpc = 5.0 * 10 ** (-0.4 * 0.2 * (abs_mag + 21)) * (1 + z) ** -0.75 \
        * 10 ** rng.normal(0, 0.2, n)
    d_a_kpc = Planck18.angular_diameter_distance(z).to_value("kpc")
    disk_hlr = np.clip(r_kpc / d_a_kpc * 206264.806, 0.15, 3.0)
    bulge_hlr = np.maximum(disk_hlr * rng.uniform(0.2, 0.6, n), 0.05)
    cos_i = rng.random(n)
    disk_q = np.sqrt(cos_i ** 2 * (1 - 0.15 ** 2) + 0.15 ** 2)
    seeing = np.array([LSST_10YR[b]["seeing"] for b in BANDS])
    return dict(z=z, i_mag=i_mag, bt=bt, bulge_flux=bulge_flux, disk_flux=disk_flux,
                disk_hlr=disk_hlr, bulge_hlr=bulge_hlr, disk_q=disk_q,
                bulge_q=rng.uniform(0.6, 1.0, n), beta=rng.uniform(0, np.pi, n),
                offset=rng.uniform(-0.5, 0.5, (n, 2)),
                psf_fwhm=seeing[None, :] * rng.uniform(0.9, 1.15, (n, 1)))


def render(params: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Noisy ugrizy stamps (N, 6, 64, 64) float32 in nJy for a population from
    `sample_population`."""
    import galsim

    gsp = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)
    n = len(params["z"])
    out = np.empty((n, len(BANDS), STAMP_SIZE, STAMP_SIZE), np.float32)
    sky_var = np.array([sky_sigma_njy(b) ** 2 for b in BANDS])
    e_njy = np.array([_njy_per_electron(b) for b in BANDS])
    for k in range(n):
        beta = params["beta"][k] * galsim.radians
        bulge = galsim.DeVaucouleurs(half_light_radius=params["bulge_hlr"][k], gsparams=gsp) \
            .shear(q=params["bulge_q"][k], beta=beta)
        disk = galsim.Exponential(half_light_radius=params["disk_hlr"][k], gsparams=gsp) \
            .shear(q=params["disk_q"][k], beta=beta)
        for b in range(len(BANDS)):
            gal = (bulge.withFlux(params["bulge_flux"][k, b])
                   + disk.withFlux(params["disk_flux"][k, b]))
            psf = galsim.Kolmogorov(fwhm=params["psf_fwhm"][k, b], gsparams=gsp)
            img = galsim.Convolve(gal, psf).drawImage(
                nx=STAMP_SIZE, ny=STAMP_SIZE, scale=PIXEL_SCALE, offset=tuple(params["offset"][k]))
            out[k, b] = img.array
    # Sky-dominated Gaussian noise plus the source's Poisson variance (in electrons).
    var = sky_var[None, :, None, None] + np.maximum(out, 0) * e_njy[None, :, None, None]
    out += (rng.standard_normal(out.shape) * np.sqrt(var)).astype(np.float32)
    return out


def aperture_masks(radii=APERTURE_RADII, size: int = STAMP_SIZE) -> np.ndarray:
    """Exact-overlap circular aperture weights (R, size, size) centred on the stamp, from
    photutils (pixel centres at integers, so the stamp centre is (size - 1) / 2)."""
    from photutils.aperture import CircularAperture

    c = (size - 1) / 2
    return np.stack([CircularAperture((c, c), r).to_mask(method="exact").to_image((size, size))
                     for r in radii]).astype(np.float32)


def aperture_fluxes(images: np.ndarray, radii=APERTURE_RADII) -> np.ndarray:
    """Aperture fluxes (N, bands, R) of stamps (N, bands, H, W) in their own units.

    Equivalent to ``photutils.aperture.aperture_photometry`` at the stamp centre for every
    image, done as one product with the photutils masks.
    """
    masks = aperture_masks(radii, images.shape[-1])
    return np.einsum("nbhw,rhw->nbr", images, masks, optimize=True)


def _simulate_chunk(args) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n, seed = args
    rng = np.random.default_rng(seed)
    params = sample_population(n, rng)
    return render(params, rng), params


def simulate(n: int, seed: int, workers: int = 1) -> dict[str, np.ndarray]:
    """Simulate `n` galaxies deterministically from `seed` (independent of `workers`).

    Returns
    -------
    dict
        ``images`` (n, 6, 64, 64) float32 nJy, ``phot`` (n, 6, 2) aperture fluxes (nJy), and the
        per-object parameters of `sample_population`.
    """
    seeds = np.random.SeedSequence(seed).spawn((n + CHUNK - 1) // CHUNK)
    jobs = [(min(CHUNK, n - i * CHUNK), s) for i, s in enumerate(seeds)]
    if workers > 1:
        template_mags()  # once here rather than in each worker
        with ProcessPoolExecutor(workers) as ex:
            parts = list(ex.map(_simulate_chunk, jobs))
    else:
        parts = [_simulate_chunk(j) for j in jobs]
    out = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    out["images"] = np.concatenate([p[0] for p in parts])
    out["phot"] = aperture_fluxes(out["images"])
    return out


def load_or_simulate(name: str, n: int, seed: int, cache_dir: str | Path | None = None,
                     workers: int = 1) -> dict[str, np.ndarray]:
    """`simulate`, cached as ``.npy`` files under `cache_dir` (default ``data_cache/``)."""
    cache = Path(cache_dir or os.environ.get("ASTROZOO_DATA_CACHE", "data_cache"))
    d = cache / f"photoz_lsst_{name}_n{n}_s{seed}"
    if (d / "done").is_file():
        return {p.stem: np.load(p, mmap_mode="r" if p.stem == "images" else None)
                for p in d.glob("*.npy")}
    data = simulate(n, seed, workers)
    d.mkdir(parents=True, exist_ok=True)
    for k, v in data.items():
        np.save(d / f"{k}.npy", v)
    (d / "done").touch()
    return data
