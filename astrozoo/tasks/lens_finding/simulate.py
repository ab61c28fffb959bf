"""Seeded simulator of LSST-like g, r, i cutouts of strong lenses and of the galaxies that mimic them.

Lensing and light profiles come from lenstronomy (SIE + external shear, elliptical Sersic); depth,
noise, seeing and PSF families from the ``lsst`` survey preset (`astrozoo.surveys`). Scenes are
rendered on a 2x supersampled grid, convolved with a per-object, per-band GalSim PSF, binned to
the survey's pixels and given sky + source shot noise. Pixels are fluxes in nJy.

Positives are SIE + shear lenses with red elliptical lens light and blue, clumpy lensed sources,
kept only when the lensed arcs are detectable. Negatives are the look-alikes a real search meets:
lone ellipticals, ellipticals with unlensed companions, disks and spirals, pairs and mergers with
tidal tails, and ring galaxies. Training PSFs are the preset's families (Gaussian, Moffat, core +
halo); the shifted set (``shifted=True``) uses Kolmogorov PSFs, poorer seeing and knot-dominated irregular sources.

Every object is drawn from its own generator spawned from ``seed``, so a set is reproducible
object by object whatever the chunking.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy.table import Table

from astrozoo.surveys import get_survey

__all__ = ["SURVEY", "BANDS", "PIXEL_SCALE", "SIZE", "NEGATIVE_KINDS", "simulate"]

SURVEY = get_survey("lsst")
BANDS = ("g", "r", "i")
PIXEL_SCALE = SURVEY.pixel_scale
SIZE = 64
NEGATIVE_KINDS = ("elliptical", "companions", "spiral", "merger", "ring")
_NEG_PROBS = (0.25, 0.2, 0.2, 0.17, 0.18)

_SUPER = 2  # supersampling factor of the rendering grid
_FINE = SIZE * _SUPER
_FINE_SCALE = PIXEL_SCALE / _SUPER
_KERNEL = 51  # PSF kernel side on the fine grid (5.1")
_c = (np.arange(_FINE) - (_FINE - 1) / 2) * _FINE_SCALE
_X, _Y = np.meshgrid(_c, _c)
_XF, _YF = _X.ravel(), _Y.ravel()
_mag_to_njy = SURVEY.flux


@lru_cache(maxsize=None)
def _models():
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    return LensModel(["SIE", "SHEAR"]), LightModel(["SERSIC_ELLIPSE"])


def _e12(phi, q):
    from lenstronomy.Util.param_util import phi_q2_ellipticity

    return phi_q2_ellipticity(phi, q)


def _unit(img):
    s = img.sum()
    return img / s if s > 0 else img


def _sersic(x, y, r_eff, n, q, phi, cx=0.0, cy=0.0):
    """Elliptical Sersic sampled at (x, y), unnormalised."""
    e1, e2 = _e12(phi, q)
    kw = [{"amp": 1.0, "R_sersic": r_eff, "n_sersic": n, "e1": e1, "e2": e2,
           "center_x": cx, "center_y": cy}]
    return _models()[1].surface_brightness(x, y, kw)


def _sersic_img(r_eff, n, q, phi, cx=0.0, cy=0.0):
    return _unit(_sersic(_XF, _YF, r_eff, n, q, phi, cx, cy).reshape(_FINE, _FINE))


def _rotated(x, y, cx, cy, phi, q):
    """Coordinates in the frame of an ellipse (major axis along x'), y' stretched by 1/q."""
    dx, dy = x - cx, y - cy
    c, s = np.cos(phi), np.sin(phi)
    return c * dx + s * dy, (-s * dx + c * dy) / q


def _arc_img(cx, cy, radius, width, q, phi, phi0, span, rng, n_knots=0):
    """Ring or arc segment of `radius` (elliptical, axis ratio q), azimuthal span in radians.

    Knots (Gaussian clumps along the ridge) make it clumpy like star-forming rings and tails.
    """
    xr, yr = _rotated(_X, _Y, cx, cy, phi, q)
    r = np.hypot(xr, yr)
    ang = np.arctan2(yr, xr)
    img = np.exp(-0.5 * ((r - radius) / width) ** 2)
    if span < 2 * np.pi:
        d = np.angle(np.exp(1j * (ang - phi0)))  # wrapped to (-pi, pi]
        img *= np.exp(-0.5 * (np.maximum(np.abs(d) - span / 2, 0) / 0.15) ** 2)
    for _ in range(n_knots):
        a = phi0 + rng.uniform(-span / 2, span / 2)
        kx, ky = radius * np.cos(a), radius * q * np.sin(a)
        c, s = np.cos(phi), np.sin(phi)
        px, py = cx + c * kx - s * ky, cy + s * kx + c * ky
        img += rng.uniform(0.5, 2.0) * img.max() * np.exp(
            -0.5 * ((_X - px) ** 2 + (_Y - py) ** 2) / (width * 0.8) ** 2)
    return _unit(img)


def _spiral_img(r_eff, q, phi, rng):
    """Exponential disk with a two-arm logarithmic spiral modulation, seen at axis ratio q."""
    xr, yr = _rotated(_X, _Y, 0.0, 0.0, phi, q)
    r = np.hypot(xr, yr) + 1e-3
    theta = np.arctan2(yr, xr)
    pitch = np.tan(np.radians(rng.uniform(12, 30)))
    arms = rng.integers(2, 4)
    h = r_eff / 1.678
    mod = 1 + rng.uniform(0.4, 0.9) * np.cos(arms * (theta - np.log(r) / pitch) + rng.uniform(0, 6.3))
    return _unit(np.exp(-r / h) * mod)


def _colour(mag_ref, ref_band, gr, ri):
    """Fluxes (nJy) in BANDS from a magnitude in `ref_band` and g-r, r-i colours."""
    mags = {"r": 0.0, "g": gr, "i": -ri}
    off = mags[ref_band]
    return _mag_to_njy([mag_ref - off + mags[b] for b in BANDS])


def _red(rng, mag_i):
    return _colour(mag_i, "i", rng.uniform(0.9, 1.6), rng.uniform(0.35, 0.65))


def _blue(rng, mag_g):
    return _colour(mag_g, "g", rng.uniform(-0.15, 0.45), rng.uniform(-0.15, 0.3))


def _any_colour(rng, mag_r):
    return _colour(mag_r, "r", rng.uniform(-0.1, 1.5), rng.uniform(-0.1, 0.6))


def _elliptical(rng, meta):
    """Red elliptical Sersic (the lens light, or a look-alike without a lens)."""
    mag_i = rng.uniform(18.0, 21.5)
    r_eff = rng.uniform(0.5, 2.0)
    q, phi = rng.uniform(0.55, 1.0), rng.uniform(0, np.pi)
    meta.update(mag_i_main=mag_i, r_eff_main=r_eff, q_main=q)
    img = _sersic_img(r_eff, rng.uniform(2.5, 5.0), q, phi,
                      *rng.normal(0, 0.1, 2))
    return [(img, _red(rng, mag_i))], q, phi


def _companions(rng, k, rmin=1.5, rmax=5.5):
    """k small unlensed galaxies of any colour around the centre."""
    comps = []
    for _ in range(k):
        r, a = rng.uniform(rmin, rmax), rng.uniform(0, 2 * np.pi)
        img = _sersic_img(rng.uniform(0.15, 0.8), rng.uniform(0.7, 4.0), rng.uniform(0.4, 1.0),
                          rng.uniform(0, np.pi), r * np.cos(a), r * np.sin(a))
        comps.append((img, _any_colour(rng, rng.uniform(20.5, 25.0))))
    return comps


def _source_plane(rng, shifted):
    """A clumpy source as a callable of source-plane coordinates (unnormalised)."""
    if shifted:  # irregular: faint exponential disk dominated by many knots
        n, r_eff, n_knots, knot_frac = 1.0, rng.uniform(0.2, 0.7), rng.integers(4, 11), 0.7
    else:
        n, r_eff = rng.uniform(0.5, 2.5), rng.uniform(0.12, 0.55)
        n_knots, knot_frac = rng.integers(0, 4), rng.uniform(0.1, 0.4)
    q, phi = rng.uniform(0.35, 1.0), rng.uniform(0, np.pi)
    knots = [(rng.normal(0, r_eff, 2), rng.uniform(0.05, 0.12)) for _ in range(n_knots)]
    weights = rng.dirichlet(np.ones(n_knots)) * knot_frac if n_knots else []
    # normalise on the unlensed grid, so that the ray-traced image carries the magnification
    sersic_norm = (1 - knot_frac if n_knots else 1.0) / max(_sersic(_XF, _YF, r_eff, n, q, phi).sum(), 1e-30)

    def light(x, y, bx, by):
        s = _sersic(x, y, r_eff, n, q, phi, bx, by) * sersic_norm
        for ((dx, dy), sig), w in zip(knots, weights):
            s = s + w * _FINE_SCALE ** 2 / (2 * np.pi * sig ** 2) * np.exp(
                -0.5 * ((x - bx - dx) ** 2 + (y - by - dy) ** 2) / sig ** 2)
        return s

    return light, r_eff, n_knots


def _psf_kernels(rng, shifted, meta):
    """One normalised PSF kernel per band on the fine grid, with per-object seeing and shape:
    the survey preset's GalSim families for training, Kolmogorov with poorer seeing for the
    shifted set."""
    if shifted:
        params = SURVEY.draw_psf(rng, families=("kolmogorov",), seeing_factor=(0.85, 1.6),
                                 ellipticity_sigma=0.04)
    else:
        params = SURVEY.draw_psf(rng)
    kernels = [p.drawImage(nx=_KERNEL, ny=_KERNEL, scale=_FINE_SCALE, method="no_pixel").array
               for p in SURVEY.psfs(BANDS, params)]
    meta.update(psf=params["family"], seeing_r=float(SURVEY.seeing("r")[0] * params["fwhm_factor"]))
    return [k / k.sum() for k in kernels]


def _observe(components, kernels, rng, separate=()):
    """Render components (unit image, fluxes per band) through the PSF, bin, add noise.

    Returns the noisy (C, SIZE, SIZE) image in nJy and, for each index in `separate`, that
    component's noiseless binned image (to judge its detectability).
    """
    from scipy.signal import fftconvolve

    layers = [components] + [[components[i]] for i in separate]
    # (layer, band, y, x): the full scene, then each separated component alone
    stack = np.stack([sum(img[None] * np.asarray(flux)[:, None, None] for img, flux in layer)
                      for layer in layers])
    kern = np.stack(kernels)[None]
    conv = fftconvolve(stack, kern, mode="same", axes=(2, 3))
    binned = conv.reshape(len(layers), len(BANDS), SIZE, _SUPER, SIZE, _SUPER).sum((3, 5))
    return SURVEY.add_noise(binned[0], BANDS, rng), list(binned[1:])


def _arcs_detectable(arc, lens, meta):
    """Arcs count as detectable when, in g (where the blue source outshines the red lens), the
    lensed light has total S/N >= 25 over its pixels above 1 sigma, and at least 8 pixels are both
    above 2 sigma and brighter than the lens light there."""
    sig = SURVEY.sky_sigma("g")[0]
    a, l = arc[0], lens[0]
    above = a > sig
    snr = a[above].sum() / (sig * np.sqrt(max(above.sum(), 1)))
    n_clear = int(((a > 2 * sig) & (a > l)).sum())
    meta.update(arc_snr_g=float(snr), arc_clear_pixels=n_clear)
    return snr >= 25 and n_clear >= 8


def _lens(rng, shifted, meta, kernels):
    lens_model = _models()[0]
    for _ in range(50):
        meta.clear()
        light, q, phi = _elliptical(rng, meta)
        theta_e = float(np.exp(rng.uniform(np.log(0.5), np.log(3.0))))
        q_m = float(np.clip(q + rng.normal(0, 0.05), 0.5, 1.0))
        e1, e2 = _e12(phi + rng.normal(0, 0.2), q_m)
        g = rng.uniform(0, 0.1)
        ga = rng.uniform(0, np.pi)
        kw = [{"theta_E": theta_e, "e1": e1, "e2": e2, "center_x": 0.0, "center_y": 0.0},
              {"gamma1": g * np.cos(2 * ga), "gamma2": g * np.sin(2 * ga), "ra_0": 0, "dec_0": 0}]
        bx, by = np.sqrt(rng.uniform(0, 1)) * 0.8 * theta_e * np.array(
            [np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        src, r_src, n_knots = _source_plane(rng, shifted)
        xs, ys = lens_model.ray_shooting(_XF, _YF, kw)
        lensed = src(xs, ys, bx, by).reshape(_FINE, _FINE)  # unit intrinsic flux x magnification
        mag_g = rng.uniform(21.5, 25.5)
        arc = (lensed, _blue(rng, mag_g))
        comps = light + [arc]
        if rng.uniform() < 0.25:
            comps += _companions(rng, rng.integers(1, 3), rmin=max(2.0, 1.3 * theta_e))
        img, (arc_img, lens_img) = _observe(comps, kernels, rng, separate=(len(light), 0))
        meta.update(theta_e=theta_e, mag_g_source=mag_g, magnification=float(lensed.sum()),
                    r_eff_source=r_src, n_knots=int(n_knots), shear=g)
        if _arcs_detectable(arc_img, lens_img, meta):
            return img
    return img  # rarely reached: keep the last draw rather than loop forever


def _nonlens(rng, kind, meta, kernels):
    if kind == "elliptical":
        comps, q, phi = _elliptical(rng, meta)
    elif kind == "companions":
        comps, q, phi = _elliptical(rng, meta)
        comps += _companions(rng, rng.integers(1, 4), rmin=0.9, rmax=4.5)
    elif kind == "spiral":
        r_eff, q, phi = rng.uniform(0.6, 2.5), rng.uniform(0.2, 1.0), rng.uniform(0, np.pi)
        mag_i = rng.uniform(18.5, 22.0)
        disk = rng.choice([_spiral_img(r_eff, q, phi, rng), _sersic_img(r_eff, 1.0, q, phi)], p=[0.7, 0.3])
        bt = rng.uniform(0.0, 0.5)
        comps = [(disk, _colour(mag_i - 2.5 * np.log10(1 - bt + 1e-6), "i",
                                rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.4)))]
        if bt > 0.02:
            comps.append((_sersic_img(0.25 * r_eff, 4.0, min(1.0, q + 0.3), phi),
                          _red(rng, mag_i - 2.5 * np.log10(bt))))
        meta.update(mag_i_main=mag_i, r_eff_main=r_eff, q_main=q)
    elif kind == "merger":
        comps, q, phi = _elliptical(rng, meta)
        sep, a = rng.uniform(0.8, 3.0), rng.uniform(0, 2 * np.pi)
        cx, cy = sep * np.cos(a), sep * np.sin(a)
        comps.append((_sersic_img(rng.uniform(0.3, 1.5), rng.uniform(1.0, 4.0), rng.uniform(0.4, 1.0),
                                  rng.uniform(0, np.pi), cx, cy), _any_colour(rng, rng.uniform(19.0, 23.0))))
        # curved tidal tails: arcs of any colour, the main look-alike of lensed arcs in a merger
        for _ in range(rng.integers(1, 3)):
            tail = _arc_img(cx * rng.uniform(0, 1), cy * rng.uniform(0, 1), rng.uniform(1.0, 3.5),
                            rng.uniform(0.12, 0.35), rng.uniform(0.5, 1.0), rng.uniform(0, np.pi),
                            rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 2.5), rng, rng.integers(0, 4))
            comps.append((tail, _any_colour(rng, rng.uniform(21.5, 25.0))))
    else:  # ring galaxy: a star-forming ring concentric with and shaped like its host
        comps, q, phi = _elliptical(rng, meta)
        ring_r = rng.uniform(0.9, 3.0)
        width = rng.uniform(0.1, 0.3)
        ring_q = float(np.clip(q + rng.normal(0, 0.05), 0.3, 1.0))
        phi0 = rng.uniform(0, 2 * np.pi)
        span = rng.choice([2 * np.pi, rng.uniform(3.0, 6.0)])  # full ring or partial
        ring = _arc_img(0, 0, ring_r, width, ring_q, phi, phi0, span, rng, rng.integers(0, 8))
        comps.append((ring, _any_colour(rng, rng.uniform(20.5, 24.5)) if rng.uniform() < 0.5
                      else _blue(rng, rng.uniform(21.0, 25.0))))
        meta.update(ring_radius=ring_r)
    if kind != "companions" and rng.uniform() < 0.25:
        comps += _companions(rng, rng.integers(1, 3))
    img, _ = _observe(comps, kernels, rng)
    return img


_META_COLS = ("theta_e", "mag_g_source", "magnification", "r_eff_source", "n_knots", "shear",
              "arc_snr_g", "arc_clear_pixels", "mag_i_main", "r_eff_main", "q_main", "ring_radius",
              "seeing_r")


def simulate(n: int, seed: int, *, kind: str = "mixed", shifted: bool = False,
             lens_fraction: float = 0.5):
    """Simulate `n` LSST-like g, r, i cutouts of lenses and non-lenses.

    Parameters
    ----------
    n : int
        Number of cutouts.
    seed : int
        Seed; object ``i`` depends only on ``(seed, i)`` and the options.
    kind : {"mixed", "lens", "nonlens"} or one of `NEGATIVE_KINDS`
        ``"mixed"`` draws lenses with probability `lens_fraction`, otherwise a non-lens kind.
    shifted : bool
        Shifted distribution: Kolmogorov PSFs, poorer seeing, knot-dominated sources.
    lens_fraction : float
        Fraction of lenses for ``kind="mixed"``.

    Returns
    -------
    images : np.ndarray
        float32 (n, 3, 64, 64), fluxes in nJy per pixel, bands `BANDS`.
    labels : np.ndarray
        int64 (n,), 1 for a lens.
    meta : astropy.table.Table
        One row per cutout: ``kind``, ``psf`` family and the drawn parameters (NaN where unused).
    """
    valid = ("mixed", "lens", "nonlens") + NEGATIVE_KINDS
    if kind not in valid:
        raise ValueError(f"kind must be one of {valid}, not {kind!r}")
    images = np.empty((n, len(BANDS), SIZE, SIZE), np.float32)
    labels = np.empty(n, np.int64)
    rows = []
    for i, ss in enumerate(np.random.SeedSequence([seed, int(shifted)]).spawn(n)):
        rng = np.random.default_rng(ss)
        if kind == "mixed":
            k = "lens" if rng.uniform() < lens_fraction else rng.choice(NEGATIVE_KINDS, p=_NEG_PROBS)
        elif kind == "nonlens":
            k = rng.choice(NEGATIVE_KINDS, p=_NEG_PROBS)
        else:
            k = kind
        meta: dict = {}
        psf_meta: dict = {}
        kernels = _psf_kernels(rng, shifted, psf_meta)
        if k == "lens":
            images[i] = _lens(rng, shifted, meta, kernels)
        else:
            images[i] = _nonlens(rng, str(k), meta, kernels)
        labels[i] = int(k == "lens")
        rows.append({"kind": str(k), **psf_meta, **meta})
    meta_t = Table({"kind": [r["kind"] for r in rows], "psf": [r["psf"] for r in rows]})
    for c in _META_COLS:
        meta_t[c] = np.array([r.get(c, np.nan) for r in rows], dtype=float)
    meta_t["label"] = labels
    return images, labels, meta_t
