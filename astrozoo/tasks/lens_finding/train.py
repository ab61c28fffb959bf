"""Training recipe of the default lens finder: ``python -m astrozoo.tasks.lens_finding.train --seed 0 --out DIR``.

1. Simulate the training set and a validation set with `astrozoo.tasks.lens_finding.simulate`,
   in chunks kept in the training-data cache (seeds derived from ``--seed``; the benchmark and
   tests use disjoint seeds). ``--generate-only --worker k --workers n`` fills the cache in
   parallel processes. The validation set is itself shifted from the training distribution
   (``shifted="validation"``: broad-winged Moffat PSFs, spiral lensed sources), so that the epoch
   kept is the one that generalises, not the one that fits the training distribution best; the
   benchmark's shifted set (Kolmogorov PSFs, irregular sources) is never used for a choice.
2. Train `LensClassifier` with the shared loop (`astrozoo.training.fit`: dihedral augmentation,
   AdamW, warm-up + cosine, an exponential moving average of the weights); the average's epoch
   with the best validation AUROC is saved (float16).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from .simulate import BANDS, PIXEL_SCALE, SIZE, simulate

CHUNK = 4000
N_TRAIN_CHUNKS = 18
N_VAL = 4000
VAL_CHUNK = 99_999  # chunk index (and seed offset) of the validation set, apart from training
MODEL_NAME = "lens-resnet10t-lsst"
# timm resnet10t slimmed for 64x64 cutouts on a shared CPU: 45 MFLOP, 1.2 M parameters
ARCH_KWARGS = {"backbone": "resnet10t", "pretrained": False, "channels": [32, 64, 128, 256],
               "stem_width": 16, "drop_rate": 0.1}


def train_config(seed: int = 0, **changes):
    """The recipe's `~astrozoo.training.TrainConfig`."""
    from astrozoo.training import TrainConfig

    return TrainConfig(**{**dict(epochs=20, batch_size=128, lr=2e-3, weight_decay=0.05,
                                 augment="dihedral", ema_decay=0.998, monitor="auroc",
                                 seed=seed), **changes})


def _chunk_seed(seed: int, k: int) -> int:
    # Training seeds live in [1e5 (seed+1), 1e5 (seed+2)); benchmarks and tests use others.
    return 100_000 * (seed + 1) + k


def load_chunk(seed: int, k: int, cache=None) -> dict[str, np.ndarray]:
    """Chunk `k` of the training data (k == VAL_CHUNK is the shifted validation set),
    simulated on first use and kept in the training-data cache."""
    from astrozoo.training.cache import simulated_chunk

    if k == VAL_CHUNK:
        return simulated_chunk(f"lens_v5_seed{seed}_val", partial(simulate, shifted="validation"),
                               N_VAL, _chunk_seed(seed, k), cache)
    return simulated_chunk(f"lens_v4_seed{seed}_chunk{k:03d}", simulate, CHUNK,
                           _chunk_seed(seed, k), cache)


def load_chunks(seed: int, ks, cache=None) -> tuple[np.ndarray, np.ndarray]:
    from astrozoo.training.cache import concat_chunks

    return concat_chunks(load_chunk(seed, k, cache) for k in ks)


def build_config(seed: int, name: str = MODEL_NAME, arch_kwargs: dict | None = None):
    """`ModelConfig` of the lens finder trained with `seed`."""
    from astrozoo.config import InputSpec, ModelConfig

    return ModelConfig(
        name=name, task="lens-finding", architecture="lens-classifier",
        arch_kwargs=dict(arch_kwargs or ARCH_KWARGS),
        input_spec=InputSpec(kind="image", survey="lsst", bands=BANDS, pixel_scale=PIXEL_SCALE,
                             size=SIZE, flux_unit="nJy", normalization="asinh",
                             normalization_kwargs={"softening": 3.0}),
        outputs=("p_lens",), labels=("lens",), license="MIT", card=f"model_cards/{name}.md",
        training={"command": f"python -m astrozoo.tasks.lens_finding.train --seed {seed} --out DIR",
                  "seed": seed,
                  "data": (f"{N_TRAIN_CHUNKS * CHUNK} simulated LSST-like g,r,i cutouts (half "
                           f"lenses) + {N_VAL} shifted ones for validation (shifted='validation'), "
                           f"astrozoo.tasks.lens_finding.simulate seeds "
                           f"{_chunk_seed(seed, 0)}-{_chunk_seed(seed, N_TRAIN_CHUNKS - 1)} "
                           f"(training) and {_chunk_seed(seed, VAL_CHUNK)} (validation)")})


def _auroc(outputs, targets) -> dict:
    from astrozoo.evaluation.lens import auroc

    return {"auroc": auroc(targets.numpy(), outputs.numpy())}


def _bce(logits, y):
    import torch

    return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y.float())


def train(x, y, xv, yv, *, out: Path, config=None, model=None, train_cfg=None,
          checkpoint_dir=None, log=print, progress: bool = False):
    """Train a `LensClassifier` (or fine-tune `model`) and save the best-AUROC epoch to `out`.

    Parameters
    ----------
    x, y, xv, yv : np.ndarray
        Training and validation fluxes (N, C, H, W) in nJy and labels (N,).
    config : ModelConfig, optional
        Architecture of a fresh model (default `build_config`).
    model : LensClassifier, optional
        Start from this model (fine-tuning, e.g. ``astrozoo.load("lens-finding")``) instead of
        a fresh one; use a lower learning rate then.
    train_cfg : TrainConfig, optional
        Default `train_config`.

    Returns
    -------
    astrozoo.training.FitResult
    """
    import torch

    from astrozoo.cards import read_card_source
    from astrozoo.training import fit

    from .model import LensClassifier

    train_cfg = train_cfg or train_config()
    torch.manual_seed(train_cfg.seed)
    if model is None:
        model = LensClassifier(config or build_config(train_cfg.seed))
        model.card = read_card_source(MODEL_NAME)
    model.config = model.config.replace(training={**model.config.training,
                                                  "train_config": train_cfg.to_dict()})
    y, yv = np.asarray(y, np.float32), np.asarray(yv, np.float32)
    return fit(model, (x, y), (xv, yv), loss=_bce, metric=_auroc, config=train_cfg, out=out,
               save_dtype=torch.float16, checkpoint_dir=checkpoint_dir, log=log,
               progress=progress)


def main(argv=None) -> None:
    from astrozoo.training.recipe import generate_chunks, recipe_parser

    a = recipe_parser(__doc__.splitlines()[0], epochs=20).parse_args(argv)
    if a.generate_only:
        generate_chunks(load_chunk, a.seed, [*range(N_TRAIN_CHUNKS), VAL_CHUNK], a.worker,
                        a.workers, a.cache)
        return
    import torch

    torch.set_num_threads(a.threads)
    x, y = load_chunks(a.seed, range(N_TRAIN_CHUNKS), a.cache)
    xv, yv = load_chunks(a.seed, [VAL_CHUNK], a.cache)
    ckpt = a.checkpoint or Path("runs") / f"{MODEL_NAME}-seed{a.seed}" / "checkpoint"
    res = train(x, y, xv, yv, out=a.out, train_cfg=train_config(a.seed, epochs=a.epochs),
                checkpoint_dir=ckpt, log=lambda m: print(m, flush=True))
    print(f"best validation AUROC {res.best:.5f} at epoch {res.best_epoch}, {res.steps} steps "
          f"in {res.seconds / 60:.1f} min; weights in {a.out}", flush=True)


if __name__ == "__main__":
    main()
