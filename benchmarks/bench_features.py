"""Benchmark of the bundled feature encoder: k-NN (k = 10) and linear-probe accuracy of its
embeddings on the five morphology classes of held-out simulations, against the same
architecture with random weights and the supervised morphology model's backbone (and DINOv2
when the Hub or a cache has it).

Simulates held-out cutouts with the morphology simulator (seeds disjoint from the SSL and the
morphology recipes), embeds them through the public API (`astrozoo.embed`), and writes the
metrics into the model's ``config.json`` and card, ``benchmarks/results/features.json`` and a
t-SNE map with thumbnails (``benchmarks/results/features_tsne.png``).

    python benchmarks/bench_features.py [--n 4000] [--n-probe 500] [--processes 2]
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
SEED = 9_700_000  # morphology: 1e5 (seed+1) + 5e4 + k and 7.1e6 / 8.1e6; SSL: 6.1e6 + ...
CHUNK = 500
GOALS = "10-NN accuracy >= 0.85 and >= random + 0.20; linear probe on 500 labels within 0.05 of the supervised backbone"


def _chunk(args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from astrozoo.tasks.morphology.simulate import simulate

    seed, n = args
    x, y, _ = simulate(n, seed)
    return x, y[:, 0].astype(int)


def simulate_set(n: int, processes: int):
    jobs = [(SEED + k, min(CHUNK, n - k * CHUNK)) for k in range(-(-n // CHUNK))]
    with ProcessPoolExecutor(processes) as pool:
        parts = list(pool.map(_chunk, jobs))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def format_metrics(results: dict, n: int, n_probe: int) -> str:
    lines = [f"Embeddings of {n} held-out simulated cutouts (five morphology classes, 20 % each; "
             f"`astrozoo.tasks.morphology.simulate` seeds {SEED}+):", "",
             "| encoder | dim | 10-NN accuracy | linear probe (500 labels) |", "| --- | ---: | ---: | ---: |"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['dim']} | {m['knn_accuracy']:.4f} | {m['linear_probe_accuracy']:.4f} |")
    ssl, rnd, sup = (results[k] for k in ("features-resnet-lsst (SimCLR, bundled)",
                                          "same architecture, random weights",
                                          "morphology-resnet-lsst backbone (supervised)"))
    ok = (ssl["knn_accuracy"] >= 0.85 and ssl["knn_accuracy"] >= rnd["knn_accuracy"] + 0.20
          and ssl["linear_probe_accuracy"] >= sup["linear_probe_accuracy"] - 0.05)
    lines += ["", f"10-NN: cosine, each half of the set classified from the other half (mean of "
                  f"both); linear probe: logistic regression on {n_probe} random labelled "
                  "embeddings (L2 strength by 5-fold cross-validation on them), tested on the rest.",
              f"Goals of the issue ({GOALS}): {'met' if ok else 'not met'} "
              f"(10-NN {ssl['knn_accuracy']:.3f} vs random {rnd['knn_accuracy']:.3f}; probe "
              f"{ssl['linear_probe_accuracy']:.3f} vs supervised {sup['linear_probe_accuracy']:.3f}).",
              f"Measured by `benchmarks/bench_features.py` on {time.strftime('%Y-%m-%d')}; map: "
              "`benchmarks/results/features_tsne.png`."]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--n-probe", type=int, default=500)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)

    import torch

    import astrozoo
    from astrozoo.embeddings import embedding_map
    from astrozoo.evaluation.features import embedding_metrics
    from astrozoo.evaluation.morphology import CLASSES
    from astrozoo.evaluation.report import record_metrics
    from astrozoo.exceptions import WeightsNotAvailableError
    from astrozoo.registry import get_entry
    from astrozoo.tasks.features.model import SSLEncoder

    torch.set_num_threads(a.processes)
    t = time.time()
    x, labels = simulate_set(a.n, a.processes)
    print(f"simulated {len(x)} cutouts in {time.time() - t:.0f} s", flush=True)
    ssl = astrozoo.load("features")
    torch.manual_seed(0)
    encoders = {"features-resnet-lsst (SimCLR, bundled)": ssl,
                "same architecture, random weights": SSLEncoder(ssl.config).eval(),
                "morphology-resnet-lsst backbone (supervised)": astrozoo.load("morphology")}
    try:
        encoders["dinov2-small (Meta, natural images)"] = astrozoo.load("dinov2-small")
    except WeightsNotAvailableError as e:
        print(f"dinov2-small not measured: {str(e).splitlines()[0]}")
    results, embeddings = {}, {}
    for name, model in encoders.items():
        t = time.time()
        emb = astrozoo.embed(model, x, bands=["g", "r", "i"], unit="nJy", batch_size=256,
                             progress=False)
        m = embedding_metrics(emb, labels, n_probe=a.n_probe)
        results[name] = {**{k: round(v, 5) if isinstance(v, float) else v for k, v in m.items()},
                         "dim": int(emb.shape[1]), "seconds": round(time.time() - t, 1)}
        embeddings[name] = emb
        print(name, json.dumps(results[name]), flush=True)
    out = ROOT / "benchmarks" / "results"
    sub = np.random.default_rng(0).choice(len(x), min(2000, len(x)), replace=False)
    embedding_map(embeddings["features-resnet-lsst (SimCLR, bundled)"][sub], x[sub],
                  out / "features_tsne.png", labels=np.array(CLASSES)[labels[sub]], n_thumbnails=100,
                  zoom=0.6)
    text = format_metrics(results, len(x), a.n_probe)
    print(text)
    if a.no_record:
        return
    (out / "features.json").write_text(json.dumps(results, indent=1) + "\n")
    key = "features-resnet-lsst (SimCLR, bundled)"
    metrics = {"sim-lsst-morphology-heldout": {
        "knn_accuracy": results[key]["knn_accuracy"],
        "linear_probe_accuracy": results[key]["linear_probe_accuracy"],
        "knn_accuracy_random_weights": results["same architecture, random weights"]["knn_accuracy"],
        "linear_probe_accuracy_supervised": results["morphology-resnet-lsst backbone (supervised)"]["linear_probe_accuracy"],
        "n": len(x)}}
    record_metrics(get_entry("features-resnet-lsst").weights.bundled_dir, metrics, text)
    print("wrote metrics to the model's config and card")


if __name__ == "__main__":
    main()
