"""Training recipe of the default morphology model: ``python -m astrozoo.tasks.morphology.train --seed 0 --out DIR``.

1. Simulate the training and validation sets with `astrozoo.tasks.morphology.simulate`, in
   chunks kept in the training-data cache (seeds derived from ``--seed``; the benchmark and
   tests use disjoint seeds). ``--generate-only --worker k --workers n`` fills the cache in
   parallel processes.
2. Train `MorphologyCNN` with the shared loop (`astrozoo.training.fit`: dihedral augmentation,
   AdamW, warm-up + cosine) on cross-entropy + Gaussian negative log-likelihoods of B/T and
   ln(r_half); the epoch with the lowest validation loss is kept (float16).
3. Calibrate on the validation split (`calibrate`): temperature scaling of the class logits
   (minimum validation log loss) and one scale factor per regression uncertainty (68 % of
   validation truths within +-err); both are buffers saved with the weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .simulate import BANDS, CLASSES, PIXEL_SCALE, SIZE, simulate

CHUNK = 4000
N_TRAIN_CHUNKS = 9
N_VAL = 4000
MODEL_NAME = "morphology-resnet-lsst"
#: Weight of the two regression NLLs relative to the cross-entropy.
REG_WEIGHT = 0.5
# timm resnet10t slimmed for 64x64 cutouts on a shared CPU (as the lens finder)
ARCH_KWARGS = {"backbone": "resnet10t", "pretrained": False, "channels": [32, 64, 128, 256],
               "stem_width": 16, "head_drop": 0.1}


def train_config(seed: int = 0, **changes):
    """The recipe's `~astrozoo.training.TrainConfig`."""
    from astrozoo.training import TrainConfig

    return TrainConfig(**{**dict(epochs=8, batch_size=128, lr=2e-3, weight_decay=0.05,
                                 augment="dihedral", monitor="loss", grad_clip=5.0, seed=seed),
                          **changes})


def _chunk_seed(seed: int, k: int) -> int:
    # Training seeds live in [1e5 (seed+1) + 50000, ...); benchmarks and tests use others.
    return 100_000 * (seed + 1) + 50_000 + k


def load_chunk(seed: int, k: int, cache=None) -> dict[str, np.ndarray]:
    """Chunk `k` of the training data (k == N_TRAIN_CHUNKS is the validation set), simulated
    on first use and kept in the training-data cache."""
    from astrozoo.training.cache import simulated_chunk

    n = N_VAL if k == N_TRAIN_CHUNKS else CHUNK
    return simulated_chunk(f"morphology_v1_seed{seed}_chunk{k:03d}", simulate, n, _chunk_seed(seed, k),
                           cache)


def load_chunks(seed: int, ks, cache=None) -> tuple[np.ndarray, np.ndarray]:
    from astrozoo.training.cache import concat_chunks

    return concat_chunks(load_chunk(seed, k, cache) for k in ks)


def build_config(seed: int, name: str = MODEL_NAME, arch_kwargs: dict | None = None,
                 n_train_chunks: int = N_TRAIN_CHUNKS, epochs: int | None = None):
    """`ModelConfig` of the morphology model trained with `seed`."""
    from astrozoo.config import InputSpec, ModelConfig
    from astrozoo.registry import get_task
    from astrozoo.training.recipe import recipe_command

    return ModelConfig(
        name=name, task="morphology", architecture="morphology-cnn",
        arch_kwargs=dict(arch_kwargs or ARCH_KWARGS),
        input_spec=InputSpec(kind="image", survey="lsst", bands=BANDS, pixel_scale=PIXEL_SCALE,
                             size=SIZE, flux_unit="nJy", normalization="asinh",
                             normalization_kwargs={"softening": 3.0}),
        outputs=get_task("morphology").output_columns(CLASSES), labels=CLASSES, license="MIT",
        card=f"model_cards/{name}.md",
        training={"command": recipe_command(
                      "astrozoo.tasks.morphology.train", seed, train_chunks=n_train_chunks,
                      default_chunks=N_TRAIN_CHUNKS, epochs=epochs),
                  "seed": seed,
                  "data": (f"{n_train_chunks * CHUNK} simulated LSST-like g,r,i cutouts (five "
                           f"classes, equally likely) + {N_VAL} for validation, "
                           f"astrozoo.tasks.morphology.simulate seeds {_chunk_seed(seed, 0)}-"
                           f"{_chunk_seed(seed, n_train_chunks - 1)} (training), "
                           f"{_chunk_seed(seed, N_TRAIN_CHUNKS)} (validation)")})


def _split(out, y):
    """Class logits, regression outputs and targets (class, B/T, ln r_half)."""
    import torch

    k = len(CLASSES)
    y = y.float()
    return (out[:, :k].float(), out[:, k:].float(), y[:, 0].long(), y[:, 1],
            torch.log(y[:, 2].clamp_min(1e-3)))


def morphology_loss(out, y):
    """Cross-entropy + `REG_WEIGHT` x (Gaussian NLL of B/T + Gaussian NLL of ln r_half)."""
    import torch.nn.functional as F

    logits, reg, cls, bt, lr = _split(out, y)
    ce = F.cross_entropy(logits, cls)
    nll_bt = 0.5 * ((bt - reg[:, 0]) / reg[:, 1].exp()) ** 2 + reg[:, 1]
    nll_r = 0.5 * ((lr - reg[:, 2]) / reg[:, 3].exp()) ** 2 + reg[:, 3]
    return ce + REG_WEIGHT * (nll_bt.mean() + nll_r.mean())


def _val_metrics(outputs, targets) -> dict:
    import torch

    from astrozoo.evaluation.morphology import classification_metrics, nmad

    logits, reg, cls, bt, lr = _split(outputs, targets)
    m = classification_metrics(cls.numpy(), torch.softmax(logits, 1).numpy())
    r_true = targets[:, 2].float().numpy()
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece_raw": m["ece"],
            "r_half_nmad": nmad(np.exp(reg[:, 2].numpy()) / r_true - 1),
            "bt_nmad": nmad(reg[:, 0].clamp(0, 1).numpy() - bt.numpy())}


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T minimising the log loss of softmax(logits / T) (bounded 0.25-8)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, int)

    def nll(log_t):
        return -log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(labels)), labels].mean()

    res = minimize_scalar(nll, bounds=(np.log(0.25), np.log(8.0)), method="bounded")
    return float(np.exp(res.x))


def calibrate(model, xv, yv, log=print) -> dict:
    """Set `model`'s ``temperature`` and ``err_scale`` buffers from the validation set (in
    place) and return them with the validation ECE before and after."""
    import torch

    from astrozoo.evaluation.morphology import expected_calibration_error
    from astrozoo.training import round_to_storage, run_batches

    round_to_storage(model)  # calibrate the weights exactly as they will be stored (float16)
    with torch.no_grad():
        model.temperature.fill_(1.0)
        model.err_scale.fill_(1.0)
    out, y = run_batches(model, (xv, np.asarray(yv, np.float32)), batch_size=256)
    logits, reg, cls, bt, lr = _split(out, y)
    labels = cls.numpy()
    t = float(np.float16(fit_temperature(logits.numpy(), labels)))
    # the coverage of +-err intervals in the output units, as the benchmark measures it
    cols = model.postprocess(out)
    bt_ratio = np.abs(cols["bulge_fraction"] - y[:, 1].numpy()) / cols["bulge_fraction_err"]
    r_ratio = np.abs(cols["r_half_arcsec"] - y[:, 2].numpy()) / cols["r_half_arcsec_err"]
    scale = [float(np.float16(np.quantile(bt_ratio, 0.6827))),
             float(np.float16(np.quantile(r_ratio, 0.6827)))]
    with torch.no_grad():
        model.temperature.fill_(t)
        model.err_scale.copy_(torch.tensor(scale))
    p_raw = torch.softmax(logits, 1).numpy()
    p_cal = torch.softmax(logits / t, 1).numpy()
    res = {"temperature": t, "err_scale_bulge_fraction": scale[0], "err_scale_r_half": scale[1],
           "val_ece_raw": expected_calibration_error(p_raw, labels),
           "val_ece": expected_calibration_error(p_cal, labels)}
    log("calibration on the validation split: " + ", ".join(f"{k} {v:.4g}" for k, v in res.items()))
    return res


def train(x, y, xv, yv, *, out: Path, config=None, model=None, train_cfg=None,
          checkpoint_dir=None, log=print, progress: bool = False):
    """Train a `MorphologyCNN` (or fine-tune `model`), calibrate it on the validation set and
    save it to `out`.

    Parameters
    ----------
    x, y, xv, yv : np.ndarray
        Training and validation fluxes (N, 3, 64, 64) in nJy (g, r, i) and targets (N, 3):
        class index into `CLASSES`, B/T, r_half in arcsec.
    config : ModelConfig, optional
        Architecture of a fresh model (default `build_config`).
    model : MorphologyCNN, optional
        Start from this model (fine-tuning, e.g. ``astrozoo.load("morphology")``) instead of a
        fresh one; use a lower learning rate then.
    train_cfg : TrainConfig, optional
        Default `train_config`.

    Returns
    -------
    astrozoo.training.FitResult
        With the calibration (`calibrate`) in ``.calibration``.
    """
    import torch

    from astrozoo.cards import read_card_source
    from astrozoo.training import fit

    from .model import MorphologyCNN

    train_cfg = train_cfg or train_config()
    torch.manual_seed(train_cfg.seed)
    if model is None:
        model = MorphologyCNN(config or build_config(train_cfg.seed))
        model.card = read_card_source(MODEL_NAME)
    model.config = model.config.replace(training={**model.config.training,
                                                  "train_config": train_cfg.to_dict()})
    y, yv = np.asarray(y, np.float32), np.asarray(yv, np.float32)
    res = fit(model, (x, y), (xv, yv), loss=morphology_loss, metric=_val_metrics,
              config=train_cfg, out=out, save_dtype=torch.float16, checkpoint_dir=checkpoint_dir,
              log=log, progress=progress)
    cal = calibrate(model, xv, yv, log=log)
    model.config = model.config.replace(training={**model.config.training, "calibration": cal})
    model.save_pretrained(out, dtype=torch.float16)
    res.calibration = cal
    return res


def main(argv=None) -> None:
    from astrozoo.training.recipe import generate_chunks, recipe_parser

    p = recipe_parser(__doc__.splitlines()[0], epochs=8)
    p.add_argument("--train-chunks", type=int, default=N_TRAIN_CHUNKS)
    a = p.parse_args(argv)
    if a.generate_only:
        generate_chunks(load_chunk, a.seed, [*range(a.train_chunks), N_TRAIN_CHUNKS], a.worker,
                        a.workers, a.cache)
        return
    import torch

    torch.set_num_threads(a.threads)
    x, y = load_chunks(a.seed, range(a.train_chunks), a.cache)
    xv, yv = load_chunks(a.seed, [N_TRAIN_CHUNKS], a.cache)
    ckpt = a.checkpoint or Path("runs") / f"{MODEL_NAME}-seed{a.seed}" / "checkpoint"
    config = build_config(a.seed, n_train_chunks=a.train_chunks, epochs=a.epochs)
    res = train(x, y, xv, yv, out=a.out, config=config, train_cfg=train_config(a.seed, epochs=a.epochs),
                checkpoint_dir=ckpt, log=lambda m: print(m, flush=True))
    print(f"best validation loss {res.best:.5f} at epoch {res.best_epoch}, {res.steps} steps "
          f"in {res.seconds / 60:.1f} min; weights in {a.out}", flush=True)


if __name__ == "__main__":
    main()
