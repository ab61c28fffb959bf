"""Inference throughput and memory: forward-only vs end-to-end from FITS files on disk.

For each image model (architectures built from their configs with random weights: throughput
does not depend on weight values):

- forward-only: ``model.preprocess`` + ``model(x)`` on in-memory tensors, batch 256;
- end-to-end: ``astrozoo.inference.predict`` from N objects on disk, as one multi-extension
  FITS per object (MEF) and as one 2-D FITS file per band per object (per-band);

printed side by side with their ratio, the two measured interleaved (see `throughput`) because
the machine's load changes faster than one run lasts. Then the peak resident memory of a
subprocess streaming a prediction of many objects to a Parquet file, at two sizes, to show
that it stays bounded.

Usage::

    python benchmarks/bench_inference.py [--n-objects 10000] [--rss-objects 100000]

The FITS files are written to a temporary directory under /tmp and deleted afterwards. The
markdown table is printed and written to ``benchmarks/results/inference.md``.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from astrozoo.config import InputSpec, ModelConfig
from astrozoo.inference import predict, select_device
from astrozoo.modeling import ZooModel

RESULTS = Path(__file__).parent / "results" / "inference.md"
ALL_BANDS = ("u", "g", "r", "i", "z", "y")
SIZE = 64
BATCH = 256


def image_models() -> list[ZooModel]:
    """The zoo's image architectures, built from their training configs."""
    from astrozoo.tasks.lens_finding.model import LensClassifier
    from astrozoo.tasks.lens_finding.train import build_config
    from astrozoo.tasks.photoz.image_model import ImagePhotoZ
    from astrozoo.tasks.photoz.train_lsst import image_config

    lens = LensClassifier(build_config(0))
    return [lens.eval(), ImagePhotoZ(image_config()).eval()]


def _template(hdus: fits.HDUList) -> tuple[bytes, list[int]]:
    """A FITS file's bytes and the byte offset of each image's data."""
    buf = io.BytesIO()
    hdus.writeto(buf)
    raw = buf.getvalue()
    with fits.open(io.BytesIO(raw)) as h:
        offsets = [h[i].fileinfo()["datLoc"] for i in range(len(h)) if h[i].data is not None]
    return raw, offsets


def _header(band: str) -> fits.Header:
    scale = 0.2 / 3600
    return fits.Header({"OBJECT": "obj000000", "FILTER": band, "BUNIT": "nJy",
                        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CDELT1": -scale,
                        "CDELT2": scale, "CRPIX1": SIZE / 2, "CRPIX2": SIZE / 2,
                        "CRVAL1": 150.0, "CRVAL2": 2.0})


def _cards(raw: bytes, key: bytes) -> list[int]:
    """Byte offsets of the 20-character values of every `key` card."""
    out, i = [], raw.find(key.ljust(8) + b"= ")
    while i >= 0:
        out.append(i + 10)
        i = raw.find(key.ljust(8) + b"= ", i + 80)
    return out


def write_files(root: Path, n: int) -> dict[str, list]:
    """n objects in ugrizy as MEF files and as per-band files, each header with its own OBJECT
    and CRVAL1 as from a cutout service. astropy writes one file of each layout; the others are
    that file with each object's cards and pixels put in place (writing 70,000 files through
    astropy would take longer than the whole benchmark)."""
    blank = np.zeros((SIZE, SIZE), ">f4")
    mef = fits.HDUList([fits.PrimaryHDU()] + [
        fits.ImageHDU(blank, header=_header(b), name=b) for b in ALL_BANDS])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    blob = np.exp(-(xx ** 2 + yy ** 2) / 18.0)
    templates = {"MEF": _template(mef)}
    for b in ALL_BANDS:
        templates[b] = _template(fits.HDUList([fits.PrimaryHDU(blank, header=_header(b))]))
    cards = {k: (_cards(raw, b"OBJECT"), _cards(raw, b"CRVAL1"))
             for k, (raw, _) in templates.items()}
    files: dict[str, list] = {"MEF": [], "per-band": []}
    nbytes = SIZE * SIZE * 4

    def write(path, key, planes, i):
        raw, offsets = templates[key]
        raw = bytearray(raw)
        obj, crval = cards[key]
        for o in obj:
            raw[o:o + 20] = f"'obj{i:06d}'".ljust(20).encode()
        for o in crval:
            raw[o:o + 20] = f"{150 + 1e-3 * i:20.6f}".encode()
        for off, plane in zip(offsets, planes):
            raw[off:off + nbytes] = plane.tobytes()
        path.write_bytes(raw)

    for i in range(n):
        cube = (rng.normal(0, 5, (len(ALL_BANDS), SIZE, SIZE)) + 300 * rng.random() * blob)
        cube = cube.astype(">f4")
        p = root / f"obj{i:06d}.fits"
        write(p, "MEF", cube, i)
        files["MEF"].append(p)
        group = {}
        for b, plane in zip(ALL_BANDS, cube):
            group[b] = root / f"obj{i:06d}_{b}.fits"
            write(group[b], b, [plane], i)
        files["per-band"].append(group)
    return files


def throughput(model: ZooModel, inputs: list, segments: int = 10) -> tuple[float, float, float]:
    """(forward-only images/s, end-to-end images/s, their ratio).

    End-to-end: `predict` over all `inputs`, run as `segments` consecutive calls. Forward-only:
    ``model.preprocess`` + ``model(x)`` on one in-memory batch, before the first call and after
    each. The machine's load changes by tens of percent within a minute, so each segment's
    ratio uses the forward-only batches on either side of it, and the median over segments is
    reported; the rates are totals.
    """
    x = torch.from_numpy(np.random.default_rng(1).normal(20, 5, (BATCH, *model.spec.shape))
                         .astype(np.float32))

    def forward_batch() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(model.preprocess(x))
        return time.perf_counter() - t0

    forward_batch()  # warm-up
    fwd, e2e = [forward_batch()], []
    for seg in np.array_split(np.arange(len(inputs)), segments):
        t0 = time.perf_counter()
        t = predict(model, [inputs[i] for i in seg], batch_size=BATCH, progress=False)
        e2e.append((len(seg), time.perf_counter() - t0))
        assert len(t) == len(seg) and not (t["flags"] != 0).any()
        fwd.append(forward_batch())
    ratios = [(n / t) / (2 * BATCH / (f0 + f1)) for (n, t), f0, f1 in zip(e2e, fwd, fwd[1:])]
    return (BATCH * len(fwd) / sum(fwd), sum(n for n, _ in e2e) / sum(t for _, t in e2e),
            float(np.median(ratios)))


# -- peak memory of a streamed job (run in a subprocess) ----------------------------------------
class SyntheticCutouts:
    """n ugrizy cutouts cycling through a small pool: the input side costs no memory or time,
    so the peak RSS measured is the engine's and the writer's."""

    def __init__(self, n: int):
        self.n = n
        self.ids = [f"obj{i:07d}" for i in range(n)]
        self.pool = np.random.default_rng(0).normal(20, 5, (BATCH, len(ALL_BANDS), SIZE, SIZE)) \
            .astype(np.float32)

    def __len__(self):
        return self.n

    def read_batch(self, indices):
        from astrozoo.io import Batch

        zeros = np.zeros(len(indices), np.int64)
        return Batch([self.ids[i] for i in indices], self.pool[np.asarray(indices) % BATCH],
                     zeros, zeros, [None] * len(indices))

    def extra_columns(self, indices):
        return {}


class PhotoZShaped(ZooModel):
    """A cheap stand-in with the photo-z output columns (8 scalars, 3 x (N, K) arrays), so
    that 100,000 objects stream through in seconds; memory does not depend on the network."""

    def __init__(self, config):
        super().__init__(config)
        self.head = torch.nn.Linear(len(config.input_spec.bands), 15)

    def forward(self, x):
        return self.head(x.mean((-2, -1)))

    def postprocess(self, out):
        cols = {name: out[:, i].numpy() for i, name in enumerate(
            ("z_mean", "z_median", "z_mode", "z_std", "z_lo68", "z_hi68", "z_lo95", "z_hi95"))}
        k = 5
        cols.update(mdn_weight=torch.softmax(out[:, :k], 1).numpy(),
                    mdn_mu=out[:, k:2 * k].numpy(), mdn_sigma=out[:, 2 * k:].exp().numpy())
        return cols


def _rss_child(n: int, output: str) -> None:
    cfg = ModelConfig(name="photoz-shaped", task="photo-z", architecture="none", arch_kwargs={},
                      outputs=(), input_spec=InputSpec(bands=ALL_BANDS, size=SIZE,
                                                       pixel_scale=0.2, normalization="identity"))
    t0 = time.perf_counter()
    predict(PhotoZShaped(cfg), SyntheticCutouts(n), output=output, batch_size=BATCH,
            progress=False)
    elapsed = time.perf_counter() - t0
    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    print(f"{hwm / 1024:.0f} {elapsed:.1f}")


def peak_rss(n: int, workdir: Path) -> tuple[float, float]:
    """(peak RSS in MB of the main process, seconds) for streaming n objects to Parquet."""
    out = workdir / f"rss{n}.parquet"
    r = subprocess.run([sys.executable, __file__, "--rss-child", str(n), str(out)],
                       capture_output=True, text=True, check=True)
    out.unlink()
    mb, s = r.stdout.split()
    return float(mb), float(s)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-objects", type=int, default=10_000)
    ap.add_argument("--rss-objects", type=int, default=100_000)
    ap.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        return _rss_child(int(args.rss_child[0]), args.rss_child[1])

    t_start = time.perf_counter()
    device = select_device()
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "none lent to this run"
    load0 = os.getloadavg()
    env = (f"CPU cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
           f"device {device}, GPU: {gpu}, DataLoader workers auto (measured, `reader_count`), "
           f"torch {torch.__version__}, Python {platform.python_version()}")
    print(env, flush=True)
    rows = []
    root = Path(tempfile.mkdtemp(prefix="astrozoo-bench-", dir="/tmp"))
    try:
        t0 = time.perf_counter()
        files = write_files(root, args.n_objects)
        print(f"wrote {args.n_objects} objects x 2 layouts in {time.perf_counter() - t0:.0f} s",
              flush=True)
        for model in image_models():
            bands = model.spec.bands
            for layout, objs in files.items():
                inputs = objs if layout == "MEF" else [[o[b] for b in bands] for o in objs]
                per = 1 if layout == "MEF" else len(bands)
                f, e, r = throughput(model, inputs)
                rows.append((model.name, "".join(bands),
                             f"{layout} ({per} file{'s' if per > 1 else ''}/object)", f, e, r))
                print(" | ".join(map(str, rows[-1])), flush=True)
        rss = [(n, *peak_rss(n, root)) for n in sorted({args.rss_objects // 5, args.rss_objects})]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load1 = os.getloadavg()

    lines = [
        "# Inference engine benchmark (`benchmarks/bench_inference.py`)", "",
        f"`python benchmarks/bench_inference.py --n-objects {args.n_objects} "
        f"--rss-objects {args.rss_objects}`, {time.strftime('%Y-%m-%d', time.gmtime())}.", "",
        f"{env}. Load average {load0[0]:.1f} at the start and {load1[0]:.1f} at the end on a "
        "machine shared with other jobs: absolute rates vary with the load, the ratio is the "
        "figure of merit: end-to-end runs as 10 consecutive `predict` calls, with one "
        "forward-only batch before the first and after each; the ratio is the median over the "
        "10 segments of end-to-end / forward-only on either side (rates are totals). "
        "Forward-only: `model.preprocess` + `model(x)` on in-memory tensors. Random weights "
        f"(throughput does not depend on them); batch 256; {args.n_objects} objects per "
        "layout, 64x64 float32, files in the page cache; default DataLoader workers.", "",
        "| model | bands | layout | forward-only (img/s) | end-to-end (img/s) | ratio (median) |",
        "| --- | --- | --- | ---: | ---: | ---: |",
        *(f"| {m} | {b} | {lay} | {f:.0f} | {e:.0f} | {r:.2f} |" for m, b, lay, f, e, r in rows),
        "",
        "Peak resident memory of the main process while streaming predictions to Parquet "
        "(photo-z output columns: 8 scalars and three N x 5 arrays; inputs generated lazily; "
        "a cheap stand-in network so that the run takes seconds):", "",
        "| objects | peak RSS (MB) | time (s) |", "| ---: | ---: | ---: |",
        *(f"| {n:,} | {mb:.0f} | {s:.0f} |" for n, mb, s in rss), "",
        "Goals: end-to-end / forward-only >= 0.90 for every layout; peak RSS bounded, well "
        f"under 2 GB. Total benchmark time {time.perf_counter() - t_start:.0f} s.", "",
    ]
    if device.type != "cuda":
        lines += ["No GPU was available for this run; on a GPU the same script records images/s "
                  "and the ratio there (autocast and channels_last are on by default on CUDA).",
                  ""]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
