"""Diagnostic plots of the benchmarks and cards, saved as PNGs: ROC curves, PIT histograms,
z_phot vs z_spec. Thin wrappers of `astrozoo.plot`, which draws them."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_roc", "plot_pit", "plot_zphot_zspec"]


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Path(path)


def plot_pit(pit_values, path: str | Path, title: str = "", bins: int = 20) -> Path:
    """Histogram of PIT values (density; flat at 1 when calibrated) saved as a PNG."""
    from .. import plot

    return _save(plot.pit_histogram(pit_values, bins=bins, title=title, path=path), path)


def plot_zphot_zspec(z_spec, z_phot, path: str | Path, title: str = "", err=None) -> Path:
    """z_phot vs z_spec scatter with the 1:1 line and the |dz| = 0.15 outlier boundaries."""
    from .. import plot

    return _save(plot.zphot_vs_zspec(z_spec, z_phot, err=err, title=title, path=path), path)


def plot_roc(curves: dict, path: str | Path) -> Path:
    """ROC curves ``{label: (fpr, tpr, auroc)}``, linear and with a log false-positive axis."""
    from .. import plot

    return _save(plot.roc_curves(curves, path=path), path)
