"""Deblending: instance segmentation of blended galaxies and stars in multi-band scenes
(registers the task, its architecture and the default model; torch-free).

``simulate`` holds the GalSim scene simulator, ``model`` the U-Net, ``postprocess`` the pixel
grouping into a segmentation map, ``segment`` the tiled path for survey images of any size
(segmentation image + source catalogue) and ``train`` the recipe; the metrics are
`astrozoo.evaluation.deblending`.
"""

from astrozoo.registry import (ModelEntry, Task, WeightsSource, register_architecture,
                               register_model, register_task)

register_task(Task(
    name="deblending", columns=("n_sources", "segmap"), pipeline_tag="image-segmentation",
    key_metrics=("count_accuracy", "precision", "recall", "mean_iou", "flux_error"),
    evaluator="astrozoo.evaluation.deblending:deblending_metrics",
    description="segmentation map of the sources of a blended scene (0 background, 1..k "
                "sources) and their number"))

register_architecture("deblend-unet", "astrozoo.tasks.deblending.model:DeblendUNet",
                      task="deblending")

register_model(ModelEntry(
    name="deblend-unet-lsst", task="deblending",
    weights=WeightsSource(bundled="deblend-unet-lsst"),
    sha256="39158afd5c2ed4cb41d613577495816fc4f52f1d8ddd04a8e48b406b601db6b3",
    summary="Deblender (U-Net on a slim ResNet-10t: foreground, centre heatmap, offsets) for "
            "LSST-like g,r,i scenes of any size, trained on GalSim blends"), default=True)
