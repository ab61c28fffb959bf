"""Astrozoo configs of Hub models in other layouts (torch-free: the registry builds its
templates from them at import)."""

from __future__ import annotations

__all__ = ["dinov2_config"]


def dinov2_config(name: str, *, hub_repo: str = "", bands=("g", "r", "i"), mode: str = "rgb",
                  image_size: int = 112, pixel_scale: float = 0.2, size: int = 64,
                  survey: str = "lsst", hf_config: dict | None = None):
    """Astrozoo `ModelConfig` of a DINOv2 encoder (torch-free; the registry's templates).

    Parameters
    ----------
    bands : sequence of str
        ``mode="rgb"``: the three bands shown as blue, green, red (blue to red, e.g. g, r, i),
        with the `lupton_rgb` stretch; ``mode="grey"``: any bands, averaged (`grey` preset).
    image_size : int
        Side the cutouts are resized to (bilinear, in float) before the network; a multiple
        of the 14-pixel patch.
    """
    from astrozoo.config import InputSpec, ModelConfig

    if mode not in ("rgb", "grey"):
        raise ValueError(f"mode must be 'rgb' or 'grey', not {mode!r}")
    if mode == "rgb" and len(bands) != 3:
        raise ValueError(f"mode='rgb' needs 3 bands (blue to red), got {list(bands)}")
    if image_size % 14:
        raise ValueError(f"image_size {image_size} is not a multiple of DINOv2's 14-pixel patch")
    norm = ("lupton_rgb", {"Q": 8.0, "stretch": 5.0}) if mode == "rgb" else ("grey", {})
    return ModelConfig(
        name=name, task="features", architecture="dinov2",
        arch_kwargs={"hf_config": dict(hf_config or {}), "image_size": image_size,
                     "hub_repo": hub_repo},
        input_spec=InputSpec(kind="image", survey=survey, bands=tuple(bands),
                             pixel_scale=pixel_scale, size=size, flux_unit="nJy",
                             normalization=norm[0], normalization_kwargs=norm[1]),
        outputs=("embedding",), license="Apache-2.0",
        card="")
