"""`fit`: the one training loop of astrozoo, used by every recipe and by fine-tuning.

Device placement, mixed precision and multi-process (DDP) runs are Hugging Face Accelerate's:
it is already in the Hugging Face stack the zoo uses for the Hub, has no trainer abstraction to
fight (the loop below stays a plain PyTorch loop) and runs unchanged on CPU, one GPU or
``accelerate launch`` across several. The schedule is timm's `CosineLRScheduler` (linear warm-up,
then cosine, stepped per optimiser update); the augmentation is the dihedral group shared with
test-time augmentation; the model's own ``preprocess`` is the only normalisation, as in
inference. The best epoch (by a validation metric) is written with ``save_pretrained``; each
epoch's full state goes to a safetensors checkpoint, so an interrupted run resumes exactly
(no pickles: see `astrozoo.training.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..inference.tta import random_dihedral
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["TrainConfig", "FitResult", "fit", "as_dataset", "run_batches", "set_train_mode",
           "round_to_storage"]


@dataclass
class TrainConfig:
    """Hyper-parameters of `fit` (recorded in the trained model's ``config.json``).

    Parameters
    ----------
    epochs, batch_size, lr, weight_decay
        The usual; AdamW, no weight decay on biases and normalisation weights (timm's
        ``param_groups_weight_decay``).
    warmup_steps : int, optional
        Linear warm-up steps (default: a tenth of the run, at most 300).
    max_steps : int, optional
        Stop after this many optimiser steps in total (smoke tests, budgets).
    augment : "dihedral", None or callable
        ``"dihedral"``: each image under a random flip/quarter turn (with dense targets moved
        the same way). A callable ``f(x, y, generator) -> (x, y)`` for anything else. Applied to
        the raw inputs, before ``model.preprocess``.
    monitor : str
        Validation quantity that picks the best epoch: ``"loss"`` or a key of ``metric``'s
        result. mode : {"min", "max"}, default "min" for loss and "max" otherwise.
    patience : int, optional
        Stop after this many epochs without improvement of `monitor`.
    grad_clip : float, optional
        Clip the gradient norm.
    ema_decay : float, optional
        Keep an exponential moving average of the weights (timm's ``ModelEmaV3``, with its
        decay warm-up); validation, the best epoch and the saved weights are the average's.
    mixed_precision : {"auto", "no", "bf16", "fp16"}
        ``"auto"``: bf16 (else fp16) on CUDA, none on CPU.
    seed : int
        Seeds data order, augmentation and dropout.
    log_every : int
        Log the running loss every this many steps.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int | None = None
    max_steps: int | None = None
    augment: Any = "dihedral"
    monitor: str = "loss"
    mode: str | None = None
    patience: int | None = None
    grad_clip: float | None = None
    ema_decay: float | None = None
    mixed_precision: str = "auto"
    seed: int = 0
    log_every: int = 50

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if callable(self.augment):
            d["augment"] = getattr(self.augment, "__name__", "custom")
        return d


@dataclass
class FitResult:
    """What `fit` did: the best epoch's monitored value, every epoch's validation results, and
    the number of processes that trained."""

    best: float
    best_epoch: int
    steps: int
    epochs: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    processes: int = 1


def as_dataset(data) -> Dataset:
    """A Dataset from a Dataset or a tuple of arrays/tensors of equal length (e.g. ``(x, y)``)."""
    if isinstance(data, Dataset):
        return data
    return TensorDataset(*(torch.as_tensor(np.asarray(a)) if not torch.is_tensor(a) else a
                           for a in data))


def set_train_mode(model: nn.Module) -> None:
    """``model.train()``, except modules whose parameters are all frozen: they (and everything
    inside them) stay in eval mode, so BatchNorm running statistics do not drift and dropout in
    a frozen backbone does not perturb its features (frozen means frozen)."""
    model.train()
    for m in model.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            m.eval()


@torch.no_grad()
def round_to_storage(model: nn.Module, dtype: torch.dtype = torch.float16) -> nn.Module:
    """Round `model`'s floating-point weights and buffers to `dtype` and back, in place, so
    that what is calibrated or tuned after training is exactly what ``save_pretrained(...,
    dtype=dtype)`` will store."""
    for v in model.state_dict().values():
        if v.is_floating_point():
            v.copy_(v.to(dtype).to(v.dtype))
    return model


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def _preprocess(model: nn.Module) -> Callable:
    return getattr(model, "preprocess", None) or (lambda x: x)


def run_batches(model: nn.Module, data, *, batch_size: int = 512, device=None) -> tuple:
    """Raw outputs of ``model(model.preprocess(x))`` over a dataset of ``(x, y)`` pairs, in
    order, with the targets: ``(outputs, targets)`` as CPU tensors. Eval mode, no gradients."""
    ds = as_dataset(data)
    device = device or next(model.parameters()).device
    pre = _preprocess(model)
    model.eval()
    outs, ys = [], []
    with torch.inference_mode():
        for x, y in DataLoader(ds, batch_size=batch_size, shuffle=False):
            outs.append(model(pre(x.to(device).float())).float().cpu())
            ys.append(y)
    return torch.cat(outs), torch.cat(ys)


def _augment(fn, x, y, g):
    if fn is None:
        return x, y
    if fn == "dihedral":
        dense = y.ndim >= 3 and tuple(y.shape[-2:]) == tuple(x.shape[-2:])
        if dense:
            return random_dihedral(x, g, target=y)
        return random_dihedral(x, g), y
    if callable(fn):
        return fn(x, y, g)
    raise ValueError(f"augment must be 'dihedral', None or a callable, not {fn!r}")


def _param_groups(model: nn.Module, param_groups, weight_decay: float) -> list[dict]:
    """Trainable parameters in AdamW groups. `param_groups`: list of ``{"params": [...],
    "lr_scale": s}``; default all trainable parameters at scale 1."""
    from timm.optim import param_groups_weight_decay

    if param_groups is None:
        groups = param_groups_weight_decay(model, weight_decay)
        return [g for g in groups if g["params"]]
    out = []
    for g in param_groups:
        scale = g.get("lr_scale", 1.0)
        params = [p for p in g["params"] if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        out += [{"params": decay, "weight_decay": weight_decay, "lr_scale": scale},
                {"params": no_decay, "weight_decay": 0.0, "lr_scale": scale}]
    return [g for g in out if g["params"]]


def fit(model: nn.Module, train, val=None, *, loss: Callable, config: TrainConfig | None = None,
        metric: Callable | None = None, param_groups=None, out: str | Path | None = None,
        save_dtype: torch.dtype | None = None, checkpoint_dir: str | Path | None = None,
        progress: bool = True, log: Callable[[str], None] = print) -> FitResult:
    """Train `model` in place; on return it holds the best epoch's weights, in eval mode.

    Parameters
    ----------
    model : nn.Module
        Usually a `~astrozoo.modeling.ZooModel`; its ``preprocess`` (if any) turns raw inputs
        into network inputs. Parameters with ``requires_grad=False`` are frozen (see
        `set_train_mode`).
    train, val : Dataset or tuple of arrays
        ``(x, y)`` pairs: raw inputs in the model's spec units, and targets.
    loss : callable
        ``loss(output, target) -> scalar tensor``.
    config : TrainConfig
    metric : callable, optional
        ``metric(outputs, targets) -> float or dict`` on the whole validation set (CPU
        tensors); its value (or the `TrainConfig.monitor` key) can select the best epoch.
    param_groups : list of dict, optional
        ``{"params": [...], "lr_scale": s}``: per-group learning-rate multipliers (e.g. a lower
        rate for a pretrained head).
    out : path, optional
        Write the best epoch here with ``save_pretrained`` (needs a ZooModel).
    save_dtype : torch.dtype, optional
        Storage dtype for `out` (e.g. float16).
    checkpoint_dir : path, optional
        Save the full training state here after each epoch, and resume from it if present.
    progress : bool
        tqdm bar per epoch.
    log : callable
        Receives progress lines.
    """
    from accelerate import Accelerator, DataLoaderConfiguration
    from timm.scheduler import CosineLRScheduler
    from tqdm.auto import tqdm

    cfg = config or TrainConfig()
    mode = cfg.mode or ("min" if cfg.monitor == "loss" else "max")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    if val is None and cfg.monitor != "loss":
        raise ValueError(f"monitor={cfg.monitor!r} needs a validation set")

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_ds = as_dataset(train)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=gen)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_ds)} training samples are fewer than one batch "
                         f"({cfg.batch_size})")
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, min(300, total // 10))
    warmup = min(warmup, max(total - 1, 0))

    groups = _param_groups(model, param_groups, cfg.weight_decay)
    for g in groups:
        g["lr"] = cfg.lr * g.pop("lr_scale", 1.0)
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = CosineLRScheduler(opt, t_initial=max(1, total - warmup), lr_min=0.0,
                              warmup_t=warmup, warmup_lr_init=cfg.lr * 1e-3, warmup_prefix=True,
                              t_in_epochs=False)

    # split_batches: under N processes each takes 1/N of every batch, so the global batch, the
    # number of steps and the schedule are those of one process (same hyper-parameters, same
    # result up to BatchNorm statistics per shard). Data order is seeded by `gen`.
    # Several processes (torchrun / accelerate launch) without CUDA: DDP over gloo on the CPU.
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    acc = Accelerator(mixed_precision=_mixed_precision(cfg.mixed_precision), rng_types=[],
                      cpu=multi_cpu, dataloader_config=DataLoaderConfiguration(split_batches=True))
    if cfg.batch_size % acc.num_processes:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the "
                         f"{acc.num_processes} processes")
    model, opt, loader = acc.prepare(model, opt, loader)
    pre = _preprocess(acc.unwrap_model(model))
    ema = None
    if cfg.ema_decay:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(acc.unwrap_model(model), decay=cfg.ema_decay, use_warmup=True)

    state = {"epoch": 0, "step": 0, "best": math.inf if mode == "min" else -math.inf,
             "best_epoch": -1, "history": []}
    best_state = None
    if checkpoint_dir is not None and (Path(checkpoint_dir) / "last.json").is_file():
        state, best_state = load_checkpoint(checkpoint_dir, acc.unwrap_model(model), opt, gen,
                                            ema=ema and ema.module)
        log(f"resumed from {checkpoint_dir} at epoch {state['epoch']} (step {state['step']})")
    sched.step_update(state["step"])

    t0 = time.time()
    step, stale = state["step"], 0
    for epoch in range(state["epoch"], cfg.epochs):
        if step >= total:
            break
        set_train_mode(model)
        running, n_run = 0.0, 0
        bar = tqdm(loader, total=min(steps_per_epoch, total - step), disable=not progress,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
        for x, y in bar:
            x, y = _augment(cfg.augment, x, y, gen)
            with torch.no_grad():
                x = pre(x.float())
            with acc.autocast():
                loss_value = loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            acc.backward(loss_value)
            if cfg.grad_clip:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            if ema is not None:
                ema.update(acc.unwrap_model(model), step=step)
            sched.step_update(step)
            running += loss_value.item()
            n_run += 1
            if step % cfg.log_every == 0:
                log(f"epoch {epoch + 1} step {step}/{total} loss {running / n_run:.4f} "
                    f"{step * cfg.batch_size / max(time.time() - t0, 1e-9):.0f} samples/s")
            if step >= total:
                break
        bar.close()
        record = {"epoch": epoch + 1, "step": step, "train_loss": running / max(n_run, 1)}
        evaluated = ema.module if ema is not None else acc.unwrap_model(model)
        if val is not None:
            outputs, targets = run_batches(evaluated, val,
                                           batch_size=max(cfg.batch_size, 256), device=acc.device)
            record["loss"] = float(loss(outputs.to(acc.device), targets.to(acc.device)))
            if metric is not None:
                m = metric(outputs, targets)
                record.update(m if isinstance(m, dict) else {"metric": float(m)})
        if cfg.monitor not in record and val is not None:
            raise KeyError(f"monitor {cfg.monitor!r} is not among the validation results "
                           f"{sorted(record)}")
        value = record.get(cfg.monitor, record["train_loss"])
        log(f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(
            f"{k} {v:.5g}" for k, v in record.items() if k not in ("epoch", "step"))
            + f" ({time.time() - t0:.0f} s)")
        state["history"].append(record)
        if better(value, state["best"]):
            state["best"], state["best_epoch"], stale = float(value), epoch + 1, 0
            best_state = {k: v.detach().clone().cpu() for k, v in evaluated.state_dict().items()}
            if out is not None and acc.is_main_process:
                evaluated.save_pretrained(out, dtype=save_dtype)
        else:
            stale += 1
        state["epoch"], state["step"] = epoch + 1, step
        if checkpoint_dir is not None and acc.is_main_process:
            save_checkpoint(checkpoint_dir, acc.unwrap_model(model), opt, gen, state, best_state,
                            ema=ema and ema.module)
        if cfg.patience is not None and stale >= cfg.patience:
            log(f"early stop: no improvement of {cfg.monitor} for {stale} epochs")
            break

    processes = acc.num_processes
    model = acc.unwrap_model(model)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(best=state["best"], best_epoch=state["best_epoch"], steps=step,
                     epochs=state["epoch"], seconds=time.time() - t0, history=state["history"],
                     processes=processes)
