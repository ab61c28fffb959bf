"""Batched, device-aware, resumable inference: `predict` (catalogue) and `embed` (features).

See `astrozoo.inference.engine` for batching, devices and precision, `astrozoo.inference.tta`
for test-time augmentation and `astrozoo.inference.writers` for streamed, resumable output.
"""

from .engine import amp_dtype, default_num_workers, embed, predict, select_device
from .writers import read_table

__all__ = ["predict", "embed", "select_device", "amp_dtype", "default_num_workers", "read_table"]
