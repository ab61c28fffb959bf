"""``photoz-lsst``: the LSST-like simulator and the shipped image photo-z model.

The quality test simulates a small held-out set with its own seed (never used by the recipe or
the benchmark) and asserts thresholds an untrained or broken model cannot meet.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import astrozoo
from astrozoo.hub import sha256_file
from astrozoo.registry import BUNDLED_ROOT
from astrozoo.evaluation.photoz import photoz_metrics
from astrozoo.tasks.photoz import simulate_lsst as sim
from astrozoo.tasks.photoz.mdn import mixture_pdf
from astrozoo.tasks.photoz.train_lsst import APERTURE_RADII, aperture_fluxes

WEIGHTS = BUNDLED_ROOT / "photoz-lsst"
TEST_SEED = 424242


@pytest.fixture(scope="module")
def heldout():
    return sim.simulate(400, TEST_SEED)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return astrozoo.load(WEIGHTS)


@pytest.fixture(scope="module")
def columns(model, heldout):
    return model.predict_batch(heldout["images"])


def test_simulator_is_deterministic_and_in_njy():
    a, b = sim.simulate(20, 7), sim.simulate(20, 7)
    np.testing.assert_array_equal(a["images"], b["images"])
    assert a["images"].shape == (20, 6, 64, 64) and a["images"].dtype == np.float32
    assert not np.array_equal(a["images"], sim.simulate(20, 8)["images"])
    # Stamp sums recover the i-band flux of the drawn magnitude (the preset's zero point).
    i = sim.BANDS.index("i")
    ratio = a["images"][:, i].sum((1, 2)) / sim.SURVEY.flux(a["i_mag"])
    assert 0.9 < np.median(ratio) < 1.05


def test_simulator_noise_matches_lsst_depth():
    d = sim.simulate(30, 11)
    corners = np.concatenate([d["images"][..., :8, :8], d["images"][..., -8:, -8:]], axis=-1)
    measured = corners.std(axis=(0, 2, 3))
    np.testing.assert_allclose(measured, sim.SURVEY.sky_sigma(sim.BANDS), rtol=0.05)


def test_one_noise_model_for_every_lsst_simulator():
    """Both simulators draw their noise from the same survey preset."""
    from astrozoo.tasks.lens_finding import simulate as lens_sim

    assert lens_sim.SURVEY is sim.SURVEY


def test_aperture_fluxes_match_photutils():
    from photutils.aperture import CircularAperture, aperture_photometry

    d = sim.simulate(3, 5)
    phot = aperture_fluxes(d["images"])
    img = d["images"][1, 3]
    for j, r in enumerate(APERTURE_RADII):
        ref = aperture_photometry(img, CircularAperture((31.5, 31.5), r))["aperture_sum"][0]
        assert phot[1, 3, j] == pytest.approx(ref, rel=1e-5)


def test_bundled_files_and_spec(model):
    assert model.config.weights_sha256 == sha256_file(WEIGHTS / "model.safetensors")
    assert (WEIGHTS / "model.safetensors").stat().st_size < 12e6
    s = model.spec
    assert s.bands == sim.BANDS and s.size == 64 and s.pixel_scale == 0.2 and s.flux_unit == "nJy"
    assert model.task == "photo-z" and "lsst-sims-test" in model.config.metrics


def test_output_columns_are_consistent(columns):
    for c in ("z_mean", "z_median", "z_mode", "z_std", "z_lo68", "z_hi68", "z_lo95", "z_hi95"):
        assert columns[c].shape == (400,) and np.isfinite(columns[c]).all()
    assert columns["mdn_weight"].shape == columns["mdn_mu"].shape == (400, 5)
    np.testing.assert_allclose(columns["mdn_weight"].sum(1), 1, atol=1e-5)
    assert (columns["z_lo95"] >= 0).all()
    order = [columns[c] for c in ("z_lo95", "z_lo68", "z_median", "z_hi68", "z_hi95")]
    assert all((lo <= hi + 1e-6).all() for lo, hi in zip(order, order[1:]))


def test_quality_on_heldout_sims(columns, heldout):
    # An untrained network gives sigma_MAD 0.22 and 57% outliers on this set; trained: 0.035, 2%.
    m = photoz_metrics(heldout["z"], columns["z_median"], columns["mdn_weight"],
                       columns["mdn_mu"], columns["mdn_sigma"], intervals=columns)
    assert m["sigma_mad"] < 0.045, m
    assert abs(m["bias"]) < 0.01, m
    assert m["outlier_frac"] < 0.06, m
    assert 0.58 <= m["coverage68"] <= 0.78, m
    assert 0.90 <= m["coverage95"] <= 0.99, m
    assert m["pit_ks"] < 0.1, m


def test_pdf_integrates_to_one_on_nonnegative_z(model, heldout):
    zgrid = np.linspace(-0.5, 6.0, 65001)
    p = model.pdf(heldout["images"][:64], zgrid)
    assert p.shape == (64, zgrid.size) and (p >= 0).all()
    assert (p[:, zgrid < 0] == 0).all()
    np.testing.assert_allclose(np.trapezoid(p, zgrid, axis=1), 1.0, atol=1e-3)


def test_tta_concatenates_mixtures(model, heldout):
    x = model.preprocess(torch.from_numpy(np.asarray(heldout["images"][:8])))
    with torch.no_grad():
        raws = torch.stack([model(x), model(torch.rot90(x, 1, dims=(-2, -1)))])
    cols = model.postprocess(model.combine_tta(raws))
    assert cols["mdn_weight"].shape == (8, 10)
    zgrid = np.linspace(0, 6, 30001)
    both = mixture_pdf(cols["mdn_weight"], cols["mdn_mu"], cols["mdn_sigma"], zgrid)
    rotated = np.ascontiguousarray(np.rot90(heldout["images"][:8], 1, axes=(-2, -1)))
    single = [model.pdf(t, zgrid) for t in (heldout["images"][:8], rotated)]
    np.testing.assert_allclose(both, 0.5 * (single[0] + single[1]), rtol=1e-3, atol=1e-3)
