"""Normalisation presets: physical fluxes -> network inputs (images (B, C, H, W) per object and
band; catalogue rows through `astrozoo.preprocessing.catalog`).

Each model's config names its preset and arguments (``InputSpec.normalization``), so training and
inference use the same code. Batched torch ops, so they run on the GPU inside the engine. Written
here rather than taken from torchvision because astronomical images need per-object, per-band
statistics that are robust to the source itself (torchvision's ``Normalize`` uses fixed means).
"""

from __future__ import annotations

import torch

from .catalog import luptitudes

__all__ = ["PRESETS", "normalize", "robust_sky_sigma", "asinh_softening"]

_MAD_TO_SIGMA = 1.4826


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(-2)


def _median(f: torch.Tensor) -> torch.Tensor:
    """``f.median(-1, keepdim=True).values`` (the lower median). ONNX has no median operator:
    under export, the same element taken from a sort."""
    if torch.onnx.is_in_onnx_export():
        k = (f.shape[-1] - 1) // 2
        return f.sort(dim=-1).values[..., k:k + 1]
    return f.median(dim=-1, keepdim=True).values


def robust_sky_sigma(x: torch.Tensor) -> torch.Tensor:
    """Per-object, per-band noise sigma from the MAD of the pixels, shape (B, C, 1, 1).

    Sources cover a small fraction of a cutout, so the median absolute deviation of all pixels
    tracks the sky noise.
    """
    f = _flat(x)
    med = _median(f)
    mad = _median((f - med).abs())
    # A constant band (zero-filled, saturated) has MAD 0: floor sigma relative to the band's
    # scale so that dividing by it stays finite.
    finfo = torch.finfo(x.dtype)
    floor = f.abs().amax(dim=-1, keepdim=True) * finfo.eps + finfo.tiny
    return torch.maximum(_MAD_TO_SIGMA * mad, floor).unsqueeze(-1)


def asinh_softening(x: torch.Tensor, softening: float = 3.0,
                    sky_sigma=None) -> torch.Tensor:
    """The asinh softening `asinh` uses, broadcastable to `x` (B, C, H, W)."""
    if sky_sigma is None:
        return softening * robust_sky_sigma(x)
    sigma = torch.as_tensor(sky_sigma, dtype=x.dtype, device=x.device)
    return softening * sigma.view(1, -1, 1, 1)


def asinh(x: torch.Tensor, softening: float = 3.0, scale: float = 1.0,
          sky_sigma=None) -> torch.Tensor:
    """Lupton-style asinh stretch ``asinh(x / beta) * scale``, ``beta = softening x sigma``.

    Keeps the noise regime linear and compresses bright cores logarithmically. ``sigma`` is
    each object's robust sky sigma per band, or, with `sky_sigma` (one value per band, in the
    spec's flux unit), the survey's: a fixed stretch keeps colours exact, which a per-object
    noise estimate from one stamp (uncertain by a few percent) does not.
    """
    return torch.asinh(x / asinh_softening(x, softening, sky_sigma)) * scale


def robust_standardize(x: torch.Tensor) -> torch.Tensor:
    """(x - median) / (1.4826 MAD) per object and band."""
    f = _flat(x)
    med = _median(f).unsqueeze(-1)
    return (x - med) / robust_sky_sigma(x)


def percentile_clip(x: torch.Tensor, low: float = 1.0, high: float = 99.5) -> torch.Tensor:
    """Clip each object and band to its [low, high] percentiles and rescale to [0, 1]."""
    f = _flat(x)
    q = torch.quantile(f, torch.tensor([low / 100, high / 100], dtype=x.dtype, device=x.device),
                       dim=-1, keepdim=True)
    lo, hi = q[0].unsqueeze(-1), q[1].unsqueeze(-1)
    return ((x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)).clamp(0, 1)


def lupton_rgb(x: torch.Tensor, rgb=(2, 1, 0), Q: float = 8.0, stretch: float = 5.0,
               saturation: float = 100.0) -> torch.Tensor:
    """Three bands -> an RGB image with the Lupton et al. (2004) asinh stretch, in float.

    Each band is first divided by its robust sky sigma (so the stretch is in noise units and
    scale-free); ``rgb`` picks the bands shown as red, green, blue (default: reddest band red
    for bands given blue to red). With intensity ``I`` the mean of the three, every channel is
    multiplied by ``asinh(Q I / stretch) / (Q I)``, which compresses the intensity but keeps the
    ratios of the (noise-normalised) bands; ``I = saturation`` sigma maps to 1. Values are not clipped
    at 1 and never quantised (astropy's ``make_lupton_rgb`` returns 8-bit images).
    """
    x = x[:, list(rgb)]
    z = (x / robust_sky_sigma(x)).clamp_min(0)
    i = z.mean(1, keepdim=True)
    f = torch.asinh(Q * i / stretch) / (Q * i).clamp_min(1e-6)
    top = torch.asinh(torch.tensor(Q * saturation / stretch)) / Q
    return z * f / top


def grey(x: torch.Tensor, softening: float = 3.0, saturation: float = 100.0) -> torch.Tensor:
    """All bands averaged (in noise units) into one asinh-stretched plane, repeated as 3
    channels (for RGB networks, when no three bands make a colour image)."""
    z = (x / robust_sky_sigma(x)).mean(1, keepdim=True)
    g = torch.asinh(z / softening) / torch.asinh(torch.tensor(saturation / softening))
    return g.expand(-1, 3, -1, -1)


def identity(x: torch.Tensor) -> torch.Tensor:
    """No change (inputs already scaled for the network)."""
    return x


PRESETS = {"asinh": asinh, "robust": robust_standardize, "percentile": percentile_clip,
           "luptitude": luptitudes, "lupton_rgb": lupton_rgb, "grey": grey, "identity": identity}


def normalize(x: torch.Tensor, preset: str, **kwargs) -> torch.Tensor:
    """Apply the named preset. NaNs must already be replaced (the input pipeline does that)."""
    try:
        fn = PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown normalisation preset {preset!r}; known: {sorted(PRESETS)}") from None
    return fn(x.float(), **kwargs)
