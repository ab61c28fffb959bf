"""Input pipeline throughput: FITS layouts and survey-image cutouts (numbers for the README).

For 10,000 64x64 5-band objects in each layout (multi-extension FITS, 3-D cube, 5 per-band
files), measures objects/s of: a naive astropy loop (``fits.open`` per file), this pipeline in one
process, this pipeline through a torch DataLoader with 2 workers, and ``np.fromfile`` of the same
files (the ceiling). Then sky-position cutouts from a 4096x4096 image with WCS: ``Cutout2D`` per
object against the pipeline. Files are generated under /tmp and deleted. Prints a markdown table
and writes it to ``benchmarks/results/io.md``.

Run: ``python benchmarks/bench_io.py [--n 10000] [--baseline-n 2000]``
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.table import Table
from astropy.wcs import WCS

from astrozoo.config import InputSpec
from astrozoo.io import open_inputs

BANDS = ("g", "r", "i", "z", "y")
SIZE = 64
SPEC = InputSpec(bands=BANDS, pixel_scale=0.2, size=SIZE, flux_unit="nJy")
BATCH = 256
RESULTS = Path(__file__).parent / "results" / "io.md"
# Same-length placeholders, replaced per object so headers differ as real cutouts do.
OBJ_TOKEN, RA_TOKEN = b"OBJ0000000", b"150.123456"


def wcs_header(size=SIZE, crval=(150.123456, 2.2)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cd = [[-0.2 / 3600, 0], [0, 0.2 / 3600]]
    w.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    w.wcs.crval = list(crval)
    return w.to_header()


def template_bytes(layout):
    """One file of ``layout`` (bytes) and the data offsets of its pixel blocks."""
    zeros = np.zeros((SIZE, SIZE), np.float32)

    def hdr(h, band=None):
        h.header.update(wcs_header())
        h.header.update(OBJECT=OBJ_TOKEN.decode(), BUNIT="nJy")
        if band:
            h.header["FILTER"] = band
        return h

    if layout == "mef":
        hduls = [fits.HDUList([hdr(fits.PrimaryHDU())] + [
            hdr(fits.ImageHDU(zeros, name=b), b) for b in BANDS])]
    elif layout == "cube":
        h = hdr(fits.PrimaryHDU(np.zeros((len(BANDS), SIZE, SIZE), np.float32)))
        h.header.update({f"BAND{k}": b for k, b in enumerate(BANDS)})
        hduls = [fits.HDUList([h])]
    else:
        hduls = [fits.HDUList([hdr(fits.PrimaryHDU(zeros), b)]) for b in BANDS]
    out = []
    for hdul in hduls:
        buf = io.BytesIO()
        hdul.writeto(buf)
        raw = buf.getvalue()
        with fits.open(io.BytesIO(raw)) as h:
            offsets = [h.fileinfo(i)["datLoc"] for i in range(len(h)) if h[i].data is not None]
        out.append((raw, offsets))
    return out


def generate(root: Path, layout: str, n: int, rng) -> list:
    """Write n objects; returns per object a path (mef, cube) or a tuple of 5 paths."""
    templates = template_bytes(layout)
    pool = rng.normal(0, 1, (64, len(BANDS), SIZE, SIZE)).astype(">f4")
    objects = []
    for i in range(n):
        files = []
        for j, (raw, offsets) in enumerate(templates):
            b = bytearray(raw.replace(OBJ_TOKEN, b"OBJ%07d" % i)
                          .replace(RA_TOKEN, b"%10.6f" % (150 + i * 1e-5)))
            planes = pool[(i + j) % len(pool)]
            if len(offsets) == 1 and layout == "cube":
                b[offsets[0]:offsets[0] + planes.nbytes] = planes.tobytes()
            else:
                for k, off in enumerate(offsets):
                    plane = planes[(k + j) % len(BANDS)].tobytes()
                    b[off:off + len(plane)] = plane
            name = f"obj{i:06d}" if len(templates) == 1 else f"obj{i:06d}_{BANDS[j]}"
            p = root / f"{name}.fits"
            p.write_bytes(b)
            files.append(p)
        objects.append(files[0] if len(files) == 1 else tuple(files))
    return objects


def rate(fn, n) -> float:
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def best_rates(fns, n, repeats) -> list[float]:
    """Best rate of each of ``fns`` over ``repeats`` interleaved runs: on a shared machine the
    best run is the least disturbed one, and interleaving exposes all to the same load."""
    best = [0.0] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            best[k] = max(best[k], rate(fn, n))
    return best


def astropy_baseline(objects):
    for obj in objects:
        if isinstance(obj, tuple):
            np.stack([fits.getdata(p) for p in obj]).astype(np.float32)
        else:
            with fits.open(obj) as h:
                np.stack([x.data for x in h if x.data is not None]).reshape(
                    len(BANDS), SIZE, SIZE).astype(np.float32)


def fromfile_ceiling(objects):
    for obj in objects:
        for p in obj if isinstance(obj, tuple) else (obj,):
            np.fromfile(p, np.uint8)


def pipeline(cs):
    for s in range(0, len(cs), BATCH):
        cs.read_batch(range(s, min(s + BATCH, len(cs))))


def _to_torch(batch):
    import torch

    # As the engine does: tensors travel from workers through shared memory, not pickles.
    return batch.ids, torch.from_numpy(batch.data), batch.flags


def pipeline_workers(cs, workers):
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    sampler = BatchSampler(SequentialSampler(range(len(cs))), BATCH, drop_last=False)
    for _ in DataLoader(cs, sampler=sampler, batch_size=None, num_workers=workers,
                        collate_fn=_to_torch):
        pass


def bench_layouts(root, n, n_base, workers, repeats, rng):
    rows = []
    for layout in ("mef", "cube", "per-band files"):
        d = root / layout.replace(" ", "_")
        d.mkdir()
        objects = generate(d, layout, n, rng)
        cs = open_inputs(list(objects), SPEC)
        check = cs.read_batch(range(4)).data
        assert np.isfinite(check).all() and check.shape == (4, *SPEC.shape)
        r_base = rate(lambda: astropy_baseline(objects[:n_base]), n_base)
        r_ceil, r_one = best_rates([lambda: fromfile_ceiling(objects),
                                    lambda: pipeline(open_inputs(list(objects), SPEC))],
                                   n, repeats)
        r_all = rate(lambda: pipeline_workers(open_inputs(list(objects), SPEC), workers), n)
        rows.append((layout, r_base, r_one, r_all, r_ceil))
        print(f"{layout}: baseline {r_base:,.0f}/s, pipeline {r_one:,.0f}/s, "
              f"{workers} workers {r_all:,.0f}/s, ceiling {r_ceil:,.0f}/s", flush=True)
        shutil.rmtree(d)
    return rows


def bench_sky(root, n, n_base, rng):
    shape = (4096, 4096)
    path = root / "r.fits"
    h = fits.PrimaryHDU(rng.normal(0, 1, shape).astype(np.float32),
                        header=wcs_header(shape[0], (150.0, 2.2)))
    h.header.update(FILTER="r", BUNIT="nJy")
    h.writeto(path)
    wcs = WCS(h.header)
    x, y = rng.uniform(0, shape[1], n), rng.uniform(0, shape[0], n)
    ra, dec = wcs.all_pix2world(x, y, 0)
    cat = Table({"ra": ra, "dec": dec})
    spec = InputSpec(bands=("r",), pixel_scale=0.2, size=SIZE, flux_unit="nJy")
    data = fits.getdata(path, memmap=True)
    coords = SkyCoord(ra[:n_base], dec[:n_base], unit="deg")

    def cutout2d():
        for c in coords:
            Cutout2D(data, c, SIZE, wcs=wcs, mode="partial")

    r_base = rate(cutout2d, n_base)
    r_ours = rate(lambda: pipeline(open_inputs({"r": path}, spec, catalog=cat)), n)
    print(f"sky cutouts: Cutout2D {r_base:,.0f}/s, pipeline {r_ours:,.0f}/s", flush=True)
    return r_base, r_ours


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="objects per layout")
    ap.add_argument("--baseline-n", type=int, default=2_000,
                    help="objects timed for the slow baselines (astropy loop, Cutout2D)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved runs of the pipeline and the ceiling; the best counts")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    load0 = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="astrozoo_bench_io_", dir="/tmp"))
    t0 = time.perf_counter()
    try:
        rows = bench_layouts(root, args.n, min(args.baseline_n, args.n), args.workers,
                             args.repeats, rng)
        sky = bench_sky(root, args.n, min(args.baseline_n, args.n), rng)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load1 = os.getloadavg()[0]

    lines = [
        f"Input pipeline throughput, {args.n:,} objects of 5 bands x {SIZE}x{SIZE} float32 per "
        f"layout (files in the page cache), {os.cpu_count()} CPU cores, {platform.machine()}. "
        f"Measured under load from other jobs on the shared machine (1-min load average "
        f"{load0:.1f} -> {load1:.1f}), so compare the ratios rather than absolute rates. "
        f"Baselines (astropy loop, Cutout2D) timed on the first {min(args.baseline_n, args.n):,} "
        f"objects; pipeline and np.fromfile rates are the best of {args.repeats} interleaved runs. "
        f"Headers differ per object (OBJECT, CRVAL1), as from a cutout service.",
        "",
        "| layout | astropy per file (obj/s) | pipeline, 1 process (obj/s) | "
        f"pipeline, {args.workers} DataLoader workers (obj/s) | np.fromfile ceiling (obj/s) | "
        "pipeline / astropy | ceiling / pipeline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for layout, base, one, allc, ceil in rows:
        lines.append(f"| {layout} | {base:,.0f} | {one:,.0f} | {allc:,.0f} | {ceil:,.0f} | "
                     f"{one / base:.1f}x | {ceil / one:.1f}x |")
    lines += [
        "",
        "| sky-position cutouts, 4096x4096 image with WCS | `Cutout2D` per object (obj/s) | "
        "pipeline, 1 process (obj/s) | pipeline / Cutout2D |",
        "| --- | ---: | ---: | ---: |",
        f"| {args.n:,} random positions, 64x64 | {sky[0]:,.0f} | {sky[1]:,.0f} | "
        f"{sky[1] / sky[0]:.1f}x |",
        "",
        "Goals: pipeline / astropy >= 5x per core, ceiling / pipeline <= 3x, "
        "pipeline / Cutout2D >= 10x.",
        f"Total benchmark time {time.perf_counter() - t0:.0f} s.",
    ]
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Input pipeline benchmark (`benchmarks/bench_io.py`)\n\n" + table)


if __name__ == "__main__":
    main()
