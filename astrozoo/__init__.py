"""astrozoo: pretrained astronomy models with an inference API.

>>> import astrozoo
>>> astrozoo.list_tasks()                               # doctest: +SKIP
>>> model = astrozoo.load("lens-finding")               # doctest: +SKIP
>>> table = model.predict(["cutout.fits"])              # doctest: +SKIP

torch is imported only when a model is loaded, so listing the zoo is fast.
"""

__version__ = "0.1.0"

from .registry import (ModelEntry, Task, WeightsSource, list_models, list_tasks,  # noqa: E402
                       register_architecture, register_model, register_task)  # (torch-free)

__all__ = ["__version__", "list_tasks", "list_models", "load", "download", "embed", "finetune", "Task",
           "ModelEntry", "WeightsSource", "register_task", "register_architecture",
           "register_model"]


def load(name, **kwargs):
    """Load a pretrained model; see `astrozoo.modeling.load`."""
    from .modeling import load as _load

    return _load(name, **kwargs)


def download(name):
    """Fetch and verify a model's files (model or task name, or ``hf-hub:org/repo[@rev]``);
    returns the local directory. See `astrozoo.hub.download`."""
    from .hub import HUB_PREFIX, download as _download
    from .registry import get_entry

    return _download(name if str(name).startswith(HUB_PREFIX) else get_entry(name))


def embed(model, inputs, **kwargs):
    """Embeddings (N, D) float32 of `inputs`, in input order, from a model or a model / task
    name (``"features"``: the bundled self-supervised encoder); keyword arguments as
    `ZooModel.predict`. The tools for the vectors are in `astrozoo.embeddings`."""
    if isinstance(model, str) or not hasattr(model, "embed"):
        model = load(model)
    return model.embed(inputs, **kwargs)


def finetune(model, train, val=None, **kwargs):
    """Fine-tune a zoo model on your labelled cutouts; see `astrozoo.transfer.finetune`."""
    from .transfer import finetune as _finetune

    return _finetune(model, train, val, **kwargs)
