"""`CatalogPhotoZ`: photometric redshift p(z) from ugriz catalogue fluxes (architecture key
``photoz-catalog-mdn``).

Inputs are the rows `astrozoo.io` delivers for a catalogue spec, ``[flux_b] + [flux_err_b] +
[extinction_b]`` in nanomaggies and magnitudes. `preprocess` is the spec's ``luptitude`` preset
(`astrozoo.preprocessing.catalog.luptitudes`, with the SDSS survey preset's softening):
extinction-corrected asinh magnitudes, adjacent colours, log magnitude errors and a
missing-band indicator, NaN where a band is missing. The network standardises them by statistics
stored as buffers (so they travel in ``model.safetensors``), sets missing entries to 0 (the
training mean; the indicators say they are missing) and is an ensemble of residual MLPs, each ending in an
`~astrozoo.tasks.photoz.mdn.MDNHead`; the members' mixtures are concatenated into one truncated
Gaussian mixture in z that is the average of their densities, with all widths multiplied by one
factor fitted on validation data.
"""

from __future__ import annotations

import torch
from torch import nn

from ...modeling import ZooModel
from .mdn import MDNHead, MixturePhotoZMixin, pack, union_log_weights

__all__ = ["CatalogPhotoZ"]


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
        n_feat = self.n_features
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
    def n_features(self) -> int:
        """Magnitudes, colours, log errors and missing flags: 4 C - 1 for C bands."""
        return 4 * len(self.spec.bands) - 1

    def standardize(self, feats: torch.Tensor) -> torch.Tensor:
        """Preprocessed features -> standardised, missing (NaN) entries at 0."""
        z = (feats - self.feat_mean) / self.feat_std
        return torch.where(torch.isfinite(z), z, torch.zeros_like(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed features (B, F) -> packed mixture (B, 3 M K) of all ensemble members."""
        # float32 under any autocast: small MLPs gain no speed, and bfloat16 moves z_hi95 by 0.01
        with torch.autocast(x.device.type, enabled=False):
            x = self.standardize(x.float())
            parts = [(w, mu, sigma * self.sigma_scale)
                     for w, mu, sigma in (m(x) for m in self.members)]
            log_w = torch.cat([union_log_weights(*p, self.n_members) for p in parts], -1)
            return pack(log_w, torch.cat([p[1] for p in parts], -1),
                        torch.cat([p[2] for p in parts], -1))
