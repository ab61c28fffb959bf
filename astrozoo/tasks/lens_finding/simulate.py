"""Seeded simulator of g, r, i (and z) cutouts of strong lenses and of the galaxies that mimic them,
as a chosen survey would observe them (LSST by default, or another preset such as DES).

Lensing and light profiles come from lenstronomy (SIE + external shear, elliptical Sersic); pixel
scale, depth, noise, seeing, PSF families and zero point from a survey preset (`astrozoo.surveys`,
``"lsst"`` by default). Scenes are rendered on a 2x supersampled grid of the preset's pixels,
convolved with a per-object, per-band GalSim PSF (a kernel ~5.1" on a side), binned to the survey's
pixels and given sky + source shot noise. Pixels are fluxes in the preset's unit (nJy for LSST and
DES).

Angular sizes (Einstein radii, effective radii, separations) are physical, in arcsec, whatever the
survey: at DES's 0.263"/px the same object spans fewer pixels than at LSST's 0.2"/px, and is
seen through DES's wider PSF and shallower depth. Colours are drawn as g-r and r-i; z follows
deterministically from r-i, so any of g, r, i, z can be rendered (`COLOUR_BANDS`).

Positives are SIE + shear lenses with red elliptical lens light and blue lensed sources of
several morphologies (`SOURCE_KINDS`), with arcs down to the detection limit (S/N in g drawn
log-uniform from `ARC_SNR_MIN`). Negatives are the look-alikes a real search meets
(`NEGATIVE_KINDS`): lone ellipticals, ellipticals with unlensed companions (of any colour, or
blue ones like the sources), galaxy pairs, disks and spirals with and without star-forming
knots, edge-on disks, mergers with tidal tails, ring galaxies and stars. Training PSFs are the
preset's families (Gaussian, Moffat, core + halo) over a wide seeing range (`SEEING_FACTOR`);
two shifted populations are for validation (``shifted="validation"``: broad-winged Moffat PSFs,
spiral sources) and for the benchmark (``shifted=True``: Kolmogorov PSFs, poorer seeing,
knot-dominated irregular sources).

Every object is drawn from its own generator spawned from ``seed``, so a set is reproducible
object by object whatever the chunking. The survey, bands and cutout size take no random draws
before an object's noise: with the same seed, non-lenses are the same physical scenes in every
survey, and lenses too unless the detectability check rejects a draw in one survey and not in the
other. With the defaults (``survey="lsst"``, bands g, r, i, 64 pixels) the output is that of the
simulator the shipped ``lens-resnet10t-lsst`` model was trained on, bit for bit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from astropy.table import Table

from astrozoo.surveys import Survey, get_survey

__all__ = ["SURVEY", "BANDS", "COLOUR_BANDS", "PIXEL_SCALE", "SIZE", "NEGATIVE_KINDS",
           "SOURCE_KINDS", "ARC_SNR_MIN", "SEEING_FACTOR", "simulate"]

SURVEY = get_survey("lsst")
BANDS = ("g", "r", "i")  # default output bands (those of the shipped LSST model)
COLOUR_BANDS = ("g", "r", "i", "z")  # bands the simulator can colour
PIXEL_SCALE = SURVEY.pixel_scale
SIZE = 64
NEGATIVE_KINDS = ("elliptical", "companions", "blue_companion", "pair", "spiral", "edge_on",
                  "merger", "ring", "star")
_NEG_PROBS = (0.12, 0.12, 0.16, 0.12, 0.12, 0.08, 0.10, 0.12, 0.06)
SOURCE_KINDS = ("sersic", "double", "clumpy", "compact", "spiral", "irregular")
# source morphologies per population: training, the shifted validation set that picks the
# epoch ("validation"), and the shifted benchmark set that nothing is tuned on (True)
_SOURCE_MIX = {False: (("sersic", "double", "clumpy", "compact"), (0.4, 0.2, 0.2, 0.2)),
               "validation": (("spiral",), (1.0,)), True: (("irregular",), (1.0,))}
_SHIFTS = {False: 0, True: 1, "validation": 2}  # also the population's seed-sequence entropy
#: Training seeing, as a factor of the preset's median per band: wider than any preset's own
#: range (LSST 0.7-1.4, DES 0.8-1.3), so that nights of good and of poor seeing are both seen.
SEEING_FACTOR = (0.65, 1.5)
# A lens counts as detectable down to this S/N of its lensed light in g (see _arcs_detectable):
# fainter arcs than this are below what a visual or automated search confirms.
ARC_SNR_MIN = 10.0

_SUPER = 2  # supersampling factor of the rendering grid
_KERNEL_ARCSEC = 5.1  # PSF kernel side on the sky (51 fine pixels at LSST's 0.2"/px)
# i-z of the simulated galaxies, per unit of their r-i. Along the galaxy locus in SDSS / DES
# colours i-z grows with r-i at roughly half to two thirds its rate (red-sequence galaxies at
# z ~ 0.3-0.6: r-i ~ 0.4-0.7, i-z ~ 0.25-0.4; blue star-forming ones: both ~ 0.1-0.2). A fixed
# ratio makes z a deterministic function of the drawn colours: rendering z takes no extra random
# draw and leaves g, r, i (and every default-band image) unchanged.
_IZ_PER_RI = 0.6


class _Grid(NamedTuple):
    """Supersampled rendering grid of a ``size`` x ``size`` cutout of ``pixel_scale``"/px pixels.

    ``fine`` is the side of the fine grid, ``fine_scale`` its pixel scale (arcsec), ``kernel``
    the (odd) side of the PSF kernels in fine pixels, ``x``, ``y`` the fine-pixel centres
    (arcsec from the cutout centre; read-only) and ``xf``, ``yf`` the same, flattened.
    """

    size: int
    fine: int
    fine_scale: float
    kernel: int
    x: np.ndarray
    y: np.ndarray
    xf: np.ndarray
    yf: np.ndarray


@lru_cache(maxsize=16)
def _grid(pixel_scale: float, size: int) -> _Grid:
    """The (cached) rendering grid of cutouts of `size` pixels of `pixel_scale` arcsec."""
    fine = size * _SUPER
    fine_scale = pixel_scale / _SUPER
    kernel = int(round(_KERNEL_ARCSEC / fine_scale))
    kernel += 1 - kernel % 2  # odd, so that the kernel is centred on a pixel
    c = (np.arange(fine) - (fine - 1) / 2) * fine_scale
    x, y = np.meshgrid(c, c)
    x.flags.writeable = y.flags.writeable = False  # shared by every call: never written
    return _Grid(size, fine, fine_scale, kernel, x, y, x.ravel(), y.ravel())


class _Obs(NamedTuple):
    """What one `simulate` call observes with: the survey preset, the output `bands`, the bands
    rendered (`bands`, with g put in front when missing, as lensed arcs are judged in g) and the
    rendering grid."""

    survey: Survey
    bands: tuple[str, ...]
    render: tuple[str, ...]
    grid: _Grid


def _setup(survey, bands, size) -> _Obs:
    """Check the survey / band / size options of `simulate` and gather them."""
    if isinstance(survey, str):
        survey = get_survey(survey)
    elif not isinstance(survey, Survey):
        raise TypeError(f"survey must be a preset name or a Survey, not {type(survey).__name__}")
    bands = BANDS if bands is None else ((bands,) if isinstance(bands, str) else tuple(bands))
    if not bands or len(set(bands)) != len(bands):
        raise ValueError(f"bands must be distinct band names, at least one; got {bands!r}")
    bad = [b for b in bands if b not in COLOUR_BANDS]
    if bad:
        raise ValueError(f"the lens simulator cannot colour band(s) {bad}: it models galaxy "
                         f"colours in {COLOUR_BANDS} only")
    if survey.pixel_scale is None or not survey.noise:
        raise ValueError(f"survey preset {survey.name!r} has no imaging noise model")
    render = bands if "g" in bands else ("g",) + bands
    # fail early, with a ValueError naming any band the preset lacks (r: for meta's seeing_r)
    survey.sky_sigma(render)
    survey.seeing("r")
    if isinstance(size, bool) or int(size) != size or size < 8:
        raise ValueError(f"size must be an integer number of pixels >= 8, not {size!r}")
    return _Obs(survey, bands, render, _grid(float(survey.pixel_scale), int(size)))


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


def _sersic_img(grid, r_eff, n, q, phi, cx=0.0, cy=0.0):
    return _unit(_sersic(grid.xf, grid.yf, r_eff, n, q, phi, cx, cy).reshape(grid.fine, grid.fine))


def _rotated(x, y, cx, cy, phi, q):
    """Coordinates in the frame of an ellipse (major axis along x'), y' stretched by 1/q."""
    dx, dy = x - cx, y - cy
    c, s = np.cos(phi), np.sin(phi)
    return c * dx + s * dy, (-s * dx + c * dy) / q


def _arc_img(grid, cx, cy, radius, width, q, phi, phi0, span, rng, n_knots=0):
    """Ring or arc segment of `radius` (elliptical, axis ratio q), azimuthal span in radians.

    Knots (Gaussian clumps along the ridge) make it clumpy like star-forming rings and tails.
    """
    xr, yr = _rotated(grid.x, grid.y, cx, cy, phi, q)
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
            -0.5 * ((grid.x - px) ** 2 + (grid.y - py) ** 2) / (width * 0.8) ** 2)
    return _unit(img)


def _spiral_img(grid, r_eff, q, phi, rng):
    """Exponential disk with a two-arm logarithmic spiral modulation, seen at axis ratio q."""
    xr, yr = _rotated(grid.x, grid.y, 0.0, 0.0, phi, q)
    r = np.hypot(xr, yr) + 1e-3
    theta = np.arctan2(yr, xr)
    pitch = np.tan(np.radians(rng.uniform(12, 30)))
    arms = rng.integers(2, 4)
    h = r_eff / 1.678
    mod = 1 + rng.uniform(0.4, 0.9) * np.cos(arms * (theta - np.log(r) / pitch) + rng.uniform(0, 6.3))
    return _unit(np.exp(-r / h) * mod)


def _colour(obs, mag_ref, ref_band, gr, ri):
    """Fluxes (survey unit) in the rendered bands of `obs` from a magnitude in `ref_band` and
    g-r, r-i colours; i-z is ``_IZ_PER_RI * (r-i)`` (see there)."""
    mags = {"r": 0.0, "g": gr, "i": -ri, "z": -ri - _IZ_PER_RI * ri}  # m_band - m_r
    try:
        off = mags[ref_band]
        return obs.survey.flux([mag_ref - off + mags[b] for b in obs.render])
    except KeyError as err:
        raise ValueError(f"cannot colour band {err.args[0]!r}: the lens simulator models "
                         f"colours in {COLOUR_BANDS} only") from None


def _red(obs, rng, mag_i):
    return _colour(obs, mag_i, "i", rng.uniform(0.9, 1.6), rng.uniform(0.35, 0.65))


def _blue(obs, rng, mag_g):
    return _colour(obs, mag_g, "g", rng.uniform(-0.15, 0.45), rng.uniform(-0.15, 0.3))


def _any_colour(obs, rng, mag_r):
    return _colour(obs, mag_r, "r", rng.uniform(-0.1, 1.5), rng.uniform(-0.1, 0.6))


def _elliptical(obs, rng, meta):
    """Red elliptical Sersic (the lens light, or a look-alike without a lens)."""
    mag_i = rng.uniform(18.0, 21.5)
    r_eff = rng.uniform(0.5, 2.0)
    q, phi = rng.uniform(0.55, 1.0), rng.uniform(0, np.pi)
    meta.update(mag_i_main=mag_i, r_eff_main=r_eff, q_main=q)
    img = _sersic_img(obs.grid, r_eff, rng.uniform(2.5, 5.0), q, phi,
                      *rng.normal(0, 0.1, 2))
    return [(img, _red(obs, rng, mag_i))], q, phi


def _companions(obs, rng, k, rmin=1.5, rmax=5.5):
    """k small unlensed galaxies of any colour around the centre."""
    comps = []
    for _ in range(k):
        r, a = rng.uniform(rmin, rmax), rng.uniform(0, 2 * np.pi)
        img = _sersic_img(obs.grid, rng.uniform(0.15, 0.8), rng.uniform(0.7, 4.0),
                          rng.uniform(0.4, 1.0), rng.uniform(0, np.pi),
                          r * np.cos(a), r * np.sin(a))
        comps.append((img, _any_colour(obs, rng, rng.uniform(20.5, 25.0))))
    return comps


def _blue_companions(obs, rng, k, rmin, rmax):
    """k compact blue galaxies (the colours and magnitudes of lensed sources) at rmin-rmax",
    oriented at random: the look-alike of a single lensed image. (Not aligned tangentially on
    purpose: an arclet-shaped blue galaxy beside an elliptical is as likely a lens whose
    counter-image is lost in the noise, and labelling it a non-lens teaches label noise.)"""
    comps = []
    for _ in range(k):
        r, a = rng.uniform(rmin, rmax), rng.uniform(0, 2 * np.pi)
        img = _sersic_img(obs.grid, rng.uniform(0.1, 0.5), rng.uniform(0.5, 1.5),
                          rng.uniform(0.3, 1.0), rng.uniform(0, np.pi), r * np.cos(a), r * np.sin(a))
        comps.append((img, _blue(obs, rng, rng.uniform(21.5, 25.5))))
    return comps


def _point(grid, cx, cy):
    """A point source at (cx, cy) arcsec on the fine grid, split bilinearly over 4 pixels."""
    fx = cx / grid.fine_scale + (grid.fine - 1) / 2
    fy = cy / grid.fine_scale + (grid.fine - 1) / 2
    img = np.zeros((grid.fine, grid.fine))
    x0, y0 = int(np.floor(fx)), int(np.floor(fy))
    for dy, wy in ((0, 1 - (fy - y0)), (1, fy - y0)):
        for dx, wx in ((0, 1 - (fx - x0)), (1, fx - x0)):
            if 0 <= y0 + dy < grid.fine and 0 <= x0 + dx < grid.fine:
                img[y0 + dy, x0 + dx] = wy * wx
    return _unit(img)


def _star(obs, rng, mag_r):
    """A star: g-r from hot blue stars to M dwarfs, r-i along the stellar locus."""
    gr = rng.uniform(-0.3, 1.5)
    return _colour(obs, mag_r, "r", gr, float(np.clip(0.45 * gr + rng.normal(0, 0.1), -0.3, 1.5)))


def _source_plane(grid, rng, shifted):
    """A lensed source as a callable of source-plane coordinates (unnormalised), with its
    morphology (`SOURCE_KINDS`), drawn from the mix of the population `shifted` selects.

    Training sources are a Sersic with 0-3 star-forming knots, two offset Sersic clumps (a
    merging or double-nucleus source), a clumpy disk with 2-5 knots, or a compact nucleated
    one; the shifted validation set has spiral (two-arm) disks; the shifted benchmark set
    irregular disks dominated by 4-10 knots.
    """
    names, probs = _SOURCE_MIX[shifted]
    morph = str(rng.choice(names, p=probs))
    q, phi = rng.uniform(0.35, 1.0), rng.uniform(0, np.pi)
    parts = []  # (weight, r_eff, n, q, phi, dx, dy) Sersic components
    if morph == "irregular":
        r_eff, n_knots, knot_frac = rng.uniform(0.2, 0.7), rng.integers(4, 11), 0.7
        parts.append((1.0, r_eff, 1.0, q, phi, 0.0, 0.0))
    elif morph == "sersic":
        r_eff, n_knots, knot_frac = rng.uniform(0.12, 0.55), rng.integers(0, 4), rng.uniform(0.1, 0.4)
        parts.append((1.0, r_eff, rng.uniform(0.5, 2.5), q, phi, 0.0, 0.0))
    elif morph == "double":
        r_eff, n_knots, knot_frac = rng.uniform(0.1, 0.35), 0, 0.0
        sep, a = rng.uniform(0.15, 0.5), rng.uniform(0, 2 * np.pi)
        w = rng.uniform(0.3, 0.5)
        parts += [(1 - w, r_eff, rng.uniform(0.7, 2.0), q, phi, 0.0, 0.0),
                  (w, r_eff * rng.uniform(0.5, 1.0), rng.uniform(0.7, 2.0), rng.uniform(0.4, 1.0),
                   rng.uniform(0, np.pi), sep * np.cos(a), sep * np.sin(a))]
    elif morph == "clumpy":
        r_eff, n_knots, knot_frac = rng.uniform(0.2, 0.6), rng.integers(2, 6), rng.uniform(0.3, 0.55)
        parts.append((1.0, r_eff, 1.0, q, phi, 0.0, 0.0))
    elif morph == "compact":
        r_eff, n_knots, knot_frac = rng.uniform(0.05, 0.15), 0, 0.0
        parts.append((1.0, r_eff, rng.uniform(1.0, 4.0), q, phi, 0.0, 0.0))
    else:  # spiral: exponential disk with a two-arm modulation and a small bulge
        r_eff, n_knots, knot_frac = rng.uniform(0.3, 0.8), 0, 0.0
        parts += [(0.8, r_eff, 1.0, q, phi, 0.0, 0.0),
                  (0.2, 0.2 * r_eff, 4.0, min(1.0, q + 0.3), phi, 0.0, 0.0)]
    pitch = np.tan(np.radians(rng.uniform(12, 30)))
    arm_phase, arm_amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 0.9)
    knots = [(rng.normal(0, r_eff, 2), rng.uniform(0.05, 0.12)) for _ in range(n_knots)]
    weights = rng.dirichlet(np.ones(n_knots)) * knot_frac if n_knots else []
    smooth = 1 - knot_frac if n_knots else 1.0

    def profile(x, y, bx, by):
        total = 0.0
        for w, re, n, qq, pp, dx, dy in parts:
            total = total + w * _sersic(x, y, re, n, qq, pp, bx + dx, by + dy)
        if morph == "spiral":
            xr, yr = _rotated(x, y, bx, by, phi, q)
            r = np.hypot(xr, yr) + 1e-3
            total = total * (1 + arm_amp * np.cos(2 * (np.arctan2(yr, xr) - np.log(r) / pitch)
                                                  + arm_phase))
        return total

    # normalise on the unlensed grid, so that the ray-traced image carries the magnification
    norm = smooth / max(profile(grid.xf, grid.yf, 0.0, 0.0).sum(), 1e-30)

    def light(x, y, bx, by):
        s = profile(x, y, bx, by) * norm
        for ((dx, dy), sig), w in zip(knots, weights):
            s = s + w * grid.fine_scale ** 2 / (2 * np.pi * sig ** 2) * np.exp(
                -0.5 * ((x - bx - dx) ** 2 + (y - by - dy) ** 2) / sig ** 2)
        return s

    return light, r_eff, n_knots, morph


def _psf_kernels(obs, rng, shifted, meta):
    """One normalised PSF kernel per rendered band on the fine grid, with per-object seeing and
    shape: the survey preset's GalSim families (seeing `SEEING_FACTOR` x the preset's median)
    for training, broad-winged Moffats for the shifted validation set, Kolmogorov with poorer seeing
    for the shifted benchmark set."""
    survey, grid = obs.survey, obs.grid
    if shifted == "validation":  # Moffat wings broader than training's (beta 2.5-5)
        params = survey.draw_psf(rng, families=("moffat",), seeing_factor=(0.8, 1.5),
                                 ellipticity_sigma=0.035)
        params["beta"] = float(rng.uniform(1.6, 2.4))
    elif shifted:
        params = survey.draw_psf(rng, families=("kolmogorov",), seeing_factor=(0.85, 1.6),
                                 ellipticity_sigma=0.04)
    else:
        params = survey.draw_psf(rng, seeing_factor=SEEING_FACTOR)
    kernels = [p.drawImage(nx=grid.kernel, ny=grid.kernel, scale=grid.fine_scale,
                           method="no_pixel").array
               for p in survey.psfs(obs.render, params)]
    meta.update(psf=params["family"], seeing_r=float(survey.seeing("r")[0] * params["fwhm_factor"]))
    return [k / k.sum() for k in kernels]


def _observe(obs, components, kernels, rng, separate=()):
    """Render components (unit image, fluxes per rendered band) through the PSF, bin, add noise.

    Returns the noisy (C, size, size) image of the output bands in the survey's unit and, for
    each index in `separate`, that component's noiseless binned image in the rendered bands (to
    judge its detectability).
    """
    from scipy.signal import fftconvolve

    size = obs.grid.size
    layers = [components] + [[components[i]] for i in separate]
    # (layer, band, y, x): the full scene, then each separated component alone
    stack = np.stack([sum(img[None] * np.asarray(flux)[:, None, None] for img, flux in layer)
                      for layer in layers])
    kern = np.stack(kernels)[None]
    conv = fftconvolve(stack, kern, mode="same", axes=(2, 3))
    binned = conv.reshape(len(layers), len(obs.render), size, _SUPER, size, _SUPER).sum((3, 5))
    scene = binned[0] if obs.render == obs.bands else binned[0][1:]  # drop a g added for the check
    return obs.survey.add_noise(scene, obs.bands, rng), list(binned[1:])


def _arc_snr(arc, sig: float) -> float:
    """S/N of a noiseless lensed-light image: its flux over the pixels above 1 sigma of the sky,
    against the sky noise of those pixels."""
    above = arc > sig
    return arc[above].sum() / (sig * np.sqrt(max(above.sum(), 1)))


def _arcs_detectable(obs, arc, lens, meta):
    """Arcs count as detectable when, in g (where the blue source outshines the red lens), the
    lensed light has total S/N >= `ARC_SNR_MIN` over its pixels above 1 sigma of the survey's
    sky, and at least 4 pixels are both above 2 sigma and brighter than the lens light there."""
    sig = obs.survey.sky_sigma("g")[0]
    g = obs.render.index("g")
    a, l = arc[g], lens[g]
    snr = _arc_snr(a, sig)
    n_clear = int(((a > 2 * sig) & (a > l)).sum())
    meta.update(arc_snr_g=float(snr), arc_clear_pixels=n_clear)
    return snr >= ARC_SNR_MIN and n_clear >= 4


# Lensed-light S/N in g is drawn log-uniform in 10-400, so that faint arcs down to the detection
# limit are as common as bright ones per octave; the source magnitude follows from the S/N.
_LOG_SNR = (np.log(ARC_SNR_MIN), np.log(400.0))
_MAG_G_RANGE = (20.5, 28.0)  # unlensed source magnitudes kept plausible


def _mag_for_snr(obs, lensed, kernels, target):
    """Unlensed g magnitude that gives the lensed light S/N `target` in g (as `_arcs_detectable`
    measures it), clipped to `_MAG_G_RANGE`."""
    from scipy.signal import fftconvolve

    size, sig = obs.grid.size, obs.survey.sky_sigma("g")[0]
    g = obs.render.index("g")
    unit = fftconvolve(lensed, kernels[g], mode="same").reshape(size, _SUPER, size, _SUPER).sum((1, 3))
    unit = unit * obs.survey.flux(25.0)  # the arc at g = 25

    lo, hi = 10 ** (-0.4 * (_MAG_G_RANGE[1] - 25)), 10 ** (-0.4 * (_MAG_G_RANGE[0] - 25))
    for _ in range(30):  # S/N grows monotonically with flux: bisect in log flux
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if _arc_snr(unit * mid, sig) < target else (lo, mid)
    return float(25 - 2.5 * np.log10(np.sqrt(lo * hi)))


def _lens(obs, rng, shifted, meta, kernels):
    grid = obs.grid
    lens_model = _models()[0]
    for _ in range(50):
        meta.clear()
        light, q, phi = _elliptical(obs, rng, meta)
        theta_e = float(np.exp(rng.uniform(np.log(0.5), np.log(3.0))))
        q_m = float(np.clip(q + rng.normal(0, 0.05), 0.5, 1.0))
        e1, e2 = _e12(phi + rng.normal(0, 0.2), q_m)
        g = rng.uniform(0, 0.1)
        ga = rng.uniform(0, np.pi)
        kw = [{"theta_E": theta_e, "e1": e1, "e2": e2, "center_x": 0.0, "center_y": 0.0},
              {"gamma1": g * np.cos(2 * ga), "gamma2": g * np.sin(2 * ga), "ra_0": 0, "dec_0": 0}]
        bx, by = np.sqrt(rng.uniform(0, 1)) * 0.8 * theta_e * np.array(
            [np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        src, r_src, n_knots, morph = _source_plane(grid, rng, shifted)
        xs, ys = lens_model.ray_shooting(grid.xf, grid.yf, kw)
        lensed = src(xs, ys, bx, by).reshape(grid.fine, grid.fine)  # unit flux x magnification
        mag_g = _mag_for_snr(obs, lensed, kernels, float(np.exp(rng.uniform(*_LOG_SNR))))
        arc = (lensed, _blue(obs, rng, mag_g))
        comps = light + [arc]
        if rng.uniform() < 0.3:  # neighbours are no cue either way: any colour, or blue ones
            k, rmin = rng.integers(1, 3), max(2.0, 1.3 * theta_e)
            comps += (_companions(obs, rng, k, rmin=rmin) if rng.uniform() < 0.5
                      else _blue_companions(obs, rng, k, rmin, rmin + 2.5))
        img, (arc_img, lens_img) = _observe(obs, comps, kernels, rng, separate=(len(light), 0))
        meta.update(theta_e=theta_e, mag_g_source=mag_g, magnification=float(lensed.sum()),
                    r_eff_source=r_src, n_knots=int(n_knots), shear=g, source=morph)
        if _arcs_detectable(obs, arc_img, lens_img, meta):
            return img
    return img  # rarely reached: keep the last draw rather than loop forever


def _nonlens(obs, rng, kind, meta, kernels):
    grid = obs.grid
    if kind == "elliptical":
        comps, q, phi = _elliptical(obs, rng, meta)
    elif kind == "companions":
        comps, q, phi = _elliptical(obs, rng, meta)
        comps += _companions(obs, rng, rng.integers(1, 4), rmin=0.9, rmax=4.5)
    elif kind == "blue_companion":
        comps, q, phi = _elliptical(obs, rng, meta)
        comps += _blue_companions(obs, rng, rng.integers(1, 3), 0.8, 3.0)
    elif kind == "pair":  # two similar galaxies side by side, without tidal features
        comps, q, phi = _elliptical(obs, rng, meta)
        sep, a = rng.uniform(1.0, 4.0), rng.uniform(0, 2 * np.pi)
        mag_i2 = meta["mag_i_main"] + rng.uniform(0.0, 1.5)
        if rng.uniform() < 0.5:
            second = (_sersic_img(grid, rng.uniform(0.4, 1.5), rng.uniform(2.5, 5.0),
                                  rng.uniform(0.55, 1.0), rng.uniform(0, np.pi),
                                  sep * np.cos(a), sep * np.sin(a)), _red(obs, rng, mag_i2))
        else:
            second = (_sersic_img(grid, rng.uniform(0.4, 1.5), 1.0, rng.uniform(0.2, 1.0),
                                  rng.uniform(0, np.pi), sep * np.cos(a), sep * np.sin(a)),
                      _colour(obs, mag_i2, "i", rng.uniform(0.2, 0.9), rng.uniform(0.1, 0.45)))
        comps.append(second)
    elif kind == "edge_on":  # thin disk seen edge-on, with or without a bulge
        r_eff, q, phi = rng.uniform(0.6, 2.5), rng.uniform(0.08, 0.25), rng.uniform(0, np.pi)
        mag_i = rng.uniform(18.5, 22.0)
        bt = rng.uniform(0.0, 0.4)
        comps = [(_sersic_img(grid, r_eff, 1.0, q, phi),
                  _colour(obs, mag_i - 2.5 * np.log10(1 - bt + 1e-6), "i",
                          rng.uniform(0.3, 1.0), rng.uniform(0.15, 0.45)))]
        if bt > 0.02:
            comps.append((_sersic_img(grid, 0.25 * r_eff, 4.0, rng.uniform(0.5, 0.9), phi),
                          _red(obs, rng, mag_i - 2.5 * np.log10(bt))))
        meta.update(mag_i_main=mag_i, r_eff_main=r_eff, q_main=q)
    elif kind == "star":  # stars beside an elliptical (counter-image look-alikes), or alone
        if rng.uniform() < 0.7:
            comps, q, phi = _elliptical(obs, rng, meta)
            for _ in range(rng.integers(1, 3)):
                r, a = rng.uniform(0.6, 4.0), rng.uniform(0, 2 * np.pi)
                comps.append((_point(grid, r * np.cos(a), r * np.sin(a)),
                              _star(obs, rng, rng.uniform(19.0, 24.5))))
        else:
            comps = [(_point(grid, *rng.normal(0, 0.1, 2)), _star(obs, rng, rng.uniform(18.0, 22.5)))]
    elif kind == "spiral":
        r_eff, q, phi = rng.uniform(0.6, 2.5), rng.uniform(0.2, 1.0), rng.uniform(0, np.pi)
        mag_i = rng.uniform(18.5, 22.0)
        disk = rng.choice([_spiral_img(grid, r_eff, q, phi, rng),
                           _sersic_img(grid, r_eff, 1.0, q, phi)], p=[0.7, 0.3])
        bt = rng.uniform(0.0, 0.5)
        comps = [(disk, _colour(obs, mag_i - 2.5 * np.log10(1 - bt + 1e-6), "i",
                                rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.4)))]
        if bt > 0.02:
            comps.append((_sersic_img(grid, 0.25 * r_eff, 4.0, min(1.0, q + 0.3), phi),
                          _red(obs, rng, mag_i - 2.5 * np.log10(bt))))
        if rng.uniform() < 0.5:  # star-forming knots in the disk, blue, 10-30 % of its light
            for _ in range(rng.integers(3, 9)):
                r, a = rng.uniform(0.2, 1.5) * r_eff, rng.uniform(0, 2 * np.pi)
                c, sn = np.cos(phi), np.sin(phi)
                kx, ky = r * np.cos(a), r * q * np.sin(a)
                comps.append((_point(grid, c * kx - sn * ky, sn * kx + c * ky),
                              _blue(obs, rng, mag_i + 0.6 - 2.5 * np.log10(rng.uniform(0.015, 0.05)))))
        meta.update(mag_i_main=mag_i, r_eff_main=r_eff, q_main=q)
    elif kind == "merger":
        comps, q, phi = _elliptical(obs, rng, meta)
        sep, a = rng.uniform(0.8, 3.0), rng.uniform(0, 2 * np.pi)
        cx, cy = sep * np.cos(a), sep * np.sin(a)
        comps.append((_sersic_img(grid, rng.uniform(0.3, 1.5), rng.uniform(1.0, 4.0),
                                  rng.uniform(0.4, 1.0), rng.uniform(0, np.pi), cx, cy),
                      _any_colour(obs, rng, rng.uniform(19.0, 23.0))))
        # curved tidal tails: arcs of any colour, the main look-alike of lensed arcs in a merger
        for _ in range(rng.integers(1, 3)):
            tail = _arc_img(grid, cx * rng.uniform(0, 1), cy * rng.uniform(0, 1),
                            rng.uniform(1.0, 3.5), rng.uniform(0.12, 0.35), rng.uniform(0.5, 1.0),
                            rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi),
                            rng.uniform(0.8, 2.5), rng, rng.integers(0, 4))
            comps.append((tail, _any_colour(obs, rng, rng.uniform(21.5, 25.0))))
    else:  # ring galaxy: a star-forming ring concentric with and shaped like its host
        comps, q, phi = _elliptical(obs, rng, meta)
        ring_r = rng.uniform(0.9, 3.0)
        width = rng.uniform(0.1, 0.3)
        ring_q = float(np.clip(q + rng.normal(0, 0.05), 0.3, 1.0))
        phi0 = rng.uniform(0, 2 * np.pi)
        span = rng.choice([2 * np.pi, rng.uniform(3.0, 6.0)])  # full ring or partial
        ring = _arc_img(grid, 0, 0, ring_r, width, ring_q, phi, phi0, span, rng, rng.integers(0, 8))
        comps.append((ring, _any_colour(obs, rng, rng.uniform(20.5, 24.5)) if rng.uniform() < 0.5
                      else _blue(obs, rng, rng.uniform(21.0, 25.0))))
        meta.update(ring_radius=ring_r)
    if kind != "companions" and rng.uniform() < 0.25:
        comps += _companions(obs, rng, rng.integers(1, 3))
    img, _ = _observe(obs, comps, kernels, rng)
    return img


_META_COLS = ("theta_e", "mag_g_source", "magnification", "r_eff_source", "n_knots", "shear",
              "arc_snr_g", "arc_clear_pixels", "mag_i_main", "r_eff_main", "q_main", "ring_radius",
              "seeing_r")


def simulate(n: int, seed: int, *, kind: str = "mixed", shifted: bool | str = False,
             lens_fraction: float = 0.5, survey: str | Survey = "lsst",
             bands: tuple[str, ...] | None = None, size: int = SIZE):
    """Simulate `n` cutouts of lenses and non-lenses as `survey` would observe them.

    Parameters
    ----------
    n : int
        Number of cutouts.
    seed : int
        Seed; object ``i`` depends only on ``(seed, i)`` and the options.
    kind : {"mixed", "lens", "nonlens"} or one of `NEGATIVE_KINDS`
        ``"mixed"`` draws lenses with probability `lens_fraction`, otherwise a non-lens kind.
    shifted : {False, True, "validation"}
        The population. False: the training distribution. True: the shifted benchmark set
        (Kolmogorov PSFs, poorer seeing, knot-dominated irregular sources), which no recipe
        tunes on. ``"validation"``: another shift (broad-winged Moffat PSFs, spiral sources) on
        which the recipe picks its epoch.
    lens_fraction : float
        Fraction of lenses for ``kind="mixed"``.
    survey : str or `~astrozoo.surveys.Survey`
        Imaging survey preset (name, e.g. ``"lsst"`` or ``"des"``, or object) giving the pixel
        scale, PSF families and per-band seeing (`~astrozoo.surveys.Survey.draw_psf`,
        ``seeing_factor``), sky and shot noise, zero point and the sky sigma of the arcs'
        detectability check. Angular sizes stay physical (arcsec), so at a coarser pixel scale
        objects span fewer pixels.
    bands : sequence of str, optional
        Output bands, each one of `COLOUR_BANDS` (g, r, i, z) and of the preset; default `BANDS`
        (g, r, i). z is coloured from r-i without extra random draws. Lenses are always checked
        for detectability in g, which is rendered (but not returned) when not among `bands`.
    size : int
        Cutout side, pixels of the survey (default `SIZE`, 64).

    Returns
    -------
    images : np.ndarray
        float32 ``(n, len(bands), size, size)``, fluxes per pixel in the preset's unit (nJy for
        LSST and DES), bands in the order given.
    labels : np.ndarray
        int64 (n,), 1 for a lens.
    meta : astropy.table.Table
        One row per cutout: ``kind``, ``psf`` family, lensed ``source`` morphology
        (`SOURCE_KINDS`, empty for non-lenses) and the drawn parameters (NaN where unused);
        ``arc_snr_g`` is the S/N of a lens's lensed light in g (see `ARC_SNR_MIN`);
        ``seeing_r`` is the object's r-band PSF FWHM (arcsec) in `survey`.

    Raises
    ------
    ValueError
        For an unknown `kind` or survey preset, a preset without an imaging noise model, a band
        the simulator cannot colour (u, y, Y) or the preset lacks, or a bad `size`.

    Notes
    -----
    With the defaults the images are bit-identical to those the shipped LSST model was trained
    on. The survey, bands and size consume no random draws before an object's noise, so with one
    seed non-lenses are the same scenes in every survey (lenses too, unless the detectability
    check rejects a draw in one survey only).
    """
    valid = ("mixed", "lens", "nonlens") + NEGATIVE_KINDS
    if kind not in valid:
        raise ValueError(f"kind must be one of {valid}, not {kind!r}")
    if not isinstance(shifted, (bool, np.bool_, str)) or shifted not in _SHIFTS:
        raise ValueError(f"shifted must be False, True or 'validation', not {shifted!r}")
    obs = _setup(survey, bands, size)
    images = np.empty((n, len(obs.bands), obs.grid.size, obs.grid.size), np.float32)
    labels = np.empty(n, np.int64)
    rows = []
    for i, ss in enumerate(np.random.SeedSequence([seed, _SHIFTS[shifted]]).spawn(n)):
        rng = np.random.default_rng(ss)
        if kind == "mixed":
            k = "lens" if rng.uniform() < lens_fraction else rng.choice(NEGATIVE_KINDS, p=_NEG_PROBS)
        elif kind == "nonlens":
            k = rng.choice(NEGATIVE_KINDS, p=_NEG_PROBS)
        else:
            k = kind
        meta: dict = {}
        psf_meta: dict = {}
        kernels = _psf_kernels(obs, rng, shifted, psf_meta)
        if k == "lens":
            images[i] = _lens(obs, rng, shifted, meta, kernels)
        else:
            images[i] = _nonlens(obs, rng, str(k), meta, kernels)
        labels[i] = int(k == "lens")
        rows.append({"kind": str(k), **psf_meta, **meta})
    meta_t = Table({"kind": [r["kind"] for r in rows], "psf": [r["psf"] for r in rows],
                    "source": [r.get("source", "") for r in rows]})
    for c in _META_COLS:
        meta_t[c] = np.array([r.get(c, np.nan) for r in rows], dtype=float)
    meta_t["label"] = labels
    return images, labels, meta_t
