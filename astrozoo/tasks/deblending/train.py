"""Training recipe of the default deblender: ``python -m astrozoo.tasks.deblending.train --seed 0 --out DIR``.

1. Simulate the training and validation scenes with `astrozoo.tasks.deblending.simulate`
   (128 x 128, 1-6 galaxies, 0-2 stars), in chunks kept in the training-data cache (seeds
   derived from ``--seed``; the benchmark and tests use disjoint seeds). ``--generate-only
   --worker k --workers n`` fills the cache in parallel processes.
2. Train `DeblendUNet` with the shared loop (`astrozoo.training.fit`) on random `CROP` x `CROP`
   crops under random flips and quarter turns (the network is fully convolutional; 96 x 96
   crops cost half a scene and cut few objects). The targets are derived from the truth map
   inside the loss, after the augmentation (`deblend_loss`): foreground (BCE), a Gaussian
   heatmap at each segment's centre (CenterNet's penalty-reduced focal loss) and the offset of
   each source pixel to its segment's centre (L1, weighted by 1 / sqrt(segment area)), with a
   moving average of the weights. The epoch with the lowest validation loss on whole scenes is kept
   (float16).
3. Tune the grouping settings (`tune_postprocess`) on the validation scenes - foreground and
   centre thresholds, vote distance, smallest source - for the best mean of count accuracy
   and detection F1, and store them in the config (``--tune-only`` repeats this step alone).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from .simulate import BANDS, PIXEL_SCALE, SIZE, SURVEY, simulate

CHUNK = 2000
N_TRAIN_CHUNKS = 16
N_VAL = 1000
VAL_CHUNK = 999  # chunk index (and seed offset) of the validation set, apart from training
CROP = 96
EPOCHS = 10
MODEL_NAME = "deblend-unet-lsst"
#: Gaussian sigma (pixels) of the centre heatmap targets.
HEATMAP_SIGMA = 2.0
OFFSET_WEIGHT = 1.0
ARCH_KWARGS = {"backbone": "resnet10t", "channels": [32, 64, 128, 256], "stem_width": 16,
               "decoder": [128, 64, 48, 32, 16]}
#: Grid searched by `tune_postprocess`.
POSTPROCESS_GRID = {"fg_threshold": (0.4, 0.5), "center_threshold": (0.2, 0.3, 0.45, 0.6),
                    "nms_kernel": (3, 5), "max_vote_distance": (8.0, 12.0, 20.0),
                    "min_area": (5, 15)}


def train_config(seed: int = 0, **changes):
    """The recipe's `~astrozoo.training.TrainConfig`."""
    from astrozoo.training import TrainConfig

    # bf16 autocast: twice the CPU training throughput here (and the norm on GPUs)
    return TrainConfig(**{**dict(epochs=EPOCHS, batch_size=64, lr=2e-3, weight_decay=0.01,
                                 augment=crop_dihedral, monitor="loss", grad_clip=5.0,
                                 ema_decay=0.998, mixed_precision="bf16", seed=seed),
                          **changes})


def crop_dihedral(x, y, generator):
    """Random `CROP` x `CROP` window of each scene (same window for image and truth), then a
    random element of the dihedral group."""
    import torch

    from astrozoo.inference.tta import random_dihedral

    n, size = x.shape[0], x.shape[-1]
    if size > CROP:
        o = torch.randint(size - CROP + 1, (n, 2), generator=generator)
        x = torch.stack([x[i, :, a:a + CROP, b:b + CROP] for i, (a, b) in enumerate(o.tolist())])
        y = torch.stack([y[i, :, a:a + CROP, b:b + CROP] for i, (a, b) in enumerate(o.tolist())])
    return random_dihedral(x, generator, target=y)


def _chunk_seed(seed: int, k: int) -> int:
    # Training seeds live in [1e5 (seed+1) + 70000, ...); benchmarks and tests use others.
    return 100_000 * (seed + 1) + 70_000 + k


def load_chunk(seed: int, k: int, cache=None) -> dict[str, np.ndarray]:
    """Chunk `k` of the training scenes (k == VAL_CHUNK is the validation set):
    ``{"x": images (float16), "y": truth maps (n, 1, H, W) int16}``, simulated on first use."""
    from astrozoo.training.cache import cached

    n = N_VAL if k == VAL_CHUNK else CHUNK

    def build():
        x, seg, _ = simulate(n, _chunk_seed(seed, k))
        return {"x": x.astype(np.float16), "y": seg[:, None]}

    # the size is in the key: chunk 8 was once the 1000-scene validation set
    return cached(f"deblending_v1_seed{seed}_chunk{k:03d}_n{n}", build, cache)


def load_chunks(seed: int, ks, cache=None):
    from astrozoo.training.cache import concat_chunks

    return concat_chunks(load_chunk(seed, k, cache) for k in ks)


def build_config(seed: int, name: str = MODEL_NAME, arch_kwargs: dict | None = None,
                 n_train_chunks: int = N_TRAIN_CHUNKS, epochs: int | None = None):
    """`ModelConfig` of the deblender trained with `seed`."""
    from astrozoo.config import InputSpec, ModelConfig
    from astrozoo.registry import get_task
    from astrozoo.training.recipe import recipe_command

    return ModelConfig(
        name=name, task="deblending", architecture="deblend-unet",
        arch_kwargs=dict(arch_kwargs or ARCH_KWARGS),
        # A fixed stretch (the preset's sky sigma per band), not a per-image noise estimate:
        # tiles of one survey image are then normalised identically, so they stitch exactly.
        input_spec=InputSpec(kind="image", survey="lsst", bands=BANDS, pixel_scale=PIXEL_SCALE,
                             size=SIZE, flux_unit="nJy", normalization="asinh",
                             normalization_kwargs={"softening": 3.0, "sky_sigma": [
                                 round(float(s), 4) for s in SURVEY.sky_sigma(BANDS)]}),
        outputs=get_task("deblending").output_columns(), license="MIT",
        card=f"model_cards/{name}.md",
        training={"command": recipe_command(
                      "astrozoo.tasks.deblending.train", seed, train_chunks=n_train_chunks,
                      default_chunks=N_TRAIN_CHUNKS, epochs=epochs),
                  "seed": seed,
                  "data": (f"{n_train_chunks * CHUNK} simulated LSST-like g,r,i {SIZE}x{SIZE} "
                           f"scenes of 1-6 galaxies and 0-2 stars + {N_VAL} for validation, "
                           f"astrozoo.tasks.deblending.simulate seeds {_chunk_seed(seed, 0)}-"
                           f"{_chunk_seed(seed, n_train_chunks - 1)} (training), "
                           f"{_chunk_seed(seed, VAL_CHUNK)} (validation)")})


def dense_targets(seg):
    """Targets of truth maps (B, H, W) long: foreground (B, H, W) bool, centre heatmap (B, H, W)
    (1 at each segment's rounded centre of mass, Gaussian around it), offsets (B, 2, H, W)
    from each pixel to its segment's centre of mass (pixels; 0 on background) and the area
    (B, H, W) of each pixel's segment (0 on background)."""
    import torch

    b, h, w = seg.shape
    k = int(seg.max()) + 1
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=seg.device),
                            torch.arange(w, dtype=torch.float32, device=seg.device), indexing="ij")
    idx = (seg + k * torch.arange(b, device=seg.device).view(-1, 1, 1)).flatten()
    count = torch.bincount(idx, minlength=b * k).float()
    cx = torch.bincount(idx, weights=xx.expand(b, h, w).flatten(), minlength=b * k) / count.clamp_min(1)
    cy = torch.bincount(idx, weights=yy.expand(b, h, w).flatten(), minlength=b * k) / count.clamp_min(1)
    fg = seg > 0
    off = torch.stack([cx[idx].view(b, h, w) - xx, cy[idx].view(b, h, w) - yy], 1) * fg[:, None]
    area = count[idx].view(b, h, w) * fg
    cx, cy, count = cx.view(b, k)[:, 1:], cy.view(b, k)[:, 1:], count.view(b, k)[:, 1:]
    d2 = ((xx - cx.round()[..., None, None]) ** 2 + (yy - cy.round()[..., None, None]) ** 2)
    g = torch.exp(-d2 / (2 * HEATMAP_SIGMA ** 2)) * (count > 0)[..., None, None]
    heat = g.amax(1) if k > 1 else torch.zeros(b, h, w, device=seg.device)
    return fg, heat, off, area


def deblend_loss(out, y):
    """BCE(foreground) + focal loss(centre heatmap) + `OFFSET_WEIGHT` x L1(offsets on sources),
    the offsets weighted by 1 / sqrt(segment area): a faint neighbour of a bright galaxy has
    few pixels, and a per-pixel mean would let the bright galaxy's pixels decide where the
    boundary between them goes (Panoptic-DeepLab up-weights small instances for the same
    reason)."""
    import torch
    import torch.nn.functional as F

    from .model import OFFSET_SCALE

    out = out.float()
    fg, heat, off, area = dense_targets(y[:, 0].long())
    l_fg = F.binary_cross_entropy_with_logits(out[:, 0], fg.float())
    # CenterNet (Zhou et al. 2019): penalty-reduced pixel-wise focal loss on a Gaussian heatmap
    p = torch.sigmoid(out[:, 1]).clamp(1e-4, 1 - 1e-4)
    pos = heat > 0.999
    l_pos = -((1 - p) ** 2 * torch.log(p))[pos].sum()
    l_neg = -((1 - heat) ** 4 * p ** 2 * torch.log(1 - p))[~pos].sum()
    l_heat = (l_pos + l_neg) / pos.sum().clamp_min(1)
    l1 = (out[:, 2:] - off / OFFSET_SCALE).abs().sum(1)
    w = area[fg].float().rsqrt()
    l_off = (l1[fg] * w).sum() / w.sum() if fg.any() else l1.sum() * 0
    return l_fg + l_heat + OFFSET_WEIGHT * l_off


def _dense(outputs):
    import torch

    from .model import OFFSET_SCALE

    outputs = outputs.float()
    return torch.cat([torch.sigmoid(outputs[:, :2]), outputs[:, 2:] * OFFSET_SCALE], 1).numpy()


def _segmaps(dense, **kwargs):
    from .postprocess import group_pixels

    return [group_pixels(d, **kwargs) for d in dense]


def _val_metrics(outputs, targets) -> dict:
    from astrozoo.evaluation.deblending import deblending_metrics

    from .model import DEFAULT_POSTPROCESS

    m = deblending_metrics(targets[:, 0].numpy(), _segmaps(_dense(outputs), **DEFAULT_POSTPROCESS))
    return {k: m[k] for k in ("count_accuracy", "precision", "recall", "mean_iou")}


def tune_postprocess(model, xv, segv, log=print) -> dict:
    """Grouping settings (`POSTPROCESS_GRID`) with the best mean of count accuracy and detection
    F1 (IoU > 0.5) on the validation scenes; returns them with their metrics."""
    from astrozoo.evaluation.deblending import deblending_metrics
    from astrozoo.training import run_batches

    out, _ = run_batches(model, (xv, np.zeros(len(xv), np.float32)), batch_size=64)
    dense = _dense(out)
    best = None
    for values in itertools.product(*POSTPROCESS_GRID.values()):
        kw = {**model.postprocess_kwargs, **dict(zip(POSTPROCESS_GRID, values))}
        m = deblending_metrics(segv, _segmaps(dense, **kw))
        f1 = 2 * m["precision"] * m["recall"] / max(m["precision"] + m["recall"], 1e-9)
        score = 0.5 * (m["count_accuracy"] + f1)
        if best is None or score > best[0]:
            best = (score, kw, m)
    score, kw, m = best
    log(f"grouping tuned on {len(xv)} validation scenes: {kw}; count accuracy "
        f"{m['count_accuracy']:.4f}, precision {m['precision']:.4f}, recall {m['recall']:.4f}, "
        f"mean IoU {m['mean_iou']:.4f}")
    return {"settings": kw, "val_count_accuracy": m["count_accuracy"],
            "val_precision": m["precision"], "val_recall": m["recall"],
            "val_mean_iou": m["mean_iou"]}


def train(x, y, xv, yv, *, out: Path, config=None, model=None, train_cfg=None,
          checkpoint_dir=None, log=print, progress: bool = False):
    """Train a `DeblendUNet` (or fine-tune `model`), tune its grouping on the validation
    scenes and save it to `out`.

    Parameters
    ----------
    x, y, xv, yv : np.ndarray
        Training and validation scenes (N, 3, H, W) in nJy (g, r, i) and truth maps
        (N, 1, H, W).
    config : ModelConfig, optional
        Architecture of a fresh model (default `build_config`).
    model : DeblendUNet, optional
        Start from this model (e.g. ``astrozoo.load("deblending")``); use fewer epochs then.

    Returns
    -------
    astrozoo.training.FitResult
        With the tuned grouping in ``.postprocess``.
    """
    import torch

    from astrozoo.cards import read_card_source
    from astrozoo.training import fit, round_to_storage

    from .model import DeblendUNet

    train_cfg = train_cfg or train_config()
    torch.manual_seed(train_cfg.seed)
    if model is None:
        model = DeblendUNet(config or build_config(train_cfg.seed))
        model.card = read_card_source(MODEL_NAME)
    model.config = model.config.replace(training={**model.config.training,
                                                  "train_config": train_cfg.to_dict()})
    res = fit(model, (x, y), (xv, yv), loss=deblend_loss, metric=_val_metrics, config=train_cfg,
              out=out, save_dtype=torch.float16, checkpoint_dir=checkpoint_dir, log=log,
              progress=progress)
    round_to_storage(model)  # tune on the weights exactly as stored
    res.postprocess = retune(model, xv, yv, out=out, log=log)
    return res


def retune(model, xv, yv, *, out, log=print) -> dict:
    """Tune `model`'s grouping on the validation scenes (`tune_postprocess`), record it in its
    config and save it to `out` (float16)."""
    import torch

    tuned = tune_postprocess(model, xv, np.asarray(yv)[:, 0], log=log)
    model.postprocess_kwargs = dict(tuned["settings"])
    model.config = model.config.replace(
        arch_kwargs={**model.config.arch_kwargs, "postprocess": tuned["settings"]},
        training={**model.config.training, "postprocess_tuning": tuned})
    model.save_pretrained(out, dtype=torch.float16)
    return tuned


def main(argv=None) -> None:
    from astrozoo.training.recipe import generate_chunks, recipe_parser

    p = recipe_parser(__doc__.splitlines()[0], epochs=EPOCHS)
    p.add_argument("--train-chunks", type=int, default=N_TRAIN_CHUNKS)
    p.add_argument("--tune-only", action="store_true",
                   help="only re-tune the grouping of the model saved in --out (step 3)")
    a = p.parse_args(argv)
    if a.generate_only:
        generate_chunks(load_chunk, a.seed, [*range(a.train_chunks), VAL_CHUNK], a.worker,
                        a.workers, a.cache)
        return
    import torch

    torch.set_num_threads(a.threads)
    if a.tune_only:
        from astrozoo.modeling import ZooModel

        model = ZooModel.from_pretrained(a.out)
        xv, yv = load_chunks(a.seed, [VAL_CHUNK], a.cache)
        retune(model, xv, yv, out=a.out, log=lambda m: print(m, flush=True))
        return
    x, y = load_chunks(a.seed, range(a.train_chunks), a.cache)
    xv, yv = load_chunks(a.seed, [VAL_CHUNK], a.cache)
    ckpt = a.checkpoint or Path("runs") / f"{MODEL_NAME}-seed{a.seed}" / "checkpoint"
    config = build_config(a.seed, n_train_chunks=a.train_chunks, epochs=a.epochs)
    res = train(x, y, xv, yv, out=a.out, config=config,
                train_cfg=train_config(a.seed, epochs=a.epochs), checkpoint_dir=ckpt,
                log=lambda m: print(m, flush=True))
    print(f"best validation loss {res.best:.5f} at epoch {res.best_epoch}, {res.steps} steps "
          f"in {res.seconds / 60:.1f} min; weights in {a.out}", flush=True)


if __name__ == "__main__":
    main()
