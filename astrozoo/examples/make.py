"""Regenerate the bundled example cutouts: ``python -m astrozoo.examples.make``."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from . import DATA_DIR

from ..io.units import unit_factor
from ..surveys import get_survey

NJY_PER_NANOMAGGY = unit_factor("nanomaggy", "nJy")
ZP_COUNTS = 27.0  # the per-band files are in counts with this AB zero point (MAGZP)


def _wcs(ra: float, dec: float, size: int, scale: float) -> fits.Header:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    w.wcs.cdelt = [-scale / 3600, scale / 3600]
    return w.to_header()


def make(out: Path = DATA_DIR, n: int = 8, seed: int = 2026) -> None:
    from ..tasks.lens_finding.simulate import BANDS, PIXEL_SCALE, SIZE, simulate

    images, labels, meta = simulate(n, seed, kind="mixed", lens_fraction=0.5)
    if out.exists():
        shutil.rmtree(out)
    for sub in ("mef", "cube", "perband"):
        (out / sub).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = [f"obj{i:02d}" for i in range(n)]
    for i, oid in enumerate(ids):
        ra, dec = rng.uniform(150, 151), rng.uniform(1.5, 2.5)
        wcs = _wcs(ra, dec, SIZE, PIXEL_SCALE)
        hdus = [fits.PrimaryHDU(header=fits.Header({"OBJECT": oid}))]
        for b in reversed(BANDS):
            h = wcs.copy()
            h.update(EXTNAME=b, FILTER=b, BUNIT="nJy")
            hdus.append(fits.ImageHDU(images[i, BANDS.index(b)], header=h))
        fits.HDUList(hdus).writeto(out / "mef" / f"{oid}.fits")

        h = wcs.copy()
        h.update(BUNIT="nanomaggy", OBJECT=oid, **{f"BAND{k}": b for k, b in enumerate(BANDS)})
        fits.PrimaryHDU((images[i] / NJY_PER_NANOMAGGY).astype(np.float32), header=h).writeto(
            out / "cube" / f"{oid}.fits")

        scale = 10 ** (-0.4 * (get_survey("lsst").zero_point - ZP_COUNTS))
        for k, b in enumerate(BANDS):
            h = wcs.copy()
            h.update(FILTER=b, MAGZP=ZP_COUNTS, OBJECT=oid)
            fits.PrimaryHDU((images[i, k] * scale).astype(np.float32), header=h).writeto(
                out / "perband" / f"{oid}_{b}.fits")
    truth = Table({"id": ids, "is_lens": labels, "kind": meta["kind"], "psf": meta["psf"]})
    truth.meta["comment"] = f"astrozoo.tasks.lens_finding.simulate.simulate({n}, {seed})"
    truth.write(out / "truth.ecsv", overwrite=True)
    print(f"wrote {n} objects x 3 layouts to {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=DATA_DIR)
    p.add_argument("-n", type=int, default=8)
    p.add_argument("--seed", type=int, default=2026)
    a = p.parse_args()
    make(a.out, a.n, a.seed)


if __name__ == "__main__":
    main()
