"""`LensClassifier`: a timm CNN with a one-logit head that scores cutouts for strong lensing."""

from __future__ import annotations

import numpy as np
import torch

from astrozoo.modeling import ZooModel

__all__ = ["LensClassifier"]


class LensClassifier(ZooModel):
    """Binary strong-lens classifier on a timm backbone.

    ``config.arch_kwargs``: ``backbone`` (timm model name), ``pretrained`` (bool; the zoo's
    weights are trained from scratch on multi-band fluxes, so ImageNet weights do not apply) and
    any further keyword arguments of `timm.create_model` (e.g. ``drop_rate``). The number of
    input channels is the number of bands in the input spec.
    """

    def __init__(self, config):
        super().__init__(config)
        import timm

        kw = dict(config.arch_kwargs)
        backbone = kw.pop("backbone")
        pretrained = kw.pop("pretrained", False)
        self.backbone = timm.create_model(backbone, pretrained=pretrained,
                                          in_chans=len(config.input_spec.bands), num_classes=1, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lens logit, shape (B,)."""
        return self.backbone(x).squeeze(-1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled backbone features, shape (B, D)."""
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def head_state(self, kind: str, labels) -> dict | None:
        """The lens logit layer seeds a binary ``lens`` head (fine-tuning starts from the
        pretrained decision, not a random one)."""
        if kind == "binary" and tuple(labels) == ("lens",):
            fc = self.backbone.get_classifier()
            return {"linear.weight": fc.weight.detach().clone(),
                    "linear.bias": fc.bias.detach().clone()}
        return None

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        return {"p_lens": torch.sigmoid(out.float()).cpu().numpy()}

    def combine_tta(self, outs: torch.Tensor) -> torch.Tensor:
        """Average the probabilities of the T augmented copies (not the logits, which one
        confident view would dominate) and return the logit of the mean."""
        p = torch.sigmoid(outs.float()).mean(0)
        return torch.logit(p, eps=1e-7)
