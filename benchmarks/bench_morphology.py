"""Benchmark of the default morphology model on held-out simulations: accuracy, macro-F1, ECE,
confusion matrices, and NMAD / bias / 68 % coverage of the bulge fraction and half-light radius.

Simulates two sets with seeds disjoint from training (in-distribution, and shifted: Kolmogorov
PSFs, poorer seeing, noisier images), scores them with the shipped weights through
`ZooModel.predict`, and writes the metrics into the model's ``config.json`` (weights file
untouched), its bundled ``README.md``, the card source ``model_cards/<name>.md`` and
``benchmarks/results/morphology_confusion.png``.

    python benchmarks/bench_morphology.py [--n 5000] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 500
SETS = {  # name -> (base seed, shifted); training uses seeds 1e5 (seed + 1) + 5e4 + k
    "sim-lsst-heldout": (7_100_000, False),
    "sim-lsst-shifted": (8_100_000, True),
}
NAMES = {"sim-lsst-heldout": "in-distribution",
         "sim-lsst-shifted": "shifted (Kolmogorov PSF, poorer seeing, 1.4-2x noise)"}
GOALS = [("sim-lsst-heldout", "accuracy", ">=", 0.92), ("sim-lsst-heldout", "macro_f1", ">=", 0.90),
         ("sim-lsst-shifted", "accuracy", ">=", 0.85), ("sim-lsst-shifted", "macro_f1", ">=", 0.85),
         ("sim-lsst-heldout", "r_half_nmad", "<=", 0.10), ("sim-lsst-heldout", "ece", "<=", 0.03),
         ("sim-lsst-heldout", "r_half_coverage68", "in", (0.63, 0.73))]


def _simulate_chunk(args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from astrozoo.tasks.morphology.simulate import simulate

    seed, n, shifted = args
    x, y, _ = simulate(n, seed, shifted=shifted)
    return x, y


def simulate_set(base_seed: int, shifted: bool, n: int, processes: int, cache: Path | None):
    """Simulate `n` cutouts in chunks of `CHUNK` (seeds base_seed + k), in the data cache."""
    from astrozoo.training.cache import cached

    def build():
        jobs = [(base_seed + k, min(CHUNK, n - k * CHUNK), shifted) for k in range(-(-n // CHUNK))]
        with ProcessPoolExecutor(processes) as pool:
            parts = list(pool.map(_simulate_chunk, jobs))
        x, y = (np.concatenate(p) for p in zip(*parts))
        return {"x": x, "y": y}

    d = cached(f"morphology_bench_v1_{base_seed}_{n}", build, cache)
    return d["x"], d["y"]


def _ok(value, op, goal) -> bool:
    if op == ">=":
        return value >= goal
    if op == "<=":
        return value <= goal
    return goal[0] <= value <= goal[1]


def format_metrics(metrics: dict, confusions: dict) -> str:
    """Markdown of the metrics section of the card."""
    from astrozoo.evaluation.morphology import CLASSES

    lines = ["| held-out set | n | accuracy | macro-F1 | ECE | r_half NMAD | r_half bias | "
             "r_half 68% coverage | B/T NMAD | B/T 68% coverage |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k, m in metrics.items():
        lines.append(f"| {NAMES[k]} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                     f"{m['ece']:.4f} | {m['r_half_nmad']:.4f} | {m['r_half_bias']:+.4f} | "
                     f"{m['r_half_coverage68']:.3f} | {m['bulge_fraction_nmad']:.4f} | "
                     f"{m['bulge_fraction_coverage68']:.3f} |")
    lines += ["", "Recall per class:", "", "| held-out set | " + " | ".join(CLASSES) + " |",
              "| --- |" + " --- |" * len(CLASSES)]
    for k, m in metrics.items():
        lines.append(f"| {NAMES[k]} | " + " | ".join(f"{m[f'recall_{c}']:.3f}" for c in CLASSES) + " |")
    for k, cm in confusions.items():
        lines += ["", f"Confusion matrix, {NAMES[k]} (rows: true, columns: predicted):", "",
                  "| | " + " | ".join(CLASSES) + " |", "| --- |" + " --- |" * len(CLASSES)]
        lines += [f"| {c} | " + " | ".join(str(int(v)) for v in row) + " |"
                  for c, row in zip(CLASSES, cm)]
    lines += ["", "Goals of the issue: " + "; ".join(
        f"{NAMES[k].split(' ')[0]} {m} {op} {g if op != 'in' else f'{g[0]}-{g[1]}'} "
        f"({'met' if _ok(metrics[k][m], op, g) else 'not met'})" for k, m, op, g in GOALS) + ".",
        "B/T errors are absolute (B/T is often near 0), r_half errors fractional; see Evaluation. "
        f"Measured by `benchmarks/bench_morphology.py` on {time.strftime('%Y-%m-%d')}, without TTA. "
        "Confusion matrices: `benchmarks/results/morphology_confusion.png`."]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="morphology")
    p.add_argument("--n", type=int, default=5000, help="cutouts per held-out set")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--cache", type=Path, default=ROOT / "data_cache")
    a = p.parse_args(argv)

    import torch

    import astrozoo
    from astrozoo.evaluation.morphology import (CLASSES, confusion_matrix, morphology_metrics,
                                                plot_confusion)
    from astrozoo.evaluation.report import record_metrics
    from astrozoo.registry import get_entry
    from astrozoo.tasks.morphology.simulate import BANDS

    torch.set_num_threads(a.processes)
    model = astrozoo.load(a.model)
    metrics, confusions = {}, {}
    for name, (seed, shifted) in SETS.items():
        t = time.time()
        x, y = simulate_set(seed, shifted, a.n, a.processes, a.cache)
        t_sim = time.time() - t
        t = time.time()
        table = model.predict(x, bands=list(BANDS), unit="nJy", batch_size=256, progress=False)
        print(f"{name}: simulated {len(y)} in {t_sim:.0f} s, scored in {time.time() - t:.0f} s")
        truth = {"label": y[:, 0].astype(int), "bulge_fraction": y[:, 1], "r_half_arcsec": y[:, 2]}
        m = morphology_metrics(truth, table)
        metrics[name] = {k: round(v, 5) if isinstance(v, float) else v for k, v in m.items()}
        pred = np.array([CLASSES.index(str(v)) for v in table["label"]])
        confusions[name] = confusion_matrix(truth["label"], pred, len(CLASSES))
        print(json.dumps(metrics[name]))

    plot_confusion({NAMES[k].split(" (")[0]: cm for k, cm in confusions.items()},
                   ROOT / "benchmarks" / "results" / "morphology_confusion.png")
    entry = get_entry(a.model)
    record_metrics(entry.weights.bundled_dir, metrics, format_metrics(metrics, confusions))
    print(f"wrote metrics to {entry.weights.bundled_dir} and its card")


if __name__ == "__main__":
    main()
