"""Morphology: simulator and truth definitions, metrics, the shipped model's skill on fresh
simulations, FITS inputs, calibration buffers, training smoke test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import astrozoo
from astrozoo.evaluation.morphology import (confusion_matrix, coverage,
                                            expected_calibration_error, macro_f1,
                                            morphology_metrics, nmad)
from astrozoo.hub import sha256_file
from astrozoo.registry import get_entry, get_task
from astrozoo.tasks.morphology.simulate import BANDS, CLASSES, SURVEY, scene_truth, simulate

MODEL = "morphology-resnet-lsst"


@pytest.fixture(scope="module")
def heldout():
    # seed far from the training (150000..) and benchmark (7.1e6, 8.1e6) seeds
    return simulate(200, 31_337)


@pytest.fixture(scope="module")
def model():
    return astrozoo.load("morphology")


@pytest.fixture(scope="module")
def scored(model, heldout):
    x, _, _ = heldout
    return model.predict(x, bands=list(BANDS), unit="nJy", batch_size=100, progress=False)


def test_simulator_is_seeded_and_defines_classes():
    x1, y1, m1 = simulate(10, 5)
    x2, y2, _ = simulate(10, 5)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.shape == (10, 3, 64, 64) and x1.dtype == np.float32 and y1.shape == (10, 3)
    x3, _, m3 = simulate(4, 5, shifted=True)
    assert set(m3["psf"]) == {"kolmogorov"} and not np.allclose(x1[:4], x3)
    for cls, lo, hi in [("smooth", 0.7, 1.0), ("disk", 0.0, 0.3), ("edge-on", 0.0, 0.15),
                        ("clumpy", 0.0, 0.15)]:
        _, y, m = simulate(6, 11, classes=(cls,))
        assert set(m["label"]) == {cls} and (y[:, 0] == CLASSES.index(cls)).all()
        assert ((y[:, 1] >= lo - 1e-6) & (y[:, 1] <= hi + 1e-6)).all(), cls
    _, _, m = simulate(6, 12, classes=("edge-on",))
    assert (m["inclination"] >= 80).all()
    _, _, m = simulate(6, 13, classes=("clumpy",))
    assert (m["knot_fraction"] >= 0.4).all()
    _, _, m = simulate(6, 14, classes=("merger",))
    assert (m["flux_ratio"] <= 4).all() and (m["separation"] >= 1.0).all()
    assert (m["separation"] <= 2 * np.maximum(m["hlr"], m["hlr_second"]) + 1e-9).all()


def test_half_light_radius_truth():
    from astrozoo.tasks.morphology.simulate import _disk, _sersic

    rng = np.random.default_rng(0)
    # a face-on exponential disk and a round Sersic centred on the cutout: r_half = hlr
    disk = _disk(1.3, 0.0, 0.0, 1000.0, (0.5, 0.2), 0.1)
    bt, r = scene_truth([disk], rng)
    assert bt == 0 and r == pytest.approx(1.3, rel=0.02)
    sersic = _sersic(4.0, 0.8, 1.0, 0.0, 1000.0, (1.0, 0.4))
    bt, r = scene_truth([sersic], rng)
    assert bt == 1 and r == pytest.approx(0.8, rel=0.02)
    # shifting the profile off centre makes the circular radius about the centre larger
    sersic.shift = np.array([1.0, 0.0])
    assert scene_truth([sersic], rng)[1] > 1.0


def test_simulator_noise_is_the_survey_preset():
    x, _, meta = simulate(8, 21, classes=("smooth",))
    w = 6
    corners = np.concatenate([x[:, :, :w, :w], x[:, :, :w, -w:], x[:, :, -w:, :w], x[:, :, -w:, -w:]], -1)
    sigma = np.diff(corners, axis=-1).reshape(8, 3, -1).std(-1) / np.sqrt(2)
    expected = SURVEY.sky_sigma(BANDS)[None] * np.asarray(meta["depth_factor"])[:, None]
    np.testing.assert_allclose(sigma.mean(0), expected.mean(0), rtol=0.15)


def test_metrics_definitions():
    cm = confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], 2)
    np.testing.assert_array_equal(cm, [[1, 1], [0, 2]])
    # F1: class 0 P=1 R=0.5 -> 2/3; class 1 P=2/3 R=1 -> 0.8
    assert macro_f1(cm) == pytest.approx((2 / 3 + 0.8) / 2)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    # bins: conf 0.9 (acc 1) and 0.6 (acc 0.5): 0.5 * 0.1 + 0.5 * 0.1
    assert expected_calibration_error(probs, [0, 0, 0, 1]) == pytest.approx(0.1)
    assert nmad([1, 1, 1, 1]) == 0 and nmad(np.array([-1.0, 0, 1])) == pytest.approx(1.4826)
    assert coverage([0, 0, 0, 0], [1, 1, 1, 1], [0.5, -0.5, 2, 0]) == 0.75


def test_shipped_model_classifies_and_measures(heldout, scored):
    x, y, meta = heldout
    required = get_task("morphology").output_columns(CLASSES)
    assert set(required) <= set(scored.colnames) and len(scored) == len(y)
    p = np.stack([np.asarray(scored[f"p_{c}"]) for c in CLASSES], 1)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    truth = {"label": meta["label"], "bulge_fraction": y[:, 1], "r_half_arcsec": y[:, 2]}
    m = morphology_metrics(truth, scored)
    # chance is 0.2; the shipped model reaches > 0.9 on large held-out sets
    assert m["accuracy"] > 0.75 and m["macro_f1"] > 0.7
    r = np.asarray(scored["r_half_arcsec"])
    assert np.corrcoef(np.log(r), np.log(y[:, 2]))[0, 1] > 0.9
    assert m["r_half_nmad"] < 0.2 and abs(m["r_half_bias"]) < 0.1
    assert 0.45 < m["r_half_coverage68"] < 0.9
    bt = np.asarray(scored["bulge_fraction"])
    assert ((bt >= 0) & (bt <= 1)).all() and np.corrcoef(bt, y[:, 1])[0, 1] > 0.8
    assert (np.asarray(scored["bulge_fraction_err"]) > 0).all()


def test_fits_inputs_match_arrays(model, heldout, scored, tmp_path):
    from astropy.io import fits

    from astrozoo.examples import DATA_DIR

    template = fits.open(DATA_DIR / "mef" / "obj00.fits")
    x = heldout[0]
    paths = []
    for i in range(4):
        hdus = [fits.PrimaryHDU()]
        for b, band in enumerate(BANDS):
            h = template[1].header.copy()
            h["EXTNAME"], h["FILTER"], h["BUNIT"] = band, band, "nJy"
            hdus.append(fits.ImageHDU(x[i, b], header=h))
        paths.append(tmp_path / f"gal{i}.fits")
        fits.HDUList(hdus).writeto(paths[-1])
    t = model.predict(paths, progress=False)
    assert list(t["label"]) == list(scored["label"][:4])
    np.testing.assert_allclose(t["r_half_arcsec"], scored["r_half_arcsec"][:4], rtol=1e-3)


def test_shipped_weights_registered_calibrated_and_small(model):
    entry = get_entry("morphology")
    assert entry.name == MODEL and MODEL in astrozoo.list_models("morphology")
    weights = entry.weights.bundled_dir / "model.safetensors"
    assert sha256_file(weights) == entry.sha256 and weights.stat().st_size < 12e6
    spec = model.spec
    assert spec.bands == BANDS and spec.size == 64 and spec.pixel_scale == 0.2 and spec.flux_unit == "nJy"
    assert model.config.labels == CLASSES
    # calibrated on the validation split: buffers stored with the weights
    assert float(model.temperature) != 1.0 and (model.err_scale > 0).all()
    assert model.config.training["calibration"]["temperature"] == pytest.approx(
        float(model.temperature), rel=1e-3)


def test_model_hooks(model, heldout):
    x = torch.from_numpy(heldout[0][:4])
    with torch.no_grad():
        z = model.preprocess(x)
        out = model(z)
        feats = model.forward_features(z)
    assert out.shape == (4, len(CLASSES) + 4) and feats.shape == (4, 256)
    # identical TTA copies combine to the same columns
    same = model.postprocess(model.combine_tta(out[None].repeat(8, 1, 1)))
    ref = model.postprocess(out)
    for c in ref:
        if c != "label":
            np.testing.assert_allclose(same[c], ref[c], rtol=1e-4, atol=1e-6)
    # temperature scaling: probabilities are softmax(logits / T)
    p = torch.softmax(out[:, :len(CLASSES)] / model.temperature, 1).numpy()
    np.testing.assert_allclose(ref["p_smooth"], p[:, 0], rtol=1e-5)


def test_training_recipe_smoke(tmp_path):
    from astrozoo.tasks.morphology.train import build_config, fit_temperature, train, train_config

    x, y, _ = simulate(40, 99)
    config = build_config(0, arch_kwargs={"backbone": "resnet10t", "pretrained": False,
                                          "channels": [8, 16, 32, 64], "stem_width": 8})
    res = train(x[:32], y[:32], x[32:], y[32:], out=tmp_path, config=config,
                train_cfg=train_config(epochs=1, batch_size=8, max_steps=3), log=lambda m: None)
    assert res.steps == 3 and res.calibration["temperature"] > 0
    reloaded = astrozoo.load(tmp_path)
    assert reloaded.config.arch_kwargs["channels"] == [8, 16, 32, 64]
    assert float(reloaded.temperature) == pytest.approx(res.calibration["temperature"], rel=1e-3)
    assert reloaded.config.training["train_config"]["monitor"] == "loss"
    # the temperature fit recovers a known temperature
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    labels = np.array([rng.choice(5, p=np.exp(l / 2) / np.exp(l / 2).sum()) for l in logits])
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.1)
