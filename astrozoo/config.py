"""Model configuration: what a model expects (`InputSpec`) and how to rebuild it (`ModelConfig`).

These dataclasses are the content of a model directory's ``config.json``. They are torch-free so
that listing the zoo (``astrozoo list``) never pays for importing torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

__all__ = ["InputSpec", "ModelConfig", "check_config_values"]

# Bounds a config.json read from disk must respect, checked before any network is built, so that
# a corrupt or hostile config fails with a message instead of by exhausting memory or time.
#: Input channels: J-PAS has 56 filters, SPHEREx 102 spectral channels.
MAX_BANDS = 128
#: Cutout side in pixels: a whole 4k CCD; larger images go through the tiled paths (`segment`).
MAX_SIZE = 4096
#: Values of one object (bands x size^2): 256 MiB in float32, e.g. 4 bands of 4096^2.
MAX_INPUT_VALUES = 2**26
#: Arcsec per pixel: one degree, coarser than the pixels of any imaging survey.
MAX_PIXEL_SCALE = 3600.0
#: Any integer of arch_kwargs (widths, depths, sizes): above the widest layer of the backbones
#: the zoo wraps (DINOv2-giant's MLP, 6144).
MAX_ARCH_INT = 8192
#: Entries of one list or dict of arch_kwargs (stages, decoder levels; DINOv2-giant's
#: ``stage_names`` has 41), and their nesting depth (a fine-tuned model nests its parent's).
MAX_ARCH_ITEMS, MAX_ARCH_DEPTH = 256, 8
#: Size of a config.json: the zoo's are a few kB.
MAX_CONFIG_BYTES = 1 << 20
#: Keyword arguments through which timm or transformers would read another file or the network
#: (a checkpoint, a pretrained download, remote code): weights come from model.safetensors only.
LOADER_KEYS = frozenset({"checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir",
                         "transformers_weights", "trust_remote_code"})


def check_config_values(values, where: str, key: str = "arch_kwargs", depth: int = 0) -> None:
    """Raise `ConfigError` unless the nested `values` (``arch_kwargs``, a transformers config)
    stay within the bounds above and hold none of `LOADER_KEYS` (nor ``pretrained: true``).

    Parameters
    ----------
    values : dict, list or scalar
        As read from JSON.
    where : str
        The config file, for the message.
    key : str
        Dotted name of `values`, for the message.
    """
    def fail(why):
        raise ConfigError(f"{where}: {key} {why}")

    if depth > MAX_ARCH_DEPTH:
        fail(f"nests deeper than {MAX_ARCH_DEPTH} levels")
    if isinstance(values, (dict, list)) and len(values) > MAX_ARCH_ITEMS:
        fail(f"has {len(values)} entries (at most {MAX_ARCH_ITEMS})")
    if isinstance(values, dict):
        for k, v in values.items():
            if k in LOADER_KEYS or (k == "pretrained" and v is not False):
                raise ConfigError(f"{where}: {key}.{k}={v!r} is refused: it would make the model "
                                  "read weights other than the verified model.safetensors")
            check_config_values(v, where, f"{key}.{k}", depth + 1)
    elif isinstance(values, list):
        for i, v in enumerate(values):
            check_config_values(v, where, f"{key}[{i}]", depth + 1)
    elif isinstance(values, bool) or values is None or isinstance(values, str):
        return
    elif isinstance(values, int):
        if abs(values) > MAX_ARCH_INT:
            fail(f"= {values} is out of bounds (|value| <= {MAX_ARCH_INT})")
    elif isinstance(values, float):
        if not math.isfinite(values):
            fail(f"= {values} is not finite")
    else:
        fail(f"has a value of type {type(values).__name__}")

# Presets that divide out each object's flux scale (tests/test_io_normalize.py checks the claim).
_SCALE_FREE_PRESETS = ("robust", "percentile", "lupton_rgb", "grey")


@dataclass(frozen=True)
class InputSpec:
    """What a model was trained on, so the input pipeline can conform data to it.

    Parameters
    ----------
    kind : {"image", "catalog"}
        Image models take cutouts; catalogue models take an astropy Table of fluxes.
    survey : str
        Survey preset the training data mimics (`astrozoo.surveys`), e.g. ``"lsst"`` or
        ``"sdss"``.
    bands : tuple of str
        Band names in the order of the input channels (images) or flux columns (catalogues).
    pixel_scale : float or None
        Arcsec per pixel (images only).
    size : int or None
        Cutout side in pixels (images only).
    flux_unit : str
        Unit of the pixel values or fluxes the model expects, e.g. ``"nJy"`` or ``"nanomaggy"``.
    normalization : str
        Name of a preset in `astrozoo.preprocessing.normalize.PRESETS`.
    normalization_kwargs : dict
        Keyword arguments of that preset.
    band_mapping : dict
        For a model adapted from a parent trained on other bands (`astrozoo.transfer`):
        ``{band: [parent bands]}``, the parent bands each input band's first-layer weights were
        initialised from. Empty otherwise.
    """

    kind: str = "image"
    survey: str = "lsst"
    bands: tuple[str, ...] = ()
    pixel_scale: float | None = None
    size: int | None = None
    flux_unit: str = "nJy"
    normalization: str = "asinh"
    normalization_kwargs: dict[str, Any] = field(default_factory=dict)
    band_mapping: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("image", "catalog"):
            raise ValueError(f"InputSpec.kind must be 'image' or 'catalog', not {self.kind!r}")
        object.__setattr__(self, "bands", tuple(self.bands))
        if self.kind == "image" and (self.size is None or self.pixel_scale is None):
            raise ValueError("an image InputSpec needs size and pixel_scale")

    def check_limits(self, where: str) -> None:
        """Raise `ConfigError` unless the bands, cutout size and pixel scale are within the
        bounds of a loaded config (`MAX_BANDS`, `MAX_SIZE`, `MAX_INPUT_VALUES`,
        `MAX_PIXEL_SCALE`)."""
        b = self.bands
        if not 1 <= len(b) <= MAX_BANDS or not all(isinstance(x, str) and x for x in b):
            raise ConfigError(f"{where}: input_spec.bands must be 1 to {MAX_BANDS} band names, "
                              f"not {len(b)} ({list(b)[:8]}...)")
        if len(set(b)) != len(b):
            raise ConfigError(f"{where}: input_spec.bands {list(b)} names a band twice")
        if self.kind == "catalog":
            return
        s, px = self.size, self.pixel_scale
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_SIZE:
            raise ConfigError(f"{where}: input_spec.size must be an integer from 1 to {MAX_SIZE} "
                              f"pixels, not {s!r}")
        if len(b) * s * s > MAX_INPUT_VALUES:
            raise ConfigError(f"{where}: input_spec asks for {len(b)} bands of {s}x{s} pixels, "
                              f"more than {MAX_INPUT_VALUES} values per object")
        if (isinstance(px, bool) or not isinstance(px, (int, float))
                or not 0 < px <= MAX_PIXEL_SCALE):
            raise ConfigError(f"{where}: input_spec.pixel_scale must be in (0, {MAX_PIXEL_SCALE}] "
                              f"arcsec, not {px!r}")

    @property
    def scale_free(self) -> bool:
        """Whether the normalisation divides out the flux scale of each object and band, so that
        the model's output does not depend on the inputs' flux unit (then an uncalibrated input
        is not flagged). True for the ``robust``, ``percentile``, ``lupton_rgb`` and ``grey`` presets and for ``asinh``
        with its per-object noise estimate (no fixed ``sky_sigma``)."""
        if self.normalization in _SCALE_FREE_PRESETS:
            return True
        return self.normalization == "asinh" and self.normalization_kwargs.get("sky_sigma") is None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one object's input: (C, H, W) for images, (C,) for catalogues."""
        if self.kind == "image":
            return (len(self.bands), self.size, self.size)
        return (len(self.bands),)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model, written as ``config.json`` next to its weights.

    Parameters
    ----------
    name : str
        Model name, unique in the registry (e.g. ``"lens-resnet18-lsst"``).
    task : str
        A registered task (`astrozoo.registry.get_task`).
    architecture : str
        Key of a registered architecture (`astrozoo.registry.register_architecture`); only
        classes registered in code can be named (no remote code).
    arch_kwargs : dict
        Constructor arguments of that class (e.g. timm backbone name and head sizes).
    input_spec : InputSpec
        What the model expects.
    outputs : tuple of str
        Output columns of ``predict`` (at least those its task requires).
    labels : tuple of str
        Class names for classifiers.
    license : str
        SPDX identifier of the weights' licence.
    card : str
        Path of the model card source in the repository (``model_cards/<name>.md``).
    metrics : dict
        Metrics measured by the model's benchmark, ``{dataset: {metric: value}}``.
    training : dict
        Recipe provenance: command, seed, data description.
    weights_sha256 : str
        sha256 of ``model.safetensors``; `save_pretrained` fills it, loading verifies it.
    """

    name: str
    task: str
    architecture: str
    arch_kwargs: dict[str, Any]
    input_spec: InputSpec
    outputs: tuple[str, ...]
    labels: tuple[str, ...] = ()
    license: str = "MIT"
    card: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""

    def __post_init__(self):
        if isinstance(self.input_spec, dict):
            object.__setattr__(self, "input_spec", InputSpec(**self.input_spec))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "labels", tuple(self.labels))

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> "ModelConfig":
        """The config in `d` (a parsed ``config.json``), validated: known fields of the right
        types, sizes within the module's bounds (`InputSpec.check_limits`,
        `check_config_values`); `ConfigError` naming `where` otherwise."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: a config must be a JSON object, not {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known - {"astrozoo_version"}
        if unknown:
            raise ConfigError(f"{where}: config has unknown fields {sorted(unknown)} (written by "
                              "a newer astrozoo?)")
        types = {"name": str, "task": str, "architecture": str, "arch_kwargs": dict,
                 "input_spec": (dict, InputSpec), "outputs": (list, tuple),
                 "labels": (list, tuple), "metrics": dict, "training": dict,
                 "weights_sha256": str}
        for k, t in types.items():
            if k in d and not isinstance(d[k], t):
                raise ConfigError(f"{where}: {k} has the wrong type ({type(d[k]).__name__})")
        try:
            config = cls(**{k: v for k, v in d.items() if k in known})
        except (TypeError, ValueError) as e:  # missing fields, unknown input_spec keys
            raise ConfigError(f"{where}: not a valid astrozoo config ({e})") from e
        config.input_spec.check_limits(where)
        check_config_values(config.arch_kwargs, where)
        check_config_values(config.input_spec.normalization_kwargs, where,
                            "input_spec.normalization_kwargs")
        return config

    def to_json(self, path: str | Path) -> None:
        from . import __version__

        d = {**self.to_dict(), "astrozoo_version": __version__}
        Path(path).write_text(json.dumps(d, indent=2, sort_keys=False) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> "ModelConfig":
        """Read and validate a ``config.json`` (`from_dict`); `ConfigError` names the file."""
        from .hub import read_config_json

        return cls.from_dict(read_config_json(path), where=str(path))
