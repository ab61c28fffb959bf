"""Test-time augmentation over the dihedral group D4: the 8 flips and quarter turns of a square
cutout. Galaxies and lenses have no preferred orientation on the sky, so averaging a model's
output over D4 removes the orientation dependence it learned by accident, and the spread over the
8 copies measures it.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["N_DIHEDRAL", "dihedral", "inverse_dihedral", "random_dihedral", "tta_outputs"]

N_DIHEDRAL = 8


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element `k` (0-7) of D4 applied to the last two axes: ``k % 4`` quarter turns, after a
    left-right flip when ``k >= 4``. ``k = 0`` is the identity."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def inverse_dihedral(y: torch.Tensor, k: int) -> torch.Tensor:
    """Undo `dihedral` (``inverse_dihedral(dihedral(x, k), k) == x``)."""
    y = torch.rot90(y, -(k % 4), dims=(-2, -1))
    return y.flip(-1) if k >= 4 else y


def random_dihedral(x: torch.Tensor, generator: torch.Generator | None = None,
                    target: torch.Tensor | None = None):
    """Each sample of `x` (B, ..., H, W) under its own random element of D4: the training
    augmentation that matches `tta_outputs`.

    A dense `target` (B, ..., H, W), e.g. a segmentation map, gets the same transform per
    sample; then ``(x, target)`` is returned.
    """
    k = torch.randint(N_DIHEDRAL, (x.shape[0],), generator=generator, device="cpu")
    out = torch.empty_like(x)
    tout = None if target is None else torch.empty_like(target)
    for e in range(N_DIHEDRAL):
        idx = torch.nonzero(k == e).squeeze(1).to(x.device)
        if len(idx):
            out[idx] = dihedral(x[idx], e)
            if target is not None:
                tout[idx] = dihedral(target[idx], e)
    return out if target is None else (out, tout)


def tta_outputs(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Raw outputs of `forward` on the 8 transformed copies of `x` (B, C, H, W), as (8, B, ...).

    Dense outputs, whose last two axes are the input's (H, W) (e.g. segmentation logits), are
    mapped back to the input orientation so that the copies can be combined pixel by pixel.
    """
    outs = []
    for k in range(N_DIHEDRAL):
        y = forward(dihedral(x, k))
        if y.ndim >= 3 and tuple(y.shape[-2:]) == tuple(x.shape[-2:]):
            y = inverse_dihedral(y, k)
        outs.append(y)
    return torch.stack(outs)
