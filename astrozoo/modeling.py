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
from .exceptions import IntegrityError
from .hub import (CARD_NAME, CONFIG_NAME, HUB_PREFIX, WEIGHTS_NAME, is_transformers_config,
                  lfs_sha256, resolve_files, resolve_hub_id, sha256_file, verify_sha256)

__all__ = ["ZooModel", "load"]

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


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
        """Rebuild a model from a directory in Hub layout, verifying its weights' sha256.

        Parameters
        ----------
        expected_sha256 : str, optional
            Pin from the registry; default: the ``weights_sha256`` recorded in config.json.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(directory)
        what = what or str(d)
        if (d / CONFIG_NAME).is_file() and is_transformers_config(d / CONFIG_NAME):
            return _from_transformers_layout(d, expected_sha256, what)
        weights = d / WEIGHTS_NAME
        if not weights.is_file():
            pickles = sorted(p.name for p in d.glob("*") if p.suffix in _PICKLE_SUFFIXES)
            if pickles:
                raise IntegrityError(
                    f"{what}: found only pickled checkpoint(s) {pickles}. astrozoo never unpickles "
                    "weights (loading a pickle can execute arbitrary code); convert them with "
                    "safetensors.torch.save_file and save as model.safetensors.")
            raise IntegrityError(f"{what}: no {WEIGHTS_NAME} in {d}")
        from .registry import get_architecture, get_task

        config = ModelConfig.from_json(d / CONFIG_NAME)
        get_task(config.task)  # an unknown task fails here, before any weights are read
        verify_sha256(weights, expected_sha256 or config.weights_sha256, what)
        model_cls = get_architecture(config.architecture)
        if cls is not ZooModel and not issubclass(model_cls, cls):
            raise TypeError(f"{what} is a {model_cls.__name__}, not a {cls.__name__}")
        model = model_cls(config)
        try:
            state = load_file(weights)
        except SafetensorError as e:
            raise IntegrityError(f"{what}: {weights} is not a valid safetensors file ({e})") from e
        own = model.state_dict()
        state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
        model.load_state_dict(state, strict=True)
        card = d / CARD_NAME
        model.card = card_body(card.read_text()) if card.is_file() else ""
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


def _from_transformers_layout(d: Path, expected_sha256: str | None, what: str) -> ZooModel:
    """A directory in transformers' layout (e.g. a snapshot of ``facebook/dinov2-small``),
    read by the architecture registered for its ``model_type``. Its weights are checked
    against `expected_sha256`, else against the sha256 the Hub recorded for a cached file."""
    import json

    from .registry import transformers_architecture

    model_type = json.loads((d / CONFIG_NAME).read_text())["model_type"]
    cls = transformers_architecture(model_type)
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
