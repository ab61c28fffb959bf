"""Seeded GalSim simulator of blended LSST-like g, r, i scenes with truth segmentation.

A scene (128 x 128 pixels by default, 0.2"/pixel) holds 1-6 galaxies and 0-2 stars:

- galaxies: a de Vaucouleurs bulge (red) plus an exponential disk (blue), bulge-to-total
  uniform in 0-1, disk half-light radius log-uniform in 0.3-1.5", bulge 0.2-0.6 of it, disk
  axis ratio 0.25-1, r magnitude uniform in 20-25.5;
- placement: the first galaxy near the centre; each further one, with probability
  ``close_fraction`` (0.6), next to a galaxy already placed at a separation of 0.35-1 x the sum
  of their half-light radii (a close pair, at least `MIN_SEP`), otherwise anywhere at least 6
  pixels from the edge;
- stars (a point source through the PSF): none in 60 % of scenes, one in 30 %, two in 10 %,
  r magnitude 18-24, with stellar colours.

Observation: one PSF per scene per band from the ``lsst`` preset (`SURVEY.draw_psf`), the
preset's coadd noise (sky + read + source shot noise) scaled by a depth factor 0.8-1.25.

Truth (shared/README section 1): on the band-summed noiseless images, each pixel belongs to the
object contributing most flux there, among the objects whose own flux there exceeds 1 sigma of
the summed image's sky noise; background 0. An object left with fewer than `MIN_PIXELS` truth
pixels is not a source of the scene (its light stays in the image, as an undetectable neighbour
would). Labels are 1..k in the order the objects were drawn.

Every scene is drawn from its own generator spawned from ``seed``, so a set is reproducible
scene by scene whatever the chunking.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy.table import Table

from astrozoo.surveys import get_survey

__all__ = ["SURVEY", "BANDS", "PIXEL_SCALE", "SIZE", "MAX_GALAXIES", "MIN_PIXELS", "MIN_SEP",
           "simulate", "simulate_field", "truth_segmentation", "summed_sky_sigma"]

SURVEY = get_survey("lsst")
BANDS = ("g", "r", "i")
PIXEL_SCALE = SURVEY.pixel_scale
SIZE = 128
MAX_GALAXIES = 6
#: Fewest truth pixels of a source; fainter or wholly covered objects are not counted.
MIN_PIXELS = 5
#: Smallest separation of a close pair, arcsec (about the median r-band PSF FWHM).
MIN_SEP = 0.6
MAG_R = (20.0, 25.5)
STAR_MAG_R = (18.0, 24.0)
HLR = (0.3, 1.5)
_EDGE = 6  # pixels: galaxies placed at random keep their centres this far from the edge


@lru_cache(maxsize=1)
def _gsparams():
    import galsim

    return galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)


def summed_sky_sigma(depth: float = 1.0) -> float:
    """Sky noise sigma of the band-summed image (nJy/pixel) at a depth factor."""
    return float(depth * np.sqrt((SURVEY.sky_sigma(BANDS) ** 2).sum()))


def _fluxes(mag_r: float, gr: float, ri: float) -> np.ndarray:
    return SURVEY.flux([mag_r + gr, mag_r, mag_r - ri])


def _galaxy(rng):
    """(profile per band as (bulge, disk, bulge fluxes, disk fluxes), meta) of one galaxy."""
    import galsim

    mag_r = rng.uniform(*MAG_R)
    hlr = float(np.exp(rng.uniform(*np.log(HLR))))
    bt = rng.uniform(0, 1)
    beta = rng.uniform(0, np.pi) * galsim.radians
    disk = galsim.Exponential(half_light_radius=hlr, gsparams=_gsparams()).shear(
        q=rng.uniform(0.25, 1.0), beta=beta)
    bulge = galsim.DeVaucouleurs(half_light_radius=max(0.08, hlr * rng.uniform(0.2, 0.6)),
                                 gsparams=_gsparams()).shear(q=rng.uniform(0.6, 1.0), beta=beta)
    flux_r = float(SURVEY.flux(mag_r))
    m_b = SURVEY.zero_point - 2.5 * np.log10(max(flux_r * bt, 1e-30))
    m_d = SURVEY.zero_point - 2.5 * np.log10(max(flux_r * (1 - bt), 1e-30))
    f_bulge = _fluxes(m_b, rng.uniform(0.6, 1.1), rng.uniform(0.25, 0.5)) * (bt > 0)
    f_disk = _fluxes(m_d, rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.35)) * (bt < 1)
    profiles = [bulge * float(fb) + disk * float(fd) for fb, fd in zip(f_bulge, f_disk)]
    return profiles, {"kind": "galaxy", "mag_r": mag_r, "hlr": hlr, "bulge_fraction": bt}


def _star(rng):
    import galsim

    mag_r = rng.uniform(*STAR_MAG_R)
    f = _fluxes(mag_r, rng.uniform(0.3, 1.4), rng.uniform(0.1, 0.6))
    return ([galsim.DeltaFunction(flux=float(fb)) for fb in f],
            {"kind": "star", "mag_r": mag_r, "hlr": 0.0, "bulge_fraction": np.nan})


def _positions(rng, hlrs, close_fraction):
    """Centres (arcsec from the scene centre) of the galaxies with half-light radii `hlrs`."""
    half = SIZE / 2 * PIXEL_SCALE
    free = half - _EDGE * PIXEL_SCALE
    pos = [rng.uniform(-0.25, 0.25, 2) * 2 * half * 0.5]
    for k in range(1, len(hlrs)):
        for _ in range(50):
            if rng.uniform() < close_fraction:
                j = int(rng.integers(k))
                sep = max(MIN_SEP, rng.uniform(0.35, 1.0) * (hlrs[j] + hlrs[k]))
                a = rng.uniform(0, 2 * np.pi)
                p = pos[j] + sep * np.array([np.cos(a), np.sin(a)])
            else:
                p = rng.uniform(-free, free, 2)
            # every centre inside the scene and no two closer than MIN_SEP
            if np.all(np.abs(p) < free) and min(np.hypot(*(p - q)) for q in pos) >= MIN_SEP:
                break
        pos.append(p)
    return pos


def truth_segmentation(models: np.ndarray, sigma: float, min_pixels: int = MIN_PIXELS):
    """Truth map of per-object band-summed noiseless images `models` (K, H, W).

    Returns
    -------
    segmap : np.ndarray
        int16 (H, W): 0 background, else 1 + the index of the object (objects with fewer than
        `min_pixels` pixels removed, the rest relabelled 1..k in object order).
    kept : np.ndarray
        Indices of the objects that are sources (label ``i + 1`` is object ``kept[i]``).
    """
    bright = np.where(models > sigma, models, -np.inf)
    owner = bright.argmax(0)
    seg = np.where(np.isfinite(bright.max(0)), owner + 1, 0)
    counts = np.bincount(seg.ravel(), minlength=len(models) + 1)[1:]
    kept = np.flatnonzero(counts >= min_pixels)
    relabel = np.zeros(len(models) + 1, np.int16)
    relabel[kept + 1] = np.arange(1, len(kept) + 1)
    return relabel[seg], kept


def _scene(rng, close_fraction, size, n_galaxies, star_probabilities):
    import galsim

    n_gal = int(rng.integers(1, MAX_GALAXIES + 1)) if n_galaxies is None else n_galaxies
    n_star = int(rng.choice(len(star_probabilities), p=star_probabilities))
    objects = [_galaxy(rng) for _ in range(n_gal)]
    pos = _positions(rng, [m["hlr"] for _, m in objects], close_fraction)
    half = (size / 2 - 2) * PIXEL_SCALE
    for _ in range(n_star):
        objects.append(_star(rng))
        pos.append(rng.uniform(-half, half, 2))
    pos = [p + rng.uniform(-0.5, 0.5, 2) * PIXEL_SCALE for p in pos]  # sub-pixel offsets
    psf_params = SURVEY.draw_psf(rng)
    psfs = SURVEY.psfs(BANDS, psf_params, gsparams=_gsparams())
    depth = rng.uniform(0.8, 1.25)
    models = np.zeros((len(objects), len(BANDS), size, size), np.float32)
    for k, ((profiles, _), p) in enumerate(zip(objects, pos)):
        for b, psf in enumerate(psfs):
            conv = galsim.Convolve(profiles[b].shift(*p), psf)
            models[k, b] = conv.drawImage(nx=size, ny=size, scale=PIXEL_SCALE).array
    noiseless = models.sum(0)
    noisy = SURVEY.add_noise(noiseless, BANDS, rng)
    image = (noiseless + depth * (noisy - noiseless)).astype(np.float32)
    sigma = summed_sky_sigma(depth)
    summed = models.sum(1)
    seg, kept = truth_segmentation(summed, sigma)
    var = (depth * SURVEY.sky_sigma(BANDS)) ** 2
    snr = np.sqrt((models ** 2 / var[None, :, None, None]).sum((1, 2, 3)))
    centre = (size - 1) / 2
    rows = []
    for k, ((_, meta), p) in enumerate(zip(objects, pos)):
        label = int(np.searchsorted(kept, k) + 1) if k in kept else 0
        rows.append({**meta, "x": centre + p[0] / PIXEL_SCALE, "y": centre + p[1] / PIXEL_SCALE,
                     "flux": float(summed[k].sum()), "snr": float(snr[k]), "label": label})
    scene = {"n_sources": len(kept), "n_galaxies": int(sum(1 for k in kept if k < n_gal)),
             "n_stars": int(sum(1 for k in kept if k >= n_gal)), "n_drawn": len(objects),
             "seeing_r": float(SURVEY.seeing("r")[0] * psf_params["fwhm_factor"]),
             "depth_factor": depth, "sky_sigma": sigma}
    return image, seg, scene, rows


def simulate(n: int, seed: int, *, size: int = SIZE, close_fraction: float = 0.6,
             n_galaxies: int | None = None, star_probabilities=(0.6, 0.3, 0.1)):
    """Simulate `n` blended scenes.

    Parameters
    ----------
    n : int
        Number of scenes.
    seed : int
        Scene ``i`` depends only on ``(seed, i)`` (and `size`, `close_fraction`).
    size : int
        Scene side, pixels.
    close_fraction : float
        Probability that each further galaxy is placed as a close pair.
    n_galaxies : int, optional
        Galaxies drawn per scene (default uniform in 1-`MAX_GALAXIES`).
    star_probabilities : sequence of float
        Probabilities of 0, 1, 2, ... stars per scene.

    Returns
    -------
    images : np.ndarray
        float32 (n, 3, size, size), fluxes in nJy per pixel, bands `BANDS`.
    segmaps : np.ndarray
        int16 (n, size, size) truth segmentation (see the module docstring).
    meta : astropy.table.Table
        One row per scene: ``n_sources`` (truth labels), ``n_galaxies``, ``n_stars``,
        ``n_drawn`` (objects drawn, counted or not), ``seeing_r``, ``depth_factor``,
        ``sky_sigma`` (of the band-summed image, nJy). ``meta.meta["objects"]`` is a Table
        with one row per drawn object: ``scene``, ``label`` (0: not a source), ``kind``,
        ``x``, ``y`` (0-based pixels), ``mag_r``, ``hlr``, ``bulge_fraction``, ``flux``
        (band-summed, nJy) and ``snr`` (matched-filter S/N over the three bands).
    """
    images = np.empty((n, len(BANDS), size, size), np.float32)
    segmaps = np.empty((n, size, size), np.int16)
    scenes, objects = [], []
    for i, ss in enumerate(np.random.SeedSequence([seed, size]).spawn(n)):
        rng = np.random.default_rng(ss)
        images[i], segmaps[i], scene, rows = _scene(rng, close_fraction, size, n_galaxies,
                                                   star_probabilities)
        scenes.append(scene)
        objects += [{"scene": i, **r} for r in rows]
    meta = Table(rows=scenes, names=list(scenes[0]))
    obj = Table(rows=[[r[c] for c in objects[0]] for r in objects], names=list(objects[0]))
    meta.meta["objects"] = obj
    return images, segmaps, meta


def simulate_field(size: int, seed: int, *, density: float = 3.0, stamp: int = 96):
    """A survey-image-sized field (``size`` x ``size``) with the scenes' galaxies and stars,
    `density` galaxies per 128 x 128 pixels (placed as in `simulate`: 60 % in close pairs),
    and its truth map, for the tiled path (`astrozoo.tasks.deblending.segment`).

    Objects are drawn on `stamp`-pixel stamps and the truth is built incrementally (the owner
    of a pixel is the brightest object above 1 sigma there), so memory stays ~ a few images.

    Returns
    -------
    image : np.ndarray
        float32 (3, size, size) in nJy, bands `BANDS`.
    segmap : np.ndarray
        int32 (size, size) truth map (labels 1..k in drawing order).
    objects : astropy.table.Table
        ``label`` (0: not a source), ``kind``, ``x``, ``y``, ``mag_r``, ``hlr``, ``flux``.
    """
    import galsim

    rng = np.random.default_rng(np.random.SeedSequence([seed, size, 7]))
    n_gal = rng.poisson(density * (size / SIZE) ** 2)
    half = size / 2 * PIXEL_SCALE - _EDGE * PIXEL_SCALE
    pos, hlrs, objects = [], [], []
    for k in range(n_gal):
        obj = _galaxy(rng)
        p = None
        if k and rng.uniform() < 0.6:
            j = int(rng.integers(k))
            sep = max(MIN_SEP, rng.uniform(0.35, 1.0) * (hlrs[j] + obj[1]["hlr"]))
            a = rng.uniform(0, 2 * np.pi)
            p = pos[j] + sep * np.array([np.cos(a), np.sin(a)])
            if np.any(np.abs(p) > half):
                p = None
        pos.append(rng.uniform(-half, half, 2) if p is None else p)
        hlrs.append(obj[1]["hlr"])
        objects.append(obj)
    for _ in range(rng.poisson(0.5 * (size / SIZE) ** 2)):
        objects.append(_star(rng))
        pos.append(rng.uniform(-half, half, 2))
    psfs = SURVEY.psfs(BANDS, SURVEY.draw_psf(rng), gsparams=_gsparams())
    sigma = summed_sky_sigma(1.0)
    image = np.zeros((len(BANDS), size, size), np.float32)
    best = np.zeros((size, size), np.float32)
    owner = np.zeros((size, size), np.int32)
    centre = (size - 1) / 2
    rows = []
    for k, ((profiles, meta), p) in enumerate(zip(objects, pos)):
        x, y = centre + p[0] / PIXEL_SCALE, centre + p[1] / PIXEL_SCALE
        x0, y0 = int(round(x)) - stamp // 2, int(round(y)) - stamp // 2
        ya, yb, xa, xb = max(y0, 0), min(y0 + stamp, size), max(x0, 0), min(x0 + stamp, size)
        summed = np.zeros((yb - ya, xb - xa), np.float32)
        for b, psf in enumerate(psfs):
            # the stamp's pixel (i, j) is image pixel (y0 + i, x0 + j): offset the profile there
            dx, dy = (x - (x0 + (stamp - 1) / 2)) * PIXEL_SCALE, (y - (y0 + (stamp - 1) / 2)) * PIXEL_SCALE
            arr = galsim.Convolve(profiles[b].shift(dx, dy), psf).drawImage(
                nx=stamp, ny=stamp, scale=PIXEL_SCALE).array[ya - y0:yb - y0, xa - x0:xb - x0]
            image[b, ya:yb, xa:xb] += arr
            summed += arr
        win = (summed > sigma) & (summed > best[ya:yb, xa:xb])
        best[ya:yb, xa:xb][win] = summed[win]
        owner[ya:yb, xa:xb][win] = k + 1
        rows.append({**meta, "x": x, "y": y, "flux": float(summed.sum())})
    noisy = SURVEY.add_noise(image, BANDS, rng)
    counts = np.bincount(owner.ravel(), minlength=len(objects) + 1)
    kept = np.flatnonzero(counts[1:] >= MIN_PIXELS)
    relabel = np.zeros(len(objects) + 1, np.int32)
    relabel[kept + 1] = np.arange(1, len(kept) + 1)
    for k, r in enumerate(rows):
        r["label"] = int(relabel[k + 1])
    table = Table(rows=[[r[c] for c in rows[0]] for r in rows], names=list(rows[0]))
    return noisy, relabel[owner], table
