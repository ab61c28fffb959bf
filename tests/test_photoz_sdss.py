"""The shipped ``photoz-sdss`` model on the real SDSS test split, and its data and inputs."""

import numpy as np
import pytest
import torch

import astrozoo
from astrozoo.registry import default_model
from astrozoo.tasks.photoz.catalog_model import CatalogPhotoZ
from astrozoo.evaluation.photoz import photoz_metrics
from astrozoo.tasks.photoz.sdss import BANDS, load_sdss, model_inputs, split_of

ZGRID = np.linspace(0.0, 10.0, 20001)  # beyond the widest p(z) (odd photometry gets wide ones)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return astrozoo.load("photoz-sdss")


@pytest.fixture(scope="module")
def test_split():
    return load_sdss("test")


def catalog_rows(model, table):
    return model_inputs(table, model.spec)


@pytest.fixture(scope="module")
def prediction(model, test_split):
    return model.predict_batch(catalog_rows(model, test_split))


def test_split_is_fixed_by_row_index():
    t = load_sdss()
    assert len(t) == 10000 and list(t["id"][:7]) == list(range(7))
    assert list(split_of(range(6))) == ["test", "val", "train", "train", "train", "test"]
    assert [int((t["split"] == s).sum()) for s in ("train", "val", "test")] == [6000, 2000, 2000]
    assert (t["id"][t["split"] == "test"] % 5 == 0).all()
    # real spectroscopic redshifts and fluxes in nanomaggies (r ~ 14-18 mag)
    assert 0.01 < t["z_spec"].min() and t["z_spec"].max() < 0.6
    assert 14 < np.median(22.5 - 2.5 * np.log10(t["flux_r"])) < 18


def test_default_of_the_task(model):
    assert default_model("photo-z") == "photoz-sdss"
    assert isinstance(model, CatalogPhotoZ) and not model.training
    assert model.spec.kind == "catalog" and model.spec.bands == BANDS
    assert model.spec.flux_unit == "nanomaggy"


def test_shipped_model_beats_the_knn_level_on_the_test_split(model, test_split, prediction):
    """kNN on colours + r reaches sigma_MAD ~0.016 here; an untrained net is far worse."""
    z = test_split["z_spec"]
    m = photoz_metrics(z, prediction["z_median"], prediction["mdn_weight"], prediction["mdn_mu"],
                       prediction["mdn_sigma"], intervals=prediction)
    assert m["sigma_mad"] < 0.0145
    assert abs(m["bias"]) < 0.003 and m["outlier_frac"] < 0.01
    assert m["pit_ks"] < 0.06 and 0.62 < m["coverage68"] < 0.74
    recorded = model.config.metrics["sdss-kcorrect-test"]
    assert recorded["sigma_mad"] == pytest.approx(m["sigma_mad"], rel=1e-3)


def test_pdf_integrates_to_one_on_positive_z(model, test_split, prediction):
    rows = catalog_rows(model, test_split[:50])
    p = model.pdf(rows, ZGRID)
    assert p.shape == (50, len(ZGRID)) and (p >= 0).all()
    np.testing.assert_allclose(np.trapezoid(p, ZGRID, axis=1), 1.0, atol=1e-4)
    assert (model.pdf(rows, [-0.5, -1e-6]) == 0).all()
    assert (prediction["z_lo95"] >= 0).all()
    assert prediction["mdn_weight"].shape == prediction["mdn_mu"].shape == (len(test_split), 50)


def test_missing_and_negative_fluxes_are_handled(model, test_split):
    rows = catalog_rows(model, test_split[:4])
    c = len(BANDS)
    rows[0, 0] = -1.0                        # measured negative u flux: a luptitude, no NaN
    rows[1, 0] = np.nan                      # u not measured
    rows[2, 0 + c] = np.inf                  # ivar = 0 in SDSS: no usable measurement
    rows[3, c:2 * c] = 0.0                   # zero errors: every band unusable
    feats = model.preprocess(torch.from_numpy(rows))
    missing = feats[:, -c:]
    assert missing[:, 0].tolist() == [0.0, 1.0, 1.0, 1.0] and missing[3].sum() == c
    assert torch.isfinite(feats[0]).all() and torch.isnan(feats[1, 0])
    assert torch.isfinite(model.standardize(feats)).all()
    cols = model.predict_batch(rows)
    assert all(np.isfinite(v).all() for v in cols.values())


def test_a_missing_band_widens_but_keeps_the_estimate(model, test_split, prediction):
    """Trained with random bands removed, the model still works without the u band."""
    rows = catalog_rows(model, test_split)
    rows[:, [0, len(BANDS)]] = np.nan
    no_u = model.predict_batch(rows)
    z = test_split["z_spec"]
    assert photoz_metrics(z, no_u["z_median"])["sigma_mad"] < 0.02  # ~0.012 with all bands
    assert np.median(no_u["z_std"]) > np.median(prediction["z_std"])
