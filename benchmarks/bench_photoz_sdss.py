"""Benchmark of ``photoz-sdss`` on the real SDSS test split, against a kNN baseline.

    python benchmarks/bench_photoz_sdss.py

Loads the shipped model by name, predicts the test split (row index % 5 == 0 of the kcorrect
file, never used in training or model selection), fits the baseline (scikit-learn k-nearest
neighbours on extinction-corrected colours + r magnitude, k chosen on the validation split) on
the same training rows, and prints both rows of metrics. Writes the model's metrics into the
bundled ``config.json`` (weights untouched), the card's metrics section
(``model_cards/photoz-sdss.md`` and the bundled ``README.md``) and two PNGs to
``benchmarks/results/``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import astrozoo
from astrozoo.evaluation.photoz import metrics_table, pdf_norm_max_err, photoz_metrics, pit
from astrozoo.evaluation.plots import plot_pit, plot_zphot_zspec
from astrozoo.evaluation.report import record_metrics
from astrozoo.registry import get_entry
from astrozoo.tasks.photoz.sdss import BANDS, load_sdss

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
NAME = "photoz-sdss"
DATASET = "sdss-kcorrect-test"
#: Point estimate scored by sigma_MAD, bias and outliers (chosen on the validation split).
POINT = "z_median"
GOALS = {"outlier_frac": "<= 0.50%", "bias": "within +-0.002", "pit_ks": "<= 0.05",
         "coverage68": "0.63-0.73"}


def knn_features(table) -> np.ndarray:
    """Extinction-corrected colours (u-g, g-r, r-i, i-z) and r magnitude (Pogson; the few
    non-positive u fluxes get u = 30, i.e. fainter than any detection)."""
    flux = np.stack([np.asarray(table[f"flux_{b}"], np.float64) for b in BANDS], 1)
    ext = np.stack([np.asarray(table[f"extinction_{b}"], np.float64) for b in BANDS], 1)
    mag = np.where(flux > 0, 22.5 - 2.5 * np.log10(np.clip(flux, 1e-3, None)), 30.0) - ext
    return np.column_stack([mag[:, :-1] - mag[:, 1:], mag[:, 2]])


def knn_baseline(train, val, test) -> tuple[np.ndarray, int]:
    """kNN test predictions, with k picked by validation sigma_MAD."""
    def fit(k):
        return make_pipeline(StandardScaler(), KNeighborsRegressor(k, weights="distance")).fit(
            knn_features(train), train["z_spec"])

    scores = {k: photoz_metrics(val["z_spec"], fit(k).predict(knn_features(val)))["sigma_mad"]
              for k in (5, 10, 20, 40, 80)}
    k = min(scores, key=scores.get)
    return fit(k).predict(knn_features(test)), k


def predict(model, table) -> dict:
    """Photo-z columns for a catalogue table through the public API."""
    cols = [f"{p}_{b}" for p in ("flux", "flux_err", "extinction") for b in BANDS]
    out = model.predict(table[["id", *cols]], batch_size=1024, progress=False)
    return {c: np.asarray(out[c]) for c in out.colnames}


def main() -> None:
    torch.set_num_threads(1)
    train, val, test = load_sdss("train"), load_sdss("val"), load_sdss("test")
    model = astrozoo.load(NAME)
    t0 = time.perf_counter()
    cols = predict(model, test)
    dt = time.perf_counter() - t0
    z = np.asarray(test["z_spec"])
    m = photoz_metrics(z, cols[POINT], cols["mdn_weight"], cols["mdn_mu"], cols["mdn_sigma"],
                       intervals=cols)
    # z <= 10 lies far beyond the widest p(z)
    m["pdf_norm_max_err"] = pdf_norm_max_err(cols["mdn_weight"], cols["mdn_mu"], cols["mdn_sigma"], 10.0)
    m["objects_per_s"] = len(test) / dt

    z_knn, k = knn_baseline(train, val, test)
    b = photoz_metrics(z, z_knn)
    m["sigma_mad_over_knn"] = m["sigma_mad"] / b["sigma_mad"]

    goal = {**GOALS, "sigma_mad": f"<= {0.9 * b['sigma_mad']:.4f} (0.9 x kNN)"}
    lines = [f"Test split: {len(test)} real SDSS galaxies (row index % 5 == 0 of the kcorrect "
             f"file), never used in training or model selection. Point estimate: `{POINT}`.", "",
             *metrics_table(NAME, m, f"kNN baseline (k={k})", b, goal)]
    lines += ["", f"sigma_MAD / kNN = {m['sigma_mad_over_knn']:.3f}. p(z) integrates to 1 on "
              f"z >= 0 to within {m['pdf_norm_max_err']:.1e} (trapezoid, 0 <= z <= 10); no "
              f"probability lies below z = 0 by construction. CPU inference (1 thread, through "
              f"`model.predict`): {m['objects_per_s']:,.0f} objects/s.",
              "", "Plots (in the repository): `benchmarks/results/photoz_sdss_pit.png` (PIT "
              "histogram), `benchmarks/results/photoz_sdss_zphot_zspec.png` and "
              "`photoz_sdss_knn_zphot_zspec.png` (z_phot vs z_spec)."]
    table = "\n".join(lines)
    print(table)

    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_pit(pit(z, cols["mdn_weight"], cols["mdn_mu"], cols["mdn_sigma"]),
             RESULTS / "photoz_sdss_pit.png", title=f"{NAME} test PIT")
    plot_zphot_zspec(z, cols[POINT], RESULTS / "photoz_sdss_zphot_zspec.png",
                     title=f"{NAME} test ({POINT})")
    plot_zphot_zspec(z, z_knn, RESULTS / "photoz_sdss_knn_zphot_zspec.png",
                     title=f"kNN baseline test (k={k})")

    keep = ("bias", "sigma_mad", "sigma_iqr", "outlier_frac", "outlier_frac_desc", "pit_ks",
            "crps", "coverage68", "coverage95", "sigma_mad_over_knn")
    record_metrics(get_entry(NAME).weights.bundled_dir, {DATASET: {key: m[key] for key in keep}},
                   table)

if __name__ == "__main__":
    main()
