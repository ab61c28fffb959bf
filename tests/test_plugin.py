"""The task plug-in contract: a toy task defined here, through the public API only.

Nothing under ``astrozoo/`` knows about it: the task, its architecture and its pretrained entry
are registered from this file, then used like any shipped model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import astrozoo
from astrozoo.config import InputSpec, ModelConfig
from astrozoo.exceptions import ConfigError, OutputContractError
from astrozoo.modeling import ZooModel
from astrozoo.registry import get_task, list_architectures, unregister

TASK = "toy-brightness"
LABELS = ("faint", "bright")


def accuracy(truth, table) -> dict:
    """The toy task's evaluator."""
    return {"accuracy": float(np.mean(np.asarray(truth) == np.asarray(table["label"])))}


class ToyBrightness(ZooModel):
    """Classifies cutouts as faint or bright from their mean flux (one linear layer)."""

    def __init__(self, config):
        super().__init__(config)
        self.linear = nn.Linear(1, len(config.labels))

    def forward(self, x):
        return self.linear(x.mean((1, 2, 3))[:, None])

    def postprocess(self, out):
        p = torch.softmax(out, 1).numpy()
        cols = {f"p_{lab}": p[:, i] for i, lab in enumerate(self.config.labels)}
        cols["label"] = np.array(self.config.labels)[p.argmax(1)]
        return cols


class ToyMissingColumn(ToyBrightness):
    """Breaks the contract: no p_bright column."""

    def postprocess(self, out):
        cols = super().postprocess(out)
        del cols["p_bright"]
        return cols


@pytest.fixture
def toy_task(tmp_path):
    astrozoo.register_task(astrozoo.Task(
        name=TASK, columns=("label", "p_{label}"), pipeline_tag="image-classification",
        key_metrics=("accuracy",), evaluator=f"{__name__}:accuracy",
        description="toy task of the plug-in test"))
    astrozoo.register_architecture("toy-brightness", ToyBrightness, task=TASK)
    astrozoo.register_architecture("toy-missing", ToyMissingColumn, task=TASK)
    config = ModelConfig(
        name="toy-model", task=TASK, architecture="toy-brightness", arch_kwargs={},
        input_spec=InputSpec(bands=("r",), size=8, pixel_scale=0.2, normalization="identity"),
        outputs=("label", "p_faint", "p_bright"), labels=LABELS)
    model = ToyBrightness(config)
    with torch.no_grad():  # bright when the mean flux exceeds 10
        model.linear.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        model.linear.bias.copy_(torch.tensor([10.0, -10.0]))
    model.card = "# toy-model\n\nA toy.\n"
    directory = model.save_pretrained(tmp_path / "toy-model")
    astrozoo.register_model(astrozoo.ModelEntry(
        name="toy-model", task=TASK, sha256=model.config.weights_sha256,
        weights=astrozoo.WeightsSource(bundled=str(directory))), default=True)
    yield directory
    unregister(TASK)


def _images(n=6):
    flux = np.linspace(0, 20, n, dtype=np.float32)
    return np.broadcast_to(flux[:, None, None, None], (n, 1, 8, 8)).copy()


def test_toy_task_load_predict_save_load(toy_task, tmp_path):
    assert TASK in astrozoo.list_tasks() and astrozoo.list_models(TASK) == ["toy-model"]
    model = astrozoo.load(TASK)
    t = model.predict(_images(), bands=["r"], unit="nJy", progress=False)
    assert list(t["label"]) == ["faint"] * 3 + ["bright"] * 3
    np.testing.assert_allclose(t["p_faint"] + t["p_bright"], 1, rtol=1e-6)
    again = astrozoo.load(model.save_pretrained(tmp_path / "again"))
    t2 = again.predict(_images(), bands=["r"], unit="nJy", progress=False)
    np.testing.assert_array_equal(t["p_bright"], t2["p_bright"])
    assert "image-classification" in (tmp_path / "again" / "README.md").read_text()
    from astrozoo.evaluation import evaluate

    truth = ["faint"] * 3 + ["bright"] * 2 + ["faint"]
    assert evaluate(TASK, truth, t) == {"accuracy": pytest.approx(5 / 6)}


def test_output_columns_are_enforced(toy_task, tmp_path):
    model = astrozoo.load(toy_task)
    broken = ToyMissingColumn(model.config.replace(architecture="toy-missing"))
    broken.load_state_dict(model.state_dict())
    with pytest.raises(OutputContractError, match=r"missing \['p_bright'\]"):
        broken.predict(_images(), bands=["r"], unit="nJy", progress=False)
    with pytest.raises(OutputContractError):
        broken.predict_batch(_images())
    # the same holds for a broken model loaded from disk
    d = broken.save_pretrained(tmp_path / "broken")
    with pytest.raises(OutputContractError):
        astrozoo.load(d).predict(_images(), bands=["r"], unit="nJy", progress=False)


def test_task_metadata_and_unregister(toy_task):
    task = get_task(TASK)
    assert task.output_columns(LABELS) == ("label", "p_faint", "p_bright")
    # `finetuned` (astrozoo.transfer) serves every task
    assert list_architectures(TASK) == ["finetuned", "toy-brightness", "toy-missing"]
    unregister(TASK)
    assert TASK not in astrozoo.list_tasks() and not list_architectures(TASK)
    with pytest.raises(ConfigError, match="unknown task"):  # its config.json names it
        astrozoo.load(toy_task)
    # re-register so that the fixture's own unregister has something to remove
    astrozoo.register_task(task)


def test_a_model_needs_a_registered_task():
    with pytest.raises(ValueError, match="unknown task 'no-such-task'"):
        astrozoo.register_model(astrozoo.ModelEntry(
            name="orphan", task="no-such-task", sha256="0" * 64,
            weights=astrozoo.WeightsSource(hub_repo="a/b")))
    with pytest.raises(ValueError, match="register task 'no-such-task' first"):
        astrozoo.register_architecture("orphan-arch", ToyBrightness, task="no-such-task")


def test_shipped_tasks_come_from_their_packages():
    for name in astrozoo.list_tasks():
        task = get_task(name)
        assert task.columns and task.pipeline_tag and task.key_metrics and task.evaluator
        for model_name in astrozoo.list_models(name):
            cfg = astrozoo.registry.get_entry(model_name).config
            assert set(task.output_columns(cfg.labels)) <= set(cfg.outputs)
