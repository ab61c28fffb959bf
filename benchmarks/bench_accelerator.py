"""Does the engine keep an accelerator fed? End-to-end rate against a simulated accelerator, and
against the serial bound on CPU.

    python benchmarks/bench_accelerator.py [--n-objects 4000] [--rates 20000 50000]

No GPU is here, so the accelerator is a stand-in that holds no CPU: the network's forward (and
the preprocessing, which runs on the device on a GPU) sleeps for the time a batch takes at the
given rate (``--rates``, images/s) and returns outputs of the right shape, so everything else the
engine does (reading FITS, collating, postprocessing, building the table) is measured as it is.
For every image model (random weights, as in `bench_inference.py`) and layout (one MEF file per
object; one 2-D file per band per object):

- *read rate on all cores*: DataLoader readers, one per core, draining the batches with no
  compute (the pipeline's ceiling on this machine);
- *end-to-end* `predict` with 1 and 2 reader processes and with ``num_workers="auto"``
  (`astrozoo.inference.reader_count` picks them from the first batches' timings).
  Goal: auto >= 0.90 x min(accelerator rate, read rate on all cores);
- on CPU with the real network: forward-only rate f (preprocess + forward in memory, on the
  first batch of the files: the asinh stretch's speed depends on the pixel values), in-process
  read rate r, and `predict` (auto). Goal: >= 0.90 x the serial bound 1 / (1/f + 1/r).

Each rate is the best of `--repeats` runs (the machine is shared; the best is the least
disturbed). Writes ``benchmarks/results/accelerator.md`` (README section ``bench-accelerator``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_inference import BATCH, image_models, write_files  # noqa: E402

from astrozoo.inference import predict  # noqa: E402
from astrozoo.inference.engine import BatchDataset, _split  # noqa: E402
from astrozoo.io import open_inputs  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "accelerator.md"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def best(fn, repeats: int) -> float:
    """Highest rate (objects/s) of `repeats` calls of fn() -> (n, seconds)."""
    return max(n / s for n, s in (fn() for _ in range(repeats)))


def read_rate(model, files, workers: int) -> tuple[int, float]:
    """Objects read per second by `workers` DataLoader processes (0: in-process), no compute."""
    cut = open_inputs(files, model.spec)
    ds = BatchDataset(cut, _split(range(len(files)), BATCH))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                         prefetch_factor=2 if workers else None)
    t0 = time.perf_counter()
    n = sum(len(item.ids) for item in loader)
    return n, time.perf_counter() - t0


def first_batch(model, files) -> torch.Tensor:
    """The first batch of `files` as the engine reads it (float32, the model's bands)."""
    cut = open_inputs(files, model.spec)
    return BatchDataset(cut, _split(range(min(BATCH, len(files))), BATCH))[0].data


def forward_rate(model, x: torch.Tensor) -> tuple[int, float]:
    """Objects/s of preprocess + forward on batch `x` (the data's own values: the asinh
    stretch's speed depends on them)."""
    with torch.inference_mode():
        model(model.preprocess(x))
        t0 = time.perf_counter()
        for _ in range(4):
            model(model.preprocess(x))
    return 4 * len(x), time.perf_counter() - t0


class Simulated:
    """`model` with its preprocessing and forward replaced by a sleep of len(batch) / rate
    seconds that returns the real network's outputs for a template batch (same shapes)."""

    def __init__(self, model, rate: float):
        self.model, self.rate = model, rate
        x = torch.from_numpy(np.random.default_rng(1).normal(20, 5, (BATCH, *model.spec.shape))
                             .astype(np.float32))
        with torch.inference_mode():
            self.out = model(model.preprocess(x))

    def __enter__(self):
        def preprocess(x):
            return x

        def forward(x):
            time.sleep(len(x) / self.rate)
            return self.out[:len(x)]

        self.model.preprocess, self.model.forward = preprocess, forward  # instance attributes
        return self.model

    def __exit__(self, *exc):
        del self.model.preprocess, self.model.forward


def e2e(model, files, workers) -> tuple[int, float]:
    t0 = time.perf_counter()
    t = predict(model, files, batch_size=BATCH, num_workers=workers, progress=False)
    assert len(t) == len(files) and not (t["flags"] != 0).any()
    return len(t), time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-objects", type=int, default=4000)
    ap.add_argument("--rates", type=float, nargs="+", default=[20_000, 50_000])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    t_start, load0 = time.perf_counter(), os.getloadavg()[0]
    n_cores = cores()
    root = Path(tempfile.mkdtemp(prefix="astrozoo-accel-", dir="/tmp"))
    sim_rows, cpu_rows = [], []
    try:
        layouts = write_files(root, a.n_objects)
        for model in image_models():
            bands = list(model.spec.bands)
            for layout, all_files in layouts.items():
                files = ([[g[b] for b in bands] for g in all_files] if layout == "per-band"
                         else all_files)
                r_all = best(lambda: read_rate(model, files, n_cores), a.repeats)
                for rate in a.rates:
                    with Simulated(model, rate) as m:
                        got = {w: best(lambda w=w: e2e(m, files, w), a.repeats)
                               for w in (1, 2, "auto")}
                    bound = min(rate, r_all)
                    sim_rows.append((model.name, layout, rate, r_all, got[1], got[2],
                                     got["auto"], got["auto"] / bound))
                    print(sim_rows[-1], flush=True)
                r0 = best(lambda: read_rate(model, files, 0), a.repeats)
                x = first_batch(model, files)
                f = best(lambda: forward_rate(model, x), a.repeats)
                got = best(lambda: e2e(model, files, "auto"), a.repeats)
                serial = 1 / (1 / f + 1 / r0)
                cpu_rows.append((model.name, layout, f, r0, serial, got, got / serial))
                print(cpu_rows[-1], flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    lines = ["# Simulated-accelerator benchmark (`benchmarks/bench_accelerator.py`)", "",
             f"`python benchmarks/bench_accelerator.py --n-objects {a.n_objects} --rates "
             + " ".join(f"{r:.0f}" for r in a.rates) + f"`, {time.strftime('%Y-%m-%d')}: "
             f"{n_cores} CPU cores, torch threads {torch.get_num_threads()}, batch {BATCH}, "
             f"files in the page cache, best of {a.repeats}; 1-min load average {load0:.1f} -> "
             f"{os.getloadavg()[0]:.1f}. The accelerator is a stand-in that sleeps for the "
             "time a batch takes at its rate (it holds no CPU; preprocessing counts as on the "
             "device), so the rest of the engine is measured as it is.", "",
             "| model | layout | accelerator (img/s) | read, all cores (img/s) | 1 reader | "
             "2 readers | auto | auto / min(accel, read) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, layout, rate, r_all, w1, w2, auto, ratio in sim_rows:
        lines.append(f"| {name} | {layout} | {rate:,.0f} | {r_all:,.0f} | {w1:,.0f} | "
                     f"{w2:,.0f} | {auto:,.0f} | {ratio:.2f} |")
    lines += ["", "On the CPU, real network (readers chosen by `reader_count`: none while the "
              "forward keeps the cores busy):", "",
              "| model | layout | forward f (img/s) | read r, 1 process (img/s) | serial bound "
              "1/(1/f+1/r) | end-to-end (auto) | end-to-end / bound |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, layout, f, r0, serial, got, ratio in cpu_rows:
        lines.append(f"| {name} | {layout} | {f:,.0f} | {r0:,.0f} | {serial:,.0f} | "
                     f"{got:,.0f} | {ratio:.2f} |")
    lines += ["", "Goals: auto / min(accelerator, read on all cores) >= 0.90; end-to-end / "
              "serial bound >= 0.90. Total benchmark time "
              f"{time.perf_counter() - t_start:.0f} s."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
