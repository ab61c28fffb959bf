"""`DeblendUNet`: a U-Net on a timm ``features_only`` encoder that predicts, per pixel, the
foreground probability, an object-centre heatmap and the offset to the object's centre
(Panoptic-DeepLab's instance representation, Cheng et al. 2020); `astrozoo.tasks.deblending.
postprocess` groups the pixels into a segmentation map."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from astrozoo.modeling import ZooModel

__all__ = ["DeblendUNet", "OFFSET_SCALE", "DEFAULT_POSTPROCESS"]

#: Offsets are predicted in units of this many pixels (keeps the regression targets ~1).
OFFSET_SCALE = 8.0
#: Grouping settings (`astrozoo.tasks.deblending.postprocess.group_pixels`); the recipe tunes
#: them on its validation scenes and stores them in ``config.arch_kwargs["postprocess"]``.
DEFAULT_POSTPROCESS = {"fg_threshold": 0.5, "center_threshold": 0.3, "nms_kernel": 5,
                       "min_area": 5, "max_vote_distance": 12.0}


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def _dihedral_vector_map(k: int) -> torch.Tensor:
    """2 x 2 matrix taking an (x, y) vector in the frame of ``dihedral(., k)`` back to the
    input's frame, read off from how `dihedral` moves a 2 x 2 grid of pixel coordinates."""
    from astrozoo.inference.tta import dihedral

    yy, xx = torch.meshgrid(torch.arange(2.0), torch.arange(2.0), indexing="ij")
    t = dihedral(torch.stack([xx, yy]), k)  # the input (x, y) now at each transformed pixel
    return torch.stack([t[:, 0, 1] - t[:, 0, 0], t[:, 1, 0] - t[:, 0, 0]], 1)


class DeblendUNet(ZooModel):
    """Instance segmentation of blended sources.

    ``config.arch_kwargs``: ``backbone`` (timm name, built with ``features_only=True``),
    ``decoder`` (channels of the decoder stages, coarse to fine), ``postprocess`` (grouping
    settings, `DEFAULT_POSTPROCESS`) and further keyword arguments of `timm.create_model`.

    Raw output (`forward`), (B, 4, H, W) for inputs (B, C, H, W) with H, W multiples of the
    encoder's stride (`stride`; `segment` and `postprocess` pad): the foreground logit, the
    centre-heatmap logit, and the x and y offsets from the pixel to its object's centre in
    units of `OFFSET_SCALE` pixels.
    """

    def __init__(self, config):
        super().__init__(config)
        import timm

        kw = dict(config.arch_kwargs)
        backbone = kw.pop("backbone")
        decoder = kw.pop("decoder")
        self.postprocess_kwargs = {**DEFAULT_POSTPROCESS, **kw.pop("postprocess", {})}
        kw.pop("pretrained", None)  # trained from scratch on fluxes: ImageNet weights do not apply
        self.encoder = timm.create_model(backbone, pretrained=False, features_only=True,
                                         in_chans=len(config.input_spec.bands), **kw)
        chans = self.encoder.feature_info.channels()
        self.stride = self.encoder.feature_info.reduction()[-1]
        # full-resolution features from the input itself: the encoder's first map is at 1/2
        self.stem = _block(len(config.input_spec.bands), decoder[-1])
        skips = chans[-2::-1] + [decoder[-1]]
        ups, c = [], chans[-1]
        for skip, out in zip(skips, decoder):
            ups.append(_block(c + skip, out))
            c = out
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(c, 4, 1)
        with torch.no_grad():  # CenterNet's prior: centre heatmap starts at p = 0.1
            self.head.bias[1] = -2.19

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.stem(x)] + self.encoder(x)
        y = feats[-1]
        for block, skip in zip(self.up, feats[-2::-1]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], 1))
        return self.head(y)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """Network on inputs of any size: pads (reflect) to a multiple of `stride`, and returns
        the foreground probability, centre heatmap and offsets (pixels), (B, 4, H, W)."""
        h, w = x.shape[-2:]
        ph, pw = -h % self.stride, -w % self.stride
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        out = self(x)[..., :h, :w].float()
        return torch.cat([torch.sigmoid(out[:, :2]), out[:, 2:] * OFFSET_SCALE], 1)

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        from .postprocess import group_pixels

        out = out.detach().float()
        dense = torch.cat([torch.sigmoid(out[:, :2]), out[:, 2:] * OFFSET_SCALE], 1).cpu().numpy()
        segmaps = np.stack([group_pixels(d, **self.postprocess_kwargs) for d in dense])
        return {"n_sources": segmaps.reshape(len(segmaps), -1).max(1).astype(np.int32),
                "segmap": segmaps}

    def combine_tta(self, outs: torch.Tensor) -> torch.Tensor:
        """Merge the 8 dihedral copies (8, B, 4, H, W), which `tta_outputs` has moved back by
        position: the foreground and centre logits are averaged, and so are the offsets once
        each copy's vectors are turned back into the input's frame (`_dihedral_vector_map`)."""
        off = torch.stack([torch.einsum("ij,bjhw->bihw", _dihedral_vector_map(k).to(outs), o)
                           for k, o in enumerate(outs[:, :, 2:])])
        return torch.cat([outs[:, :, :2].mean(0), off.mean(0)], 1)

    def segment(self, image, **kwargs):
        """Segment a survey image of any size; see `astrozoo.tasks.deblending.segment.segment`."""
        from .segment import segment

        return segment(self, image, **kwargs)
