"""ONNX export of a model's network, for survey pipelines that deploy with onnxruntime.

The graph is ``preprocess -> forward``: it takes fluxes in the model's spec units, shape
``(batch, *input_shape(model.spec))`` (what `astrozoo.io` produces), with a dynamic batch axis, and
returns the raw network output that the model's ``postprocess`` turns into catalogue columns.
Reading FITS and postprocessing (mixture summaries, watershed grouping...) stay in Python:
they are not tensor programs. The model's config (spec, labels, provenance) and its card travel
in the file's metadata (``astrozoo.config``, ``astrozoo.card``), so an exported file is as
self-describing as a model directory. Needs the ``onnx`` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from .cards import render_card
from .exceptions import OutputError

__all__ = ["export_onnx", "onnx_session", "input_shape", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME, OUTPUT_NAME = "flux", "raw"
#: Default opset (onnxruntime has run it since 1.14).
OPSET = 18


def input_shape(spec) -> tuple[int, ...]:
    """One object's input to the graph: (C, H, W) fluxes for images; for catalogues, fluxes,
    flux errors and extinctions side by side, (3 C,), as `astrozoo.io` reads them."""
    return spec.shape if spec.kind == "image" else (3 * len(spec.bands),)


class _Graph(nn.Module):
    """What is exported: the model's preprocessing and network as one module."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(self.model.preprocess(x))


def export_onnx(model, path, *, opset: int = OPSET, batch: int = 2) -> Path:
    """Write `model`'s ``preprocess -> forward`` as an ONNX file at `path` (atomically).

    Parameters
    ----------
    model : astrozoo.modeling.ZooModel
    path : path
        The ``.onnx`` file to write.
    opset : int
        ONNX opset version.
    batch : int
        Batch size of the example input used for tracing (the batch axis stays dynamic).

    Returns
    -------
    pathlib.Path
    """
    import onnx

    path = Path(path)
    example = torch.ones(batch, *input_shape(model.spec))
    graph = _Graph(model).eval().cpu()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
        os.close(fd)
        # torch.export-based exporter (onnxscript); operators ONNX lacks (median, log_ndtr)
        # take export-friendly paths under torch.onnx.is_in_onnx_export()
        torch.onnx.export(graph, (example,), tmp, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=opset, dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        proto = onnx.load(tmp)
        meta = {"astrozoo.config": json.dumps(model.config.to_dict(), sort_keys=True),
                "astrozoo.card": render_card(model.config, model.card)}
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "astrozoo"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise OutputError(f"cannot write the ONNX file ({type(e).__name__}: {e})", path) \
            from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def onnx_session(model, **kwargs):
    """An onnxruntime CPU session of `model`'s exported graph (exported to a scratch file
    that is removed again); what ``predict(..., runtime="onnx")`` runs."""
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="astrozoo-onnx-") as d:
        path = export_onnx(model, Path(d) / "model.onnx", **kwargs)
        return onnxruntime.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
