"""Photometric redshifts with mixture-density-network p(z) (task ``photo-z``).

Registers the task, its architectures and models (torch-free, so listing the zoo stays fast).
``photoz-sdss`` is the task default: a catalogue model trained on real SDSS galaxies with
spectroscopic redshifts. The metrics are `astrozoo.evaluation.photoz`.
"""

from ...registry import (ModelEntry, Task, WeightsSource, register_architecture, register_model,
                         register_task)

register_task(Task(
    name="photo-z",
    columns=("z_mean", "z_median", "z_mode", "z_std", "z_lo68", "z_hi68", "z_lo95", "z_hi95",
             "mdn_weight", "mdn_mu", "mdn_sigma"),
    pipeline_tag="tabular-regression",
    key_metrics=("sigma_mad", "bias", "outlier_frac", "pit_ks", "coverage68"),
    evaluator="astrozoo.evaluation.photoz:photoz_metrics",
    description="photometric redshift p(z) as a Gaussian mixture truncated to z >= 0"))

register_architecture("photoz-catalog-mdn", "astrozoo.tasks.photoz.catalog_model:CatalogPhotoZ",
                      task="photo-z")
register_architecture("photoz-image-mdn", "astrozoo.tasks.photoz.image_model:ImagePhotoZ",
                      task="photo-z")

register_model(ModelEntry(
    name="photoz-sdss",
    task="photo-z",
    weights=WeightsSource(bundled="photoz-sdss"),
    sha256="67199542fd7e06c85ddac3794bb8b6b0d0de41573b29f33ca18d1ada4bf7f511",
    summary="SDSS ugriz catalogue photo-z with MDN p(z), trained on 6,000 real SDSS "
            "spectroscopic galaxies",
), default=True)

register_model(ModelEntry(
    name="photoz-lsst",
    task="photo-z",
    weights=WeightsSource(bundled="photoz-lsst"),
    sha256="ab69c65dcec7ffea953f65228be79f3bf80fef122f8e22db0628cd15ba3339e4",
    summary="LSST-like ugrizy 64x64 cutout photo-z: small ResNet + aperture photometry, MDN "
            "p(z); trained on GalSim bulge+disk CWW simulations",
))
