"""The truncated Gaussian-mixture p(z) (astrozoo.tasks.photoz.mdn) and the photo-z metrics."""

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from astrozoo.evaluation.photoz import (crps, interval_coverage, photoz_metrics, pit, pit_ks,
                                        point_metrics)
from astrozoo.evaluation.plots import plot_pit, plot_zphot_zspec
from astrozoo.tasks.photoz.mdn import (MDNHead, MixturePhotoZMixin, mdn_nll, mixture_cdf,
                                       mixture_moments, mixture_pdf, mixture_quantiles,
                                       mixture_summary, pack, unpack)

ZGRID = np.linspace(0.0, 3.0, 60001)


@pytest.fixture
def mixture():
    """Random 4-component mixtures, some with components centred below z = 0."""
    rng = np.random.default_rng(0)
    n, k = 50, 4
    return (rng.dirichlet(np.ones(k), n), rng.normal(0.15, 0.2, (n, k)),
            rng.uniform(0.01, 0.2, (n, k)))


def test_head_gives_positive_widths_and_packs():
    head = MDNHead(8, 3)
    logits, mu, sigma = head(torch.randn(5, 8) * 100)
    assert logits.shape == mu.shape == sigma.shape == (5, 3)
    assert (sigma >= head.sigma_floor).all()
    raw = pack(logits, mu, sigma)
    assert raw.shape == (5, 9)
    assert all(torch.equal(a, b) for a, b in zip(unpack(raw), (logits, mu, sigma)))


def test_pdf_integrates_to_one_above_zero_and_vanishes_below(mixture):
    w, mu, s = mixture
    p = mixture_pdf(w, mu, s, ZGRID)
    np.testing.assert_allclose(np.trapezoid(p, ZGRID, axis=1), 1.0, atol=1e-6)
    assert (mixture_pdf(w, mu, s, [-1.0, -1e-9]) == 0).all()
    # truncation renormalises: a component centred at 0 has twice its untruncated density
    np.testing.assert_allclose(mixture_pdf([[1.0]], [[0.0]], [[0.1]], [0.05]),
                               2 * stats.norm(0, 0.1).pdf(0.05))


def test_nll_is_minus_log_pdf(mixture):
    w, mu, s = mixture
    z = np.random.default_rng(1).uniform(0, 1, len(w))
    nll = mdn_nll(torch.tensor(np.log(w)) + 3.0, torch.tensor(mu), torch.tensor(s),
                  torch.tensor(z)).item()  # logits need not be normalised
    dens = [mixture_pdf(w[i:i + 1], mu[i:i + 1], s[i:i + 1], [z[i]])[0, 0] for i in range(len(z))]
    assert nll == pytest.approx(-np.mean(np.log(dens)), rel=1e-10)
    # a component far below zero keeps the loss finite (log_ndtr, not log(Phi))
    far = mdn_nll(torch.zeros(1, 1), torch.tensor([[-3.0]]), torch.tensor([[0.05]]),
                  torch.tensor([0.01]))
    assert torch.isfinite(far)


def test_cdf_quantiles_and_moments_agree_with_numerical_integration(mixture):
    w, mu, s = mixture
    p = mixture_pdf(w, mu, s, ZGRID)
    cum = integrate.cumulative_trapezoid(p, ZGRID, axis=1, initial=0)
    np.testing.assert_allclose(mixture_cdf(w, mu, s, ZGRID[None, ::100]), cum[:, ::100], atol=1e-6)
    q = mixture_quantiles(w, mu, s, [0.025, 0.5, 0.975])
    np.testing.assert_allclose(mixture_cdf(w, mu, s, q),
                               np.broadcast_to([0.025, 0.5, 0.975], q.shape), atol=1e-9)
    mean, std = mixture_moments(w, mu, s)
    np.testing.assert_allclose(mean, np.trapezoid(p * ZGRID, ZGRID, axis=1), atol=1e-6)
    var = np.trapezoid(p * (ZGRID - mean[:, None]) ** 2, ZGRID, axis=1)
    np.testing.assert_allclose(std, np.sqrt(var), atol=1e-6)


def test_summary_columns(mixture):
    w, mu, s = mixture
    cols = mixture_summary(w, mu, s)
    assert list(cols) == ["z_mean", "z_median", "z_mode", "z_std", "z_lo68", "z_hi68", "z_lo95",
                          "z_hi95"]
    assert all(c.dtype == np.float32 and c.shape == (len(w),) for c in cols.values())
    assert (0 <= cols["z_lo95"]).all()
    assert (cols["z_lo95"] <= cols["z_lo68"]).all() and (cols["z_lo68"] <= cols["z_median"]).all()
    assert (cols["z_median"] <= cols["z_hi68"]).all() and (cols["z_hi68"] <= cols["z_hi95"]).all()
    p = mixture_pdf(w, mu, s, ZGRID)
    np.testing.assert_allclose(cols["z_mode"], ZGRID[p.argmax(1)], atol=1e-4)


class _Toy(MixturePhotoZMixin, torch.nn.Module):
    def preprocess(self, x):
        return x

    def forward(self, x):
        return x


def test_postprocess_tta_and_pdf(mixture):
    w, mu, s = mixture
    toy = _Toy()
    raw = pack(*(torch.tensor(a) for a in (np.log(w), mu, s)))
    cols = toy.postprocess(raw)
    assert {"mdn_weight", "mdn_mu", "mdn_sigma", "z_median"} <= set(cols)
    assert cols["mdn_weight"].shape == (len(w), w.shape[1]) and cols["mdn_mu"].dtype == np.float32
    np.testing.assert_allclose(cols["mdn_weight"].sum(1), 1, rtol=1e-6)
    # TTA: the combined mixture is the average of the T densities, not of the parameters
    shifted = pack(*(torch.tensor(a) for a in (np.log(w), mu + 0.3, s)))
    both = toy.combine_tta(torch.stack([raw, shifted]))
    assert both.shape == (len(w), 6 * w.shape[1])
    grid = ZGRID[::20]
    expected = 0.5 * (mixture_pdf(w, mu, s, grid) + mixture_pdf(w, mu + 0.3, s, grid))
    np.testing.assert_allclose(toy.pdf(both, grid), expected, rtol=1e-4, atol=1e-6)  # float32


def test_point_metrics_by_hand():
    zs = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    zp = zs + np.array([0.0, 0.011, -0.013, 0.5, 0.0]) * (1 + zs)
    m = point_metrics(zp, zs)
    assert m["bias"] == pytest.approx(0.0)
    assert m["sigma_mad"] == pytest.approx(1.4826 * 0.011)
    assert m["outlier_frac"] == pytest.approx(0.2)
    assert m["sigma_iqr"] == pytest.approx(0.011 / 1.349)
    assert m["outlier_frac_desc"] == pytest.approx(0.2)  # |dz| > 0.06 rules out only the 0.5


def test_calibrated_gaussians_give_uniform_pit_and_exact_crps():
    rng = np.random.default_rng(2)
    n = 2000
    zs = rng.uniform(1.0, 2.0, n)          # far above 0: truncation is negligible
    s = rng.uniform(0.01, 0.05, n)
    mu = zs + rng.normal(size=n) * s      # z_s is a draw from each predicted N(mu, s)
    w, mu2, s2 = np.ones((n, 1)), mu[:, None], s[:, None]
    assert pit_ks(pit(zs, w, mu2, s2)) < 0.03
    x = (zs - mu) / s
    exact = s * (x * (2 * stats.norm.cdf(x) - 1) + 2 * stats.norm.pdf(x) - 1 / np.sqrt(np.pi))
    np.testing.assert_allclose(crps(zs, w, mu2, s2), exact, atol=1e-6)
    m = photoz_metrics(zs, mu, w, mu2, s2)
    assert abs(m["coverage68"] - 0.6827) < 0.03 and abs(m["coverage95"] - 0.9545) < 0.015
    # overconfident p(z) fails the calibration metrics
    bad = photoz_metrics(zs, mu, w, mu2, s2 / 3)
    assert bad["pit_ks"] > 0.2 and bad["coverage68"] < 0.4
    assert interval_coverage([0.1, 0.5], [0.0, 0.0], [0.2, 0.2]) == 0.5


def test_plots_are_written(tmp_path):
    rng = np.random.default_rng(3)
    zs = rng.uniform(0, 0.5, 200)
    assert plot_pit(rng.uniform(size=200), tmp_path / "pit.png").stat().st_size > 1000
    assert plot_zphot_zspec(zs, zs + 0.01, tmp_path / "zz.png").stat().st_size > 1000
