"""GPU throughput, for when a GPU machine is lent: forward-only with AMP and channels_last on and
off, and end-to-end from FITS with several reader-process counts, for every image model.

    python benchmarks/bench_gpu.py [--n-objects 20000] [--batch 512] [--workers 0 2 4 8]

Forward-only: ``preprocess`` + ``forward`` of in-memory batches already on the GPU (the network's
ceiling), per setting of ``amp`` (off / bf16 autocast) and ``channels_last`` (off / on), timed
with CUDA synchronisation. End-to-end: `predict` from one MEF file per object (files in the page
cache) with the default settings (autocast and channels_last on CUDA) for each reader count and
``num_workers="auto"`` (`astrozoo.inference.reader_count`), with its ratio to the best
forward-only rate: the share of the GPU the engine keeps busy. Architectures are built from
their configs with random weights (throughput does not depend on the values), as in
`bench_inference.py`. Writes ``benchmarks/results/gpu.md`` (README section ``bench-gpu``).
Refuses to run without CUDA: the CPU tables are `bench_inference.py` and `bench_accelerator.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_inference import image_models, write_files  # noqa: E402

from astrozoo.inference import predict  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "gpu.md"


def forward_rate(model, batch: int, amp: bool, channels_last: bool, seconds: float = 3.0) -> float:
    x = torch.randn(batch, *model.spec.shape, device="cuda") * 5 + 20
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    with torch.inference_mode(), ctx():
        for _ in range(3):  # warm-up: cuDNN picks its algorithms
            z = model.preprocess(x)
            model(z.contiguous(memory_format=torch.channels_last) if channels_last else z)
        torch.cuda.synchronize()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            z = model.preprocess(x)
            model(z.contiguous(memory_format=torch.channels_last) if channels_last else z)
            n += batch
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-objects", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4, 8])
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU; on CPU run bench_inference.py and "
                 "bench_accelerator.py")
    t_start = time.perf_counter()
    gpu = torch.cuda.get_device_name()
    root = Path(tempfile.mkdtemp(prefix="astrozoo-gpu-", dir="/tmp"))
    fwd_rows, e2e_rows = [], []
    try:
        files = write_files(root, a.n_objects)["MEF"]
        for model in image_models():
            model = model.cuda().eval()
            rates = {(amp, cl): forward_rate(model, a.batch, amp, cl)
                     for amp in (False, True) for cl in (False, True)}
            fwd_rows.append((model.name, rates))
            print(fwd_rows[-1], flush=True)
            top = max(rates.values())
            predict(model, files[:a.batch * 2], batch_size=a.batch, progress=False)  # warm-up
            for w in [*a.workers, "auto"]:
                t0 = time.perf_counter()
                t = predict(model, files, batch_size=a.batch, num_workers=w, progress=False)
                rate = len(t) / (time.perf_counter() - t0)
                e2e_rows.append((model.name, w, rate, rate / top))
                print(e2e_rows[-1], flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    lines = ["# GPU benchmark (`benchmarks/bench_gpu.py`)", "",
             f"`python benchmarks/bench_gpu.py --n-objects {a.n_objects} --batch {a.batch}`, "
             f"{time.strftime('%Y-%m-%d')}: {gpu}, {os.cpu_count()} CPU cores, torch "
             f"{torch.__version__}. Forward-only: preprocess + forward on GPU-resident batches; "
             "AMP is bf16 autocast.", "",
             "| model | fp32 | fp32 + channels_last | bf16 | bf16 + channels_last |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in fwd_rows:
        lines.append(f"| {name} | " + " | ".join(f"{r[k]:,.0f}" for k in
                                                 [(False, False), (False, True), (True, False),
                                                  (True, True)]) + " |")
    lines += ["", "End-to-end `predict` from MEF files (default settings: autocast and "
              "channels_last on CUDA), by reader processes; the ratio is to the best "
              "forward-only rate above:", "",
              "| model | reader processes | end-to-end (img/s) | e2e / forward |",
              "| --- | --- | ---: | ---: |"]
    for name, w, rate, ratio in e2e_rows:
        lines.append(f"| {name} | {w} | {rate:,.0f} | {ratio:.2f} |")
    lines += ["", f"Total benchmark time {time.perf_counter() - t_start:.0f} s."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
