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
ARCH_KWARGS = {"backbone": "resnet10t", "pretrained": False, "drop_rate": 0.1}


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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=Path("data_cache/lens"))
    p.add_argument("--generate-only", action="store_true")
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    if a.generate_only:
        for k in range(a.worker, N_TRAIN_CHUNKS + 1, a.workers):
            t = time.time()
            ensure_chunk(a.cache, a.seed, k, N_VAL if k == N_TRAIN_CHUNKS else CHUNK)
            print(f"chunk {k} in {time.time() - t:.0f} s", flush=True)
        return


if __name__ == "__main__":
    main()
