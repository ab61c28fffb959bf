"""The training-data cache: simulated sets stored once as ``.npy`` files and memory-mapped back.

Simulations are the slow part of every recipe; they are deterministic in their seed, so a set is
built once per (name, parameters) key and reused by the recipe, its benchmark and reruns.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["default_cache_dir", "cached", "simulated_chunk", "concat_chunks"]


def default_cache_dir() -> Path:
    """``$ASTROZOO_DATA_CACHE``, else ``data_cache/`` in the working directory."""
    return Path(os.environ.get("ASTROZOO_DATA_CACHE", "data_cache"))


def cached(key: str, build: Callable[[], dict], cache_dir: str | Path | None = None,
           mmap: bool = True) -> dict[str, np.ndarray]:
    """``build()`` (a dict of arrays), stored under ``cache_dir/key`` the first time.

    The directory is written under a temporary name and renamed when complete, so parallel
    builders and interrupted runs never leave half a set behind.
    """
    d = Path(cache_dir or default_cache_dir()) / key
    if not d.is_dir():
        data = build()
        tmp = d.with_name(f"{d.name}.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for k, v in data.items():
            np.save(tmp / f"{k}.npy", np.asarray(v))
        try:
            tmp.rename(d)
        except OSError:  # another process finished first
            shutil.rmtree(tmp)
    return {p.stem: np.load(p, mmap_mode="r" if mmap else None) for p in sorted(d.glob("*.npy"))}


def simulated_chunk(key: str, simulate: Callable, n: int, seed: int,
                    cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """A cached chunk ``{"x", "y"}`` of ``simulate(n, seed) -> (images, labels, meta)``, images
    stored as float16 (relative precision 5e-4, far below the pixel noise of the simulations)."""
    def build():
        x, y, _ = simulate(n, seed)
        return {"x": x.astype(np.float16), "y": y}

    return cached(key, build, cache_dir)


def concat_chunks(chunks) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a sequence of chunks from `simulated_chunk`, concatenated."""
    parts = list(chunks)
    return np.concatenate([p["x"] for p in parts]), np.concatenate([p["y"] for p in parts])
