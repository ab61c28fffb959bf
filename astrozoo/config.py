"""Model configuration: what a model expects (`InputSpec`) and how to rebuild it (`ModelConfig`).

These dataclasses are the content of a model directory's ``config.json``. They are torch-free so
that listing the zoo (``astrozoo list``) never pays for importing torch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["InputSpec", "ModelConfig"]

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
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known - {"astrozoo_version"}
        if unknown:
            raise ValueError(f"config has unknown fields {sorted(unknown)} (written by a newer astrozoo?)")
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_json(self, path: str | Path) -> None:
        from . import __version__

        d = {**self.to_dict(), "astrozoo_version": __version__}
        Path(path).write_text(json.dumps(d, indent=2, sort_keys=False) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> "ModelConfig":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable astrozoo config.json ({e})") from e
        return cls.from_dict(d)
