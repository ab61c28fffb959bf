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

Observation: the ``lsst`` survey preset (`astrozoo.surveys`): 0.2 arcsec pixels, 64x64 stamps,
pixel values in nJy, a Kolmogorov PSF per band with the preset's FWHM times a per-object factor
0.9-1.15, and the preset's 10-year coadd noise (sky and read noise plus the source's own Poisson
counts).
The cosmic mean redshift-magnitude relation is the only source of the prior; there is no IGM
absorption (CWW templates as shipped).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...surveys import get_survey

__all__ = ["SURVEY", "BANDS", "PIXEL_SCALE", "STAMP_SIZE", "template_mags", "sample_population",
           "render", "simulate", "load_or_simulate"]

SURVEY = get_survey("lsst")
BANDS = SURVEY.bands
PIXEL_SCALE = SURVEY.pixel_scale
STAMP_SIZE = 64

TEMPLATES = ("E", "Sbc", "Scd", "Im")
Z_MIN, Z_MAX = 0.02, 3.0
I_MIN, I_MAX = 19.0, 25.3
_ZGRID = np.linspace(0.0, Z_MAX, 601)
CHUNK = 500  # objects per random stream: results do not depend on the number of workers


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
    flux_i = SURVEY.flux(i_mag)
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
    seeing = SURVEY.seeing(BANDS)
    return dict(z=z, i_mag=i_mag, bt=bt, bulge_flux=bulge_flux, disk_flux=disk_flux,
                disk_hlr=disk_hlr, bulge_hlr=bulge_hlr, disk_q=disk_q,
                bulge_q=rng.uniform(0.6, 1.0, n), beta=rng.uniform(0, np.pi, n),
                offset=rng.uniform(-0.5, 0.5, (n, 2)),
                psf_fwhm=seeing[None, :] * rng.uniform(0.9, 1.15, (n, 1)))


def render(params: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Noisy ugrizy stamps (N, 6, 64, 64) float32 in nJy for a population from
    `sample_population`."""
    import galsim

    from ...surveys import psf_profile

    gsp = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)
    n = len(params["z"])
    out = np.empty((n, len(BANDS), STAMP_SIZE, STAMP_SIZE), np.float32)
    for k in range(n):
        beta = params["beta"][k] * galsim.radians
        bulge = galsim.DeVaucouleurs(half_light_radius=params["bulge_hlr"][k], gsparams=gsp) \
            .shear(q=params["bulge_q"][k], beta=beta)
        disk = galsim.Exponential(half_light_radius=params["disk_hlr"][k], gsparams=gsp) \
            .shear(q=params["disk_q"][k], beta=beta)
        for b in range(len(BANDS)):
            gal = (bulge.withFlux(params["bulge_flux"][k, b])
                   + disk.withFlux(params["disk_flux"][k, b]))
            psf = psf_profile("kolmogorov", params["psf_fwhm"][k, b], gsparams=gsp)
            img = galsim.Convolve(gal, psf).drawImage(
                nx=STAMP_SIZE, ny=STAMP_SIZE, scale=PIXEL_SCALE, offset=tuple(params["offset"][k]))
            out[k, b] = img.array
    return SURVEY.add_noise(out, BANDS, rng)


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
        ``images`` (n, 6, 64, 64) float32 nJy and the per-object parameters of
        `sample_population`.
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
    return out


def load_or_simulate(name: str, n: int, seed: int, cache_dir: str | Path | None = None,
                     workers: int = 1) -> dict[str, np.ndarray]:
    """`simulate`, cached by `astrozoo.training.cache.cached` (images memory-mapped)."""
    from ...training.cache import cached

    # v2: the survey preset's noise model
    return cached(f"photoz_lsst_v2_{name}_n{n}_s{seed}", lambda: simulate(n, seed, workers),
                  cache_dir)
