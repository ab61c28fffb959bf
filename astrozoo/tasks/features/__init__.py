"""Feature extraction: embeddings of multi-band cutouts for similarity search, anomaly
ranking, clustering and probes (registers the task, its architectures and the models;
torch-free).

``model`` holds the zoo's own self-supervised encoder (`SSLEncoder`, trained by ``train``:
SimCLR on simulated cutouts, bundled), ``dinov2`` Meta's DINOv2 transformers from the Hub
(`Dinov2Encoder`); the embedding tools are `astrozoo.embeddings` and the metrics
`astrozoo.evaluation.features`.
"""

from astrozoo.registry import (ModelEntry, Task, WeightsSource, register_architecture,
                               register_model, register_task)

from .templates import dinov2_config

register_task(Task(
    name="features", columns=("embedding",), pipeline_tag="image-feature-extraction",
    key_metrics=("knn_accuracy", "linear_probe_accuracy"),
    evaluator="astrozoo.evaluation.features:embedding_metrics",
    description="an embedding vector per cutout (similarity search, anomalies, clustering, "
                "probes)"))

register_architecture("ssl-encoder", "astrozoo.tasks.features.model:SSLEncoder", task="features")
register_architecture("dinov2", "astrozoo.tasks.features.dinov2:Dinov2Encoder", task="features",
                      transformers_model_type="dinov2")

# Meta's weights on the Hub (transformers layout), pinned by the sha256 of their
# model.safetensors as the Hub lists it (Git LFS). g, r, i shown as blue, green, red.
_DINOV2 = {
    "small": ("ae1e99fcefd534ed978cdeb8326f08030c96e28b7a81ffcbc98a857c84d14be1", "ViT-S/14, 22 M"),
    "base": ("d73036b56966966d07975d696bde331762f37297e2f095de8cea0040c3aa0841", "ViT-B/14, 86 M"),
    "large": ("399fba97a95f22c36834418bc69373364a99af3a1153da1c0fb31db567c92e23", "ViT-L/14, 300 M"),
    "giant": ("917d3c470db999d32a312f8542149be91c7cbac61ee8fb4b67ae3d82b79ce21f", "ViT-g/14, 1.1 B"),
}
for _size, (_sha, _what) in _DINOV2.items():
    _repo = f"facebook/dinov2-{_size}"
    register_model(ModelEntry(
        name=f"dinov2-{_size}", task="features",
        weights=WeightsSource(hub_repo=_repo, format="transformers"), sha256=_sha,
        template=dinov2_config(f"dinov2-{_size}", hub_repo=_repo),
        summary=f"DINOv2 {_what} parameters (Meta, self-supervised on 142 M natural images; "
                f"Hub: {_repo}); g,r,i as a Lupton asinh RGB image at 112x112, CLS + mean patch "
                "embedding"))

register_model(ModelEntry(
    name="features-resnet-lsst", task="features",
    weights=WeightsSource(bundled="features-resnet-lsst"),
    sha256="51f5283ceb7207fcf9ee149e6dae39a11ba2b14ac1701af421bba27fcd47e2a9",
    summary="Self-supervised (SimCLR) slim ResNet-10t encoder, 256-d embeddings of LSST-like "
            "g,r,i 64x64 cutouts, trained on unlabelled GalSim galaxies; works offline"),
    default=True)
