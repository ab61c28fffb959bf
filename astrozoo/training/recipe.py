"""What the chunked-simulation recipes share on the command line: their arguments, and filling
the training-data cache in parallel processes (``--generate-only --worker k --workers n``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

__all__ = ["recipe_parser", "generate_chunks", "recipe_command"]


def recipe_parser(description: str, *, epochs: int) -> argparse.ArgumentParser:
    """Arguments of a recipe: seed, output, cache, checkpoint, parallel generation, threads."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=None, help="training-data cache directory")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="resumable training state (default: runs/<name>-seed<seed>/checkpoint)")
    p.add_argument("--generate-only", action="store_true",
                   help="only simulate this worker's share of the chunks into the cache")
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--threads", type=int, default=1)
    return p


def generate_chunks(load_chunk: Callable, seed: int, ks, worker: int, workers: int,
                    cache=None) -> None:
    """Simulate (into the cache) every `workers`-th chunk of `ks`, starting at `worker`."""
    for k in list(ks)[worker::workers]:
        t = time.time()
        load_chunk(seed, k, cache)
        print(f"chunk {k} in {time.time() - t:.0f} s", flush=True)


def recipe_command(module: str, seed: int, *, train_chunks: int | None = None,
                   default_chunks: int | None = None, epochs: int | None = None) -> str:
    """The command line that reproduces a recipe's run, as recorded in the config."""
    cmd = f"python -m {module} --seed {seed} --out DIR"
    if train_chunks is not None and train_chunks != default_chunks:
        cmd += f" --train-chunks {train_chunks}"
    return cmd + (f" --epochs {epochs}" if epochs is not None else "")
