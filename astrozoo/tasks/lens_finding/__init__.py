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
    sha256="3c7b36c03cfcc9c6795f92befe2be9bbc95d567bb57a3c1532304cf93455ab3f",
    summary="Strong-lens classifier (slim ResNet-10t) for LSST-like g,r,i 64x64 cutouts, "
            "trained on lenstronomy simulations"), default=True)
