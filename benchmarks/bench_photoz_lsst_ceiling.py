"""How much redshift information do the LSST-like simulations put in galaxy structure?

    python benchmarks/bench_photoz_lsst_ceiling.py

The ceiling of what ``photoz-lsst``'s pixels can add to photometry: the same MDN (MLP 3 x 128 +
5-component head, the recipe's optimiser and schedule) given noisy total fluxes only, against
the same noisy fluxes plus the simulator's *true, noiseless* structural parameters (disk
half-light radius, bulge-to-total ratio, disk axis ratio). No image is rendered: the populations
come from ``simulate_lsst.sample_population`` (training, validation and test draws with seeds
the recipe does not use), the flux noise is the preset's sky noise in a 1.2"-radius aperture
per band. If the true structure improves sigma_MAD by little, no network on these images can do
much better, and the simulations (not the network) are what limits the image model. Writes the
``ceiling`` section of ``model_cards/photoz-lsst.md`` and of the bundled card. About 5 minutes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from astrozoo.evaluation.photoz import photoz_metrics
from astrozoo.evaluation.report import record_section
from astrozoo.registry import get_entry
from astrozoo.tasks.photoz.mdn import MDNHead, mdn_nll, mixture_columns, pack, unpack
from astrozoo.tasks.photoz.simulate_lsst import BANDS, PIXEL_SCALE, SURVEY, sample_population
from astrozoo.training import TrainConfig, fit

NAME = "photoz-lsst"
APERTURE_RADIUS = 1.2  # arcsec: the recipe's larger aperture
STRUCTURE = {"disk_hlr": "disk half-light radius", "bt": "bulge-to-total ratio",
             "disk_q": "disk axis ratio"}


def features(pop, rng, structure=()):
    """asinh magnitudes of noisy total fluxes (softened at the aperture noise), plus the named
    true structural parameters (log radius, others as they are)."""
    flux = pop["bulge_flux"] + pop["disk_flux"]
    sigma = SURVEY.sky_sigma(BANDS) * np.sqrt(np.pi * (APERTURE_RADIUS / PIXEL_SCALE) ** 2)
    noisy = flux + rng.normal(0, 1, flux.shape) * sigma
    cols = [np.arcsinh(noisy / (2 * sigma))]
    for key in structure:
        v = pop[key]
        cols.append((np.log10(v) if key == "disk_hlr" else v)[:, None])
    return np.concatenate(cols, 1).astype(np.float32)


class MLPMDN(nn.Module):
    def __init__(self, n_in, hidden=128, n_components=5):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.head = MDNHead(hidden, n_components)

    def forward(self, x):
        return pack(*self.head(self.mlp(x)))


def train_and_score(xtr, ztr, xva, zva, xte, zte, epochs, seed):
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0)
    norm = [(x - mu) / sd for x in (xtr, xva, xte)]
    model = MLPMDN(xtr.shape[1])
    cfg = TrainConfig(epochs=epochs, batch_size=512, lr=3e-3, weight_decay=1e-4,
                      warmup_steps=200, augment=None, monitor="loss", seed=seed,
                      log_every=10 ** 9)
    fit(model, (norm[0], ztr), (norm[1], zva), loss=lambda out, z: mdn_nll(*unpack(out), z),
        config=cfg, progress=False, log=lambda m: None)
    model.eval()
    with torch.no_grad():
        cols = mixture_columns(model(torch.from_numpy(norm[2])).numpy())
    return photoz_metrics(zte, cols["z_median"], cols["mdn_weight"], cols["mdn_mu"],
                          cols["mdn_sigma"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=36_000)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    pops = [sample_population(n, np.random.default_rng(s))
            for n, s in ((args.n_train, 901), (3000, 902), (5000, 903))]
    z = [p["z"].astype(np.float32) for p in pops]
    runs = {"photometry only": ()}
    runs.update({f"+ {STRUCTURE[k]}": (k,) for k in STRUCTURE})
    runs["+ all three"] = tuple(STRUCTURE)
    results = {}
    for label, keys in runs.items():
        rng = np.random.default_rng(904)  # the same flux noise draws in every run
        x = [features(p, rng, keys) for p in pops]
        results[label] = train_and_score(x[0], z[0], x[1], z[1], x[2], z[2], args.epochs, 0)
        print(f"{label}: sigma_MAD {results[label]['sigma_mad']:.4f}, "
              f"outliers {results[label]['outlier_frac']:.4f}", flush=True)
    base = results["photometry only"]["sigma_mad"]
    hlr = np.median(pops[2]["disk_hlr"])
    lines = [f"The same MDN on noisy total fluxes (sky noise in a {APERTURE_RADIUS}\" aperture "
             "per band), alone and with the simulator's true, noiseless structural parameters "
             f"({args.n_train:,} training, 3,000 validation, 5,000 test galaxies drawn from the "
             f"simulator's population, {args.epochs} epochs): the most that resolving the galaxy "
             "perfectly could add to photometry in these simulations.", "",
             "| inputs | sigma_MAD | vs photometry only | outliers abs(dz) > 0.15 |",
             "| --- | ---: | ---: | ---: |"]
    for label, m in results.items():
        lines.append(f"| {label} | {m['sigma_mad']:.4f} | {m['sigma_mad'] / base - 1:+.1%} | "
                     f"{m['outlier_frac']:.2%} |")
    best = min(m["sigma_mad"] for m in results.values()) / base - 1
    lines += ["", f"Knowing the true structure improves sigma_MAD by at most {-best:.0%} "
              f"(median test disk half-light radius {hlr:.2f}\"). `python "
              f"benchmarks/bench_photoz_lsst_ceiling.py`, {time.time() - t0:.0f} s."]
    section = "\n".join(lines)
    print(section)
    record_section(get_entry(NAME).weights.bundled_dir, "ceiling", section)


if __name__ == "__main__":
    main()
