"""Seeded GalSim simulator of LSST-like g, r, i cutouts of five morphology classes, with truth.

Classes, defined by how the scene is built (so that the simulator assigns them unambiguously):

- ``smooth``: a single Sersic (n 2.5-6), or a bulge-dominated de Vaucouleurs bulge + inclined
  exponential disk with bulge-to-total B/T 0.7-1;
- ``disk``: an inclined exponential disk (`galsim.InclinedExponential`, inclination 0-70 deg)
  with a de Vaucouleurs bulge, B/T 0-0.3;
- ``edge-on``: a `galsim.InclinedExponential` disk at inclination 80-90 deg, half of them with
  a small bulge (B/T <= 0.15);
- ``clumpy``: an inclined exponential disk (0-70 deg) plus `galsim.RandomKnots` star-forming
  clumps carrying 40-70 % of the r-band flux (B/T <= 0.15);
- ``merger``: two galaxies (each a ``smooth`` or a ``disk`` galaxy) separated by 0.5-2 x the
  larger half-light radius (and by at least `MIN_MERGER_SEP`, so both nuclei are resolved), flux
  ratio 1-4.

Regression truth, measured on the noiseless r-band scene before PSF convolution:

- ``bulge_fraction``: r-band flux of the bulges (de Vaucouleurs bulges and single Sersic
  spheroids, which count as all bulge) over the total r-band flux of the scene (knots count as
  disk light);
- ``r_half_arcsec``: radius of the circular aperture centred on the cutout centre that holds
  half of the total r-band flux (to infinity; Sersic profiles are truncated at 8 half-light
  radii by construction). It is the flux-weighted median radius of 60,000 photons shot from the
  scene (GalSim photon shooting; the inclined disks, which GalSim cannot shoot, are sampled in
  3D from the same exponential x sech^2 density and projected), precise to ~0.5 %.

Observation: the ``lsst`` survey preset (`astrozoo.surveys`): 0.2" pixels, 64 x 64 stamps in nJy,
a per-object GalSim PSF per band (the preset's families and seeing range; `SURVEY.draw_psf`) and
the preset's coadd noise (sky + read noise + source shot noise, `SURVEY.add_noise`) scaled by a
per-object depth factor (noise sigma x 0.8-1.25: coadds a little shallower or deeper than 10
years). The shifted set (``shifted=True``) uses Kolmogorov PSFs with poorer seeing (FWHM factor
0.9-1.6) and noisier images (noise sigma x 1.4-2.0).

Every object is drawn from its own generator spawned from ``seed``, so a set is reproducible
object by object whatever the chunking.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy.table import Table

from astrozoo.surveys import get_survey

__all__ = ["SURVEY", "BANDS", "PIXEL_SCALE", "SIZE", "CLASSES", "MIN_MERGER_SEP", "simulate",
           "scene_truth"]

SURVEY = get_survey("lsst")
BANDS = ("g", "r", "i")
PIXEL_SCALE = SURVEY.pixel_scale
SIZE = 64
CLASSES = ("smooth", "disk", "edge-on", "clumpy", "merger")
#: Smallest centre-to-centre separation of a merger's galaxies, arcsec (~1.4 x median r seeing).
MIN_MERGER_SEP = 1.0
MAG_R = (18.0, 22.0)  # total r-band magnitude of the scene
HLR = (0.6, 2.2)  # half-light radius (arcsec) of a galaxy's main component, log-uniform
N_PHOTONS = 60_000
_R = BANDS.index("r")
_TRUNC = 8.0  # Sersic truncation radius in half-light radii
_HLR_EXP = 1.6783469900166608  # half-light radius of a face-on exponential in scale lengths
_N_GRID = 0.05  # Sersic indices are drawn on this grid, so GalSim's per-n tables are reused


@lru_cache(maxsize=1)
def _gsparams():
    import galsim

    return galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3,
                           maximum_fft_size=16384)


class _Component:
    """One light component: a unit-flux GalSim profile (before rotation and shift), its fluxes
    in `BANDS` (nJy), whether it is bulge light, and its inclined-disk parameters (to sample
    photons of the profiles GalSim cannot shoot)."""

    def __init__(self, profile, fluxes, bulge: bool, beta: float = 0.0, disk=None):
        self.profile, self.fluxes, self.bulge, self.beta = profile, np.asarray(fluxes), bulge, beta
        self.disk = disk  # (half_light_radius, h_over_r, inclination rad) of an inclined disk
        self.shift = np.zeros(2)

    def placed(self):
        import galsim

        return self.profile.rotate(self.beta * galsim.radians).shift(*self.shift)

    def photons(self, n: int, rng: np.random.Generator, gs_rng) -> np.ndarray:
        """(2, n) positions (arcsec) of photons drawn from the placed unit-flux profile."""
        if self.disk is not None:
            hlr, h_over_r, inc = self.disk
            h = hlr / _HLR_EXP
            rad = rng.gamma(2.0, h, n)  # surface density ~ exp(-R/h): R dR weight
            phi = rng.uniform(0, 2 * np.pi, n)
            z = h_over_r * h * np.arctanh(np.clip(2 * rng.uniform(size=n) - 1, -1 + 1e-12, 1 - 1e-12))
            x = rad * np.cos(phi)
            y = rad * np.sin(phi) * np.cos(inc) + z * np.sin(inc)  # inclined about the x axis
        else:
            import galsim

            ph = self.profile.shoot(n, gs_rng)
            x, y = np.asarray(ph.x), np.asarray(ph.y)
        c, s = np.cos(self.beta), np.sin(self.beta)
        return np.stack([c * x - s * y + self.shift[0], s * x + c * y + self.shift[1]])


def _fluxes(flux_r: float, gr: float, ri: float) -> np.ndarray:
    """Fluxes (nJy) in g, r, i of a component of r-band flux `flux_r` and colours g-r, r-i."""
    m_r = SURVEY.zero_point - 2.5 * np.log10(flux_r)
    return SURVEY.flux([m_r + gr, m_r, m_r - ri])


def _red(rng):
    return rng.uniform(0.6, 1.1), rng.uniform(0.25, 0.5)


def _blue(rng):
    return rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.35)


def _knot_colour(rng):
    return rng.uniform(-0.2, 0.35), rng.uniform(-0.15, 0.2)


def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _sersic(n, hlr, q, beta, flux_r, colour):
    import galsim

    n = float(np.round(n / _N_GRID) * _N_GRID)
    prof = galsim.Sersic(n=n, half_light_radius=hlr, trunc=_TRUNC * hlr, gsparams=_gsparams())
    return _Component(prof.shear(q=q, beta=0 * galsim.radians), _fluxes(flux_r, *colour), True,
                      beta)


def _bulge(hlr, q, beta, flux_r, colour):
    return _sersic(4.0, hlr, q, beta, flux_r, colour)


def _disk(hlr, inc_deg, beta, flux_r, colour, h_over_r):
    import galsim

    inc = np.radians(inc_deg)
    prof = galsim.InclinedExponential(inclination=inc * galsim.radians, half_light_radius=hlr,
                                      scale_h_over_r=h_over_r, gsparams=_gsparams())
    return _Component(prof, _fluxes(flux_r, *colour), False, beta, disk=(hlr, h_over_r, inc))


def _inclination(rng, lo, hi):
    """Inclination (deg) for random orientations (uniform in cos i) between lo and hi."""
    c = rng.uniform(np.cos(np.radians(hi)), np.cos(np.radians(lo)))
    return float(np.degrees(np.arccos(c)))


def _bulge_disk(rng, flux, hlr, bt, inc_deg, meta, bulge_hlr_frac=(0.2, 0.5)):
    """Bulge (fraction `bt` of `flux`) + inclined disk of half-light radius `hlr`."""
    beta = rng.uniform(0, np.pi)
    comps = [_disk(hlr, inc_deg, beta, flux * (1 - bt), _blue(rng), rng.uniform(0.08, 0.2))]
    if bt > 0:
        q_b = rng.uniform(0.6, 1.0)
        comps.append(_bulge(max(0.1, hlr * rng.uniform(*bulge_hlr_frac)), q_b, beta + rng.normal(0, 0.1),
                            flux * bt, _red(rng)))
    meta.update(inclination=inc_deg)
    return comps


def _smooth(rng, flux, hlr, meta):
    if rng.uniform() < 0.5:
        n = rng.uniform(2.5, 6.0)
        meta.update(sersic_n=float(np.round(n / _N_GRID) * _N_GRID))
        return [_sersic(n, hlr, rng.uniform(0.5, 1.0), rng.uniform(0, np.pi), flux, _red(rng))]
    # bulge-dominated: the bulge has half-light radius hlr, the faint disk is larger
    bt = rng.uniform(0.7, 1.0)
    beta = rng.uniform(0, np.pi)
    inc = _inclination(rng, 0, 85)
    return [_bulge(hlr, rng.uniform(0.5, 1.0), beta, flux * bt, _red(rng)),
            _disk(hlr * rng.uniform(1.5, 3.0), inc, beta + rng.normal(0, 0.2), flux * (1 - bt),
                  _blue(rng), rng.uniform(0.08, 0.2))]


def _disky(rng, flux, hlr, meta):
    return _bulge_disk(rng, flux, hlr, rng.uniform(0, 0.3), _inclination(rng, 0, 70), meta)


def _edge_on(rng, flux, hlr, meta):
    bt = rng.uniform(0.02, 0.15) if rng.uniform() < 0.5 else 0.0
    return _bulge_disk(rng, flux, hlr, bt, rng.uniform(80, 90), meta)


def _clumpy(rng, flux, hlr, meta):
    import galsim

    f_knots = rng.uniform(0.4, 0.7)
    bt = rng.uniform(0, 0.15) if rng.uniform() < 0.5 else 0.0
    inc = _inclination(rng, 0, 70)
    comps = _bulge_disk(rng, flux * (1 - f_knots), hlr, bt / (1 - f_knots), inc, meta)
    n_knots = int(rng.integers(6, 31))
    knots = galsim.RandomKnots(n_knots, half_light_radius=hlr * rng.uniform(0.7, 1.2), flux=1.0,
                               rng=galsim.BaseDeviate(int(rng.integers(1, 2 ** 31))),
                               gsparams=_gsparams())
    # the clumps lie in the disk: projected with its axis ratio and position angle
    q = max(np.cos(np.radians(inc)), 0.2)
    comps.append(_Component(knots.shear(q=q, beta=0 * galsim.radians),
                            _fluxes(flux * f_knots, *_knot_colour(rng)), False, comps[0].beta))
    meta.update(knot_fraction=f_knots, n_knots=n_knots)
    return comps


def _merger(rng, flux, meta):
    ratio = _log_uniform(rng, 1.0, 4.0)
    f1 = flux * ratio / (1 + ratio)
    f2 = flux - f1
    for _ in range(100):
        h1, h2 = _log_uniform(rng, 0.5, 2.0), _log_uniform(rng, 0.4, 2.0)
        sep = rng.uniform(0.5, 2.0) * max(h1, h2)
        if sep >= MIN_MERGER_SEP:
            break
    galaxies = []
    for f, h in ((f1, h1), (f2, h2)):
        build = _smooth if rng.uniform() < 0.5 else _disky
        galaxies.append(build(rng, f, h, {}))
    # the flux-weighted centre of the pair at the origin
    a = rng.uniform(0, 2 * np.pi)
    u = np.array([np.cos(a), np.sin(a)])
    for comp in galaxies[0]:
        comp.shift = -sep * f2 / flux * u
    for comp in galaxies[1]:
        comp.shift = sep * f1 / flux * u
    meta.update(separation=sep, flux_ratio=ratio, hlr_second=h2)
    return galaxies[0] + galaxies[1], h1


def scene_truth(comps, rng: np.random.Generator, n_photons: int = N_PHOTONS) -> tuple[float, float]:
    """``(bulge_fraction, r_half_arcsec)`` of placed components (r band, before the PSF)."""
    import galsim

    f_r = np.array([c.fluxes[_R] for c in comps])
    bt = float(f_r[[c.bulge for c in comps]].sum() / f_r.sum())
    counts = rng.multinomial(n_photons, f_r / f_r.sum())
    gs_rng = galsim.BaseDeviate(int(rng.integers(1, 2 ** 31)))
    pos = np.concatenate([c.photons(k, rng, gs_rng) for c, k in zip(comps, counts) if k], 1)
    return bt, float(np.median(np.hypot(*pos)))


def _render(comps, psf_params, depth: float, rng) -> np.ndarray:
    import galsim

    out = np.empty((len(BANDS), SIZE, SIZE), np.float32)
    placed = [c.placed() for c in comps]
    for b, psf in enumerate(SURVEY.psfs(BANDS, psf_params, gsparams=_gsparams())):
        scene = galsim.Sum([p * float(c.fluxes[b]) for p, c in zip(placed, comps)])
        out[b] = galsim.Convolve(scene, psf).drawImage(nx=SIZE, ny=SIZE, scale=PIXEL_SCALE).array
    noisy = SURVEY.add_noise(out, BANDS, rng)
    return (out + depth * (noisy - out)).astype(np.float32)


_META_COLS = ("bulge_fraction", "r_half_arcsec", "mag_r", "hlr", "sersic_n", "inclination",
              "knot_fraction", "n_knots", "separation", "flux_ratio", "hlr_second", "seeing_r",
              "depth_factor")


def _one(rng, cls, shifted):
    meta: dict = {}
    mag_r = rng.uniform(*MAG_R)
    flux = float(SURVEY.flux(mag_r))
    hlr = _log_uniform(rng, *HLR)
    if cls == "smooth":
        comps = _smooth(rng, flux, hlr, meta)
    elif cls == "disk":
        comps = _disky(rng, flux, hlr, meta)
    elif cls == "edge-on":
        comps = _edge_on(rng, flux, hlr, meta)
    elif cls == "clumpy":
        comps = _clumpy(rng, flux, hlr, meta)
    else:
        comps, hlr = _merger(rng, flux, meta)
    offset = rng.uniform(-0.5, 0.5, 2) * PIXEL_SCALE  # sub-pixel centroid offset
    for c in comps:
        c.shift = c.shift + offset
    if shifted:
        psf = SURVEY.draw_psf(rng, families=("kolmogorov",), seeing_factor=(0.9, 1.6),
                              ellipticity_sigma=0.04)
        depth = rng.uniform(1.4, 2.0)
    else:
        psf = SURVEY.draw_psf(rng)
        depth = rng.uniform(0.8, 1.25)
    bt, r_half = scene_truth(comps, rng)
    img = _render(comps, psf, depth, rng)
    meta.update(bulge_fraction=bt, r_half_arcsec=r_half, mag_r=mag_r, hlr=hlr,
                seeing_r=float(SURVEY.seeing("r")[0] * psf["fwhm_factor"]), depth_factor=depth,
                psf=psf["family"])
    return img, meta


def simulate(n: int, seed: int, *, shifted: bool = False, classes=CLASSES):
    """Simulate `n` LSST-like g, r, i cutouts, classes drawn with equal probability.

    Parameters
    ----------
    n : int
        Number of cutouts.
    seed : int
        Seed; object ``i`` depends only on ``(seed, i, shifted)``.
    shifted : bool
        Shifted observing conditions: Kolmogorov PSFs, poorer seeing, noisier images.
    classes : sequence of str
        Draw only these classes (default all of `CLASSES`, equally likely).

    Returns
    -------
    images : np.ndarray
        float32 (n, 3, 64, 64), fluxes in nJy per pixel, bands `BANDS`.
    targets : np.ndarray
        float32 (n, 3): class index (into `CLASSES`), ``bulge_fraction``, ``r_half_arcsec``.
    meta : astropy.table.Table
        One row per cutout: ``label`` (class name), ``psf`` family and the drawn parameters
        (NaN where unused).
    """
    bad = [c for c in classes if c not in CLASSES]
    if bad:
        raise ValueError(f"unknown classes {bad}; known: {CLASSES}")
    images = np.empty((n, len(BANDS), SIZE, SIZE), np.float32)
    targets = np.empty((n, 3), np.float32)
    rows = []
    for i, ss in enumerate(np.random.SeedSequence([seed, int(shifted)]).spawn(n)):
        rng = np.random.default_rng(ss)
        cls = str(classes[rng.integers(len(classes))])
        images[i], meta = _one(rng, cls, shifted)
        targets[i] = (CLASSES.index(cls), meta["bulge_fraction"], meta["r_half_arcsec"])
        rows.append({"label": cls, **meta})
    meta_t = Table({"label": [r["label"] for r in rows], "psf": [r["psf"] for r in rows]})
    for c in _META_COLS:
        meta_t[c] = np.array([r.get(c, np.nan) for r in rows], dtype=float)
    return images, targets, meta_t
