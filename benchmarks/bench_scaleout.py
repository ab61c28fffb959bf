"""Scale-out throughput: objects/s of `predict_dask` with 1 and 2 LocalCluster workers, against
the single-process `predict`, for a cutout model over survey-image tiles and a catalogue model.

    python benchmarks/bench_scaleout.py [--tiles 4] [--per-tile 400] [--catalog-rows 200000]

Cutout model (the default lens finder): `--tiles` survey tiles of g, r, i images, each holding
`--per-tile` simulated galaxies on a grid, one catalogue of all positions (rows shuffled, so
that the partitioner must find each row's tile). Catalogue model (``photoz-sdss``):
`--catalog-rows` rows drawn from the SDSS test split. Every worker gets one torch thread, the
single process as many threads as workers compared; partitions of `--partition-rows`. The rate
counts the whole call (cluster start, model load on each worker, partitioning, writing every
partition's Parquet file and reading the result back) and, separately, the steady state: the
same call once more on the warm cluster into a fresh directory. Writes
``benchmarks/results/scaleout.md`` (the README's ``bench-scaleout`` section).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from astropy.table import vstack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_tiles(d: Path, n_tiles: int, per_tile: int):
    """`n_tiles` survey tiles (one FITS image per band) of simulated cutouts and the catalogue."""
    from astrozoo.examples.fields import write_tile
    from astrozoo.tasks.lens_finding.simulate import BANDS, simulate

    tiles, cats = [], []
    for k in range(n_tiles):
        x, _, _ = simulate(per_tile, 9_100_000 + k)
        paths, cat = write_tile(x, BANDS, d, name=f"tile{k}", ra=150.0 + k,
                                first_id=k * per_tile)
        tiles.append(paths)
        cats.append(cat)
    cat = vstack(cats)
    return tiles, cat[np.random.default_rng(0).permutation(len(cat))]


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_case(name, model, catalog, images, workers, rows, tmp, kw):
    import torch
    from distributed import Client, LocalCluster

    from astrozoo.scaleout.dask import predict_dask

    torch.set_num_threads(max(workers))
    loaded = __import__("astrozoo").load(model)
    if images is None:
        _, t_single = _timed(lambda: loaded.predict(catalog, progress=False, **kw))
    else:  # one predict per tile: the single-process equivalent
        from astrozoo.scaleout.partitions import assign_tiles

        which = assign_tiles(catalog, images)
        _, t_single = _timed(lambda: [loaded.predict(tile, catalog=catalog[which == k],
                                                     progress=False, **kw)
                                      for k, tile in enumerate(images)])
    out = [(name, "single process", max(workers), len(catalog) / t_single, None)]
    for w in workers:
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        with Client(cluster) as client:
            predict_dask(model, catalog, tmp / f"{name}-{w}-cold", images=images,
                         scheduler=client, max_rows=rows, threads_per_worker=1,
                         progress=False, **kw)
            t_cold = time.perf_counter() - t0
            _, t_warm = _timed(lambda: predict_dask(
                model, catalog, tmp / f"{name}-{w}-warm", images=images, scheduler=client,
                max_rows=rows, threads_per_worker=1, progress=False, **kw))
        cluster.close()
        out.append((name, f"dask, {w} worker{'s' if w > 1 else ''}", 1,
                    len(catalog) / t_cold, len(catalog) / t_warm))
        print(out[-1], flush=True)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=int, default=4)
    p.add_argument("--per-tile", type=int, default=400)
    p.add_argument("--catalog-rows", type=int, default=200_000)
    p.add_argument("--partition-rows", type=int, default=200)
    p.add_argument("--catalog-partition-rows", type=int, default=20_000)
    a = p.parse_args(argv)
    t_start = time.time()
    load0 = os.getloadavg()[0]

    from astrozoo.tasks.photoz.sdss import load_sdss

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiles, cat = make_tiles(tmp, a.tiles, a.per_tile)
        rows += run_case("lens-resnet10t-lsst", "lens-finding", cat, tiles, (1, 2),
                         a.partition_rows, tmp, {})
        sdss = load_sdss("test")
        pick = np.random.default_rng(1).integers(0, len(sdss), a.catalog_rows)
        pz = sdss[pick]
        pz["id"] = np.arange(len(pz))
        rows += run_case("photoz-sdss", "photoz-sdss", pz, None, (1, 2),
                         a.catalog_partition_rows, tmp, {"unit": "nanomaggy"})

    lines = ["# Scale-out benchmark (`benchmarks/bench_scaleout.py`)", "",
             f"`python benchmarks/bench_scaleout.py --tiles {a.tiles} --per-tile {a.per_tile} "
             f"--catalog-rows {a.catalog_rows}`, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} "
             f"CPU cores, no GPU; 1-min load average {load0:.1f} -> {os.getloadavg()[0]:.1f}. "
             f"Cutouts: {a.tiles} tiles x {a.per_tile} galaxies (64x64 g,r,i) in partitions of "
             f"{a.partition_rows} rows; catalogue: {a.catalog_rows:,} SDSS rows in partitions of "
             f"{a.catalog_partition_rows:,}. Each Dask worker runs one torch thread; the single "
             "process as many threads as the most workers compared. *Whole call*: cluster start, "
             "a model load per worker, partitioning, one Parquet file per partition and the "
             "read-back; *warm*: the same call again on the running cluster.", "",
             "| model | run | torch threads each | whole call (obj/s) | warm cluster (obj/s) |",
             "| --- | --- | ---: | ---: | ---: |"]
    for name, run, threads, cold, warm in rows:
        lines.append(f"| {name} | {run} | {threads} | {cold:,.0f} | "
                     + ("-" if warm is None else f"{warm:,.0f}") + " |")
    lines += ["", f"Total benchmark time {time.time() - t_start:.0f} s."]
    (ROOT / "benchmarks" / "results" / "scaleout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
