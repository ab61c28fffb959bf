"""`finetune`, `adapt`, `linear_probe`, `knn_probe` and `pseudo_label`: transfer a zoo model to
your survey and labels.

The data flow is the zoo's: your cutouts -> `astrozoo.io` (conformed to the adapted spec) ->
the parent's ``preprocess`` and ``forward_features`` -> a new head, trained by the shared loop
`astrozoo.training.fit` (dihedral augmentation, AdamW with timm's layer-wise decay, warm-up +
cosine, early stopping on the validation metric, Accelerate for devices, mixed precision and
multi-process runs). The result is a `FineTunedModel`: ``predict``, ``save_pretrained``,
``push_to_hub`` and ``astrozoo.load`` work on it as on any zoo model.
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import torch

from ..config import ModelConfig
from ..modeling import ZooModel
from .bands import adapt_spec, adapt_state_dict
from .data import encode_labels, read_labelled
from .freezing import apply_freeze, freeze_unused, param_groups
from .heads import HEADS, head_loss, head_metric, head_output_names
from .model import FineTunedModel

__all__ = ["adapt", "finetune", "linear_probe", "knn_probe", "pseudo_label", "DEFAULT_HEADS"]

#: The head a task's models are fine-tuned with when none is named.
DEFAULT_HEADS = {"lens-finding": "binary", "morphology": "classes", "photo-z": "mdn",
                 "classification": "classes", "regression": "regression"}
#: The generic task of each head (when the parent's task does not fit the new head).
_GENERIC_TASK = {"binary": "classification", "classes": "classification",
                 "regression": "regression", "mdn": "photo-z"}
_MIN_STEPS = 300  # default training length: small sets need many passes


def _as_model(model) -> ZooModel:
    if isinstance(model, ZooModel):
        return model
    from ..modeling import load

    return load(model)


def _parent_kind(parent: ZooModel) -> str | None:
    return getattr(parent, "head_kind", None) or DEFAULT_HEADS.get(parent.task)


def _default_head(parent: ZooModel) -> str:
    kind = _parent_kind(parent)
    if kind is None:
        raise ValueError(f"{parent.name}: name a head ({HEADS}) to fine-tune a "
                         f"{parent.task!r} model")
    return kind


def _choose_task(parent: ZooModel, kind: str, labels) -> str:
    """The parent's task when the new head is of the parent's kind and yields all the task's
    columns, else the head's generic task (a lens finder stays a lens finder; a 3-class head on
    it is a classifier)."""
    from ..registry import get_task

    produced = set(head_output_names(kind, labels))
    same_kind = kind == _parent_kind(parent)
    for name in ((parent.task,) if same_kind else ()) + (_GENERIC_TASK[kind],):
        if set(get_task(name).output_columns(labels)) <= produced:
            return name
    raise ValueError(f"no task takes the outputs of a {kind!r} head")  # pragma: no cover


def adapt(model, *, head: str | None = None, labels=None, bands=None, pixel_scale=None,
          size=None, survey=None, normalization_kwargs=None, n_components: int | None = None,
          dropout: float = 0.0, name: str | None = None) -> FineTunedModel:
    """A fine-tunable copy of `model` for your bands and survey, with a head for your labels.

    The backbone's weights are the parent's; input channels are matched by band name, and new
    bands start from the parent band nearest in wavelength (`astrozoo.transfer.band_mapping`,
    recorded in ``spec.band_mapping``). The head starts from the parent's own head when it has
    the same kind and classes (e.g. the lens finder's logit), else fresh.

    Parameters
    ----------
    model : ZooModel or str
        A zoo image model or anything `astrozoo.load` accepts.
    head : {"binary", "classes", "regression", "mdn"}, optional
        Default: the parent's kind (lens finding: binary; morphology: classes; photo-z: mdn).
    labels : sequence of str, optional
        Class names (classes), the positive class (binary, default the parent's, e.g.
        ``("lens",)``), target names (regression, default ``("target",)``).
    bands : sequence of str, optional
        Your bands, in the channel order the adapted model will use (default: the parent's).
    pixel_scale, size : optional
        Your cutouts' arcsec/pixel and side (default: the parent's).
    survey : str, optional
        Survey preset of your data (wavelengths of the bands; default: the parent's).
    normalization_kwargs : dict, optional
        Override the parent's normalisation constants (needed when they are per band and the
        preset has no noise model).
    n_components : int, optional
        Mixture components of an mdn head (default: the parent's, else 5).
    dropout : float
        Dropout before the head.
    name : str, optional
        Name of the new model (default ``<parent>-finetuned``).
    """
    from ..registry import get_architecture, get_task

    parent = _as_model(model)
    if parent.spec.kind != "image":
        raise ValueError(f"{parent.name}: fine-tuning takes image models; {parent.spec.kind} "
                         "models are retrained by their recipes")
    kind = head or _default_head(parent)
    if kind not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {kind!r}")
    body_parent = parent.body if isinstance(parent, FineTunedModel) else parent
    pcfg = body_parent.config
    if labels is None:
        if kind == "binary" and len(parent.config.labels) == 1:
            labels = parent.config.labels
        elif kind == "regression":
            labels = ("target",)
        elif kind == "mdn":
            labels = ()
        else:
            raise ValueError(f"a {kind!r} head needs labels= (the class names)")
    labels = tuple(labels)
    if kind == "binary" and len(labels) != 1:
        raise ValueError(f"a binary head takes one label (the positive class), not {labels}")
    spec = adapt_spec(parent.spec, bands=bands, pixel_scale=pixel_scale, size=size,
                      survey=survey, normalization_kwargs=normalization_kwargs)

    arch = get_architecture(pcfg.architecture)
    body = arch(pcfg.replace(input_spec=spec))
    state, adapted = adapt_state_dict(body_parent.state_dict(), body.state_dict(),
                                      body_parent.spec.bands, spec.band_mapping or
                                      {b: [b] for b in spec.bands})
    body.load_state_dict(state)
    body.eval()
    example = torch.zeros(2, *spec.shape)
    with torch.no_grad():
        in_features = int(body.forward_features(body.preprocess(example)).shape[-1])

    if kind == "binary":
        n_out = 1
    elif kind == "mdn":
        n_out = n_components or int(pcfg.arch_kwargs.get("n_components", 5))
    else:  # one output per class or per target
        n_out = len(labels)
    task = _choose_task(parent, kind, labels)
    config = ModelConfig(
        name=name or f"{parent.name}-finetuned", task=task, architecture="finetuned",
        arch_kwargs={"parent": {"name": pcfg.name, "task": pcfg.task,
                                "architecture": pcfg.architecture,
                                "arch_kwargs": dict(pcfg.arch_kwargs),
                                "labels": list(pcfg.labels), "outputs": list(pcfg.outputs),
                                "weights_sha256": parent.config.weights_sha256},
                     "head": {"kind": kind, "in_features": in_features, "n_out": n_out,
                              "dropout": dropout}},
        input_spec=spec, outputs=tuple(dict.fromkeys(
            get_task(task).output_columns(labels) + head_output_names(kind, labels))),
        labels=labels, license=parent.config.license,
        training={"parent": parent.name, "parent_sha256": parent.config.weights_sha256,
                  "adapted_weights": adapted})
    ft = FineTunedModel(config)
    ft.body.load_state_dict(body.state_dict())
    seed = parent.head_state(kind, labels)
    if seed is not None:
        own = ft.head.state_dict()
        if all(k in own and own[k].shape == v.shape for k, v in seed.items()):
            ft.head.load_state_dict({**own, **seed})
            config = config.replace(training={**config.training, "head_from_parent": True})
            ft.config = config
    freeze_unused(ft, ft.preprocess(example))
    return ft.eval()


def _train_options(n: int, options: dict, val_given: bool, kind: str, metric_key: str):
    from ..training import TrainConfig

    batch = min(options.pop("batch_size", 64), n)
    batch = batch - batch % 8 if batch >= 8 else batch
    steps_per_epoch = max(n // batch, 1)
    epochs = options.pop("epochs", None) or max(10, math.ceil(_MIN_STEPS / steps_per_epoch))
    defaults = dict(epochs=epochs, batch_size=batch, lr=1e-3, weight_decay=0.05,
                    augment="dihedral", monitor=metric_key if val_given else "loss",
                    patience=max(5, epochs // 4) if val_given else None)
    return TrainConfig(**{**defaults, **options})


def _class_weight(kind: str, y: np.ndarray, labels, class_weight):
    if class_weight is None or kind not in ("binary", "classes"):
        if class_weight is not None:
            raise ValueError(f"class_weight applies to binary and classes heads, not {kind!r}")
        return None
    k = 2 if kind == "binary" else len(labels)
    counts = np.bincount(y.astype(np.int64), minlength=k).astype(float)
    if class_weight == "balanced":
        w = counts.sum() / (k * np.maximum(counts, 1))
    elif isinstance(class_weight, dict):
        names = ("0", "1") if kind == "binary" else labels
        w = np.array([float(class_weight.get(c, class_weight.get(i, 1.0)))
                      for i, c in enumerate(names)])
    else:
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, not {class_weight!r}")
    return torch.as_tensor(w, dtype=torch.float32)


def _read(data, spec, kind, labels, label_column, path_column, read_options, what,
          array_bands=None):
    """Read a labelled set; `array_bands` (the user's ``bands=``) names an array's channels,
    which are otherwise never assumed (the pipeline asks for them)."""
    opts = dict(read_options or {})
    if array_bands is not None:
        opts.setdefault("bands", list(array_bands))
    s = read_labelled(data, spec, label_column=label_column, path_column=path_column, what=what,
                      **opts)
    y, labels = encode_labels(kind, s.labels, labels, what=what)
    return s, y, labels


def _training_set(parent, kind, labels, train, spec_options, label_column, path_column,
                  read_options):
    """The adapted spec, the labelled training set read for it, encoded targets and labels."""
    spec = adapt_spec(parent.spec, **spec_options)
    if kind == "binary" and labels is None and len(parent.config.labels) == 1:
        labels = parent.config.labels
    s, y, labels = _read(train, spec, kind, labels, label_column, path_column, read_options,
                         "training set", _stated_bands(spec, spec_options))
    return spec, s, y, labels


def _stated_bands(spec, spec_options):
    """The spec's bands when the user named them (``bands=``), else None."""
    return spec.bands if spec_options.get("bands") is not None else None


def _standardise(ft: FineTunedModel, y: np.ndarray) -> None:
    """A regression head works on targets standardised by the training set."""
    if ft.head_kind == "regression":
        ft.head.loc.copy_(torch.as_tensor(y.mean(0)))
        ft.head.scale.copy_(torch.as_tensor(y.std(0) + 1e-12))


def _split(x, y, fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = max(1, int(round(fraction * len(x))))
    v, t = np.sort(order[:n_val]), np.sort(order[n_val:])
    return (x[t], y[t]), (x[v], y[v])


def finetune(model, train, val=None, *, head: str | None = None, labels=None,
             label_column="label", path_column=None, freeze="none",
             layer_decay: float | None = 0.75, bands=None, pixel_scale=None, size=None,
             survey=None, normalization_kwargs=None, class_weight=None, unlabeled=None,
             pseudo_threshold: float = 0.95, name: str | None = None, out=None,
             checkpoint_dir=None, read_options: dict | None = None, progress: bool = True,
             log=print, **train_options) -> FineTunedModel:
    """Fine-tune a zoo model on your labelled cutouts.

    Parameters
    ----------
    model : ZooModel or str
        The parent (e.g. ``"lens-finding"``).
    train : table or (images, labels)
        A table (astropy Table, DataFrame, FITS/ECSV/CSV/Parquet path) with a column of cutout
        paths (`path_column`) and the label column(s) (`label_column`); or arrays
        ``(images (N, C, H, W), labels (N,) or (N, T))`` whose channels are named by `bands`
        (or ``read_options={"bands": [...]}``; never assumed, as in ``predict``). Read through
        the same input pipeline as ``predict`` (`read_options` go to `astrozoo.io.open_inputs`:
        ``unit``, ``zeropoint``, ``on_error``, array ``bands``, ...).
    val : same as train, float, or None
        Validation set (early stopping and the best epoch by its metric: AUROC for binary,
        accuracy for classes, the loss otherwise); a float holds out that fraction of `train`;
        None trains the full schedule.
    head, labels, bands, pixel_scale, size, survey, normalization_kwargs
        See `adapt`. Class names default to the sorted unique label values.
    freeze : {"none", "backbone"} or int
        What trains: everything, the head only, or the head and the last n backbone blocks
        (`astrozoo.transfer.freezing.apply_freeze`). Frozen weights get no gradient and their
        BatchNorm statistics do not move.
    layer_decay : float or None
        timm layer-wise learning-rate decay: block k of L trains at ``lr * layer_decay **
        (L - k)``, the head at ``lr``. None: one rate.
    class_weight : None, "balanced" or dict
        Loss weights of the classes (binary: of 0 and 1).
    unlabeled : inputs, optional
        Unlabelled cutouts for one round of pseudo-labelling: after training, those the
        model classifies with confidence >= `pseudo_threshold` join the training set with
        their predicted class, and the model is trained again from the parent.
    name : str, optional
        Name of the new model.
    out : path, optional
        Save the fine-tuned model here (``save_pretrained``): the best epoch is written as
        training goes, and the final model with its updated card at the end.
    checkpoint_dir : path, optional
        Full training state after every epoch (safetensors); rerunning the same call resumes
        there. Not combined with `unlabeled` (two trainings).
    **train_options
        `astrozoo.training.TrainConfig` fields: ``epochs`` (default: enough for 300 steps, at
        least 10), ``batch_size`` (64), ``lr`` (1e-3), ``weight_decay``, ``patience``,
        ``seed``, ``mixed_precision``, ``augment``, ``max_steps``, ...

    Returns
    -------
    FineTunedModel
        With its spec, labels, metrics and card updated (parent and its sha256, data sizes,
        validation metrics, band mapping); ``model.fit_result`` holds the training history.

    Examples
    --------
    >>> ft = astrozoo.finetune("lens-finding", "des_train.ecsv", val=0.2,   # doctest: +SKIP
    ...                        bands="griz", pixel_scale=0.263, survey="des")
    >>> ft.save_pretrained("lens-des")                                       # doctest: +SKIP
    """
    from ..training import fit

    parent = _as_model(model)
    kind = head or _default_head(parent)
    if kind not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {kind!r}")
    if unlabeled is not None and kind not in ("binary", "classes"):
        raise ValueError("pseudo-labelling needs a binary or classes head")
    spec_options = dict(bands=bands, pixel_scale=pixel_scale, size=size, survey=survey,
                        normalization_kwargs=normalization_kwargs)
    spec, s, y, labels = _training_set(parent, kind, labels, train, spec_options, label_column,
                                       path_column, read_options)
    array_bands = _stated_bands(spec, spec_options)
    x = s.x
    seed = train_options.get("seed", 0)
    if isinstance(val, float):
        (x, y), (xv, yv) = _split(x, y, val, seed)
    elif val is not None:
        sv, yv, _ = _read(val, spec, kind, labels, label_column, path_column, read_options,
                          "validation set", array_bands)
        xv = sv.x
    else:
        xv = yv = None
    ft = adapt(parent, head=kind, labels=labels, bands=spec.bands, pixel_scale=spec.pixel_scale,
               size=spec.size, survey=spec.survey,
               normalization_kwargs=spec.normalization_kwargs, name=name)
    _standardise(ft, y)
    initial = copy.deepcopy(ft.state_dict())
    frozen = apply_freeze(ft, freeze)
    metric, key = head_metric(kind)
    weights = _class_weight(kind, y, labels, class_weight)

    if checkpoint_dir is not None and unlabeled is not None:
        raise ValueError("checkpoint_dir cannot resume a pseudo-labelling run (two trainings)")

    def run(xt, yt):
        cfg = _train_options(len(xt), dict(train_options), xv is not None, kind, key)
        res = fit(ft, (xt, yt), (xv, yv) if xv is not None else None,
                  loss=head_loss(kind, ft.head, weights), metric=metric, config=cfg,
                  param_groups=param_groups(ft, cfg.weight_decay, layer_decay), out=out,
                  checkpoint_dir=checkpoint_dir, progress=progress, log=log)
        return res, cfg

    res, cfg = run(x, y)
    n_pseudo = 0
    if unlabeled is not None:
        xu, ids, usable = _read_images(unlabeled, spec, read_options, array_bands)
        picked = _confident(ft, xu, ids, usable, pseudo_threshold)
        n_pseudo = len(picked)
        log(f"pseudo-labelling: {n_pseudo} of {len(xu)} unlabelled rows are confident "
            f"(>= {pseudo_threshold}) and join the training set")
        if n_pseudo:
            xu = xu[np.asarray(picked["index"])]
            yu = np.asarray(picked["target"], dtype=y.dtype)
            ft.load_state_dict(initial)
            res, cfg = run(np.concatenate([x, xu]), np.concatenate([y, yu]))
    best = res.history[res.best_epoch - 1] if res.best_epoch >= 1 else {}
    metrics = {k: float(v) for k, v in best.items()
               if k not in ("epoch", "step") and np.isfinite(v)}
    ft.config = ft.config.replace(
        metrics={"finetune-validation": metrics} if xv is not None else {},
        training={**ft.config.training, "method": "finetune", "head": kind, "freeze": freeze,
                  "frozen_parameters": len(frozen), "layer_decay": layer_decay,
                  "class_weight": class_weight if isinstance(class_weight, (str, dict)) else None,
                  "n_train": int(len(x)), "n_val": int(len(xv)) if xv is not None else 0,
                  "n_pseudo": n_pseudo, "n_dropped": s.n_dropped, "best_epoch": res.best_epoch,
                  "train_config": cfg.to_dict()})
    ft.card = finetune_card(ft, parent)
    ft.fit_result = res
    if out is not None and int(os.environ.get("RANK", "0")) == 0:  # one writer under DDP
        ft.save_pretrained(out)
    return ft


def _read_images(inputs, spec, read_options, array_bands=None
                 ) -> tuple[np.ndarray, list, np.ndarray]:
    """Unlabelled cutouts conformed to `spec`, their ids, and which rows are usable (not
    unreadable, not missing too many pixels)."""
    from ..io import open_inputs
    from .data import _DROP

    opts = dict(read_options or {})
    if array_bands is not None:
        opts.setdefault("bands", list(array_bands))
    cs = open_inputs(inputs, spec, **opts)
    b = cs.read_batch(range(len(cs)))
    return b.data, cs.ids, (b.flags & _DROP) == 0


def _features(model: FineTunedModel, x: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.asarray(x[i:i + batch_size], np.float32), device=device)
            out.append(model.forward_features(model.preprocess(xb)).float().cpu())
    return torch.cat(out)


def _raw(model: FineTunedModel, x: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    with torch.inference_mode():
        return model.head(_features(model, x, batch_size))


def pseudo_label(model: FineTunedModel, inputs, threshold: float = 0.95, *, bands=None,
                 read_options: dict | None = None):
    """Confident predictions of a binary or classes model on unlabelled cutouts.

    `bands` names an array's channels; `read_options` go to `astrozoo.io.open_inputs`.

    Returns
    -------
    astropy.table.Table
        Only the rows read cleanly (not unreadable, not missing more than ``max_missing`` of
        their pixels) whose predicted class has probability >= `threshold`: ``index`` (row in
        `inputs`), ``id``, ``label``, ``target`` (0/1 or class index) and ``confidence``.
    """
    if model.head_kind not in ("binary", "classes"):
        raise ValueError("pseudo-labelling needs a binary or classes head")
    if not 0.5 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0.5, 1], not {threshold}")
    return _confident(model, *_read_images(inputs, model.spec, read_options, bands), threshold)


def _confident(model: FineTunedModel, x, ids, usable, threshold: float):
    """`pseudo_label`'s selection on cutouts already read (see there)."""
    from astropy.table import Table

    out = _raw(model, x).float()
    if model.head_kind == "binary":
        p1 = torch.sigmoid(out).numpy()
        target = (p1 >= 0.5).astype(np.int64)
        conf = np.where(target == 1, p1, 1 - p1)
        names = np.array([f"not_{model.config.labels[0]}", model.config.labels[0]])
    else:
        p = torch.softmax(out, -1).numpy()
        target, conf = p.argmax(1), p.max(1)
        names = np.array(model.config.labels)
    keep = np.flatnonzero((conf >= threshold) & usable)  # never a pseudo-label for a bad row
    return Table({"index": keep, "id": [ids[i] for i in keep], "label": names[target[keep]],
                  "target": target[keep], "confidence": conf[keep].astype(np.float32)})


def linear_probe(model, train, val=None, *, head: str | None = None, labels=None,
                 label_column="label", path_column=None, bands=None, pixel_scale=None,
                 size=None, survey=None, normalization_kwargs=None, class_weight=None,
                 name: str | None = None, read_options: dict | None = None,
                 progress: bool = False, log=print, **train_options) -> FineTunedModel:
    """Train only a new head on the frozen parent's features (computed once): the fastest
    transfer baseline. Arguments as `finetune`; returns a `FineTunedModel` whose backbone is
    the parent's, unchanged."""
    from ..training import fit

    parent = _as_model(model)
    kind = head or _default_head(parent)
    spec_options = dict(bands=bands, pixel_scale=pixel_scale, size=size, survey=survey,
                        normalization_kwargs=normalization_kwargs)
    spec, s, y, labels = _training_set(parent, kind, labels, train, spec_options, label_column,
                                       path_column, read_options)
    ft = adapt(parent, head=kind, labels=labels, bands=spec.bands, pixel_scale=spec.pixel_scale,
               size=spec.size, survey=spec.survey,
               normalization_kwargs=spec.normalization_kwargs, name=name)
    _standardise(ft, y)
    apply_freeze(ft, "backbone")
    f = _features(ft, s.x)
    fv = yv = None
    if isinstance(val, float):
        (f, y), (fv, yv) = _split(f.numpy(), y, val, train_options.get("seed", 0))
    elif val is not None:
        sv, yv, _ = _read(val, spec, kind, labels, label_column, path_column, read_options,
                          "validation set", _stated_bands(spec, spec_options))
        fv = _features(ft, sv.x)
    metric, key = head_metric(kind)
    opts = {"epochs": 100, "lr": 3e-3, "augment": None, **train_options}
    cfg = _train_options(len(f), opts, fv is not None, kind, key)
    res = fit(ft.head, (f, y), (fv, yv) if fv is not None else None,
              loss=head_loss(kind, ft.head, _class_weight(kind, y, labels, class_weight)),
              metric=metric, config=cfg, progress=progress, log=log)
    best = res.history[res.best_epoch - 1] if res.best_epoch >= 1 else {}
    ft.config = ft.config.replace(
        metrics={"finetune-validation": {k: float(v) for k, v in best.items()
                                         if k not in ("epoch", "step")}} if fv is not None else {},
        training={**ft.config.training, "method": "linear-probe", "head": kind,
                  "freeze": "backbone", "n_train": int(len(f)),
                  "n_val": int(len(fv)) if fv is not None else 0, "n_dropped": s.n_dropped,
                  "train_config": cfg.to_dict()})
    ft.card = finetune_card(ft, parent)
    ft.fit_result = res
    return ft.eval()


def knn_probe(model, train, query, *, k: int = 20, labels=None, label_column="label",
              path_column=None, bands=None, pixel_scale=None, size=None, survey=None,
              read_options: dict | None = None):
    """Classify `query` cutouts by their k nearest labelled neighbours in the parent's
    embedding space (cosine similarity): a training-free transfer baseline.

    Returns
    -------
    astropy.table.Table
        One row per query object: ``label`` (majority class) and ``p_<class>`` (fraction of
        the k neighbours in each class).
    """
    from astropy.table import Table

    parent = _as_model(model)
    spec_options = dict(bands=bands, pixel_scale=pixel_scale, size=size, survey=survey)
    spec, s, y, labels = _training_set(parent, "classes", labels, train, spec_options,
                                       label_column, path_column, read_options)
    ft = adapt(parent, head="classes", labels=labels, bands=spec.bands,
               pixel_scale=spec.pixel_scale, size=spec.size, survey=spec.survey,
               normalization_kwargs=spec.normalization_kwargs)
    ref = torch.nn.functional.normalize(_features(ft, s.x), dim=1)
    xq = _read_images(query, spec, read_options, _stated_bands(spec, spec_options))[0]
    q = torch.nn.functional.normalize(_features(ft, xq), dim=1)
    k = min(k, len(ref))
    nearest = (q @ ref.T).topk(k, dim=1).indices.numpy()
    votes = np.stack([(y[nearest] == c).mean(1) for c in range(len(labels))], 1)
    names = np.array(labels)
    cols = {"label": names[votes.argmax(1)]}
    cols.update({f"p_{c}": votes[:, i].astype(np.float32) for i, c in enumerate(labels)})
    return Table(cols)


def finetune_card(model: FineTunedModel, parent: ZooModel) -> str:
    """Model-card body of a fine-tuned model: parent, data, head, band mapping, metrics and
    the limits a user-trained model has."""
    t = model.config.training
    spec = model.spec
    lines = [f"# {model.name}", "",
             f"Fine-tuned with `astrozoo.finetune` ({t.get('method', 'finetune')}) from "
             f"`{t['parent']}` (weights sha256 `{t['parent_sha256']}`).", "",
             "## Training data", "",
             f"- {t.get('n_train', '?')} labelled cutouts for training, {t.get('n_val', 0)} for "
             f"validation" + (f", {t['n_pseudo']} pseudo-labelled" if t.get("n_pseudo") else "")
             + (f"; {t['n_dropped']} unusable rows left out" if t.get("n_dropped") else "") + ".",
             f"- Input: bands {', '.join(spec.bands)}, {spec.pixel_scale}\"/pixel, "
             f"{spec.size}x{spec.size}, {spec.flux_unit} (survey preset `{spec.survey}`).",
             f"- Head: `{t.get('head')}`, labels {list(model.config.labels)}; freeze "
             f"`{t.get('freeze')}`, layer decay {t.get('layer_decay')}.", ""]
    if spec.band_mapping:
        lines += ["## Band mapping (first-layer weights initialised from the parent's bands)", "",
                  "| band | from parent bands |", "| --- | --- |"]
        lines += [f"| {b} | {', '.join(src)} |" for b, src in spec.band_mapping.items()]
        lines.append("")
    lines += ["## Metrics", ""]
    metrics = model.config.metrics.get("finetune-validation")
    if metrics:
        lines += ["Best epoch on the validation set:", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {v:.4g} |" for k, v in metrics.items()]
    else:
        lines.append("No validation set was given: no metrics were measured.")
    lines += ["", "## Limits", "",
              "Measured only on the validation data given to `finetune`; the parent's card "
              "describes what the backbone was pretrained on and its domain limits.", ""]
    return "\n".join(lines)
