"""`ZooModel`, the base of every astrozoo model, and `load`, the one way to get one.

A model directory uses the Hugging Face Hub layout (``config.json``, ``model.safetensors``,
``README.md``), and `save_pretrained` / `from_pretrained` / `push_to_hub` mirror
huggingface_hub's mixins. Only safetensors are read: pickled checkpoints can run arbitrary code
on load, so they are refused, and only architectures registered in code
(`astrozoo.registry.register_architecture`) can be instantiated (no remote code).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .cards import card_body, render_card
from .config import InputSpec, ModelConfig
from .exceptions import ConfigError, IntegrityError
from .hub import (CARD_NAME, CONFIG_NAME, HUB_PREFIX, WEIGHTS_NAME, is_transformers_config,
                  lfs_sha256, model_file, refuse_pickles, resolve_files, resolve_hub_id,
                  safetensors_header, sha256_file, verify_sha256)

__all__ = ["ZooModel", "load"]


class ZooModel(nn.Module):
    """A pretrained model with its input spec, model card and a catalogue-producing `predict`.

    Subclasses build the network from ``config.arch_kwargs`` and implement `forward` (raw
    network output) and `postprocess` (raw output -> output columns). The data flow is
    ``inputs -> astrozoo.io (fluxes in spec units) -> preprocess -> forward -> postprocess -> Table``.

    Parameters
    ----------
    config : ModelConfig
        Architecture, input spec and metadata.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.card = ""  # model card markdown (body only)

    # -- metadata -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def task_spec(self):
        """The registered `~astrozoo.registry.Task` this model serves."""
        from .registry import get_task

        return get_task(self.config.task)

    @property
    def spec(self) -> InputSpec:
        """What the model expects: bands in order, pixel scale, cutout size, flux unit, preset."""
        return self.config.input_spec

    def __repr__(self) -> str:
        s = self.spec
        shape = "x".join(map(str, s.shape))
        return (f"{type(self).__name__}(name={self.name!r}, task={self.task!r}, "
                f"bands={''.join(s.bands)!r}, input={shape})")

    # -- the model's part of the data flow ------------------------------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Fluxes in spec units (B, C, H, W) -> network input, with the spec's preset."""
        from .preprocessing import normalize

        return normalize(x, self.spec.normalization, **self.spec.normalization_kwargs)

    def postprocess(self, out: torch.Tensor) -> dict[str, np.ndarray]:
        """Raw network output for a batch -> output columns (arrays with first axis B)."""
        raise NotImplementedError

    def check_outputs(self, columns: dict) -> dict:
        """`columns` if they hold every column the task requires (else `OutputContractError`)."""
        self.task_spec.check_outputs(columns, self.config.labels, self.name)
        return columns

    @torch.inference_mode()
    def predict_batch(self, x) -> dict[str, np.ndarray]:
        """The inference step on a batch already in spec units (B, *spec.shape), numpy or
        torch, on the model's device: ``preprocess -> forward -> postprocess``, output columns
        checked against the task. `predict` adds input reading, batching, devices and files."""
        device = next(self.parameters()).device
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(device)
        self.eval()
        return self.check_outputs(self.postprocess(self(self.preprocess(x))))

    def output_meta(self) -> dict:
        """What the output Table's ``meta`` declares about the columns' meaning, beyond the
        provenance (FITS-safe keys); none by default."""
        return {}

    def combine_tta(self, outs: torch.Tensor) -> torch.Tensor:
        """Merge raw outputs of T augmented copies, shape (T, B, ...), into one (B, ...).

        The default averages; subclasses override where averaging raw outputs is wrong.
        """
        return outs.mean(0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B, D), for `embed`."""
        raise NotImplementedError(f"{type(self).__name__} has no embedding")

    def head_state(self, kind: str, labels) -> dict[str, torch.Tensor] | None:
        """Weights for a fine-tuning head of `kind` (`astrozoo.transfer.HEADS`) with `labels`
        that this model's own head can seed (same kind and classes), as a state dict of that
        head; None when it has no such head (the new head starts fresh)."""
        return None

    # -- user API ---------------------------------------------------------------------------
    def predict(self, inputs, batch_size: int = 256, device=None, progress: bool = True,
                **kwargs):
        """Run the model over `inputs` and return an astropy Table, one row per object in input
        order, with an ``id`` column and the task's columns.

        Parameters
        ----------
        inputs
            FITS paths (multi-extension, cube, or per-band lists), a glob, a directory, a numpy
            array (N, C, H, W) with ``bands=[...]``, or a Table for catalogue models; see
            `astrozoo.io.open_inputs`.
        batch_size : int
            Objects per forward pass.
        device : str or torch.device, optional
            Default: cuda, then mps, then cpu.
        progress : bool
            Show a tqdm progress bar.
        **kwargs
            Passed to `astrozoo.inference.predict` (``output=``, ``on_error=``, ``tta=``, ...).
        """
        from .inference import predict

        return predict(self, inputs, batch_size=batch_size, device=device, progress=progress,
                       **kwargs)

    def embed(self, inputs, batch_size: int = 256, device=None, progress: bool = True,
              **kwargs) -> np.ndarray:
        """Backbone embeddings (N, D) float32 of `inputs`, in input order."""
        from .inference import embed

        return embed(self, inputs, batch_size=batch_size, device=device, progress=progress,
                     **kwargs)

    # -- persistence ----------------------------------------------------------------------
    def export_onnx(self, path: str | Path, **kwargs) -> Path:
        """The network (``preprocess -> forward``) as an ONNX file with its config and card in
        the metadata; see `astrozoo.export.export_onnx` (needs the ``onnx`` extra)."""
        from .export import export_onnx

        return export_onnx(self, path, **kwargs)

    def save_pretrained(self, save_directory: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` to `save_directory`.

        Parameters
        ----------
        dtype : torch.dtype, optional
            Storage dtype of floating-point tensors (e.g. ``torch.float16`` to halve the file);
            default: as in memory. Loading casts back to the module's dtype.
        """
        from safetensors.torch import save_file

        d = Path(save_directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for k, v in self.state_dict().items():
            v = v.detach().cpu()
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            tensors[k] = v.contiguous()
        # One metadata key only: safetensors writes its metadata map in hash order, so several
        # keys would make the bytes (and sha256) of identical weights differ between saves.
        save_file(tensors, d / WEIGHTS_NAME, metadata={"format": "pt"})
        self.config = self.config.replace(weights_sha256=sha256_file(d / WEIGHTS_NAME))
        self.config.to_json(d / CONFIG_NAME)
        (d / CARD_NAME).write_text(render_card(self.config, self.card))
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, expected_sha256: str | None = None,
                        what: str | None = None) -> "ZooModel":
        """Rebuild a model from a directory in Hub layout, verifying it first.

        Before any weights are read: the directory must hold no pickled checkpoint
        (`~astrozoo.hub.refuse_pickles`), its files must be inside it (no links out,
        `~astrozoo.hub.model_file`), and ``config.json`` must be valid
        (`ModelConfig.from_json`) and name an architecture registered for its task. Then
        ``model.safetensors`` must be complete and match its sha256, and hold exactly the
        tensors of the network the config describes. No code from the directory is executed.

        Parameters
        ----------
        expected_sha256 : str, optional
            Pin from the registry; default: the ``weights_sha256`` recorded in config.json.
        what : str, optional
            Name of the model in messages; default the directory.

        Raises
        ------
        IntegrityError
            Pickles, links out of the directory, missing, truncated, tampered or mismatched
            weights.
        ConfigError
            An invalid config.json.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(directory)
        what = what or str(d)
        if not d.is_dir():
            raise IntegrityError(f"{what}: {d} is not a model directory")
        config_path = model_file(d, CONFIG_NAME, what)
        if is_transformers_config(config_path):
            return _from_transformers_layout(d, expected_sha256, what)
        refuse_pickles(d, what)
        config = ModelConfig.from_json(config_path)
        model_cls = _architecture(config, config_path)
        weights = model_file(d, WEIGHTS_NAME, what)
        header = safetensors_header(weights, what)
        verify_sha256(weights, expected_sha256 or config.weights_sha256, what)
        if cls is not ZooModel and not issubclass(model_cls, cls):
            raise TypeError(f"{what} is a {model_cls.__name__}, not a {cls.__name__}")
        model = model_cls(config)
        own = model.state_dict()
        _check_tensors(own, header, f"{what}: {weights}")
        try:
            state = load_file(weights)
        except SafetensorError as e:
            raise IntegrityError(f"{what}: {weights} is not a valid safetensors file ({e})") from e
        state = {k: v.to(own[k].dtype) for k, v in state.items()}
        model.load_state_dict(state, strict=True)
        card = d / CARD_NAME
        model.card = card_body(model_file(d, CARD_NAME, what).read_text()) if card.exists() else ""
        return model.eval()

    def push_to_hub(self, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                    token: str | None = None, commit_message: str | None = None,
                    dtype: torch.dtype | None = None) -> Any:
        """Upload the model directory to the Hugging Face Hub (creating the repo if needed).

        Returns huggingface_hub's ``CommitInfo``.
        """
        from huggingface_hub import HfApi

        from .exceptions import HubUnavailableError
        from .hub import hub_unreachable

        why = hub_unreachable()
        if why is not None:
            raise HubUnavailableError(f"{self.name}: cannot push to {repo_id!r}: the Hub is not "
                                      f"available ({why}). save_pretrained(DIR) works offline; "
                                      "push that directory later from a machine online.")
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, dtype=dtype)
            return api.upload_folder(repo_id=repo_id, folder_path=tmp, revision=revision,
                                     commit_message=commit_message or f"Upload {self.name}")


def _architecture(config: ModelConfig, config_path: Path) -> type:
    """The registered class `config` names, refused (`ConfigError`) before anything is built
    unless its task is registered and the architecture serves it."""
    from .registry import get_architecture, get_task, list_architectures

    try:
        get_task(config.task)
    except KeyError as e:
        raise ConfigError(f"{config_path}: {e.args[0]}") from None
    known = list_architectures(config.task)
    if config.architecture not in known:
        serves = ("" if config.architecture not in list_architectures() else
                  " (it serves another task)")
        raise ConfigError(f"{config_path}: unknown architecture {config.architecture!r} for task "
                          f"{config.task!r}{serves}; registered for it: {known}")
    return get_architecture(config.architecture)


def _check_tensors(own: dict, header: dict, what: str) -> None:
    """Raise `IntegrityError` unless the safetensors `header` lists exactly the tensors of the
    state dict `own`, with the same shapes (checked before the weights are read)."""
    missing = sorted(set(own) - set(header))
    unexpected = sorted(set(header) - set(own))
    shapes = {k: (tuple(header[k]["shape"]), tuple(own[k].shape)) for k in set(own) & set(header)
              if tuple(header[k]["shape"]) != tuple(own[k].shape)}
    if missing or unexpected or shapes:
        bad = {k: f"{a} in the file, {b} in the network" for k, (a, b) in sorted(shapes.items())}
        raise IntegrityError(f"{what} does not hold the network its config.json describes: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}, shapes differ "
                             f"{dict(list(bad.items())[:5])}")


def _from_transformers_layout(d: Path, expected_sha256: str | None, what: str) -> ZooModel:
    """A directory in transformers' layout (e.g. a snapshot of ``facebook/dinov2-small``),
    read by the architecture registered for its ``model_type``. Its weights are checked
    against `expected_sha256`, else against the sha256 the Hub recorded for a cached file."""
    from .hub import read_config_json
    from .registry import transformers_architecture

    model_type = read_config_json(d / CONFIG_NAME)["model_type"]
    try:
        cls = transformers_architecture(model_type)
    except ValueError as e:
        raise ConfigError(f"{d / CONFIG_NAME}: {e}") from None
    if not expected_sha256 and (d / WEIGHTS_NAME).is_file():
        expected_sha256 = lfs_sha256(d / WEIGHTS_NAME)
    return cls.from_transformers(d, expected_sha256=expected_sha256, what=what)


def load(name: str | Path, *, device=None) -> ZooModel:
    """Load a pretrained model, in eval mode.

    Parameters
    ----------
    name : str or path
        A task (``"lens-finding"`` -> its default model), a registered model name, a local
        directory in Hub layout (a `~pathlib.Path`, or a string that is not a registered
        name), or ``"hf-hub:org/repo[@revision]"``.
    device : str or torch.device, optional
        Move the model there; default CPU (`predict` picks the device per call).

    Examples
    --------
    >>> import astrozoo
    >>> model = astrozoo.load("lens-finding")        # doctest: +SKIP
    >>> table = model.predict(["cutout1.fits"])      # doctest: +SKIP
    """
    from .registry import get_entry, is_registered

    ref = str(name)
    # A registered name wins over a same-named folder in the working directory; pass a Path
    # (or "./name") for the folder.
    if isinstance(name, Path) or (not is_registered(ref) and Path(ref).is_dir()):
        model = ZooModel.from_pretrained(ref)
    elif ref.startswith(HUB_PREFIX):
        model = ZooModel.from_pretrained(resolve_hub_id(ref), what=ref)
    else:
        entry = get_entry(ref)
        directory = resolve_files(entry)
        if entry.weights.format == "transformers":
            from .registry import get_architecture

            model = get_architecture(entry.template.architecture).from_transformers(
                directory, entry.template, expected_sha256=entry.sha256, what=entry.name)
        else:
            model = ZooModel.from_pretrained(directory, expected_sha256=entry.sha256,
                                             what=entry.name)
    return model.to(device) if device is not None else model
