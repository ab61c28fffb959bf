"""`MorphologyCNN`: a timm CNN with a class head and a Gaussian (mean, uncertainty) regression head
for the bulge fraction and the half-light radius."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from astrozoo.modeling import ZooModel

__all__ = ["MorphologyCNN", "N_REG", "BT_SIGMA_FLOOR", "LOG_R_SIGMA_FLOOR"]

#: Regression outputs per object: B/T mean and log sigma, log r_half mean and log sigma.
N_REG = 4
#: Smallest predicted sigma of B/T and of ln(r_half) (the truth itself is precise to ~0.5 %).
BT_SIGMA_FLOOR = 0.005
LOG_R_SIGMA_FLOOR = 0.01


class MorphologyCNN(ZooModel):
    """Morphology classifier and structural-parameter regressor on a timm backbone.

    ``config.arch_kwargs``: ``backbone`` (timm model name), ``pretrained`` (bool; trained from
    scratch on multi-band fluxes, ImageNet weights do not apply), ``head_drop`` (dropout before
    the heads) and any further keyword arguments of `timm.create_model`. The input channels are
    the spec's bands; the classes are ``config.labels``.

    Raw output (`forward`), shape (B, K + 4) for K classes: K class logits (before temperature
    scaling), then the B/T mean and ln sigma, then the mean and ln sigma of ln(r_half / arcsec).
    Buffers set by the recipe's calibration on its validation split (saved with the weights):
    ``temperature`` (divides the logits in `postprocess`) and ``err_scale`` (multiplies the two
    predicted sigmas, so that the +-1 err intervals hold 68 % of the validation truths).
    """

    def __init__(self, config):
        super().__init__(config)
        import timm

        kw = dict(config.arch_kwargs)
        backbone = kw.pop("backbone")
        pretrained = kw.pop("pretrained", False)
        head_drop = kw.pop("head_drop", 0.0)
        self.backbone = timm.create_model(backbone, pretrained=pretrained,
                                          in_chans=len(config.input_spec.bands), num_classes=0, **kw)
        d = self.backbone.num_features
        self.n_classes = len(config.labels)
        self.drop = nn.Dropout(head_drop)
        self.class_head = nn.Linear(d, self.n_classes)
        self.reg_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, N_REG))
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("err_scale", torch.ones(2))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled backbone features, shape (B, D)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs (B, K + 4); see the class docstring."""
        f = self.drop(self.forward_features(x))
        logits = self.class_head(f)
        r = self.reg_head(f).float()
        bt = 1.2 * torch.sigmoid(r[:, 0]) - 0.1  # can reach 0 and 1 (clipped in postprocess)
        bt_ls = torch.log(F.softplus(r[:, 1]) + BT_SIGMA_FLOOR)
        lr = r[:, 2]
        lr_ls = torch.log(F.softplus(r[:, 3]) + LOG_R_SIGMA_FLOOR)
        return torch.cat([logits.float(), torch.stack([bt, bt_ls, lr, lr_ls], 1)], 1)

    def head_state(self, kind: str, labels) -> dict | None:
        """The class layer seeds a ``classes`` head with the same classes (the calibration
        temperature is not carried over: fine-tuning changes it)."""
        if kind == "classes" and tuple(labels) == self.config.labels:
            return {f"linear.{k}": v.detach().clone() for k, v in self.class_head.state_dict().items()}
        return None

    def unpack(self, out: torch.Tensor):
        """``(logits, bt_mean, bt_sigma, ln_r_mean, ln_r_sigma)`` of raw outputs, uncalibrated."""
        k = self.n_classes
        return (out[:, :k], out[:, k], out[:, k + 1].exp(), out[:, k + 2], out[:, k + 3].exp())

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        out = out.float()
        logits, bt, bt_sig, lr, lr_sig = self.unpack(out)
        p = torch.softmax(logits / self.temperature.float().to(out.device), 1).cpu().numpy()
        scale = self.err_scale.float().cpu().numpy()
        labels = np.array(self.config.labels)
        cols = {"label": labels[p.argmax(1)]}
        cols.update({f"p_{lab}": p[:, i] for i, lab in enumerate(labels)})
        r_half = lr.exp().cpu().numpy()
        cols["bulge_fraction"] = bt.clamp(0, 1).cpu().numpy()
        cols["bulge_fraction_err"] = bt_sig.cpu().numpy() * scale[0]
        cols["r_half_arcsec"] = r_half
        cols["r_half_arcsec_err"] = r_half * lr_sig.cpu().numpy() * scale[1]
        return cols

    def combine_tta(self, outs: torch.Tensor) -> torch.Tensor:
        """Merge T augmented copies (T, B, K + 4): the calibrated class probabilities are
        averaged (returned as logits that give that mean), and each regression is the Gaussian
        mixture's mean and spread (mean of the variances plus the variance of the means)."""
        outs = outs.float()
        k = self.n_classes
        t = self.temperature.float().to(outs.device)
        p = torch.softmax(outs[..., :k] / t, -1).mean(0)
        logits = torch.log(p.clamp_min(1e-12)) * t
        regs = []
        for j in (k, k + 2):
            mu, sig = outs[..., j], outs[..., j + 1].exp()
            m = mu.mean(0)
            var = (sig ** 2).mean(0) + mu.var(0, unbiased=False)
            regs += [m, 0.5 * torch.log(var)]
        return torch.cat([logits, torch.stack(regs, 1)], 1)
