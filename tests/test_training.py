"""The shared training loop: learning, determinism, resume, best epoch, early stopping, freezing,
augmentation, and no pickles on disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import astrozoo
from astrozoo.config import InputSpec, ModelConfig
from astrozoo.inference.tta import dihedral, random_dihedral
from astrozoo.modeling import ZooModel
from astrozoo.registry import unregister
from astrozoo.training import TrainConfig, fit, set_train_mode

TASK = "toy-blob"


class BlobNet(ZooModel):
    """Tiny CNN with BatchNorm: is there a blob in the top-left quadrant?"""

    def __init__(self, config):
        super().__init__(config)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 4, 1)

    def forward(self, x):
        h = nn.functional.adaptive_avg_pool2d(self.bn(self.conv(x)).relu(), 2)
        return self.head(h.flatten(1)).squeeze(1)

    def postprocess(self, out):
        return {"p": torch.sigmoid(out).numpy()}


@pytest.fixture(scope="module", autouse=True)
def toy_task():
    astrozoo.register_task(astrozoo.Task(name=TASK, columns=("p",), pipeline_tag="image-classification"))
    astrozoo.register_architecture("blob-net", BlobNet, task=TASK)
    yield
    unregister(TASK)


def make_model(seed=0) -> BlobNet:
    torch.manual_seed(seed)
    return BlobNet(ModelConfig(name="blob", task=TASK, architecture="blob-net", arch_kwargs={},
                               input_spec=InputSpec(bands=("r",), size=8, pixel_scale=0.2,
                                                    normalization="identity"), outputs=("p",)))


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 1, 8, 8)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    x[y == 1, :, 1:3, 1:3] += 4.0
    return x, y


def bce(out, y):
    return nn.functional.binary_cross_entropy_with_logits(out, y.float())


def acc(out, y):
    return {"acc": float(((out > 0).float() == y).float().mean())}


CFG = dict(epochs=4, batch_size=32, lr=1e-2, weight_decay=0.0, augment=None, seed=3,
           log_every=10 ** 6)


def test_learns_and_keeps_the_best_epoch(tmp_path):
    model = make_model()
    res = fit(model, data(512, 0), data(256, 1), loss=bce, metric=acc, out=tmp_path / "best",
              config=TrainConfig(**CFG, monitor="acc"), progress=False, log=lambda m: None)
    assert res.best > 0.85 and res.epochs == 4  # chance: 0.5 and res.steps == 4 * 16
    assert res.best == max(h["acc"] for h in res.history)
    assert not model.training
    # the returned model and the saved directory hold the best epoch
    reloaded = astrozoo.load(tmp_path / "best")
    x = torch.from_numpy(data(64, 2)[0])
    np.testing.assert_allclose(reloaded.predict_batch(x)["p"], model.predict_batch(x)["p"],
                               rtol=1e-6)


def test_deterministic_and_resumes_exactly(tmp_path):
    def run(epochs, ckpt=None, seed=3):
        model = make_model()
        cfg = TrainConfig(**{**CFG, "epochs": epochs, "seed": seed, "augment": "dihedral"})
        res = fit(model, data(256, 0), data(64, 1), loss=bce, config=cfg, checkpoint_dir=ckpt,
                  progress=False, log=lambda m: None)
        return model, res

    a, _ = run(3)
    b, _ = run(3)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    c, _ = run(3, seed=4)
    assert not torch.equal(a.conv.weight, c.conv.weight)

    # killed during epoch 3, after the checkpoint of epoch 2
    class Killed(Exception):
        pass

    def log(line):
        if line.startswith("epoch 3/3"):
            raise Killed

    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        fit(make_model(), data(256, 0), data(64, 1), loss=bce, checkpoint_dir=ckpt,
            config=TrainConfig(**{**CFG, "epochs": 3, "augment": "dihedral"}), progress=False,
            log=log)
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.safetensors", "last.json",
                                                       "last.safetensors"]
    resumed, res = run(3, ckpt=ckpt)
    assert res.epochs == 3 and res.steps == 24 and len(res.history) == 3
    for (k, v), w in zip(a.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k


def test_weight_average_is_what_is_validated_saved_and_resumed(tmp_path):
    cfg = TrainConfig(**{**CFG, "epochs": 4, "ema_decay": 0.9, "monitor": "acc"})

    def run(ckpt=None, log=lambda m: None, config=cfg, out=tmp_path / "best"):
        model = make_model()
        res = fit(model, data(512, 0), data(256, 1), loss=bce, metric=acc, config=config,
                  checkpoint_dir=ckpt, out=out, progress=False, log=log)
        return model, res

    avg, res = run()
    assert res.best > 0.85
    raw, _ = run(config=TrainConfig(**{**CFG, "epochs": 4, "monitor": "acc"}), out=None)
    assert not torch.equal(avg.conv.weight, raw.conv.weight)
    x = torch.from_numpy(data(64, 2)[0])  # the saved weights are the average's
    np.testing.assert_allclose(astrozoo.load(tmp_path / "best").predict_batch(x)["p"],
                               avg.predict_batch(x)["p"], rtol=1e-6)

    class Killed(Exception):
        pass

    def log(line):
        if line.startswith("epoch 4/4"):
            raise Killed

    with pytest.raises(Killed):
        run(tmp_path / "ckpt", log=log)
    resumed, _ = run(tmp_path / "ckpt")
    for (k, v), w in zip(avg.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k


def test_early_stopping():
    model = make_model()
    cfg = TrainConfig(**{**CFG, "epochs": 50, "lr": 1e-6, "patience": 2})  # no progress
    res = fit(model, data(128, 0), data(64, 1), loss=bce, metric=acc, config=cfg, progress=False,
              log=lambda m: None)
    assert res.epochs < 50 and res.epochs - res.best_epoch == 2


def test_frozen_parameters_and_batchnorm_do_not_move():
    model = make_model()
    for p in [*model.conv.parameters(), *model.bn.parameters()]:
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    set_train_mode(model)
    assert model.training and not model.bn.training
    fit(model, data(128, 0), None, loss=bce, config=TrainConfig(**{**CFG, "epochs": 1}),
        progress=False, log=lambda m: None)
    after = model.state_dict()
    for k in ("conv.weight", "bn.weight", "bn.running_mean", "bn.running_var"):
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["head.weight"], after["head.weight"])


def test_random_dihedral_moves_dense_targets_with_the_image():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(4 * 2 * 5 * 5, dtype=torch.float32).reshape(4, 2, 5, 5)
    y = x[:, 0].clone()
    xa, ya = random_dihedral(x, g, target=y)
    for i in range(4):
        k = next(k for k in range(8) if torch.equal(dihedral(x[i], k), xa[i]))
        assert torch.equal(dihedral(y[i], k), ya[i])


def test_monitor_must_exist():
    with pytest.raises(KeyError, match="monitor 'auroc'"):
        fit(make_model(), data(64, 0), data(32, 1), loss=bce, metric=acc,
            config=TrainConfig(**{**CFG, "epochs": 1, "monitor": "auroc"}), progress=False,
            log=lambda m: None)
