"""Training recipe of the bundled feature encoder: ``python -m astrozoo.tasks.features.train --seed 0 --out DIR``.

Self-supervised, no labels: SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive
Learning of Visual Representations"): two random views of each cutout, a slim timm
``resnet10t`` encoder and an MLP projection head, and the NT-Xent (normalised temperature-scaled
cross-entropy) loss that pulls the two views of a cutout together and pushes the other cutouts
of the batch away.

1. Unlabelled cutouts: LSST-like g, r, i 64 x 64 galaxies from the morphology simulator
   (`astrozoo.tasks.morphology.simulate`, its labels discarded), seeds disjoint from the
   morphology recipe and benchmark, kept in the training-data cache
   (``--generate-only --worker k --workers n`` fills it in parallel).
2. Views (`two_views`), on the raw fluxes: a random rotation (any angle) and flip, zoom
   (x 0.91-1.1) and shift (+- 3 pixels), in one bilinear resampling; a random overall flux
   scale (x 0.67-1.5) and per-band gain (1 +- 5 %), extra Gaussian noise up to the preset's
   sky sigma, and with probability 0.5 a Gaussian blur (sigma 0.2-0.8 pixels: a worse PSF).
   These are what varies between observations of one galaxy, not what makes it a class: no
   anisotropic stretch (it would change axis ratios) and no crop (it could cut off a merger's
   companion). On a validation set (seeds 6.9e6, not the benchmark's) these views gave a
   500-label linear probe of 0.876 against 0.850 for SimCLR's ImageNet-style resized crop,
   after the same 4 epochs on 8,000 cutouts.
3. `fit` with ``nt_xent`` for a fixed number of epochs; the last epoch is kept (float16).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from astrozoo.tasks.morphology.simulate import BANDS, PIXEL_SCALE, SIZE, SURVEY

CHUNK = 4000
N_TRAIN_CHUNKS = 6
MODEL_NAME = "features-resnet-lsst"
TEMPERATURE = 0.2
ARCH_KWARGS = {"backbone": "resnet10t", "channels": [32, 64, 128, 256], "stem_width": 16,
               "proj_dim": 128}


def train_config(seed: int = 0, **changes):
    from astrozoo.training import TrainConfig

    return TrainConfig(**{**dict(epochs=17, batch_size=256, lr=2e-3, weight_decay=1e-4,
                                 augment=two_views, monitor="loss", grad_clip=5.0, seed=seed),
                          **changes})


def _chunk_seed(seed: int, k: int) -> int:
    # morphology training uses 1e5 (seed+1) + 5e4 + k, its benchmark 7.1e6 and 8.1e6 + k
    return 6_100_000 + 10_000 * seed + k


def load_chunk(seed: int, k: int, cache=None) -> dict[str, np.ndarray]:
    """Chunk `k` of the unlabelled cutouts, ``{"x": float16 (CHUNK, 3, 64, 64) nJy}``."""
    from astrozoo.tasks.morphology.simulate import simulate
    from astrozoo.training.cache import cached

    def build():
        x, _, _ = simulate(CHUNK, _chunk_seed(seed, k))
        return {"x": x.astype(np.float16)}

    return cached(f"features_ssl_v1_seed{seed}_chunk{k:03d}", build, cache)


def _view(x, generator):
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    # one bilinear resampling: any rotation, a flip, +-10 % zoom and +-3 px shift; isotropic,
    # so an axis ratio (disk vs edge-on) is kept, and no crop that could drop a companion
    zoom = torch.exp((u(n) * 2 - 1) * math.log(1.1))
    angle = u(n) * (2 * math.pi)
    flip = torch.where(u(n) < 0.5, -1.0, 1.0)
    tx, ty = (u(n) * 2 - 1) * (3 / (w / 2)), (u(n) * 2 - 1) * (3 / (h / 2))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, c, h, w), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    v = v * torch.exp((u(n, 1, 1, 1) * 2 - 1) * math.log(1.5)) * (1 + 0.05 * (u(n, c, 1, 1) * 2 - 1))
    blur = u(n) < 0.5
    if blur.any():
        sigma = 0.2 + 0.6 * u(int(blur.sum()))
        r = torch.arange(-3, 4, dtype=torch.float32)
        kern = torch.exp(-r[None] ** 2 / (2 * sigma[:, None] ** 2))
        kern = kern / kern.sum(1, keepdim=True)  # (m, 7) separable Gaussian per cutout
        vb = v[blur]
        m = vb.shape[0]
        kx = kern.repeat_interleave(c, 0).view(m * c, 1, 1, 7)
        vb = F.conv2d(F.pad(vb.reshape(1, m * c, h, w), (3, 3, 0, 0), mode="reflect"), kx, groups=m * c)
        vb = F.conv2d(F.pad(vb, (0, 0, 3, 3), mode="reflect"), kx.view(m * c, 1, 7, 1), groups=m * c)
        v[blur] = vb.view(m, c, h, w)
    sky = torch.as_tensor(SURVEY.sky_sigma(BANDS), dtype=torch.float32).view(1, c, 1, 1)
    return v + torch.randn(v.shape, generator=generator) * sky * u(n, 1, 1, 1)


def two_views(x, y, generator):
    """The augmentation of `fit`: both views of every cutout, stacked (2B, C, H, W)."""
    import torch

    x = x.float()
    return torch.cat([_view(x, generator), _view(x, generator)]), y


def nt_xent(out, y=None, temperature: float = TEMPERATURE):
    """SimCLR's NT-Xent loss of raw outputs (2B, D + P) whose first and second halves are the
    two views (the last P columns: L2-normalised projections)."""
    import torch
    import torch.nn.functional as F

    z = out[:, -ARCH_KWARGS["proj_dim"]:].float()
    n = z.shape[0] // 2
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def build_config(seed: int, name: str = MODEL_NAME, n_train_chunks: int = N_TRAIN_CHUNKS,
                 epochs: int | None = None):
    from astrozoo.config import InputSpec, ModelConfig
    from astrozoo.registry import get_task
    from astrozoo.training.recipe import recipe_command

    return ModelConfig(
        name=name, task="features", architecture="ssl-encoder", arch_kwargs=dict(ARCH_KWARGS),
        input_spec=InputSpec(kind="image", survey="lsst", bands=BANDS, pixel_scale=PIXEL_SCALE,
                             size=SIZE, flux_unit="nJy", normalization="asinh",
                             normalization_kwargs={"softening": 3.0}),
        outputs=get_task("features").output_columns(), license="MIT",
        card=f"model_cards/{name}.md",
        training={"command": recipe_command(
                      "astrozoo.tasks.features.train", seed, train_chunks=n_train_chunks,
                      default_chunks=N_TRAIN_CHUNKS, epochs=epochs),
                  "seed": seed, "method": "SimCLR (NT-Xent, temperature 0.2)",
                  "data": (f"{n_train_chunks * CHUNK} unlabelled simulated LSST-like g,r,i "
                           "cutouts (astrozoo.tasks.morphology.simulate, labels discarded), seeds "
                           f"{_chunk_seed(seed, 0)}-{_chunk_seed(seed, n_train_chunks - 1)}")})


def train(x, *, out: Path, config=None, train_cfg=None, checkpoint_dir=None, log=print,
          progress: bool = False):
    """Train an `SSLEncoder` by SimCLR on unlabelled cutouts `x` (N, 3, 64, 64) in nJy and save
    it to `out`."""
    import torch

    from astrozoo.cards import read_card_source
    from astrozoo.training import fit

    from .model import SSLEncoder

    train_cfg = train_cfg or train_config()
    torch.manual_seed(train_cfg.seed)
    model = SSLEncoder(config or build_config(train_cfg.seed))
    model.card = read_card_source(MODEL_NAME)
    model.config = model.config.replace(training={**model.config.training,
                                                  "train_config": train_cfg.to_dict()})
    # no validation set (no labels to select on); with monitor "loss" the lowest epoch-mean
    # training loss is kept, which for a cosine schedule is the last epoch
    res = fit(model, (x, np.zeros(len(x), np.float32)), None, loss=nt_xent, config=train_cfg,
              out=out, save_dtype=torch.float16, checkpoint_dir=checkpoint_dir, log=log,
              progress=progress)
    return res


def main(argv=None) -> None:
    from astrozoo.training.recipe import generate_chunks, recipe_parser

    p = recipe_parser(__doc__.splitlines()[0], epochs=17)
    p.add_argument("--train-chunks", type=int, default=N_TRAIN_CHUNKS)
    a = p.parse_args(argv)
    if a.generate_only:
        generate_chunks(load_chunk, a.seed, range(a.train_chunks), a.worker, a.workers, a.cache)
        return
    import torch

    torch.set_num_threads(a.threads)
    x = np.concatenate([load_chunk(a.seed, k, a.cache)["x"] for k in range(a.train_chunks)])
    ckpt = a.checkpoint or Path("runs") / f"{MODEL_NAME}-seed{a.seed}" / "checkpoint"
    res = train(x, out=a.out, config=build_config(a.seed, n_train_chunks=a.train_chunks,
                                                  epochs=a.epochs),
                train_cfg=train_config(a.seed, epochs=a.epochs), checkpoint_dir=ckpt,
                log=lambda m: print(m, flush=True))
    print(f"final training loss {res.best:.5f} at epoch {res.best_epoch}, {res.steps} steps in "
          f"{res.seconds / 60:.1f} min; weights in {a.out}", flush=True)


if __name__ == "__main__":
    main()
