"""Training recipe of the default lens finder: ``python -m astrozoo.tasks.lens_finding.train --seed 0 --out DIR``.

1. Simulate the training and validation sets with `astrozoo.tasks.lens_finding.simulate`, in
   chunks cached as ``.npz`` under ``--cache`` (seeds derived from ``--seed``; the benchmark and
   tests use disjoint seeds). ``--generate-only --worker k --workers n`` fills the cache in
   parallel processes.
2. Train `LensClassifier` with dihedral augmentation, AdamW and a cosine schedule; after each
   epoch, save the model (float16) to ``--out`` if the validation AUROC improved.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from .simulate import BANDS, PIXEL_SCALE, SIZE, simulate

CHUNK = 4000
N_TRAIN_CHUNKS = 12
N_VAL = 4000
MODEL_NAME = "lens-resnet10t-lsst"
# timm resnet10t slimmed for 64x64 cutouts on a shared CPU: 45 MFLOP, 1.2 M parameters
ARCH_KWARGS = {"backbone": "resnet10t", "pretrained": False, "channels": [32, 64, 128, 256],
               "stem_width": 16, "drop_rate": 0.1}


def _chunk_seed(seed: int, k: int) -> int:
    # Training seeds live in [1e5 (seed+1), 1e5 (seed+2)); benchmarks and tests use others.
    return 100_000 * (seed + 1) + k


def chunk_path(cache: Path, seed: int, k: int) -> Path:
    return Path(cache) / f"lens_seed{seed}_chunk{k:03d}.npz"


def ensure_chunk(cache: Path, seed: int, k: int, n: int = CHUNK) -> Path:
    """Simulate chunk `k` (k == N_TRAIN_CHUNKS is the validation set) unless it is cached.

    Images are stored as float16 nJy: their relative precision (5e-4) is far below the
    pixel noise.
    """
    path = chunk_path(cache, seed, k)
    if not path.exists():
        x, y, _ = simulate(n, _chunk_seed(seed, k))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=x.astype(np.float16), y=y)
        tmp.rename(path)  # atomic: a parallel reader never sees half a chunk
    return path


def load_chunks(cache: Path, seed: int, ks) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for k in ks:
        with np.load(ensure_chunk(cache, seed, k, N_VAL if k == N_TRAIN_CHUNKS else CHUNK)) as d:
            xs.append(d["x"])
            ys.append(d["y"])
    return np.concatenate(xs), np.concatenate(ys)


def build_config(seed: int, name: str = MODEL_NAME, arch_kwargs: dict | None = None):
    """`ModelConfig` of the lens finder trained with `seed`."""
    from astrozoo.config import InputSpec, ModelConfig

    return ModelConfig(
        name=name, task="lens-finding", architecture="lens-classifier",
        arch_kwargs=dict(arch_kwargs or ARCH_KWARGS),
        input_spec=InputSpec(kind="image", survey="lsst-like", bands=BANDS, pixel_scale=PIXEL_SCALE,
                             size=SIZE, flux_unit="nJy", normalization="asinh",
                             normalization_kwargs={"softening": 3.0}),
        outputs=("p_lens",), labels=("lens",), license="MIT", card=f"model_cards/{name}.md",
        training={"command": f"python -m astrozoo.tasks.lens_finding.train --seed {seed} --out DIR",
                  "seed": seed,
                  "data": (f"{N_TRAIN_CHUNKS * CHUNK} simulated LSST-like g,r,i cutouts (half "
                           f"lenses) + {N_VAL} for validation, astrozoo.tasks.lens_finding.simulate "
                           f"seeds {_chunk_seed(seed, 0)}-{_chunk_seed(seed, N_TRAIN_CHUNKS)}")})


def _normalised(model, x: np.ndarray, batch: int = 1024):
    """Preprocess once up front: the preset is per object and invariant under the dihedral
    augmentation, so it need not be recomputed every epoch."""
    import torch

    out = torch.empty(x.shape, dtype=torch.float16)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out[i:i + batch] = model.preprocess(torch.from_numpy(x[i:i + batch].astype(np.float32))).half()
    return out


def scores(model, xn, batch: int = 512) -> np.ndarray:
    """Lens logits of preprocessed inputs."""
    import torch

    model.eval()
    with torch.no_grad():
        return torch.cat([model(xn[i:i + batch].float()) for i in range(0, len(xn), batch)]).numpy()


def train(x, y, xv, yv, *, out: Path, seed: int = 0, epochs: int = 10, batch_size: int = 128,
          lr: float = 2e-3, weight_decay: float = 0.05, max_steps: int | None = None,
          config=None, model=None, log=print):
    """Train a `LensClassifier` and save the best-validation-AUROC epoch to `out` (float16).

    Parameters
    ----------
    x, y, xv, yv : np.ndarray
        Training and validation fluxes (N, C, H, W) in nJy and labels (N,).
    max_steps : int, optional
        Stop after this many optimiser steps in total (smoke tests).
    model : LensClassifier, optional
        Start from this model (fine-tuning, e.g. ``astrozoo.load("lens-finding")``) instead of
        a fresh one built from `config`; use a lower `lr` then.

    Returns
    -------
    dict
        ``best_auroc``, ``best_epoch``, ``steps``, ``seconds``.
    """
    import torch

    from astrozoo.inference.tta import dihedral

    from .metrics import auroc
    from .model import LensClassifier

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if model is None:
        model = LensClassifier(config or build_config(seed))
        card = Path(model.config.card)
        if card.is_file():
            model.card = card.read_text()
    xn, xvn = _normalised(model, x), _normalised(model, xv)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
    steps_per_epoch = len(x) // batch_size
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    warmup = max(1, min(300, total // 10))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best, best_epoch, step, t0 = -1.0, -1, 0, time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(x)))
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            xb, yb = xn[idx].float(), yt[idx]
            # one dihedral transform (lenses have no preferred orientation or handedness) per
            # quarter of the batch: per-sample variety at the cost of four small copies
            xb = torch.cat([dihedral(q, int(k)) for q, k in
                            zip(xb.chunk(4), rng.integers(0, 8, 4))])
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0:
                log(f"epoch {epoch} step {step}/{total} loss {loss.item():.4f} "
                    f"{step * batch_size / (time.time() - t0):.0f} img/s")
            if step >= total:
                break
        val = auroc(yv, scores(model, xvn))
        log(f"epoch {epoch}: validation AUROC {val:.5f} ({time.time() - t0:.0f} s)")
        if val > best:
            best, best_epoch = val, epoch
            model.save_pretrained(out, dtype=torch.float16)
        if step >= total:
            break
    return {"best_auroc": best, "best_epoch": best_epoch, "steps": step, "seconds": time.time() - t0}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=Path("data_cache/lens"))
    p.add_argument("--generate-only", action="store_true")
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    if a.generate_only:
        for k in range(a.worker, N_TRAIN_CHUNKS + 1, a.workers):
            t = time.time()
            ensure_chunk(a.cache, a.seed, k, N_VAL if k == N_TRAIN_CHUNKS else CHUNK)
            print(f"chunk {k} in {time.time() - t:.0f} s", flush=True)
        return
    import torch

    torch.set_num_threads(a.threads)
    x, y = load_chunks(a.cache, a.seed, range(N_TRAIN_CHUNKS))
    xv, yv = load_chunks(a.cache, a.seed, [N_TRAIN_CHUNKS])
    res = train(x, y, xv, yv, out=a.out, seed=a.seed, epochs=a.epochs,
                log=lambda m: print(m, flush=True))
    print(f"best validation AUROC {res['best_auroc']:.5f} at epoch {res['best_epoch']}, "
          f"{res['steps']} steps in {res['seconds'] / 60:.1f} min; weights in {a.out}", flush=True)


if __name__ == "__main__":
    main()
