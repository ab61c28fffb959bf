"""The registry: tasks, the architectures that serve them, and the pretrained models.

One plug-in point, in the spirit of timm's ``register_model`` + pretrained configs and
torchvision's ``Weights``: a task package (``astrozoo/tasks/<task>/__init__.py``, or any
installed package named in the ``astrozoo.tasks`` entry-point group) registers

- its `Task` (name, output columns, Hugging Face pipeline tag, key metrics, evaluator),
- its architectures (`register_architecture`: the only classes a ``config.json`` may name, so a
  downloaded config can never make astrozoo import arbitrary code),
- its pretrained entries (`register_model`: where the weights are, their sha256).

Adding a task is adding a folder; nothing here changes. Task packages stay torch-free so that
listing the zoo is fast; architectures are imported when a model is built.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata, resources
from pathlib import Path
from typing import Callable, Mapping

from .config import ModelConfig
from .exceptions import OutputContractError

__all__ = ["Task", "register_task", "get_task", "list_tasks", "register_architecture",
           "get_architecture", "list_architectures", "transformers_architecture", "WeightsSource", "ModelEntry",
           "register_model", "list_models", "get_entry", "default_model", "unregister", "is_registered",
           "BUNDLED_ROOT", "ENTRY_POINT_GROUP"]

#: Where bundled model directories (Hub layout) live inside the installed package.
BUNDLED_ROOT = Path(str(resources.files("astrozoo") / "weights"))
#: Entry-point group through which other packages add tasks.
ENTRY_POINT_GROUP = "astrozoo.tasks"

_TASKS: dict[str, "Task"] = {}
_ARCHITECTURES: dict[str, tuple[str, object]] = {}
_TRANSFORMERS_TYPES: dict[str, str] = {}
_REGISTRY: dict[str, "ModelEntry"] = {}
_DEFAULTS: dict[str, str] = {}
_loaded = False


# -- tasks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """A task: what its models output and how they are judged.

    Parameters
    ----------
    name : str
        Task name, e.g. ``"lens-finding"``; ``astrozoo.load(name)`` gives its default model.
    columns : tuple of str
        Output columns every model of the task must return from ``predict`` (extra ones are
        welcome). ``"{label}"`` in a name expands to each of the model's class labels, e.g.
        ``"p_{label}"``.
    pipeline_tag : str
        Hugging Face pipeline tag of the model cards.
    key_metrics : tuple of str
        Metrics that summaries show, most important first (``astrozoo list`` shows the first).
    evaluator : str, optional
        ``"module:function"`` computing the task's metrics from truth and predictions; see
        `Task.evaluate`.
    description : str
        One line.
    """

    name: str
    columns: tuple[str, ...]
    pipeline_tag: str
    key_metrics: tuple[str, ...] = ()
    evaluator: str | None = None
    description: str = ""

    def output_columns(self, labels=()) -> tuple[str, ...]:
        """The required columns, with ``{label}`` expanded over `labels`."""
        out = []
        for c in self.columns:
            out += [c.format(label=lab) for lab in labels] if "{label}" in c else [c]
        return tuple(out)

    def check_outputs(self, columns: Mapping, labels=(), what: str = "") -> None:
        """Raise `OutputContractError` unless `columns` holds every required column with one
        row per object."""
        required = self.output_columns(labels)
        missing = [c for c in required if c not in columns]
        if missing:
            raise OutputContractError(
                f"{what or self.name}: postprocess returned columns {sorted(columns)}, missing "
                f"{missing} that task {self.name!r} requires ({list(required)})")
        lengths = {c: len(columns[c]) for c in required}
        if len(set(lengths.values())) > 1:
            raise OutputContractError(f"{what or self.name}: output columns have different "
                                      f"lengths {lengths}")

    def evaluate(self, *args, **kwargs) -> dict:
        """Run the task's evaluator (metrics dict); arguments are the evaluator's."""
        if self.evaluator is None:
            raise NotImplementedError(f"task {self.name!r} has no evaluator")
        return _resolve(self.evaluator)(*args, **kwargs)


def register_task(task: Task) -> Task:
    """Add a `Task`; its name must be new."""
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered `Task` called `name`."""
    _ensure_loaded()
    try:
        return _TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; registered tasks: {sorted(_TASKS)}") from None


def list_tasks() -> list[str]:
    """Tasks that have at least one registered model, sorted."""
    _ensure_loaded()
    return sorted({e.task for e in _REGISTRY.values()})


# -- architectures ----------------------------------------------------------------------------
def register_architecture(key: str, target: str | type, *, task: str | None,
                          transformers_model_type: str | None = None) -> None:
    """Allow ``config.json`` files to name `key`, built by `target` (a ZooModel subclass or
    ``"module:Class"``, imported on first use). ``task=None``: an architecture that serves any
    task (fine-tuned heads on a zoo backbone, `astrozoo.transfer`).
    ``transformers_model_type``: directories in transformers' layout whose ``config.json`` has
    this ``model_type`` are read by the class's ``from_transformers``."""
    if key in _ARCHITECTURES:
        raise ValueError(f"architecture {key!r} is already registered")
    if task is not None and task not in _TASKS:
        raise ValueError(f"architecture {key!r}: register task {task!r} first")
    _ARCHITECTURES[key] = (task, target)
    if transformers_model_type is not None:
        _TRANSFORMERS_TYPES[transformers_model_type] = key


def transformers_architecture(model_type: str) -> type:
    """The class reading transformers directories of `model_type` (`register_architecture`)."""
    _ensure_loaded()
    if model_type not in _TRANSFORMERS_TYPES:
        raise ValueError(f"transformers model_type {model_type!r} has no astrozoo architecture; "
                         f"supported: {sorted(_TRANSFORMERS_TYPES)}")
    return get_architecture(_TRANSFORMERS_TYPES[model_type])


def get_architecture(key: str) -> type:
    """The class registered as `key`."""
    _ensure_loaded()
    try:
        _, target = _ARCHITECTURES[key]
    except KeyError:
        raise ValueError(f"unknown architecture {key!r}; registered: "
                         f"{sorted(_ARCHITECTURES)}") from None
    return _resolve(target) if isinstance(target, str) else target


def list_architectures(task: str | None = None) -> list[str]:
    """Architecture keys serving `task` (including those that serve any task); [] for a task
    that is not registered."""
    _ensure_loaded()
    if task is not None and task not in _TASKS:
        return []
    return sorted(k for k, (t, _) in _ARCHITECTURES.items() if task is None or t in (task, None))


def _resolve(target: str) -> Callable:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


# -- pretrained models ----------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsSource:
    """Where a model's files come from, tried in order: a local directory, then the Hub.

    Parameters
    ----------
    bundled : str or None
        Directory name under `BUNDLED_ROOT` (shipped in the package), or an absolute path of a
        directory in Hub layout (a plug-in's own weights), holding ``config.json``,
        ``model.safetensors`` and ``README.md``.
    hub_repo : str or None
        Hugging Face Hub repository id (``org/name``).
    revision : str
        Hub revision (branch, tag or commit); pin a commit for reproducibility.
    format : {"astrozoo", "transformers"}
        Layout of the files: astrozoo's Hub layout, or an upstream transformers repository
        (its ``config.json`` is transformers'; the entry's ``template`` gives astrozoo's, and
        the architecture's ``from_transformers`` reads it; see ``astrozoo/tasks/features/
        dinov2.py``).
    """

    bundled: str | None = None
    hub_repo: str | None = None
    revision: str = "main"
    format: str = "astrozoo"

    def __post_init__(self):
        if self.format not in ("astrozoo", "transformers"):
            raise ValueError(f"WeightsSource.format must be 'astrozoo' or 'transformers', "
                             f"not {self.format!r}")

    @property
    def files(self) -> tuple[str, ...]:
        """The files a model of this layout needs."""
        from .hub import CONFIG_NAME, MODEL_FILES, WEIGHTS_NAME

        return MODEL_FILES if self.format == "astrozoo" else (CONFIG_NAME, WEIGHTS_NAME)

    @property
    def bundled_dir(self) -> Path | None:
        # an absolute path replaces BUNDLED_ROOT in the join
        return BUNDLED_ROOT / self.bundled if self.bundled else None

    def describe(self) -> str:
        d = self.bundled_dir
        if d is not None and (d / "model.safetensors").is_file():
            return "bundled" if d.parent == BUNDLED_ROOT else f"local:{d}"
        return f"hub:{self.hub_repo}@{self.revision}" if self.hub_repo else "missing"


@dataclass(frozen=True)
class ModelEntry:
    """A registered pretrained model.

    Parameters
    ----------
    name : str
        Registry name, passed to `astrozoo.load`.
    task : str
        Task the model serves (registered).
    weights : WeightsSource
        Where the files are.
    sha256 : str
        Expected sha256 of ``model.safetensors``; loading refuses any other file.
    summary : str
        One line for ``astrozoo list``.
    template : ModelConfig, optional
        Astrozoo's config of a ``format="transformers"`` entry (bands, preprocessing, task);
        the network's own config comes from the repository when the model is loaded.
    """

    name: str
    task: str
    weights: WeightsSource
    sha256: str
    summary: str = ""
    template: ModelConfig | None = None

    def __post_init__(self):
        if not self.weights.bundled and not self.weights.hub_repo:
            raise ValueError(f"{self.name}: a model needs bundled weights or a Hub repository")
        if (self.weights.format == "transformers") != (self.template is not None):
            raise ValueError(f"{self.name}: a template config is given exactly for "
                             "format='transformers' weights")

    @cached_property
    def config(self) -> ModelConfig:
        """The model's config (architecture, input spec, metrics), read without torch (for a
        transformers-format entry: its template, without downloading anything)."""
        if self.template is not None:
            return self.template
        from .hub import CONFIG_NAME, resolve_files

        return ModelConfig.from_json(resolve_files(self, (CONFIG_NAME,)) / CONFIG_NAME)


def register_model(entry: ModelEntry, *, default: bool = False) -> ModelEntry:
    """Add `entry`; ``default=True`` makes it the model ``load(task)`` returns."""
    if entry.task not in _TASKS:
        raise ValueError(f"{entry.name}: unknown task {entry.task!r}; register the task first")
    if entry.name in _REGISTRY or entry.name in _TASKS:
        raise ValueError(f"model name {entry.name!r} is already taken")
    _REGISTRY[entry.name] = entry
    if default:
        if entry.task in _DEFAULTS:
            raise ValueError(f"task {entry.task!r} already has default {_DEFAULTS[entry.task]!r}")
        _DEFAULTS[entry.task] = entry.name
    return entry


def unregister(name: str) -> None:
    """Remove a model, or a task with its architectures and models (plug-ins under test)."""
    if name in _TASKS:
        for m in [m for m, e in _REGISTRY.items() if e.task == name]:
            unregister(m)
        for k in [k for k, (t, _) in _ARCHITECTURES.items() if t == name]:
            del _ARCHITECTURES[k]
        del _TASKS[name]
        return
    entry = _REGISTRY.pop(name)
    if _DEFAULTS.get(entry.task) == name:
        del _DEFAULTS[entry.task]


def _ensure_loaded() -> None:
    """Import every task package: the subpackages of `astrozoo.tasks`, then entry points."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import tasks

    for info in sorted(pkgutil.iter_modules(tasks.__path__), key=lambda i: i.name):
        if info.ispkg:
            importlib.import_module(f"{tasks.__name__}.{info.name}")
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally for one task, sorted."""
    _ensure_loaded()
    if task is not None and task not in _TASKS:
        raise ValueError(f"unknown task {task!r}; registered tasks: {sorted(_TASKS)}")
    return sorted(n for n, e in _REGISTRY.items() if task is None or e.task == task)


def default_model(task: str) -> str:
    """Name of the model `astrozoo.load(task)` returns."""
    _ensure_loaded()
    try:
        return _DEFAULTS[task]
    except KeyError:
        raise KeyError(f"no model is registered for task {task!r}; tasks with models: "
                       f"{list_tasks()}") from None


def get_entry(name: str) -> ModelEntry:
    """The entry for a model name, or for a task name (its default model)."""
    _ensure_loaded()
    if name in _DEFAULTS:
        name = _DEFAULTS[name]
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model or task {name!r}; models: {list_models()}, "
                       f"tasks: {list_tasks()}") from None


def is_registered(name: str) -> bool:
    """Whether `name` is a registered model or a task with a default model."""
    _ensure_loaded()
    return name in _REGISTRY or name in _DEFAULTS
