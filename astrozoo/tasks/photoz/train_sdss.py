"""Recipe for ``photoz-sdss``: an ensemble MDN trained on the real SDSS galaxies of the kcorrect
wheel (`astrozoo.tasks.photoz.sdss`).

    python -m astrozoo.tasks.photoz.train_sdss --seed 0 --out astrozoo/weights/photoz-sdss

Each ensemble member is trained on the training split with its own seed and data order by the
shared loop (`astrozoo.training.fit`: AdamW, warm-up + cosine) on the truncated-mixture NLL plus
`SUPPORT_WEIGHT` x the mixture's mass below z = 0 (`mdn_loss`; without it components drift
below zero at no cost to the truncated NLL, and a plain reading of the columns is wrong); the
epoch kept is the one with the lowest NLL on the validation split. Inputs are read from the
catalogue through the input pipeline, as at inference. In each batch a random 15% of the galaxies lose one random band (flux
and error set to NaN, as for an unmeasured band), so the missing-band indicators are learned:
the SDSS sample itself has no missing bands. Finally one multiplier of all the ensemble's widths
is fitted by minimising the validation NLL (temperature scaling). The test split is never read.
About 5 minutes on one CPU thread.

Re-drawing fluxes within their errors as augmentation was tried and hurt on validation (bias
-0.015 in a short run): it doubles the noise of inputs that are already noisy, so training and
real colours no longer match.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import nn

from ...cards import read_card_source
from ...config import InputSpec, ModelConfig
from ...registry import get_task
from ...evaluation.photoz import photoz_metrics
from ...surveys import get_survey
from ...training import TrainConfig, fit
from .catalog_model import CatalogPhotoZ
from .mdn import SUPPORT_WEIGHT, mass_below_zero, mdn_loss, mdn_nll, pack, unpack
from .sdss import BANDS, load_sdss, model_inputs

__all__ = ["build_model", "fit_feature_stats", "drop_bands", "train_member", "fit_sigma_scale",
           "main"]

NAME = "photoz-sdss"


def build_model(seed: int, n_members: int, n_components: int, width: int, depth: int,
                dropout: float, epochs: int) -> CatalogPhotoZ:
    """An untrained `CatalogPhotoZ` with the ``photoz-sdss`` config."""
    sdss = get_survey("sdss")
    spec = InputSpec(kind="catalog", survey="sdss", bands=BANDS, pixel_scale=None, size=None,
                     flux_unit=sdss.flux_unit, normalization="luptitude",
                     normalization_kwargs={"softening": [sdss.softening[b] for b in BANDS],
                                           "zero_point": round(sdss.zero_point, 6)})
    config = ModelConfig(
        name=NAME, task="photo-z", architecture="photoz-catalog-mdn",
        arch_kwargs={"n_members": n_members, "n_components": n_components, "width": width,
                     "depth": depth, "dropout": dropout},
        input_spec=spec, outputs=get_task("photo-z").columns, license="MIT", card=f"model_cards/{NAME}.md",
        training={"command": "python -m astrozoo.tasks.photoz.train_sdss " + " ".join(sys.argv[1:]),
                  "seed": seed, "epochs": epochs,
                  "data": "kcorrect 5.1 data/test/gst_tests_small.fits: 10,000 real SDSS galaxies; "
                          "train = row index % 5 in {2, 3, 4} (6,000), validation = % 5 == 1 "
                          "(2,000, epoch selection and width calibration), test = % 5 == 0 "
                          "(never used in training)"})
    return CatalogPhotoZ(config)


def fit_feature_stats(model: CatalogPhotoZ, rows: torch.Tensor) -> None:
    """Set the standardisation buffers from the valid (finite) preprocessed training features.

    The missing-band indicators stay 0/1 (mean 0, std 1): the training set has almost no missing
    bands, so their own standard deviation is ~0 and would blow a flag up to ~1e3, swamping
    every other input.
    """
    feats = model.preprocess(rows)
    valid = torch.isfinite(feats)
    n = valid.sum(0).clamp_min(1)
    mean = torch.where(valid, feats, 0).sum(0) / n
    std = (torch.where(valid, (feats - mean) ** 2, 0).sum(0) / n).sqrt().clamp_min(1e-3)
    flags = slice(-len(model.spec.bands), None)
    mean[flags], std[flags] = 0.0, 1.0
    model.feat_mean.copy_(mean)
    model.feat_std.copy_(std)


def drop_bands(p: float, n_bands: int):
    """Augmentation for `fit`: a fraction `p` of the objects in each batch have one random band
    unmeasured (flux and error NaN)."""
    def augment(rows, z, gen):
        rows = rows.clone()
        hit = torch.nonzero(torch.rand(len(rows), generator=gen) < p).squeeze(1)
        band = torch.randint(n_bands, (len(hit),), generator=gen)
        rows[hit, band] = float("nan")
        rows[hit, n_bands + band] = float("nan")
        return rows, z

    augment.__name__ = f"drop_bands(p={p})"
    return augment


class _MemberNet(nn.Module):
    """Ensemble member `i` of `model` as a trainable network: the parent's preprocessing and
    standardisation (not trained) in front of the member's MLP + MDN head."""

    def __init__(self, model: CatalogPhotoZ, i: int):
        super().__init__()
        self.member = model.members[i]
        self._parent = (model,)  # a tuple, so the parent's parameters are not this module's

    def preprocess(self, x):
        return self._parent[0].preprocess(x)

    def forward(self, x):
        return pack(*self.member(self._parent[0].standardize(x)))


def _loss(support_weight):
    def loss(out, z):
        return mdn_loss(*unpack(out.float()), z, support_weight)

    return loss


def train_member(model: CatalogPhotoZ, i: int, train_rows, z_train, val_rows, z_val, *,
                 seed: int, epochs: int, batch_size: int = 128, lr: float = 2e-3,
                 weight_decay: float = 1e-4, p_drop_band: float = 0.15,
                 support_weight: float = SUPPORT_WEIGHT) -> float:
    """Train ensemble member `i` in place; returns its best validation NLL."""
    n_bands = len(model.spec.bands)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      warmup_steps=int(0.3 * epochs * (len(train_rows) // batch_size)),
                      augment=drop_bands(p_drop_band, n_bands), monitor="loss", seed=seed)
    res = fit(_MemberNet(model, i), (train_rows, z_train), (val_rows, z_val), loss=_loss(support_weight),
              config=cfg, progress=False, log=lambda m: None)
    return res.best


def fit_sigma_scale(model: CatalogPhotoZ, val_rows: torch.Tensor, z_val: torch.Tensor,
                    support_weight: float = SUPPORT_WEIGHT) -> float:
    """Set ``model.sigma_scale`` to the width multiplier minimising the validation loss
    (`mdn_loss`: wider components also put more mass below zero)."""
    with torch.no_grad():
        val_x = model.preprocess(val_rows)

    def nll(scale):
        model.sigma_scale.fill_(scale)
        with torch.no_grad():
            return mdn_loss(*unpack(model(val_x)), z_val, support_weight).item()

    best = minimize_scalar(nll, bounds=(0.5, 2.0), method="bounded", options={"xatol": 1e-3}).x
    model.sigma_scale.fill_(best)
    return float(best)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--components", type=int, default=5)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--support-weight", type=float, default=SUPPORT_WEIGHT,
                   help="weight of the mixture's mass below z = 0 in the loss")
    args = p.parse_args(argv)

    torch.set_num_threads(1)  # the CPU is shared; a small MLP gains little from more threads
    t0 = time.time()
    train, val = load_sdss("train"), load_sdss("val")
    torch.manual_seed(args.seed)  # the members' initial weights
    model = build_model(args.seed, args.members, args.components, args.width, args.depth,
                        args.dropout, args.epochs)
    train_rows = torch.from_numpy(model_inputs(train, model.spec))
    val_rows = torch.from_numpy(model_inputs(val, model.spec))
    z_train = torch.from_numpy(np.asarray(train["z_spec"], np.float32))
    z_val = torch.from_numpy(np.asarray(val["z_spec"], np.float32))
    fit_feature_stats(model, train_rows)
    for i in range(args.members):
        nll = train_member(model, i, train_rows, z_train, val_rows, z_val,
                           seed=args.seed * 1000 + i, epochs=args.epochs,
                           support_weight=args.support_weight)
        print(f"member {i}: best validation NLL {nll:.4f}  ({time.time() - t0:.0f} s)", flush=True)

    model.eval()
    print(f"sigma scale {fit_sigma_scale(model, val_rows, z_val, args.support_weight):.3f}")
    with torch.no_grad():
        raw = model(model.preprocess(val_rows))
    cols = model.postprocess(raw)
    print(f"ensemble validation NLL {mdn_nll(*unpack(raw), z_val).item():.4f}, mean mass "
          f"below z = 0 {mass_below_zero(*unpack(raw)).mean().item():.4f}")
    for point in ("z_mean", "z_median", "z_mode"):
        m = photoz_metrics(val["z_spec"], cols[point], cols["mdn_weight"], cols["mdn_mu"],
                           cols["mdn_sigma"], intervals=cols)
        print(f"validation {point}: " + ", ".join(f"{k}={v:.4f}" for k, v in m.items()))
    model.card = read_card_source(NAME)
    model.save_pretrained(args.out)
    print(f"saved {args.out} in {time.time() - t0:.0f} s; sha256 {model.config.weights_sha256}")


if __name__ == "__main__":
    main()
