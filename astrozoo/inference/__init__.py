"""Batched, device-aware, resumable inference: `predict` (catalogue) and `embed` (features).

See `astrozoo.inference.engine` for batching, devices and precision, `astrozoo.inference.tta`
for test-time augmentation and `astrozoo.inference.writers` for streamed, resumable output.
"""

from .engine import amp_dtype, embed, predict, reader_count, select_device
from .writers import read_table

__all__ = ["predict", "embed", "select_device", "amp_dtype", "reader_count", "read_table"]
