"""`Dinov2Encoder`: Meta's DINOv2 vision transformers (transformers' ``Dinov2Model``) behind
astrozoo's input pipeline, with astronomy preprocessing in float.

How a transformers model lives in astrozoo's Hub layout (the shape of huggingface_hub's
``ModelHubMixin`` hooks ``_save_pretrained`` / ``_from_pretrained``): an astrozoo directory
holds astrozoo's ``config.json`` (a `ModelConfig`) with the transformers config embedded in
``arch_kwargs["hf_config"]``, and ``model.safetensors`` with the transformers weights under
``backbone.``; `save_pretrained` / `from_pretrained` / `push_to_hub` are the zoo's own, so a
DINOv2 fine-tuned or re-configured here round-trips like any zoo model. Meta's repositories
(``facebook/dinov2-*``) are in transformers' layout instead: their ``config.json`` is a
``Dinov2Config``. Registered entries name that layout (``WeightsSource(format="transformers")``)
and carry an astrozoo config template; `from_transformers` reads such a directory (a Hub
snapshot or a ``save_pretrained`` of transformers) into the template. One ``config.json`` per
directory, never two configs side by side that could disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from astrozoo.modeling import ZooModel

from .templates import dinov2_config

__all__ = ["Dinov2Encoder", "dinov2_config", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Dinov2Encoder(ZooModel):
    """DINOv2 (``transformers.Dinov2Model``) as an astrozoo embedding model.

    ``config.arch_kwargs``: ``hf_config`` (the ``Dinov2Config`` as a dict), ``image_size``
    (network input side). The data flow: fluxes -> `lupton_rgb` or `grey` stretch (the spec's
    normalisation, scale-free) -> bilinear resize to ``image_size`` -> ImageNet mean / std ->
    ViT. Raw output (`forward`): the CLS token and the mean of the patch tokens after the final
    layer norm, concatenated (B, 2 D), as in DINOv2's linear evaluation. Set
    ``model.patch_tokens = True`` to also get the patch tokens (N, P, D) in `predict`'s
    ``patch_tokens`` column.
    """

    def __init__(self, config):
        super().__init__(config)
        try:
            from transformers import Dinov2Config, Dinov2Model
        except ImportError as e:
            raise ImportError("DINOv2 models need transformers: pip install 'astrozoo[features]'") from e

        kw = config.arch_kwargs
        self.image_size = int(kw.get("image_size", 112))
        self.backbone = Dinov2Model(Dinov2Config(**kw["hf_config"]))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.patch_tokens = False

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = super().preprocess(x)
        # float resize: transformers' image processors go through 8-bit PIL images, which would
        # quantise the stretched fluxes (transformers#25195)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                          align_corners=False, antialias=x.shape[-1] > self.image_size)
        return (x - self.mean) / self.std

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Final-layer tokens (B, 1 + P, D): CLS first, then the patches."""
        return self.backbone(pixel_values=x).last_hidden_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tokens(x)
        out = torch.cat([t[:, 0], t[:, 1:].mean(1)], 1)
        if self.patch_tokens:
            return torch.cat([out, t[:, 1:].flatten(1)], 1)
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[:, :2 * self.backbone.config.hidden_size]

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        d = self.backbone.config.hidden_size
        out = out.detach().float().cpu()
        cols = {"embedding": out[:, :2 * d].numpy()}
        if self.patch_tokens:
            cols["patch_tokens"] = out[:, 2 * d:].reshape(len(out), -1, d).numpy()
        return cols

    @classmethod
    def from_transformers(cls, directory, template=None, *, expected_sha256: str | None = None,
                          what: str | None = None) -> "Dinov2Encoder":
        """Build from a directory in transformers' layout (``config.json`` of a
        ``Dinov2Config``, ``model.safetensors``), e.g. a snapshot of ``facebook/dinov2-small``.

        Parameters
        ----------
        template : ModelConfig, optional
            Astrozoo config (bands, stretch, image size; `dinov2_config`); default
            ``dinov2_config(<directory name>)`` (g, r, i as RGB).
        expected_sha256 : str, optional
            Pin of ``model.safetensors`` (the registry's); checked when given.
        """
        from transformers import Dinov2Model

        from astrozoo.config import check_config_values
        from astrozoo.exceptions import IntegrityError
        from astrozoo.hub import (CONFIG_NAME, WEIGHTS_NAME, model_file, read_config_json,
                                  refuse_pickles, safetensors_header, verify_sha256)

        d = Path(directory)
        what = what or str(d)
        # a pickle beside pinned weights is never opened (use_safetensors below); see refuse_pickles
        refuse_pickles(d, what, pinned_upstream=bool(expected_sha256))
        config_path = model_file(d, CONFIG_NAME, what)
        weights = model_file(d, WEIGHTS_NAME, what)
        hf = read_config_json(config_path)
        if hf.get("model_type") != "dinov2":
            raise IntegrityError(f"{what}: {config_path} is not a DINOv2 transformers config "
                                 f"(model_type {hf.get('model_type')!r})")
        # bounds, and no key that would point transformers at other weights or remote code
        check_config_values(hf, str(config_path), "config")
        safetensors_header(weights, what)
        if expected_sha256:
            verify_sha256(weights, expected_sha256, what)
        # transformers reads its own checkpoints (it renames the keys of older releases);
        # use_safetensors: never the pickled pytorch_model.bin beside it; the concrete class
        # (no Auto*) and trust_remote_code=False: no code from the repository runs
        backbone = Dinov2Model.from_pretrained(d, use_safetensors=True, local_files_only=True,
                                               trust_remote_code=False)
        template = template or dinov2_config(d.name)
        config = template.replace(arch_kwargs={**template.arch_kwargs,
                                               "hf_config": backbone.config.to_diff_dict()})
        model = cls(config)
        model.backbone = backbone
        return model.eval()
