"""The input pipeline: where FITS (and arrays, NDData, catalogues) become float32 tensors.

``open_inputs(inputs, spec, ...)`` returns a lazy `CutoutSet`; ``read_batch(indices)`` gives a
`Batch` conformed to the model's `~astrozoo.config.InputSpec`. By concept:

- `layouts` — FITS layouts (MEF, cube, per-band files), read safely with astropy;
- `fastpath` — byte-offset reading for homogeneous file sets, checked per file;
- `cutouts` — cutouts from survey images + catalogue, pixel-identical to ``Cutout2D``;
- `conform` — band selection/reordering, pixel-scale check/resampling, crop/pad, scaling;
- `units` — ``BUNIT``/``MAGZP`` to the model's flux unit;
- `badpixels` — the NaN/inf/masked replacement rule and its counts;
- `catalog` — tables and photometry rows for catalogue models;
- `dataset` — `CutoutSet`, `Batch`, `open_inputs`.
"""

from .dataset import Batch, CutoutSet, open_inputs
from .flags import Flag

__all__ = ["open_inputs", "CutoutSet", "Batch", "Flag"]
