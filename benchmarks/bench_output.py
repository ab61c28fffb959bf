"""Streamed-output cost: what ``predict(..., output=...)`` adds to a run, per format, at 10^6 rows.

A child process streams N objects through a cheap stand-in with the photo-z output columns
(`bench_inference.PhotoZShaped`: 8 scalars and three (N, 5) arrays a row) into a FITS, ECSV or
Parquet file, and reports its wall time, the time spent writing parts (``ChunkStore.write_rows``)
and joining them into the output (``ChunkStore.finalize``), and its peak resident memory. The
same run without ``output`` gives the compute-only time; the difference is what the output path
costs. ``--baseline SRC`` runs the same children on another source tree (e.g. a ``git worktree``
of an earlier commit) for a before/after table.

    python benchmarks/bench_output.py [--n 1000000] [--baseline SRC]

Writes ``benchmarks/results/output.md`` (the README's ``bench-output`` section).
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FORMATS = (".fits", ".ecsv", ".parquet")


def _child(n: int, output: str | None) -> None:
    sys.path.insert(0, str(HERE))
    import torch

    from bench_inference import ALL_BANDS, BATCH, SIZE, PhotoZShaped, SyntheticCutouts

    from astrozoo.config import InputSpec, ModelConfig
    from astrozoo.inference import engine, writers

    torch.set_num_threads(1)
    spent = {"write_rows": 0.0, "finalize": 0.0}

    def timed(name):
        real = getattr(writers.ChunkStore, name)

        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return real(*args, **kw)
            finally:
                spent[name] += time.perf_counter() - t

        setattr(writers.ChunkStore, name, wrapper)

    timed("write_rows")
    timed("finalize")
    cfg = ModelConfig(name="photoz-shaped", task="photo-z", architecture="none", arch_kwargs={},
                      outputs=(), input_spec=InputSpec(bands=ALL_BANDS, size=SIZE,
                                                       pixel_scale=0.2, normalization="identity"))
    t0 = time.perf_counter()
    engine.predict(PhotoZShaped(cfg), SyntheticCutouts(n), output=output, batch_size=BATCH,
                   progress=False, num_workers=0)
    wall = time.perf_counter() - t0
    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    size = Path(output).stat().st_size if output else 0
    print(f"{wall:.2f} {spent['write_rows']:.2f} {spent['finalize']:.2f} {hwm / 1024:.0f} {size}")


def run_child(n: int, output: Path | None, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, __file__, "--child", str(n), str(output or "-")],
                       capture_output=True, text=True, env=env, cwd=src)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    wall, write, join, rss, size = r.stdout.split()
    if output is not None:
        output.unlink(missing_ok=True)
    return {"wall": float(wall), "write": float(write), "join": float(join), "rss": float(rss),
            "size": int(size)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="source tree of the implementation to compare with")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        n, out = args.child
        return _child(int(n), None if out == "-" else out)

    t_start = time.perf_counter()
    trees = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rows = []
    with tempfile.TemporaryDirectory(prefix="astrozoo-bench-output-") as d:
        for label, src in trees.items():
            compute = run_child(args.n, None, src)
            print(f"{label}: no output {compute['wall']:.1f} s, {compute['rss']:.0f} MB",
                  flush=True)
            for suffix in FORMATS:
                r = run_child(args.n, Path(d) / f"out{suffix}", src)
                r.update(label=label, fmt=suffix[1:], extra=r["wall"] - compute["wall"])
                rows.append(r)
                print(r, flush=True)
    lines = [
        "# Streamed-output benchmark (`benchmarks/bench_output.py`)", "",
        f"`python benchmarks/bench_output.py --n {args.n}"
        + (" --baseline <previous commit's tree>" if args.baseline else "") + "`, "
        f"{datetime.date.today()}: {args.n:,} rows of the photo-z columns (8 float32 scalars, "
        "3 x 5 float32 arrays, id, flags, n_bad_pixels) streamed by a stand-in model in one "
        "process (1 thread, no reader processes), chunks of 4096 rows. *Extra* is the wall time "
        "over the same run without `output`; *write parts* and *join* are the time inside "
        "`ChunkStore.write_rows` and `ChunkStore.finalize`; peak RSS of the whole process.",
        "",
        "| implementation | format | wall (s) | extra over no output (s) | write parts (s) "
        "| join (s) | peak RSS (MB) | file (MB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = {"this": "direct writers (this commit)", "baseline": "FITS chunks + re-encoding "
             "(before)"}
    for r in rows:
        lines.append(f"| {names[r['label']]} | {r['fmt']} | {r['wall']:.1f} | {r['extra']:.1f} "
                     f"| {r['write']:.1f} | {r['join']:.1f} | {r['rss']:.0f} "
                     f"| {r['size'] / 2**20:.0f} |")
    if args.baseline:
        lines += ["", "The earlier implementation's wall time includes reading the whole output "
                  "back to return it, which the direct path does only with `read_back=True`."]
    lines += ["", f"Total benchmark time {time.perf_counter() - t_start:.0f} s."]
    text = "\n".join(lines) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "output.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
