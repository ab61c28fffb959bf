"""`CatalogPhotoZ`: photometric redshift p(z) from ugriz catalogue fluxes (architecture key
``photoz-catalog-mdn``).

Inputs are the rows `astrozoo.io` delivers for a catalogue spec, ``[flux_b] + [flux_err_b] +
[extinction_b]`` in nanomaggies and magnitudes. `preprocess` turns them into features in torch:
extinction-corrected asinh magnitudes (Lupton, Gunn & Szalay 1999, with the SDSS softening per
band, which stay finite for zero and negative fluxes), adjacent colours, log magnitude errors and
a missing-value indicator per band, standardised by statistics stored as buffers (so they travel
in ``model.safetensors``). The network is an ensemble of residual MLPs, each ending in an
`~astrozoo.tasks.photoz.mdn.MDNHead`; the members' mixtures are concatenated into one truncated
Gaussian mixture in z that is the average of their densities, with all widths multiplied by one
factor fitted on validation data.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...modeling import ZooModel
from .mdn import MDNHead, MixturePhotoZMixin, pack, union_log_weights

__all__ = ["CatalogPhotoZ", "SDSS_SOFTENING_NMGY"]

#: SDSS asinh-magnitude softening b per band, in nanomaggies (b / f0 = 1.4, 0.9, 1.2, 1.8,
#: 7.4 x 1e-10; Stoughton et al. 2002), roughly the 1-sigma sky noise of an SDSS PSF flux.
SDSS_SOFTENING_NMGY = {"u": 0.14, "g": 0.09, "r": 0.12, "i": 0.18, "z": 0.74}

_POGSON = 2.5 / math.log(10)
# Magnitude of 1 nanomaggy is 22.5; luptitudes need fluxes in units of f0 (= 1e9 nanomaggies).
_NMGY_PER_F0 = 1e9


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(),
                                 nn.Dropout(dropout), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class _Member(nn.Module):
    """One residual MLP + MDN head."""

    def __init__(self, n_features: int, width: int, depth: int, n_components: int,
                 dropout: float):
        super().__init__()
        self.stem = nn.Linear(n_features, width)
        self.blocks = nn.Sequential(*[_ResidualBlock(width, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = MDNHead(width, n_components)

    def forward(self, x: torch.Tensor):
        return self.head(torch.nn.functional.silu(self.norm(self.blocks(self.stem(x)))))


class CatalogPhotoZ(MixturePhotoZMixin, ZooModel):
    """Ensemble MDN photo-z on catalogue fluxes.

    Parameters
    ----------
    config : ModelConfig
        ``arch_kwargs``: ``width`` (hidden units), ``depth`` (residual blocks), ``n_components``
        (K per member), ``n_members`` (ensemble size M; the output mixture has M K components),
        ``dropout``.
    """

    def __init__(self, config):
        super().__init__(config)
        kw = config.arch_kwargs
        self.n_members = int(kw.get("n_members", 1))
        bands = self.spec.bands
        self.register_buffer("softening", torch.tensor([SDSS_SOFTENING_NMGY[b] for b in bands]))
        n_feat = self.n_raw_features
        self.register_buffer("feat_mean", torch.zeros(n_feat))
        self.register_buffer("feat_std", torch.ones(n_feat))
        # Widths multiplier fitted on validation data after training (temperature scaling):
        # averaging members' densities makes the ensemble slightly underconfident.
        self.register_buffer("sigma_scale", torch.ones(()))
        self.members = nn.ModuleList(
            _Member(n_feat, int(kw.get("width", 128)), int(kw.get("depth", 3)),
                    int(kw.get("n_components", 5)), float(kw.get("dropout", 0.0)))
            for _ in range(self.n_members))

    @property
    def n_raw_features(self) -> int:
        """Magnitudes, colours, log errors and missing flags: 4 C - 1 for C bands."""
        return 4 * len(self.spec.bands) - 1

    def raw_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input rows (B, 3C) -> unstandardised features (B, 4C - 1) and their validity mask.

        A band is missing when its flux or error is not finite or its error is not positive
        (ivar = 0 in SDSS); its magnitude, colours and error are then invalid (zeroed after
        standardisation) and its indicator feature is 1. Non-positive but measured fluxes are
        kept: luptitudes handle them.
        """
        c = len(self.spec.bands)
        x = x.float()
        flux, err, ext = x[:, :c], x[:, c:2 * c], x[:, 2 * c:3 * c]
        ext = torch.nan_to_num(ext, nan=0.0, posinf=0.0, neginf=0.0)
        ok = torch.isfinite(flux) & torch.isfinite(err) & (err > 0)
        # Correct fluxes (not magnitudes) for dust so the asinh softening stays in flux space.
        dust = torch.pow(10.0, 0.4 * ext)
        flux = torch.where(ok, flux, torch.zeros_like(flux)) * dust
        err = torch.where(ok, err, torch.ones_like(err)) * dust
        b = self.softening
        mag = -_POGSON * (torch.asinh(flux / (2 * b)) + torch.log(b / _NMGY_PER_F0))
        mag_err = _POGSON * err / torch.sqrt(flux ** 2 + 4 * b ** 2)
        colours = mag[:, :-1] - mag[:, 1:]
        feats = torch.cat([mag, colours, torch.log10(mag_err), (~ok).float()], dim=1)
        valid = torch.cat([ok, ok[:, :-1] & ok[:, 1:], ok, torch.ones_like(ok)], dim=1)
        return feats, valid

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Input rows (B, 3C) in spec units -> standardised features; invalid entries -> 0 (the
        training mean), flagged by the indicator features."""
        feats, valid = self.raw_features(x)
        z = (feats - self.feat_mean) / self.feat_std
        return torch.where(valid, z, torch.zeros_like(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, F) -> packed mixture (B, 3 M K) of all ensemble members."""
        parts = [(w, mu, sigma * self.sigma_scale) for w, mu, sigma in (m(x) for m in self.members)]
        log_w = torch.cat([union_log_weights(*p, self.n_members) for p in parts], -1)
        return pack(log_w, torch.cat([p[1] for p in parts], -1),
                    torch.cat([p[2] for p in parts], -1))
