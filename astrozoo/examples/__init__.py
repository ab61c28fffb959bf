"""Small example inputs bundled with astrozoo (used by the README demo and the tests).

Regenerate them with ``python -m astrozoo.examples.make`` (needs ``astrozoo[train]``): simulated
LSST-like lens and non-lens cutouts written in the three layouts surveys deliver
(shared/README section 2), each in a different flux convention so that the input pipeline's
conversions are exercised:

- ``mef/``: multi-extension FITS, one image HDU per band named by ``EXTNAME``, ``BUNIT='nJy'``,
  bands stored in reverse order (i, r, g);
- ``cube/``: one 3-D (band, y, x) cube per object, bands named ``BAND0..BAND2``, in nanomaggies
  (Legacy Survey style, ``BUNIT='nanomaggy'``);
- ``perband/``: one 2-D file per object and band, band in ``FILTER``, counts on an AB zero point
  ``MAGZP=27.0``;
- ``truth.ecsv``: the simulator's labels (``is_lens``) and parameters, by ``id``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["DATA_DIR", "example_inputs"]

DATA_DIR = Path(str(resources.files("astrozoo") / "examples" / "data"))


def example_inputs(layout: str = "mef") -> list:
    """Paths of the example objects in one layout: ``"mef"``, ``"cube"`` or ``"perband"``
    (a list of per-object lists of band files)."""
    if layout in ("mef", "cube"):
        return sorted(map(str, (DATA_DIR / layout).glob("*.fits")))
    if layout == "perband":
        files = sorted((DATA_DIR / "perband").glob("*.fits"))
        objects: dict[str, list[str]] = {}
        for f in files:
            objects.setdefault(f.stem.rsplit("_", 1)[0], []).append(str(f))
        return list(objects.values())
    raise ValueError(f"unknown layout {layout!r}; choose mef, cube or perband")
