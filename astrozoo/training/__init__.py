"""The training layer: one loop (`fit`) for every recipe and for fine-tuning.

See `astrozoo.training.loop` for what it does and why it is built on Accelerate and timm.
"""

from .loop import (FitResult, TrainConfig, as_dataset, fit, round_to_storage, run_batches,
                   set_train_mode)

__all__ = ["TrainConfig", "FitResult", "fit", "as_dataset", "run_batches", "set_train_mode",
           "round_to_storage"]
