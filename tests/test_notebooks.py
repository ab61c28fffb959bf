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


def check_morphology(ns):
    table, cm = ns["table"], ns["cm"]
    assert len(table) == 60 and cm.sum() == 60 and cm.shape == (5, 5)
    # what it prints: the accuracy is the confusion matrix's trace, well above chance (0.2)
    assert abs(ns["metrics"]["accuracy"] - np.trace(cm) / 60) < 1e-9
    assert ns["metrics"]["accuracy"] > 0.7
    assert len(ns["captions"]) == 60 and "±" in ns["captions"][0]
    fig = ns["fig"]
    assert len(fig.axes[0].images) == 1 and fig.axes[0].get_title().startswith("morphology")


def check_photoz(ns):
    from astrozoo.evaluation.photoz import pit_ks

    z = ns["z"]
    assert len(z) == 2000 and ns["pdf"].shape == (5, 400)
    # what it prints: sigma_MAD of the SDSS test split (the card's ~0.02), computed again
    assert ns["metrics"]["sigma_mad"] < 0.03
    assert "sigma_MAD=" in ns["fig_zz"].axes[0].get_title()
    pit_values = ns["pit_values"]
    assert len(pit_values) == 2000 and ((pit_values >= 0) & (pit_values <= 1)).all()
    assert pit_ks(pit_values) < 0.1  # calibrated PDFs: a near-flat PIT
    assert len(ns["fig_pit"].axes[0].patches) == 20


def check_deblending(ns):
    res, truth, table = ns["res"], ns["truth"], ns["table"]
    # what it prints: one table row per segment, a count close to the truth's
    assert len(table) == res.segm.n_labels == int(res.segm.data.max()) > 5
    assert abs(len(table) - truth.max()) <= 0.35 * truth.max()
    assert len(ns["fig"].axes) == 2 and ns["fig"].axes[0].get_title().startswith("model:")
    assert {"flux_g", "flux_r", "flux_i"} <= set(table.colnames)


def check_embeddings(ns):
    assert ns["emb"].shape == (150, 256) and ns["xy"].shape == (150, 2)
    hits = ns["hits"]
    assert len(hits) == 6 and hits["id"][0] == ns["query"] and hits["similarity"][0] > 0.999
    assert ns["same_class"] >= 0.6  # what it prints: neighbours mostly share the class
    assert ns["rank_of_trail"] <= 0.2 * len(ns["scores"])  # the trail in the top fifth
    assert len(ns["fig_odd"].axes) == 6 and len(ns["fig_map"].axes[0].artists) >= 5


def check_lens_search(ns):
    table, images = ns["table"], ns["images"]
    assert len(table) == 150 and (table["flags"] == 0).all()
    # the cutouts cut by sky position are the simulated ones, pixel for pixel
    from astrozoo.io import open_inputs

    batch = open_inputs(ns["images_by_band"], ns["model"].spec, catalog=ns["catalog"]
                        ).read_batch(range(len(images)))
    np.testing.assert_array_equal(batch.data, images)
    # what it prints: the AUROC and the lenses among the top candidates, recomputed
    from astrozoo.evaluation.lens import auroc

    assert ns["score"] == auroc(np.asarray(table["is_lens"]), np.asarray(table["p_lens"]))
    assert ns["score"] > 0.95 and ns["found_in_top"] >= 10
    assert ns["found_in_top"] == int(table["is_lens"][:ns["n_lenses"]].sum())
    assert len(ns["fig_top"].axes) >= 12


CHECKS = {"quickstart.ipynb": check_quickstart, "lens_search.ipynb": check_lens_search, "finetune_lens.ipynb": check_finetune_lens,
          "morphology.ipynb": check_morphology, "photoz.ipynb": check_photoz,
          "deblending.ipynb": check_deblending, "embeddings.ipynb": check_embeddings}


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
