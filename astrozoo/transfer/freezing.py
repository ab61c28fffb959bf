"""Freezing and layer-wise learning rates for fine-tuning.

Frozen means ``requires_grad=False`` (no gradients are computed, the optimiser never sees the
parameter) and, through `astrozoo.training.set_train_mode`, eval mode for every fully frozen
module (BatchNorm running statistics stay, dropout is off). Blocks are numbered by timm's
``group_matcher`` of the backbone (`FineTunedModel.group_matcher`), the same numbering timm's
``param_groups_layer_decay`` uses for the learning rates, so there are no per-architecture
block lists here.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FREEZE_CHOICES", "layer_ids", "apply_freeze", "freeze_unused", "param_groups"]

FREEZE_CHOICES = ("none", "backbone")


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Parameter name -> layer id (0 = the stem, highest = the head), from the model's group
    matcher (timm's numbering)."""
    from timm.models import group_parameters

    return group_parameters(model, model.group_matcher(coarse=False), reverse=True)


def apply_freeze(model: nn.Module, freeze) -> list[str]:
    """Freeze part of a `~astrozoo.transfer.FineTunedModel` in place; returns frozen names.

    Parameters
    ----------
    freeze : {"none", "backbone"} or int
        ``"none"``: everything trains. ``"backbone"``: only the head trains (a linear probe
        when the features do not change). An int ``n``: the head and the last ``n`` blocks of
        the backbone (in timm's group-matcher numbering; layers the parent has between the
        backbone and its head count as one block) train, the rest is frozen.
    """
    if freeze == "none":
        return []
    if freeze == "backbone":
        n = 0
    elif isinstance(freeze, int) and not isinstance(freeze, bool) and freeze >= 0:
        n = freeze
    else:
        raise ValueError(f"freeze must be one of {FREEZE_CHOICES} or a number of blocks >= 0, "
                         f"not {freeze!r}")
    ids = layer_ids(model)
    # count only layers that still train (not the parent's unused, already frozen classifier)
    live = sorted({ids[k] for k, p in model.named_parameters() if p.requires_grad})
    keep = set(live[-(n + 1):])
    frozen = []
    for name, p in model.named_parameters():
        if p.requires_grad and ids[name] not in keep:
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def freeze_unused(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Freeze parameters that do not take part in ``model(example)`` (e.g. the parent's own
    classifier under a new head): they would get no gradient, and DDP refuses those."""
    was = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        model(example).float().sum().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for n, p in model.named_parameters():
        p.grad = None
        if n in unused:
            p.requires_grad_(False)
    model.train(was)
    return unused


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None):
    """AdamW parameter groups of the trainable parameters, with timm's layer-wise learning-rate
    decay (``lr_scale = layer_decay ** (top - layer)``), or None for one rate everywhere."""
    if layer_decay is None:
        return None
    from timm.optim import param_groups_layer_decay

    return param_groups_layer_decay(model, weight_decay=weight_decay, layer_decay=layer_decay)
