"""Lens finding: simulator, metrics, the shipped model's skill on fresh simulations, training smoke test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import astrozoo
from astrozoo.hub import sha256_file
from astrozoo.registry import get_entry
from astrozoo.evaluation.lens import auroc, lens_metrics, tpr_at_fp
from astrozoo.tasks.lens_finding.simulate import (ARC_SNR_MIN, BANDS, NEGATIVE_KINDS,
                                                   SOURCE_KINDS, SURVEY, simulate)

MODEL = "lens-resnet10t-lsst"


@pytest.fixture(scope="module")
def heldout():
    # seed far from the training (1e5..) and benchmark (7e6, 8e6) seeds
    return simulate(200, 31_337)


@pytest.fixture(scope="module")
def model():
    return astrozoo.load("lens-finding")


def test_simulator_is_seeded_and_physical():
    x1, y1, m1 = simulate(6, 5, kind="lens")
    x2, _, _ = simulate(6, 5, kind="lens")
    np.testing.assert_array_equal(x1, x2)
    assert x1.shape == (6, 3, 64, 64) and x1.dtype == np.float32
    assert (y1 == 1).all() and set(m1["kind"]) == {"lens"}
    assert ((m1["theta_e"] >= 0.5) & (m1["theta_e"] <= 3.0)).all()
    # kept lenses are detectable and magnified
    assert (m1["arc_snr_g"] >= ARC_SNR_MIN).all() and (m1["magnification"] > 1).all()
    assert set(m1["source"]) <= set(SOURCE_KINDS)
    # the same seed with shifted=True is another draw, with a Kolmogorov PSF and irregular
    # sources; shifted="validation" another again (broad Moffat PSFs, spiral sources)
    x3, _, m3 = simulate(6, 5, kind="lens", shifted=True)
    assert set(m3["psf"]) == {"kolmogorov"} and set(m3["source"]) == {"irregular"}
    assert not np.allclose(x1, x3)
    x4, _, m4 = simulate(6, 5, kind="lens", shifted="validation")
    assert set(m4["psf"]) == {"moffat"} and set(m4["source"]) == {"spiral"}
    assert not np.allclose(x3, x4)
    with pytest.raises(ValueError, match="shifted"):
        simulate(1, 0, shifted="test")


def test_faint_arcs_down_to_the_detection_limit_and_every_negative_kind():
    _, y, meta = simulate(300, 8)
    snr = np.asarray(meta["arc_snr_g"])[y == 1]
    # S/N drawn log-uniform from ARC_SNR_MIN: a good share of faint arcs
    assert snr.min() >= ARC_SNR_MIN and 0.05 < np.mean(snr < 20) < 0.3
    assert set(meta["kind"][y == 0]) == set(NEGATIVE_KINDS)
    x, _, _ = simulate(40, 9, kind="star")
    assert np.isfinite(x).all() and x.max() < 6e4  # stays within the float16 training cache


def test_simulator_noise_and_colours():
    x, y, meta = simulate(8, 11, kind="elliptical")
    assert (y == 0).all()
    # the corners are sky: the scatter of pixel differences (insensitive to the galaxy's faint
    # wings) is sqrt(2) x the survey preset's sky sigma of each band (nJy)
    w = 6
    corners = np.concatenate([x[:, :, :w, :w], x[:, :, :w, -w:], x[:, :, -w:, :w], x[:, :, -w:, -w:]], -1)
    sigma = np.diff(corners, axis=-1).reshape(8, 3, -1).std(-1).mean(0) / np.sqrt(2)
    np.testing.assert_allclose(sigma, SURVEY.sky_sigma(BANDS), rtol=0.1)
    # ellipticals are red: centre flux rises from g to i
    centre = x[:, :, 28:36, 28:36].sum((-2, -1))
    assert (centre[:, 0] < centre[:, 2]).all()


def test_metrics_definitions():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.4, 0.3, 0.85, 0.2, 0.1, 0.35])
    # 16 lens/non-lens pairs, 12 ordered correctly
    assert auroc(y, s) == pytest.approx(12 / 16)
    assert tpr_at_fp(y, s, 0) == 0.25  # only 0.9 lies above the best non-lens (0.85)
    assert tpr_at_fp(y, s, 1) == 0.75
    assert tpr_at_fp(y, s, 2) == 1.0
    assert lens_metrics(y, s)["tpr10"] == 1.0
    assert auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5  # ties count one half


def test_shipped_model_finds_lenses(model, heldout):
    x, y, _ = heldout
    table = model.predict(x, bands=list(BANDS), batch_size=128, progress=False)
    p = np.asarray(table["p_lens"])
    assert len(table) == len(y) and ((p >= 0) & (p <= 1)).all()
    # chance is 0.5; the shipped model reaches ~0.99 on large held-out sets
    assert auroc(y, p) > 0.93
    assert np.median(p[y == 1]) > 0.8 > 0.2 > np.median(p[y == 0])


def test_shipped_weights_registered_and_small(model):
    entry = get_entry("lens-finding")
    assert entry.name == MODEL and MODEL in astrozoo.list_models("lens-finding")
    weights = entry.weights.bundled_dir / "model.safetensors"
    assert sha256_file(weights) == entry.sha256
    assert weights.stat().st_size < 12e6
    spec = model.spec
    assert spec.bands == BANDS and spec.size == 64 and spec.pixel_scale == 0.2 and spec.flux_unit == "nJy"
    assert model.config.outputs == ("p_lens",)
    assert {"sim-lsst-heldout", "sim-lsst-shifted"} <= set(entry.config.metrics)


def test_model_hooks(model, heldout):
    x = torch.from_numpy(heldout[0][:4])
    with torch.no_grad():
        z = model.preprocess(x)
        logit = model(z)
        feats = model.forward_features(z)
    assert logit.shape == (4,) and feats.shape == (4, 256)
    np.testing.assert_allclose(model.postprocess(logit)["p_lens"], torch.sigmoid(logit).numpy())
    outs = torch.tensor([[0.0, 4.0], [-10.0, 4.0]])  # probabilities (0.5, ~0) and equal
    comb = torch.sigmoid(model.combine_tta(outs))
    np.testing.assert_allclose(comb.numpy(), [0.25 + 0.5 * torch.sigmoid(torch.tensor(-10.0)).item(),
                                              torch.sigmoid(torch.tensor(4.0)).item()], rtol=1e-5)


def test_training_recipe_smoke(tmp_path):
    from astrozoo.tasks.lens_finding.train import build_config, train, train_config

    x, y, _ = simulate(48, 99)
    config = build_config(0, arch_kwargs={"backbone": "resnet10t", "pretrained": False,
                                          "channels": [8, 16, 32, 64], "stem_width": 8})
    res = train(x[:32], y[:32], x[32:], y[32:], out=tmp_path, config=config,
                train_cfg=train_config(epochs=1, batch_size=8, max_steps=3), log=lambda m: None)
    assert res.steps == 3 and 0 <= res.best <= 1
    reloaded = astrozoo.load(tmp_path)
    assert reloaded.config.arch_kwargs["channels"] == [8, 16, 32, 64]
    assert reloaded.spec.bands == BANDS
    assert reloaded.config.training["train_config"]["monitor"] == "auroc"


def test_fine_tuning_starts_from_the_shipped_weights(tmp_path):
    from astrozoo.tasks.lens_finding.train import train, train_config

    shipped = astrozoo.load("lens-finding")
    x, y, _ = simulate(40, 7)
    res = train(x[:32], y[:32], x[32:], y[32:], out=tmp_path, model=astrozoo.load("lens-finding"),
                train_cfg=train_config(epochs=1, batch_size=8, max_steps=2, lr=1e-4),
                log=lambda m: None)
    tuned = astrozoo.load(tmp_path)
    assert res.steps == 2 and tuned.config.name == shipped.name
    tuned_params = dict(tuned.named_parameters())
    deltas = [(p.float() - tuned_params[k].float()).abs().max().item()
              for k, p in shipped.named_parameters()]
    # a few small steps from the shipped weights: changed, but nowhere near a fresh init
    # (BatchNorm running statistics are buffers and move with any batch, so they are left out)
    assert 0 < max(deltas) < 0.05
    assert res.best > 0.8
