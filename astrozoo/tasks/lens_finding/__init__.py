"""Lens finding: the default strong-lens classifier (registers its entry; torch-free).

``model`` holds the architecture, ``simulate`` the lenstronomy training-data simulator, ``train``
the recipe and ``metrics`` the lens-finding-challenge metrics.
"""

from astrozoo.registry import ModelEntry, WeightsSource, register_model

register_model(ModelEntry(
    name="lens-resnet10t-lsst", task="lens-finding",
    weights=WeightsSource(bundled="lens-resnet10t-lsst"),
    sha256="9807b725dcdd3e709c80a81d4d350387bd2201b48a4197ba89dee6e6f16e5629",
    summary="Strong-lens classifier (slim ResNet-10t) for LSST-like g,r,i 64x64 cutouts, "
            "trained on lenstronomy simulations"), default=True)
