"""Catalogue presets: photometry rows -> features, for catalogue models.

Rows are what `astrozoo.io` delivers for a catalogue spec: ``[flux_b] + [flux_err_b] +
[extinction_b]`` per band b, in the spec's flux unit and magnitudes.
"""

from __future__ import annotations

import math

import torch

__all__ = ["luptitudes"]

_POGSON = 2.5 / math.log(10)


def luptitudes(x: torch.Tensor, softening, zero_point: float = 22.5) -> torch.Tensor:
    """Extinction-corrected asinh magnitudes (Lupton, Gunn & Szalay 1999), adjacent colours,
    log10 magnitude errors and a missing-band indicator: (B, 3C) -> (B, 4C - 1).

    Asinh magnitudes stay finite for zero and negative fluxes. A band is missing when its flux
    or error is not finite or its error is not positive (ivar = 0 in SDSS); its magnitude,
    colours and error are then NaN and its indicator is 1.

    Parameters
    ----------
    softening : sequence of float
        Per-band softening b in the flux unit (about the 1-sigma sky noise; the survey
        preset's ``softening``).
    zero_point : float
        AB magnitude of one flux unit (22.5 for nanomaggies).
    """
    c = x.shape[1] // 3
    flux, err, ext = x[:, :c], x[:, c:2 * c], x[:, 2 * c:3 * c]
    b = torch.as_tensor(softening, dtype=x.dtype, device=x.device)
    ext = torch.nan_to_num(ext, nan=0.0, posinf=0.0, neginf=0.0)
    ok = torch.isfinite(flux) & torch.isfinite(err) & (err > 0)
    # Correct fluxes (not magnitudes) for dust so the asinh softening stays in flux space.
    dust = torch.pow(10.0, 0.4 * ext)
    flux = torch.where(ok, flux, torch.zeros_like(flux)) * dust
    err = torch.where(ok, err, torch.ones_like(err)) * dust
    # m = zp - 2.5 log10(e) [asinh(f / 2b) + ln(b)] with fluxes in units of the zero point's
    mag = -_POGSON * (torch.asinh(flux / (2 * b)) + torch.log(b)) + zero_point
    mag_err = _POGSON * err / torch.sqrt(flux ** 2 + 4 * b ** 2)
    colours = mag[:, :-1] - mag[:, 1:]
    feats = torch.cat([mag, colours, torch.log10(mag_err), (~ok).to(x.dtype)], dim=1)
    valid = torch.cat([ok, ok[:, :-1] & ok[:, 1:], ok, torch.ones_like(ok)], dim=1)
    return torch.where(valid, feats, torch.full_like(feats, float("nan")))
