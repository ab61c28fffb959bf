"""Transfer benchmark: the LSST-trained lens finder moved to DES with 100, 300 and 1,000 labels.

The target survey is the ``des`` preset (g, r, i, z; 0.263"/pixel; DES Y6 depth and seeing):
lenses and look-alikes from the lens simulator as DES would see them, 48x48 cutouts (the same
12.6" field as the LSST model's 64x64), seeds disjoint from every training set. For each number
of labels N and each seed (a different random labelled subset and training seed) it measures
AUROC on a large held-out DES set, through the public API (``predict`` on arrays with their
bands and pixel scale), for

- zero-shot: the shipped model, DES g, r, i resampled to its 0.2"/pixel (z dropped by name);
- linear probe: `astrozoo.transfer.linear_probe` (head on frozen features, bands adapted);
- fine-tuned: `astrozoo.finetune` with its defaults (all layers, layer decay 0.75, the model's
  0.2"/pixel: the input pipeline resamples the DES cutouts, so the backbone sees objects at the
  angular scale it learned);
- from scratch: the same architecture trained at DES's native 0.263"/pixel on the same N
  labels, and on 10 N.

Every trained variant gets the same schedule: batch 32, ``max(6, ceil(300 / steps per
epoch))`` epochs, no validation set (there are only N labels). Results go to
``benchmarks/results/transfer.json``, the README and the lens model card.

    python benchmarks/bench_transfer.py [--sizes 100 300 1000] [--seeds 0 1 2] [--n-test 4000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SURVEY, BANDS, SIZE = "des", ("g", "r", "i", "z"), 48
PIXEL_SCALE = 0.263
POOL_SEED, TEST_SEED = 9_100_000, 9_200_000  # disjoint from training (1e5 (seed + 1) + k)
CHUNK = 500
BATCH = 32


def _chunk(args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from astrozoo.tasks.lens_finding.simulate import simulate

    seed, n = args
    x, y, _ = simulate(n, seed, survey=SURVEY, bands=BANDS, size=SIZE)
    return x.astype(np.float16), y


def des_set(base_seed: int, n: int, processes: int):
    """`n` DES cutouts (float16 in the cache) and labels, simulated once."""
    from astrozoo.training.cache import cached

    def build():
        jobs = [(base_seed + k, min(CHUNK, n - k * CHUNK)) for k in range(-(-n // CHUNK))]
        with ProcessPoolExecutor(processes) as pool:
            parts = list(pool.map(_chunk, jobs))
        return {"x": np.concatenate([p[0] for p in parts]),
                "y": np.concatenate([p[1] for p in parts])}

    d = cached(f"lens_des_bench_v1_{base_seed}_{n}_{SIZE}", build)
    return d["x"], d["y"]


def epochs_for(n: int) -> int:
    return max(6, math.ceil(300 / max(n // BATCH, 1)))


def _auroc(model, x, y, **read) -> float:
    from astrozoo.evaluation.lens import auroc

    t = model.predict(x, progress=False, batch_size=512, **read)
    return auroc(y, np.asarray(t["p_lens"]))


def scratch(x, y, seed: int):
    """The lens finder's architecture trained from random weights on (x, y) at DES."""
    import torch

    from astrozoo.config import InputSpec
    from astrozoo.tasks.lens_finding.model import LensClassifier
    from astrozoo.tasks.lens_finding.train import _bce, build_config
    from astrozoo.training import TrainConfig, fit

    cfg = build_config(seed, name="lens-scratch-des")
    spec = InputSpec(kind="image", survey=SURVEY, bands=BANDS, pixel_scale=PIXEL_SCALE,
                     size=SIZE, flux_unit="nJy", normalization="asinh",
                     normalization_kwargs=dict(cfg.input_spec.normalization_kwargs))
    torch.manual_seed(seed)
    model = LensClassifier(cfg.replace(input_spec=spec))
    fit(model, (np.asarray(x, np.float32), np.asarray(y, np.float32)), loss=_bce,
        config=TrainConfig(epochs=epochs_for(len(x)), batch_size=BATCH, lr=2e-3,
                           weight_decay=0.05, augment="dihedral", seed=seed),
        progress=False, log=lambda m: None)
    return model


def run(sizes, seeds, n_test: int, processes: int, log=print) -> dict:
    import torch

    import astrozoo
    from astrozoo.transfer import linear_probe

    torch.set_num_threads(processes)
    pool_x, pool_y = des_set(POOL_SEED, 10 * max(sizes), processes)
    test_x, test_y = des_set(TEST_SEED, n_test, processes)
    test_x = np.asarray(test_x, np.float32)
    native = dict(bands=list(BANDS), pixel_scale=PIXEL_SCALE)
    resampled = dict(native, scale_max_rtol=0.5)  # stated: 0.263 -> 0.2"/pixel is resampled
    parent = astrozoo.load("lens-finding")
    t0 = time.time()
    res = {"zero_shot": _auroc(parent, test_x, test_y, **resampled),
           "n_test": int(len(test_y)), "test_lens_fraction": float(np.mean(test_y)),
           "sizes": list(sizes), "seeds": list(seeds), "points": []}
    log(f"zero-shot AUROC {res['zero_shot']:.4f} ({time.time() - t0:.0f} s)")
    for n in sizes:
        for seed in seeds:
            idx = np.random.default_rng(seed).permutation(len(pool_y))
            x = np.asarray(pool_x[np.sort(idx[:n])], np.float32)
            y = np.asarray(pool_y[np.sort(idx[:n])])
            point = {"n": n, "seed": seed, "epochs": epochs_for(n)}
            t = time.time()
            lp = linear_probe(parent, (x, y), bands=BANDS, survey=SURVEY, seed=seed,
                              read_options=resampled, log=lambda m: None)
            point["linear_probe"] = _auroc(lp, test_x, test_y, **resampled)
            ft = astrozoo.finetune(parent, (x, y), bands=BANDS, survey=SURVEY, seed=seed,
                                   epochs=epochs_for(n), batch_size=BATCH, read_options=resampled,
                                   progress=False, log=lambda m: None)
            point["finetuned"] = _auroc(ft, test_x, test_y, **resampled)
            point["scratch"] = _auroc(scratch(x, y, seed), test_x, test_y, **native)
            big = np.sort(idx[:10 * n])
            point["scratch_10x"] = _auroc(
                scratch(np.asarray(pool_x[big], np.float32), pool_y[big], seed),
                test_x, test_y, **native)
            point["seconds"] = time.time() - t
            res["points"].append(point)
            log(json.dumps(point))
    return res


def summary(res: dict) -> dict:
    out = {}
    for n in res["sizes"]:
        pts = [p for p in res["points"] if p["n"] == n]
        out[n] = {k: (float(np.mean([p[k] for p in pts])), float(np.std([p[k] for p in pts])))
                  for k in ("linear_probe", "finetuned", "scratch", "scratch_10x")}
    return out


def format_table(res: dict) -> str:
    s = summary(res)
    lines = [f"| labels N | zero-shot | linear probe | fine-tuned | scratch (N) | scratch (10 N) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for n, m in s.items():
        cells = " | ".join(f"{m[k][0]:.4f} ± {m[k][1]:.4f}" for k in
                           ("linear_probe", "finetuned", "scratch", "scratch_10x"))
        lines.append(f"| {n} | {res['zero_shot']:.4f} | {cells} |")
    goal = ""
    if 300 in s:
        gap = s[300]["scratch_10x"][0] - s[300]["finetuned"][0]
        goal = (f" Goal (fine-tuned with 300 labels within 0.01 AUROC of scratch with 3,000): "
                f"gap {gap:+.4f}, {'met' if gap <= 0.01 else 'not met'}.")
    lines += ["", f"AUROC on {res['n_test']} held-out simulated DES g,r,i,z cutouts (48x48, "
              f"0.263\"/pixel, lens fraction {res['test_lens_fraction']:.2f}); mean ± standard "
              f"deviation over seeds {res['seeds']} (each seed draws its own labelled subset and "
              f"training seed).{goal} Zero-shot, linear probe and fine-tuning read the DES cutouts "
              f"resampled to the model's 0.2\"/pixel (64x64); from scratch trains at 0.263\"/pixel. "
              f"Measured by `benchmarks/bench_transfer.py` on {time.strftime('%Y-%m-%d')}."]
    return "\n".join(lines)


def write(res: dict) -> None:
    """Results JSON, the README table, the lens card's transfer section (source and bundled)."""
    from astrozoo.cards import card_source_path, render_card, replace_section
    from astrozoo.config import ModelConfig
    from astrozoo.registry import get_entry

    out = ROOT / "benchmarks" / "results" / "transfer.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    table = format_table(res)
    readme = ROOT / "README.md"
    readme.write_text(replace_section(readme.read_text(), "transfer", table))
    entry = get_entry("lens-finding")
    card_path = card_source_path(entry.name)
    card = replace_section(card_path.read_text(), "transfer", table)
    card_path.write_text(card)
    d = entry.weights.bundled_dir
    (d / "README.md").write_text(render_card(ModelConfig.from_json(d / "config.json"), card))
    print(table)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-test", type=int, default=4000)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--no-write", action="store_true", help="print, do not update files")
    a = p.parse_args(argv)
    res = run(a.sizes, a.seeds, a.n_test, a.processes)
    if a.no_write:
        print(format_table(res))
    else:
        write(res)


if __name__ == "__main__":
    main()
