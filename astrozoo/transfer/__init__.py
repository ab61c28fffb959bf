"""Fine-tuning and transfer learning: adapt any zoo image model to your survey and labels.

By concept:

- `api` — `finetune`, `adapt`, `linear_probe`, `knn_probe`, `pseudo_label`;
- `bands` — band mapping by name and wavelength, first-layer weight adaptation;
- `freezing` — freezing that really freezes, timm layer-wise learning-rate decay;
- `heads` — binary, classes, regression (with uncertainty) and mdn heads;
- `data` — labelled tables of cutout paths (or arrays) read through the input pipeline;
- `model` — `FineTunedModel`, the parent's backbone plus a new head.

Training itself is the shared loop, `astrozoo.training.fit`.
"""

from .api import DEFAULT_HEADS, adapt, finetune, knn_probe, linear_probe, pseudo_label
from .bands import adapt_input_weight, band_mapping
from .freezing import apply_freeze
from .heads import HEADS
from .model import FineTunedModel

__all__ = ["finetune", "adapt", "linear_probe", "knn_probe", "pseudo_label", "band_mapping",
           "adapt_input_weight", "apply_freeze", "FineTunedModel", "HEADS", "DEFAULT_HEADS"]
