"""Photometric redshifts with mixture-density-network p(z) (task ``photo-z``).

Registers the task's models (torch-free, so listing the zoo stays fast). ``photoz-sdss`` is the
task default: a catalogue model trained on real SDSS galaxies with spectroscopic redshifts.
"""

from ...registry import ModelEntry, WeightsSource, register_model

register_model(ModelEntry(
    name="photoz-sdss",
    task="photo-z",
    weights=WeightsSource(bundled="photoz-sdss"),
    sha256="dfec52dd2fc3af355ce31390f277097d0a9be7adce88fca074dbb3a7d11a9492",
    summary="SDSS ugriz catalogue photo-z with MDN p(z), trained on 6,000 real SDSS "
            "spectroscopic galaxies",
), default=True)
