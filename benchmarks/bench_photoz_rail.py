"""``photoz-sdss`` scored by LSST DESC's own tools: its p(z) as a qp ensemble
(`astrozoo.tasks.photoz.interop.to_qp`) through qp's PIT metrics and RAIL's CDE loss and point
statistics (pz-rail-base), next to astrozoo's metrics on the same SDSS test split.

Two readings of the same ``mdn_*`` columns: ``trunc_mixmod`` (the model's PDF, truncated at
z = 0) and qp's plain ``mixmod`` (what a reader without astrozoo gets). The recipe's loss keeps
the mixture's mass below zero negligible, so both should agree.

Run: ``pip install 'astrozoo[rail]' && python benchmarks/bench_photoz_rail.py`` (under a
minute). Writes the card's ``rail`` section and ``benchmarks/results/photoz_rail.json``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import qp
import torch
from qp.metrics.pit import PIT
from rail.evaluation.metrics.cdeloss import CDELoss
from rail.evaluation.metrics.pointestimates import (PointBias, PointOutlierRate, PointSigmaIQR,
                                                    PointSigmaMAD)

import astrozoo
from astrozoo.evaluation.photoz import photoz_metrics
from astrozoo.evaluation.report import record_section
from astrozoo.registry import get_entry
from astrozoo.tasks.photoz.interop import mass_below_zero, to_qp
from astrozoo.tasks.photoz.sdss import load_sdss

NAME = "photoz-sdss"
REPO = Path(__file__).resolve().parents[1]
ZGRID = np.linspace(0.0, 1.5, 1501)  # CDE loss grid: far beyond the sample's z < 0.6


def rail_metrics(ens, z, z_point) -> dict[str, float]:
    """qp's PIT statistics and RAIL's CDE loss and point statistics."""
    pit = PIT(ens, z)
    m = {"pit_ks": float(pit.evaluate_PIT_KS().statistic),
         "pit_cvm": float(pit.evaluate_PIT_CvM().statistic),
         "pit_ad": float(pit.evaluate_PIT_anderson_ksamp().statistic),
         "pit_outlier_rate": float(pit.evaluate_PIT_outlier_rate()),
         "cde_loss": float(CDELoss(ens, ZGRID, z).evaluate().statistic)}
    for key, cls in (("bias", PointBias), ("sigma_mad", PointSigmaMAD),
                     ("sigma_iqr", PointSigmaIQR), ("outlier_frac_desc", PointOutlierRate)):
        m[key] = float(cls(z_point, z).evaluate())
    return m


def main() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", "Parameter `variant`", UserWarning)  # qp's scipy call
    test = load_sdss("test")
    model = astrozoo.load(NAME)
    table = model.predict(test, batch_size=1024, progress=False)
    z, z_med = np.asarray(test["z_spec"], float), np.asarray(table["z_median"], float)
    own = photoz_metrics(z, z_med, table["mdn_weight"], table["mdn_mu"], table["mdn_sigma"],
                         intervals=table)
    below = mass_below_zero(table)
    runs = {"astrozoo": own,
            "RAIL, trunc_mixmod": rail_metrics(to_qp(table), z, z_med),
            "RAIL, plain mixmod": rail_metrics(to_qp(table, truncated=False), z, z_med)}
    rows = [("PIT KS", "pit_ks", "{:.4f}"), ("PIT CvM", "pit_cvm", "{:.4f}"),
            ("PIT AD", "pit_ad", "{:.3f}"), ("PIT outlier rate", "pit_outlier_rate", "{:.4f}"),
            ("CDE loss", "cde_loss", "{:.3f}"), ("CRPS", "crps", "{:.4f}"),
            ("bias", "bias", "{:+.4f}"), ("sigma_MAD", "sigma_mad", "{:.4f}"),
            ("sigma_IQR", "sigma_iqr", "{:.4f}"),
            ("outliers, LSST-DESC rule (abs(dz) > max(0.06, 3 sigma_IQR))", "outlier_frac_desc",
             "{:.4f}"), ("outliers abs(dz) > 0.15", "outlier_frac", "{:.4f}")]
    head = "| metric | " + " | ".join(runs) + " |"
    lines = [f"Measured by `python benchmarks/bench_photoz_rail.py` on the {len(test)} SDSS test "
             f"galaxies: the p(z) as qp ensembles through qp {qp.__version__}'s `PIT` "
             f"(KS, CvM, Anderson-Darling, outlier rate) and pz-rail-base's `CDELoss` and point "
             f"statistics (on `z_median`), next to `astrozoo.evaluation.photoz`. Blank: not "
             f"defined by that tool.", "", head, "|" + " --- |" * (len(runs) + 1)]
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt.format(r[key]) if key in r else ""
                                                 for r in runs.values()) + " |")
    lines += ["", f"Mass the columns put below z = 0 when read as a plain mixture: mean "
              f"{below.mean():.2%}, 99th percentile {np.quantile(below, 0.99):.2%}, max "
              f"{below.max():.2%}. The Table's `meta` declares the truncation (`PZ_PDF`, "
              f"`PZ_ZMIN`)."]
    section = "\n".join(lines)
    print(section)
    out = REPO / "benchmarks" / "results" / "photoz_rail.json"
    out.write_text(json.dumps({"mass_below_zero_mean": float(below.mean()),
                               **{k: {m: float(v) for m, v in r.items()}
                                  for k, r in runs.items()}}, indent=1) + "\n")
    record_section(get_entry(NAME).weights.bundled_dir, "rail", section)


if __name__ == "__main__":
    main()
