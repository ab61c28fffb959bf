"""Galaxy morphology: five classes and two structural parameters from multi-band cutouts
(registers the task, its architecture and the default model; torch-free).

``model`` holds the architecture, ``simulate`` the GalSim training-data simulator and ``train``
the recipe; the metrics are `astrozoo.evaluation.morphology`.
"""

from astrozoo.registry import (ModelEntry, Task, WeightsSource, register_architecture,
                               register_model, register_task)

register_task(Task(
    name="morphology",
    columns=("label", "p_{label}", "bulge_fraction", "bulge_fraction_err", "r_half_arcsec",
             "r_half_arcsec_err"),
    pipeline_tag="image-classification",
    key_metrics=("accuracy", "macro_f1", "ece", "r_half_nmad", "r_half_coverage68"),
    evaluator="astrozoo.evaluation.morphology:morphology_metrics",
    description="morphological class (smooth, disk, edge-on, clumpy, merger), bulge fraction and "
                "half-light radius with uncertainties"))

register_architecture("morphology-cnn", "astrozoo.tasks.morphology.model:MorphologyCNN",
                      task="morphology")

register_model(ModelEntry(
    name="morphology-resnet-lsst", task="morphology",
    weights=WeightsSource(bundled="morphology-resnet-lsst"),
    sha256="3fecd84985fa30525ba4fe7b446b3b5e6903df8b2e6872b25b27533f34e69e87",
    summary="Galaxy morphology (5 classes) + bulge fraction and half-light radius with "
            "uncertainties (slim ResNet-10t) for LSST-like g,r,i 64x64 cutouts, trained on GalSim "
            "simulations"), default=True)
