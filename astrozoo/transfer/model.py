"""`FineTunedModel`: a zoo model's backbone (its ``forward_features``) with a new head.

The parent architecture is rebuilt from its registered class and the parent's own
``arch_kwargs`` (recorded in this model's config), for the new input spec: nothing but
safetensors weights and a registered class name are ever loaded, and the parent's code path
(its ``preprocess`` and ``forward_features``) is the one that runs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import ModelConfig
from ..modeling import ZooModel
from .heads import build_head, head_columns, head_tta

__all__ = ["FineTunedModel"]

#: Ordinals of the parameters after the timm backbone (layer-wise decay, block freezing).
_NECK, _HEAD = 1_000_000, 1_000_001


class FineTunedModel(ZooModel):
    """A parent zoo model's feature extractor plus a head of one of `astrozoo.transfer.HEADS`.

    ``config.arch_kwargs``:

    - ``parent``: ``name``, ``task``, ``architecture``, ``arch_kwargs``, ``labels``,
      ``outputs`` and ``weights_sha256`` of the model fine-tuned from;
    - ``head``: ``kind``, ``in_features``, ``n_out``, ``dropout``.

    ``self.body`` is the parent architecture built for this model's input spec (its own head,
    if any, is unused and frozen); ``self.head`` maps its features to the raw output.
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from ..registry import get_architecture

        parent, head = config.arch_kwargs["parent"], config.arch_kwargs["head"]
        self.head_kind = head["kind"]
        self.body = get_architecture(parent["architecture"])(self.body_config(config))
        self.head = build_head(head["kind"], head["in_features"], head["n_out"],
                               head.get("dropout", 0.0))

    @staticmethod
    def body_config(config: ModelConfig) -> ModelConfig:
        """The parent's config for this model's input spec (what ``self.body`` is built from)."""
        p = config.arch_kwargs["parent"]
        return ModelConfig(name=p["name"], task=p["task"], architecture=p["architecture"],
                           arch_kwargs=p["arch_kwargs"], input_spec=config.input_spec,
                           outputs=p["outputs"], labels=p["labels"])

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.preprocess(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        return head_columns(self.head_kind, out, self.config.labels, self.head)

    def combine_tta(self, outs: torch.Tensor) -> torch.Tensor:
        return head_tta(self.head_kind, outs)

    def output_meta(self) -> dict:
        if self.head_kind == "mdn":  # the photo-z columns: the same truncated mixture
            from ..tasks.photoz.interop import TRUNCATION_META

            return dict(TRUNCATION_META)
        return {}

    def head_state(self, kind: str, labels) -> dict | None:
        """This head's weights, to start a further fine-tuning with the same head and labels."""
        if kind == self.head_kind and tuple(labels) == self.config.labels:
            return self.head.state_dict()
        return None

    def group_matcher(self, coarse: bool = False):
        """Parameter name -> layer ordinal, for timm's ``param_groups_layer_decay`` and block
        freezing: the timm backbone's own group matcher for ``body.backbone.*``, then the rest
        of the parent's layers (e.g. an MLP after the backbone), then the head."""
        from timm.models import group_parameters

        backbone = getattr(self.body, "backbone", None)
        layer = {}
        if backbone is not None and hasattr(backbone, "group_matcher"):
            layer = group_parameters(backbone, backbone.group_matcher(coarse=coarse), reverse=True)

        def ordinal(name: str):
            if name.startswith("head."):
                return _HEAD
            if name.startswith("body.backbone.") and layer:
                return layer.get(name[len("body.backbone."):], _NECK)
            return _NECK

        return ordinal
