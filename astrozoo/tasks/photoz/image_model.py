"""`ImagePhotoZ`: photo-z p(z) from multi-band cutouts, a small timm ResNet plus an MDN head.

The network sees the cutout twice: a CNN on the (centre-cropped) asinh-stretched pixels, which
can read sizes, bulge/disk structure and colour gradients, and fixed circular-aperture fluxes
(photutils aperture masks, as a non-trainable layer), which hand it the integrated colours
directly instead of making the CNN learn to sum pixels accurately. Both feed an MLP and
`~astrozoo.tasks.photoz.mdn.MDNHead`.

The stretch is the spec's ``asinh`` preset with a fixed per-band softening (the survey preset's
sky noise), not a per-object estimate: photo-z lives on colours at the 1% level, and a per-object
MAD noise estimate from a 64x64 stamp is itself uncertain by a few percent per band. Since the
stretch is fixed, the aperture layer inverts it exactly (``sinh``) to integrate fluxes.
"""

from __future__ import annotations

import numpy as np
import torch
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from ...modeling import ZooModel
from ...preprocessing.normalize import asinh_softening
from .mdn import MDNHead, MixturePhotoZMixin, pack

__all__ = ["ImagePhotoZ", "AperturePhotometry", "aperture_masks"]


def aperture_masks(radii, size: int) -> np.ndarray:
    """Exact-overlap circular aperture weights (R, size, size) centred on the stamp, from
    photutils (pixel centres at integers, so the stamp centre is (size - 1) / 2)."""
    from photutils.aperture import CircularAperture

    c = (size - 1) / 2
    return np.stack([CircularAperture((c, c), r).to_mask(method="exact").to_image((size, size))
                     for r in radii]).astype(np.float32)


class AperturePhotometry(nn.Module):
    """Circular-aperture fluxes of centred sources, as asinh magnitudes (luptitudes).

    Parameters
    ----------
    masks : torch.Tensor, (R, H, W)
        Aperture weights (`aperture_masks`).
    softening : sequence of float, (C,)
        Per-band flux scale (the 1-pixel sky noise); the asinh softening of aperture r is that
        times sqrt(area_r), its own noise.

    Input ``(B, C, H, W)`` fluxes, or ``(B, C, R)`` precomputed aperture fluxes; output
    ``(B, C * R)`` features.
    """

    def __init__(self, masks: torch.Tensor, softening):
        super().__init__()
        # Both are rebuilt from the config, so they stay out of the saved weights.
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
    - ``aperture_radii``: aperture radii in pixels;
    - ``hidden``: width of the 3-layer MLP; ``n_components``: mixture components K.

    The spec's normalisation must be ``asinh`` with a fixed ``sky_sigma`` per band (its
    luptitude softening is that sigma as well). ``forward`` returns the packed mixture (B, 3K);
    ``postprocess``, ``combine_tta`` and ``pdf`` come from
    `~astrozoo.tasks.photoz.mdn.MixturePhotoZMixin`.
    """

    def __init__(self, config):
        super().__init__(config)
        a = config.arch_kwargs
        spec = config.input_spec
        norm = spec.normalization_kwargs
        if spec.normalization != "asinh" or norm.get("sky_sigma") is None:
            raise ValueError(f"{config.name}: ImagePhotoZ needs the 'asinh' preset with a fixed "
                             f"sky_sigma per band, not {spec.normalization!r} {norm}")
        n_bands = len(spec.bands)
        self.crop = int(a["crop"])
        beta = asinh_softening(torch.zeros(1, n_bands, 1, 1), norm.get("softening", 3.0),
                               norm["sky_sigma"])
        self.register_buffer("beta", beta, persistent=False)  # rebuilt from the config
        self.backbone = ResNet(BasicBlock, layers=tuple(a["layers"]), channels=tuple(a["channels"]),
                               in_chans=n_bands, stem_width=a["stem_width"], stem_type="deep",
                               num_classes=0)
        self.apertures = AperturePhotometry(
            torch.from_numpy(aperture_masks(a["aperture_radii"], spec.size)), norm["sky_sigma"])
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

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """MLP features (B, hidden) of preprocessed (asinh-stretched) cutouts."""
        cnn = self.backbone(self.center_crop(x))
        # Only the CNN under autocast. Float16 aperture sums overflow (65504 nJy, r ~ 19.4 AB)
        # and make the whole p(z) NaN; the MLP in bfloat16 moves z_median by up to 0.03, the
        # model's own scatter (0.0005 with the CNN alone in bfloat16). The MLP is cheap.
        with torch.autocast(x.device.type, enabled=False):
            flux = torch.sinh(x.float()) * self.beta  # exact inverse of the fixed stretch
            ap = self.apertures(self.apertures.fluxes(flux))
            return self.mlp(torch.cat([cnn.float(), ap], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pack(*self.head(self.forward_features(x)))

    def head_state(self, kind: str, labels) -> dict | None:
        """The MDN layer seeds an ``mdn`` head with as many components."""
        if kind == "mdn":
            return {f"mdn.{k}": v.detach().clone() for k, v in self.head.state_dict().items()}
        return None
