"""The notebooks run top to bottom against the installed package (outputs are not stored), and
what they claim holds: each notebook has a check of the values its cells leave behind."""

import json

import matplotlib
import numpy as np
import pytest

from conftest import REPO

matplotlib.use("Agg")

# whole models end to end: left out of the fast loop (pytest -m 'not slow'); CI runs them
pytestmark = pytest.mark.slow


def check_quickstart(ns):
    from astrozoo.evaluation.photoz import photoz_metrics

    truth = ns["Table"].read(ns["DATA_DIR"] / "truth.ecsv")
    table = ns["table"]
    assert list(table["id"]) == list(truth["id"]) and len(table) == 8
    # the bundled examples: every lens scores above every non-lens
    p = np.asarray(table["p_lens"])
    lens = np.asarray(truth["is_lens"]).astype(bool)
    assert p[lens].min() > p[~lens].max()
    # the per-band files hold the same fluxes in other units: the same scores
    assert float(np.max(np.abs(ns["perband"]["p_lens"] - table["p_lens"]))) < 1e-4
    z = ns["z"]
    assert len(z) == 200 and photoz_metrics(z["z_spec"], z["z_median"])["sigma_mad"] < 0.025
    assert ns["pdf"].shape == (5, 400)
    again = ns["again"].predict(ns["example_inputs"]("mef"), progress=False)
    np.testing.assert_array_equal(again["p_lens"], table["p_lens"])


def check_finetune_lens(ns):
    assert len(ns["x"]) == 300 and ns["x"].shape[1] == 4
    assert ns["tuned"].spec.band_mapping["z"] == ["i"]
    # what the notebook shows: fine-tuning on 300 DES labels beats the zero-shot LSST model
    assert ns["tuned_auroc"] > ns["zero_shot"] + 0.01, (ns["zero_shot"], ns["tuned_auroc"])
    p1 = ns["tuned"].predict(ns["x_test"][:16], progress=False, **ns["read"])["p_lens"]
    p2 = ns["again"].predict(ns["x_test"][:16], progress=False, **ns["read"])["p_lens"]
    np.testing.assert_allclose(p1, p2, atol=1e-6)


CHECKS = {"quickstart.ipynb": check_quickstart, "finetune_lens.ipynb": check_finetune_lens}


def test_every_notebook_has_a_check():
    assert sorted(CHECKS) == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs_and_its_claims_hold(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = json.loads((REPO / "notebooks" / name).read_text())
    namespace: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            exec(compile(src, f"{name}:{cell['id']}", "exec"), namespace)
    CHECKS[name](namespace)
