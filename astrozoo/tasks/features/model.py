"""`SSLEncoder`: a timm CNN trained by self-supervised contrastive learning (SimCLR); its pooled
backbone features are the embedding."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from astrozoo.modeling import ZooModel

__all__ = ["SSLEncoder"]


class SSLEncoder(ZooModel):
    """Embedding model: a timm backbone (global average pooled) and the SimCLR projection head
    it was trained with.

    ``config.arch_kwargs``: ``backbone`` (timm name), ``proj_dim`` (projection size) and further
    keyword arguments of `timm.create_model`.

    Raw output (`forward`), (B, D + P): the embedding (D = the backbone's width) followed by the
    L2-normalised projection (P = ``proj_dim``) that the contrastive loss compares. The
    embedding (not the projection) is what transfers: SimCLR's projection discards the
    information its augmentations vary (Chen et al. 2020, section 4.2).
    """

    def __init__(self, config):
        super().__init__(config)
        import timm

        kw = dict(config.arch_kwargs)
        backbone = kw.pop("backbone")
        proj_dim = kw.pop("proj_dim", 128)
        kw.pop("pretrained", None)  # trained from scratch on fluxes
        self.backbone = timm.create_model(backbone, pretrained=False,
                                          in_chans=len(config.input_spec.bands), num_classes=0, **kw)
        d = self.backbone.num_features
        self.embed_dim = d
        self.projector = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(inplace=True),
                                       nn.Linear(d, proj_dim))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding, (B, D)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        return torch.cat([h, F.normalize(self.projector(h), dim=1)], 1)

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        return {"embedding": out[:, :self.embed_dim].detach().float().cpu().numpy()}
