"""The model registry: which pretrained models exist, for which task, and where their weights are.

In the spirit of timm's pretrained configs and torchvision's ``Weights`` enums, each model is a
registered `ModelEntry`. Task packages (``astrozoo/tasks/<task>/__init__.py``) register their
entries at import; those modules are torch-free so that listing the zoo stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

from .config import TASKS, ModelConfig

__all__ = ["WeightsSource", "ModelEntry", "register_model", "list_tasks", "list_models",
           "get_entry", "default_model", "BUNDLED_ROOT"]

#: Where bundled model directories (Hub layout) live inside the installed package.
BUNDLED_ROOT = Path(str(resources.files("astrozoo") / "weights"))

# Task packages whose import registers entries. Only tasks with a real, trained model are here.
_TASK_MODULES = ("astrozoo.tasks.lens_finding", "astrozoo.tasks.photoz")

_REGISTRY: dict[str, "ModelEntry"] = {}
_DEFAULTS: dict[str, str] = {}
_loaded = False


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's files come from, tried in order: bundled directory, then the Hub.

    Parameters
    ----------
    bundled : str or None
        Directory name under `BUNDLED_ROOT` holding ``config.json``, ``model.safetensors``
        and ``README.md``.
    hub_repo : str or None
        Hugging Face Hub repository id (``org/name``).
    revision : str
        Hub revision (branch, tag or commit); pin a commit for reproducibility.
    """

    bundled: str | None = None
    hub_repo: str | None = None
    revision: str = "main"

    @property
    def bundled_dir(self) -> Path | None:
        return BUNDLED_ROOT / self.bundled if self.bundled else None

    def describe(self) -> str:
        if self.bundled and (BUNDLED_ROOT / self.bundled / "model.safetensors").is_file():
            return "bundled"
        return f"hub:{self.hub_repo}@{self.revision}" if self.hub_repo else "missing"


@dataclass(frozen=True)
class ModelEntry:
    """A registered pretrained model.

    Parameters
    ----------
    name : str
        Registry name, passed to `astrozoo.load`.
    task : str
        Task the model serves.
    weights : WeightsSource
        Where the files are.
    sha256 : str
        Expected sha256 of ``model.safetensors``; loading refuses any other file.
    summary : str
        One line for ``astrozoo list``.
    """

    name: str
    task: str
    weights: WeightsSource
    sha256: str
    summary: str = ""

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: unknown task {self.task!r}")
        if not self.weights.bundled and not self.weights.hub_repo:
            raise ValueError(f"{self.name}: a model needs bundled weights or a Hub repository")

    @cached_property
    def config(self) -> ModelConfig:
        """The model's config (architecture, input spec, metrics), read without torch."""
        from .hub import CONFIG_NAME, resolve_files

        return ModelConfig.from_json(resolve_files(self, (CONFIG_NAME,)) / CONFIG_NAME)


def register_model(entry: ModelEntry, *, default: bool = False) -> ModelEntry:
    """Add `entry` to the registry; ``default=True`` makes it the model ``load(task)`` returns."""
    if entry.name in _REGISTRY or entry.name in TASKS:
        raise ValueError(f"model name {entry.name!r} is already taken")
    _REGISTRY[entry.name] = entry
    if default:
        if entry.task in _DEFAULTS:
            raise ValueError(f"task {entry.task!r} already has default {_DEFAULTS[entry.task]!r}")
        _DEFAULTS[entry.task] = entry.name
    return entry


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in _TASK_MODULES:
            importlib.import_module(mod)


def list_tasks() -> list[str]:
    """Tasks that have at least one registered model, sorted."""
    _ensure_loaded()
    return sorted({e.task for e in _REGISTRY.values()})


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally for one task, sorted."""
    _ensure_loaded()
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
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


def _unregister(name: str) -> None:
    """Remove an entry (used by tests that register temporary Hub models)."""
    entry = _REGISTRY.pop(name)
    if _DEFAULTS.get(entry.task) == name:
        del _DEFAULTS[entry.task]
