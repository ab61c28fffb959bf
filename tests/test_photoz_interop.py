"""The photo-z columns mean the model's PDF however they are read: the truncation is declared in
the Table's meta, `to_qp` gives qp exactly that PDF (and back), and the shipped mixtures put
almost no mass below zero, so a plain reading agrees."""

import numpy as np
import pytest
import qp
import torch
from astropy.table import Table

import astrozoo
from astrozoo.tasks.photoz.interop import TRUNCATION_META, from_qp, mass_below_zero, to_qp
from astrozoo.tasks.photoz.mdn import (mass_below_zero as torch_mass_below_zero, mdn_loss,
                                       mdn_nll, mixture_cdf, mixture_pdf, mixture_quantiles)
from astrozoo.tasks.photoz.sdss import load_sdss


@pytest.fixture
def mixtures():
    """Six mixtures, some with components well below zero (mass below 0 up to ~20 %)."""
    rng = np.random.default_rng(0)
    w = rng.random((6, 3))
    w /= w.sum(1, keepdims=True)
    return Table({"id": np.arange(100, 106), "mdn_weight": w,
                  "mdn_mu": rng.uniform(-0.1, 1.0, (6, 3)),
                  "mdn_sigma": rng.uniform(0.02, 0.3, (6, 3))})


def _params(t):
    return [np.asarray(t[c], float) for c in ("mdn_weight", "mdn_mu", "mdn_sigma")]


def test_to_qp_is_the_truncated_mixture_exactly(mixtures):
    w, mu, s = _params(mixtures)
    ens = to_qp(mixtures)
    z = np.linspace(-0.2, 2.0, 60)
    np.testing.assert_allclose(ens.pdf(z), mixture_pdf(w, mu, s, z), atol=1e-12)
    np.testing.assert_allclose(ens.cdf(z), mixture_cdf(w, mu, s, np.broadcast_to(z, (6, 60))),
                               atol=1e-12)
    q = np.array([0.025, 0.5, 0.975])
    np.testing.assert_allclose(ens.ppf(q), mixture_quantiles(w, mu, s, q), atol=1e-9)
    assert (ens.pdf(np.array([-0.05])) == 0).all()
    assert list(ens.ancil["id"]) == list(range(100, 106))
    # the plain reading differs by exactly the mass below zero
    plain = to_qp(mixtures, truncated=False)
    assert plain.gen_class.name == "mixmod"
    np.testing.assert_allclose(plain.cdf(np.array([0.0])).ravel(), mass_below_zero(mixtures),
                               atol=1e-12)
    assert mass_below_zero(mixtures).max() > 0.05  # the test would see a missing truncation


def test_to_qp_round_trips_through_a_qp_file(mixtures, tmp_path):
    ens = to_qp(mixtures)
    ens.write_to(str(tmp_path / "pz.hdf5"))
    back = qp.read(str(tmp_path / "pz.hdf5"))
    assert back.gen_class.name == "trunc_mixmod"
    z = np.linspace(0.0, 2.0, 41)
    np.testing.assert_allclose(back.pdf(z), ens.pdf(z), rtol=1e-6)  # stored as float32
    cols = from_qp(back)
    for c in ("mdn_weight", "mdn_mu", "mdn_sigma"):
        np.testing.assert_allclose(cols[c], mixtures[c], rtol=1e-6)
    with pytest.raises(ValueError, match="no mixture columns"):
        from_qp(qp.convert(ens, "interp", xvals=z))


def test_support_penalty_is_the_mass_below_zero():
    logits = torch.zeros(4, 2)
    mu = torch.tensor([[0.5, -0.2]] * 4)
    sigma = torch.tensor([[0.1, 0.1]] * 4)
    z = torch.full((4,), 0.5)
    below = torch_mass_below_zero(logits, mu, sigma)
    np.testing.assert_allclose(below.numpy(), 0.5 * (2.87e-7 + 0.97725), rtol=1e-3)
    loss = mdn_loss(logits, mu, sigma, z, support_weight=5.0)
    assert float(loss - mdn_nll(logits, mu, sigma, z)) == pytest.approx(5 * float(below[0]))


@pytest.fixture(scope="module")
def sdss_table():
    torch.set_num_threads(1)
    model = astrozoo.load("photoz-sdss")
    return model, model.predict(load_sdss("test")[:400], progress=False)


def test_shipped_model_declares_truncation_and_keeps_mass_on_support(sdss_table, tmp_path):
    model, table = sdss_table
    for key, value in TRUNCATION_META.items():
        assert table.meta[key] == value
    below = mass_below_zero(table)
    assert below.mean() <= 0.005, below.mean()
    # so both readings agree on the PIT
    z = np.asarray(load_sdss("test")[:400]["z_spec"], float)
    pit_t = to_qp(table).cdf(z[:, None]).ravel()  # (N, 1): each row at its own z
    pit_p = to_qp(table, truncated=False).cdf(z[:, None]).ravel()
    diff = np.abs(pit_t - pit_p)
    # the readings differ by b (1 - F) / (1 - b) for a row with mass b below zero: small on
    # average, bounded row by row (a rare row near z = 0 can keep a large b)
    assert np.all(diff <= below / (1 - below) + 1e-9)
    assert np.median(diff) < 1e-4 and np.quantile(diff, 0.95) < 0.01, (diff.mean(), diff.max())
    # the declaration survives a written catalogue
    out = model.predict(load_sdss("test")[:5], output=tmp_path / "pz.fits", progress=False,
                        read_back=True)
    assert Table.read(tmp_path / "pz.fits").meta["PZ_PDF"] == TRUNCATION_META["PZ_PDF"]
    assert out.meta["PZ_ZMIN"] == 0.0


def test_model_to_qp_predicts_and_converts(sdss_table):
    model, table = sdss_table
    ens = model.to_qp(table[:3])
    np.testing.assert_allclose(ens.ppf(np.array([0.5])).ravel(), table["z_median"][:3],
                               atol=2e-6)
