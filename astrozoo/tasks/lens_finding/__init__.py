"""Lens finding: strong gravitational lenses in multi-band cutouts (registers the task, its
architecture and the default model; torch-free).

``model`` holds the architecture, ``simulate`` the lenstronomy training-data simulator and
``train`` the recipe; the metrics are `astrozoo.evaluation.lens`.
"""

from astrozoo.registry import (ModelEntry, Task, WeightsSource, register_architecture,
                               register_model, register_task)

register_task(Task(
    name="lens-finding", columns=("p_lens",), pipeline_tag="image-classification",
    key_metrics=("auroc", "tpr0", "tpr10"), evaluator="astrozoo.evaluation.lens:lens_metrics",
    description="probability that a cutout shows a strong gravitational lens"))

register_architecture("lens-classifier", "astrozoo.tasks.lens_finding.model:LensClassifier",
                      task="lens-finding")

register_model(ModelEntry(
    name="lens-resnet10t-lsst", task="lens-finding",
    weights=WeightsSource(bundled="lens-resnet10t-lsst"),
    sha256="1bfd44e4d36e60ba356e4653356c1da2f255e8219df5cbb2ebd93e83b24509d6",
    summary="Strong-lens classifier (slim ResNet-10t) for LSST-like g,r,i 64x64 cutouts, "
            "trained on lenstronomy simulations"), default=True)
