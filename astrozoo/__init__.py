"""astrozoo: pretrained astronomy models with an inference API.

>>> import astrozoo
>>> astrozoo.list_tasks()                               # doctest: +SKIP
>>> model = astrozoo.load("lens-finding")               # doctest: +SKIP
>>> table = model.predict(["cutout.fits"])              # doctest: +SKIP

torch is imported only when a model is loaded, so listing the zoo is fast.
"""

__version__ = "0.1.0"

from .registry import list_models, list_tasks  # noqa: E402  (torch-free)

__all__ = ["__version__", "list_tasks", "list_models", "load"]


def load(name, **kwargs):
    """Load a pretrained model; see `astrozoo.modeling.load`."""
    from .modeling import load as _load

    return _load(name, **kwargs)
