"""Band adaptation: a model trained on one survey's bands, made to read another's.

The input channels are matched by band name; a band the parent model never saw starts from the
first-layer weights of the parent band nearest in wavelength (pivot wavelengths of the survey
presets, `astrozoo.surveys.band_wavelength`), and a parent band the new survey lacks hands its
weights to the new band nearest to it. timm's ``adapt_input_conv`` cannot do this: it only
repeats or sums RGB weights, knows nothing of band names or wavelengths, and does not keep the
response of the network (timm#2445), hence this module.
"""

from __future__ import annotations

import dataclasses

import torch

from ..config import InputSpec
from ..surveys import band_wavelength, get_survey

__all__ = ["band_mapping", "adapt_input_weight", "adapt_spec", "adapt_state_dict"]


def _nearest(wavelength: float, candidates: dict[str, float]) -> str:
    return min(candidates, key=lambda b: abs(candidates[b] - wavelength))


def band_mapping(parent_bands, bands, *, parent_survey: str | None = None,
                 survey: str | None = None) -> dict[str, list[str]]:
    """For each new band, the parent bands its first-layer weights start from.

    A band of the same name maps to itself. A new band maps to the parent band nearest in
    wavelength. A parent band that the new bands lack is added to the new band nearest to it,
    so that no learned filter is dropped.

    Parameters
    ----------
    parent_bands, bands : sequence of str
        The parent model's bands and the new ones, in channel order.
    parent_survey, survey : str, optional
        Survey presets whose pivot wavelengths to use (default: generic values per band name).

    Returns
    -------
    dict
        ``{band: [parent bands]}`` in the order of `bands`.

    Examples
    --------
    >>> band_mapping("gri", "griz")               # doctest: +SKIP
    {'g': ['g'], 'r': ['r'], 'i': ['i'], 'z': ['i']}
    """
    parent_bands, bands = tuple(parent_bands), tuple(bands)
    if not bands:
        raise ValueError("band_mapping needs at least one band")
    if len(set(bands)) != len(bands):
        raise ValueError(f"bands {list(bands)} name a band twice")
    wl_old = {b: band_wavelength(b, parent_survey) for b in parent_bands}
    wl_new = {b: band_wavelength(b, survey) for b in bands}
    mapping = {b: [b] if b in wl_old else [_nearest(wl_new[b], wl_old)] for b in bands}
    for k in parent_bands:
        if k not in wl_new:
            mapping[_nearest(wl_old[k], wl_new)].append(k)
    return mapping


def adapt_input_weight(weight: torch.Tensor, parent_bands, mapping: dict[str, list[str]]
                       ) -> torch.Tensor:
    """First-layer weight (O, C_parent, ...) -> (O, C_new, ...) following `mapping`.

    A parent band that seeds several new bands shares its weights equally among them, so the
    summed weights are unchanged: an object with the same image in every band gives the
    network the same first-layer response as before (tests/test_finetune.py checks this).
    """
    parent_bands = tuple(parent_bands)
    if weight.shape[1] != len(parent_bands):
        raise ValueError(f"weight has {weight.shape[1]} input channels, parent bands "
                         f"{list(parent_bands)}")
    uses = {k: sum(k in src for src in mapping.values()) for k in parent_bands}
    cols = [sum(weight[:, parent_bands.index(k)] / uses[k] for k in src)
            for src in mapping.values()]
    return torch.stack(cols, dim=1).contiguous()


def adapt_state_dict(parent_state: dict, target_state: dict, parent_bands,
                     mapping: dict[str, list[str]]) -> tuple[dict, list[str]]:
    """The parent's weights, with every tensor whose input-channel axis changed adapted.

    Returns the new state dict and the names of the adapted tensors. Any other shape mismatch
    is an error: only the input channels may differ between the parent and the adapted model.
    """
    out, adapted = {}, []
    n_old, n_new = len(tuple(parent_bands)), len(mapping)
    for k, v in parent_state.items():
        if k not in target_state:
            raise ValueError(f"parent weight {k!r} has no place in the adapted model")
        t = target_state[k]
        if v.shape != t.shape:
            if (v.ndim >= 2 and v.shape[1] == n_old and t.shape[1] == n_new
                    and v.shape[0] == t.shape[0] and v.shape[2:] == t.shape[2:]):
                v = adapt_input_weight(v, parent_bands, mapping)
                adapted.append(k)
            else:
                raise ValueError(f"{k}: parent shape {tuple(v.shape)} cannot be adapted to "
                                 f"{tuple(t.shape)}")
        out[k] = v
    return out, adapted


def adapt_spec(spec: InputSpec, *, bands=None, pixel_scale=None, size=None, survey=None,
               normalization_kwargs=None) -> InputSpec:
    """The parent's `InputSpec` for new bands / pixel scale / cutout size / survey.

    Per-band normalisation constants (a fixed ``sky_sigma`` per band) are taken from the new
    survey preset's noise model, or from `normalization_kwargs`; they are never carried over
    from other bands silently.
    """
    bands = tuple(bands or spec.bands)
    survey = survey or spec.survey
    mapping = ({} if bands == spec.bands else
               band_mapping(spec.bands, bands, parent_survey=spec.survey, survey=survey))
    norm = dict(spec.normalization_kwargs)
    if normalization_kwargs is not None:
        norm.update(normalization_kwargs)
    elif isinstance(norm.get("sky_sigma"), (list, tuple)) and (bands != spec.bands
                                                              or survey != spec.survey):
        preset = get_survey(survey)
        if not preset.noise:
            raise ValueError(
                f"the parent model normalises with a fixed sky_sigma per band; survey preset "
                f"{survey!r} has no noise model, so pass normalization_kwargs={{'sky_sigma': "
                f"[...]}} with your survey's per-pixel sky noise in {list(bands)} "
                f"({spec.flux_unit})")
        norm["sky_sigma"] = [float(s) for s in preset.sky_sigma(bands)]
    return dataclasses.replace(spec, bands=bands, survey=survey,
                               pixel_scale=pixel_scale or spec.pixel_scale,
                               size=size or spec.size, normalization_kwargs=norm,
                               band_mapping=mapping or dict(spec.band_mapping))
