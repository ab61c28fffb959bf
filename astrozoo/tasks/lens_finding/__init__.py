"""Lens finding: the default strong-lens classifier (registers its entry; torch-free).

``model`` holds the architecture, ``simulate`` the lenstronomy training-data simulator, ``train``
the recipe and ``metrics`` the lens-finding-challenge metrics.
"""

from astrozoo.registry import ModelEntry, WeightsSource, register_model

register_model(ModelEntry(
    name="lens-resnet10t-lsst", task="lens-finding",
    weights=WeightsSource(bundled="lens-resnet10t-lsst"),
    sha256="9d2e3ff1088e118ce33d4a224cf6b45bcd8d6620472e6657614dc0f1a11cc048",
    summary="Strong-lens classifier (slim ResNet-10t) for LSST-like g,r,i 64x64 cutouts, "
            "trained on lenstronomy simulations"), default=True)
