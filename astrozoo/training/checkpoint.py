"""Resumable training state in safetensors + JSON (never a pickle).

``last.safetensors`` holds the model's state, the optimiser's tensors (flattened as
``optim.<param index>.<name>``), the weight average's state (``ema.``, when one is kept) and the
RNG states; ``last.json`` the epoch, step, best value,
history and the optimiser's non-tensor settings; ``best.safetensors`` the best epoch's model
state. `torch.save` would be one line, but loading it unpickles; a resumed run must be as safe
as loading published weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint intact


def save_checkpoint(directory, model, opt, gen: torch.Generator, state: dict,
                    best_state: dict | None, ema=None) -> None:
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous()
                        for k, v in ema.state_dict().items()})
    osd = opt.state_dict()
    extra = {}
    for idx, s in osd["state"].items():
        for name, v in s.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{name}"] = v.detach().cpu().contiguous()
            else:
                extra[f"{idx}.{name}"] = v
    tensors["rng.generator"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {**state, "optim_param_groups": osd["param_groups"], "optim_scalars": extra}
    # best first: a crash between the two files must not pair a new "last" with an old "best"
    if best_state is not None:
        _atomic(d / "best.safetensors",
                lambda p: save_file({k: v.contiguous() for k, v in best_state.items()}, p))
    _atomic(d / "last.safetensors", lambda p: save_file(tensors, p))
    _atomic(d / "last.json", lambda p: p.write_text(json.dumps(meta, indent=1)))


def load_checkpoint(directory, model, opt, gen: torch.Generator,
                    ema=None) -> tuple[dict, dict | None]:
    """Restore model, optimiser, RNGs and the weight average `ema` (a module, if one is kept)
    in place; returns ``(state, best_state)``."""
    from safetensors.torch import load_file

    from ..hub import safetensors_header

    d = Path(directory)
    meta = json.loads((d / "last.json").read_text())
    for name in ("last.safetensors", "best.safetensors"):
        if (d / name).is_file():  # a truncated file: IntegrityError naming it, not a raw error
            safetensors_header(d / name, str(d))
    tensors = load_file(d / "last.safetensors")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema is not None:
        if not any(k.startswith("ema.") for k in tensors):
            raise ValueError(f"{d / 'last.safetensors'} holds no weight average; it was saved by a "
                             f"run without ema_decay")
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    opt_state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = v
    for k, v in meta.pop("optim_scalars").items():
        idx, name = k.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = v
    groups = meta.pop("optim_param_groups")
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": opt_state, "param_groups": groups})
    gen.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    best = load_file(d / "best.safetensors") if (d / "best.safetensors").is_file() else None
    return meta, best
