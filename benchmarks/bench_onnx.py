"""CPU throughput of every bundled model's network: torch against onnxruntime, same inputs.

    python benchmarks/bench_onnx.py [--threads 2] [--batch 256] [--seconds 5]

Times ``preprocess -> forward`` on in-memory batches (what `astrozoo.export.export_onnx`
exports and what ``predict(..., runtime="onnx")`` replaces), both runtimes with the same number
of intra-op threads, interleaved (torch, onnxruntime, torch, ...) so that load from other jobs
affects both alike; the best of 3 rounds per runtime. Also the largest output difference. Writes
``benchmarks/results/onnx.md`` (the README's ``bench-onnx`` section, `update_readme.py`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import astrozoo
from astrozoo.export import INPUT_NAME, export_onnx, input_shape
from astrozoo.registry import get_entry, list_models

ROOT = Path(__file__).resolve().parents[1]


def _example(model, n, rng):
    if model.spec.kind == "image":
        x = rng.normal(0, 30, (n, *model.spec.shape)).astype(np.float32)
        x[..., x.shape[-2] // 2, x.shape[-1] // 2] += 500
        return x
    c = len(model.spec.bands)
    return np.concatenate([rng.lognormal(2, 1, (n, c)), rng.uniform(0.05, 1, (n, c)),
                           rng.uniform(0, 0.2, (n, c))], 1).astype(np.float32)


def _rate(fn, n, seconds):
    fn()  # warm-up
    done, t0 = 0, time.perf_counter()
    while (t := time.perf_counter() - t0) < seconds:
        fn()
        done += n
    return done / t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    rng = np.random.default_rng(0)
    rows, t_start = [], time.time()
    names = [m for m in list_models() if get_entry(m).weights.bundled_dir is not None]
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            model = astrozoo.load(name).eval()
            path = export_onnx(model, Path(d) / f"{name}.onnx")
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            x = _example(model, args.batch, rng)
            xt = torch.from_numpy(x)

            def run_torch():
                with torch.inference_mode():
                    return model(model.preprocess(xt)).numpy()

            def run_ort():
                return session.run(None, {INPUT_NAME: x})[0]

            diff = float(np.abs(run_torch() - run_ort()).max())
            rates = {"torch": [], "onnxruntime": []}
            for _ in range(3):
                rates["torch"].append(_rate(run_torch, len(x), args.seconds))
                rates["onnxruntime"].append(_rate(run_ort, len(x), args.seconds))
            t, o = max(rates["torch"]), max(rates["onnxruntime"])
            rows.append(f"| {name} | {'x'.join(map(str, input_shape(model.spec)))} | {t:,.0f} | "
                        f"{o:,.0f} | {o / t:.2f}x | {diff:.1e} |")
            print(rows[-1], flush=True)
    load = f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"
    lines = ["### ONNX runtime benchmark (`benchmarks/bench_onnx.py`)", "",
             f"`python benchmarks/bench_onnx.py --threads {args.threads} --batch {args.batch}`, "
             f"{time.strftime('%Y-%m-%d')}: `preprocess -> forward` on in-memory batches of "
             f"{args.batch}, {args.threads} intra-op threads in both runtimes, best of 3 "
             f"interleaved rounds of {args.seconds:g} s; torch {torch.__version__}, onnxruntime "
             f"{ort.__version__}; 1-min load average {load} (a shared machine: compare the "
             "ratio). Max |difference| of the raw outputs in the last column.", "",
             "| model | input | torch (obj/s) | onnxruntime (obj/s) | onnxruntime / torch | "
             "max abs diff |", "| --- | --- | ---: | ---: | ---: | ---: |", *rows, "",
             "torch is the default runtime; `predict(..., runtime=\"onnx\")` selects "
             f"onnxruntime. Total benchmark time {time.time() - t_start:.0f} s."]
    text = "\n".join(lines)
    (ROOT / "benchmarks" / "results" / "onnx.md").write_text(text + "\n")
    print("\nwritten to benchmarks/results/onnx.md; `python benchmarks/update_readme.py` puts it "
          "in the README")


if __name__ == "__main__":
    main()
