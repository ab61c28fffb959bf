"""`ImagePhotoZ`: photo-z p(z) from multi-band cutouts, a small timm ResNet plus an MDN head.

The network sees the cutout twice: a CNN on the (centre-cropped) asinh-stretched pixels, which
can read sizes, bulge/disk structure and colour gradients, and fixed circular-aperture fluxes
(the photutils masks of the photometry baseline, as a non-trainable layer), which hand it the
integrated colours directly instead of making the CNN learn to sum pixels accurately. Both feed
an MLP and `~astrozoo.tasks.photoz.mdn.MDNHead`.

The stretch uses a fixed per-band softening (the survey's sky noise, from ``arch_kwargs``), not
a per-object estimate: photo-z lives on colours at the 1% level, and a per-object MAD noise
estimate from a 64x64 stamp is itself uncertain by a few percent per band.
"""

from __future__ import annotations

import torch
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from ...modeling import ZooModel
from .mdn import MDNHead, MixturePhotoZMixin, pack

__all__ = ["ImagePhotoZ", "AperturePhotometry"]


class AperturePhotometry(nn.Module):
    """Circular-aperture fluxes of centred sources, as asinh magnitudes (luptitudes).

    Parameters
    ----------
    masks : torch.Tensor, (R, H, W)
        Aperture weights (e.g. `~astrozoo.tasks.photoz.simulate_lsst.aperture_masks`).
    softening : sequence of float, (C,)
        Per-band flux scale (the 1-pixel sky noise); the asinh softening of aperture r is that
        times sqrt(area_r), its own noise.

    Input ``(B, C, H, W)`` fluxes, or ``(B, C, R)`` precomputed aperture fluxes; output
    ``(B, C * R)`` features.
    """

    def __init__(self, masks: torch.Tensor, softening):
        super().__init__()
        # Both are rebuilt from arch_kwargs, so they stay out of the saved weights.
        self.register_buffer("masks", masks.float(), persistent=False)
        soft = torch.as_tensor(softening, dtype=torch.float32)[:, None] * masks.sum((1, 2)).sqrt()
        self.register_buffer("soft", soft, persistent=False)

    def fluxes(self, x: torch.Tensor) -> torch.Tensor:
        """Aperture fluxes (B, C, R) of cutouts (B, C, H, W)."""
        return torch.einsum("bchw,rhw->bcr", x, self.masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flux = self.fluxes(x) if x.ndim == 4 else x
        return torch.asinh(flux / self.soft).flatten(1)


class ImagePhotoZ(MixturePhotoZMixin, ZooModel):
    """Image photo-z model (architecture key ``"photoz-image-mdn"``).

    ``config.arch_kwargs``:

    - ``channels``, ``layers``, ``stem_width``: the timm `~timm.models.resnet.ResNet`
      (BasicBlocks, deep stem);
    - ``crop``: side of the central region the CNN sees (the apertures use the full stamp);
    - ``softening``: per-band sky noise in the spec's flux unit, the asinh softening;
    - ``aperture_radii``: aperture radii in pixels;
    - ``hidden``: width of the 3-layer MLP; ``n_components``: mixture components K.

    ``forward`` returns the packed mixture (B, 3K); ``postprocess``, ``combine_tta`` and ``pdf``
    come from `~astrozoo.tasks.photoz.mdn.MixturePhotoZMixin`.
    """

    def __init__(self, config):
        super().__init__(config)
        from .simulate_lsst import aperture_masks

        a = config.arch_kwargs
        n_bands = len(config.input_spec.bands)
        self.crop = int(a["crop"])
        self.register_buffer("softening", torch.tensor(a["softening"], dtype=torch.float32)
                             .view(1, -1, 1, 1), persistent=False)
        self.backbone = ResNet(BasicBlock, layers=tuple(a["layers"]), channels=tuple(a["channels"]),
                               in_chans=n_bands, stem_width=a["stem_width"], stem_type="deep",
                               num_classes=0)
        self.apertures = AperturePhotometry(
            torch.from_numpy(aperture_masks(a["aperture_radii"], config.input_spec.size)),
            a["softening"])
        n_in = self.backbone.num_features + n_bands * len(a["aperture_radii"])
        self.mlp = nn.Sequential(nn.Linear(n_in, a["hidden"]), nn.GELU(),
                                 nn.Linear(a["hidden"], a["hidden"]), nn.GELU(),
                                 nn.Linear(a["hidden"], a["hidden"]), nn.GELU())
        self.head = MDNHead(a["hidden"], a["n_components"])

    def center_crop(self, x: torch.Tensor) -> torch.Tensor:
        """The central ``crop`` x ``crop`` pixels the CNN sees."""
        h, w = x.shape[-2:]
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        return x[..., top:top + self.crop, left:left + self.crop]

    def features_from_parts(self, core: torch.Tensor, aperture_flux: torch.Tensor) -> torch.Tensor:
        """MLP features from the cropped cutouts (B, C, crop, crop) and their aperture fluxes
        (B, C, R); training uses this with cached photometry and augmented crops."""
        cnn = self.backbone(torch.asinh(core / self.softening))
        return self.mlp(torch.cat([cnn, self.apertures(aperture_flux)], dim=1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """MLP features (B, hidden) of preprocessed cutouts (fluxes in spec units)."""
        return self.features_from_parts(self.center_crop(x), self.apertures.fluxes(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pack(*self.head(self.forward_features(x)))
