"""Normalisation presets (astrozoo.preprocessing.normalize) give the documented values."""

import numpy as np
import pytest

import torch  # noqa: E402

from astrozoo.preprocessing.normalize import normalize, robust_sky_sigma  # noqa: E402


def noise(b=4, c=3, n=64, sigma=2.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 5.0 + sigma * torch.randn(b, c, n, n, generator=g)


def test_robust_sky_sigma_of_gaussian_noise():
    s = robust_sky_sigma(noise())
    assert s.shape == (4, 3, 1, 1)
    np.testing.assert_allclose(s.numpy(), 2.5, rtol=0.05)


def test_asinh_of_pure_noise_has_sigma_one_over_softening():
    x = noise() - 5.0  # sky-subtracted noise: asinh(x / (3 sigma)) ~ x / (3 sigma)
    y = normalize(x, "asinh", softening=3.0)
    np.testing.assert_allclose(robust_sky_sigma(y).numpy(), 1 / 3.0, rtol=0.06)
    # a bright source is compressed logarithmically: asinh(v) ~ log(2 v)
    x[0, 0, 32, 32] = 1e4 * 2.5
    y = normalize(x, "asinh", softening=3.0)
    beta = 3.0 * robust_sky_sigma(x)[0, 0, 0, 0]
    np.testing.assert_allclose(y[0, 0, 32, 32].item(), np.log(2 * 2.5e4 / beta.item()), rtol=1e-4)


def test_robust_standardisation_median_zero_mad_sigma_one():
    y = normalize(noise(), "robust")
    med = y.flatten(-2).median(dim=-1).values
    np.testing.assert_allclose(med.numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(robust_sky_sigma(y).numpy(), 1.0, rtol=1e-4)


def test_percentile_clip_range():
    x = torch.arange(1000.0).reshape(1, 1, 25, 40)
    y = normalize(x, "percentile", low=1.0, high=99.0)
    assert y.min() == 0 and y.max() == 1
    q = torch.quantile(x.flatten(), torch.tensor([0.01, 0.99]))
    np.testing.assert_allclose(y[0, 0, 12, 20].item(), ((500 - q[0]) / (q[1] - q[0])).item(),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize(x, "zscale")


@pytest.mark.parametrize("preset", ["asinh", "robust", "percentile"])
def test_constant_band_stays_finite(preset):
    x = torch.full((2, 3, 16, 16), 5.0)
    x[1] = 0.0
    assert torch.isfinite(normalize(x, preset)).all()


@pytest.mark.parametrize("preset, kwargs", [("asinh", {}), ("asinh", {"sky_sigma": [1.0, 2.0]}),
                                            ("robust", {}), ("percentile", {}),
                                            ("identity", {})])
def test_scale_free_claim_is_true(preset, kwargs):
    """InputSpec.scale_free (which decides whether uncalibrated inputs are flagged) says what
    the preset does: output unchanged when every flux is multiplied by a constant."""
    from astrozoo.config import InputSpec

    x = noise(seed=3)[:, :2] + 5.0
    same = torch.allclose(normalize(x * 37.0, preset, **kwargs), normalize(x, preset, **kwargs),
                          rtol=1e-4, atol=1e-5)
    spec = InputSpec(bands=("g", "r"), size=x.shape[-1], pixel_scale=0.2, normalization=preset,
                     normalization_kwargs=kwargs)
    assert spec.scale_free == same
