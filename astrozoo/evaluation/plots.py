"""Diagnostic plots of the benchmarks and cards (matplotlib, Agg backend): ROC curves, PIT
histograms, z_phot vs z_spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_roc", "plot_pit", "plot_zphot_zspec"]


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pit(pit_values, path: str | Path, title: str = "", bins: int = 20) -> Path:
    """Histogram of PIT values (density; flat at 1 when calibrated) saved as a PNG."""
    from .photoz import pit_ks

    plt = _figure()
    pit_values = np.asarray(pit_values)
    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=120)
    ax.hist(pit_values, bins=bins, range=(0, 1), density=True, color="C0", alpha=0.8)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set(xlabel="PIT", ylabel="density", xlim=(0, 1),
           title=f"{title}  KS = {pit_ks(pit_values):.3f}".strip())
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_zphot_zspec(z_spec, z_phot, path: str | Path, title: str = "", err=None) -> Path:
    """z_phot vs z_spec scatter with the 1:1 line and the |dz| = 0.15 outlier boundaries."""
    plt = _figure()
    z_spec, z_phot = np.asarray(z_spec), np.asarray(z_phot)
    from .photoz import OUTLIER_DZ, point_metrics

    pm = point_metrics(z_phot, z_spec)
    top = float(max(z_spec.max(), z_phot.max())) * 1.05
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    if err is None:
        ax.scatter(z_spec, z_phot, s=2, alpha=0.4, lw=0)
    else:
        ax.errorbar(z_spec, z_phot, yerr=err, fmt=".", ms=2, alpha=0.3, elinewidth=0.3)
    line = np.array([0, top])
    ax.plot(line, line, "k-", lw=0.8)
    for sgn in (1, -1):
        ax.plot(line, line + sgn * OUTLIER_DZ * (1 + line), "k:", lw=0.8)
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="z_spec", ylabel="z_phot", aspect="equal",
           title=(f"{title}\nsigma_MAD={pm['sigma_mad']:.4f} bias={pm['bias']:+.4f} "
                  f"out={pm['outlier_frac']:.2%}").strip())
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_roc(curves: dict, path: str | Path) -> Path:
    """ROC curves ``{label: (fpr, tpr, auroc)}``, linear and with a log false-positive axis."""
    plt = _figure()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, (fpr, tpr, area) in curves.items():
        label = f"{name} (AUROC {area:.4f})"
        ax1.plot(fpr, tpr, label=label)
        ax2.plot(np.maximum(fpr, 1e-4), tpr, label=label)  # FPR 0 (TPR0) at the left edge
    ax1.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax1.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    ax2.set(xscale="log", xlim=(1e-4, 1), xlabel="false-positive rate (log; 0 drawn at 1e-4)",
            ylabel="true-positive rate", title="low false-positive end")
    ax1.legend(loc="lower right", fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
