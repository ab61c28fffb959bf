"""Features: DINOv2 through transformers (tiny config, offline), the bundled SSL encoder's
embedding quality, and the embedding tools."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")

import astrozoo  # noqa: E402
from astrozoo.embeddings import SimilarityIndex, anomaly_scores, cluster, embedding_map  # noqa: E402
from astrozoo.evaluation.features import embedding_metrics  # noqa: E402

from conftest import run_python  # noqa: E402
from hubserver import HubServer  # noqa: E402

BANDS = ["g", "r", "i"]


def _tiny_dinov2(path):
    """A randomly initialised 2-layer DINOv2 saved by transformers (its own layout)."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, patch_size=14, image_size=56)
    Dinov2Model(cfg).eval().save_pretrained(path)
    return Dinov2Model.from_pretrained(path).eval()


@pytest.fixture(scope="module")
def cutouts():
    from astrozoo.tasks.morphology.simulate import simulate

    x, y, _ = simulate(250, 9_600_000)
    return x, y[:, 0].astype(int)


def test_dinov2_transformers_dir_loads_and_matches_transformers(tmp_path, cutouts):
    ref = _tiny_dinov2(tmp_path / "dinov2-tiny")
    model = astrozoo.load(tmp_path / "dinov2-tiny")  # transformers' layout, read through load
    assert type(model).__name__ == "Dinov2Encoder" and model.task == "features"
    x = cutouts[0][:6]
    emb = model.embed(x, bands=BANDS, unit="nJy", progress=False)
    assert emb.shape == (6, 64) and np.isfinite(emb).all()
    with torch.no_grad():
        pix = model.preprocess(torch.as_tensor(x))
        t = ref(pixel_values=pix).last_hidden_state
    want = torch.cat([t[:, 0], t[:, 1:].mean(1)], 1).numpy()
    np.testing.assert_allclose(emb, want, rtol=1e-4, atol=1e-5)
    assert pix.shape == (6, 3, 112, 112)
    # float preprocessing: far more than 256 levels per channel (no 8-bit round trip)
    assert len(np.unique(pix[:, 0].numpy())) > 10_000
    # patch tokens on request
    model.patch_tokens = True
    table = model.predict(x[:2], bands=BANDS, unit="nJy", progress=False)
    assert table["patch_tokens"].shape == (2, 64, 32) and table["embedding"].shape == (2, 64)
    # astrozoo's own layout round trip (transformers config embedded in config.json)
    model.patch_tokens = False
    model.save_pretrained(tmp_path / "astro")
    again = astrozoo.load(tmp_path / "astro")
    np.testing.assert_allclose(again.embed(x, bands=BANDS, unit="nJy", progress=False), emb,
                               rtol=1e-5, atol=1e-6)


def test_dinov2_grey_mode_any_bands(tmp_path, cutouts):
    from astrozoo.tasks.features.dinov2 import Dinov2Encoder, dinov2_config

    _tiny_dinov2(tmp_path / "tiny")
    cfg = dinov2_config("tiny-grey", bands=("g", "r", "i", "z"), mode="grey", image_size=56)
    model = Dinov2Encoder.from_transformers(tmp_path / "tiny", cfg)
    x = np.concatenate([cutouts[0][:3], cutouts[0][:3, 2:]], 1)  # 4 bands
    emb = model.embed(x, bands=["g", "r", "i", "z"], unit="nJy", progress=False)
    assert emb.shape == (3, 64)
    with pytest.raises(ValueError, match="multiple of"):
        dinov2_config("bad", image_size=100)


@pytest.mark.slow
def test_registered_dinov2_over_the_hub_then_offline(tmp_path):
    """A transformers-format registry entry (as dinov2-small) through huggingface_hub's real
    download path against the loopback Hub, then from the cache with the Hub offline; and the
    real dinov2-small, offline and not cached, fails with the actionable error."""
    from astrozoo.hub import sha256_file

    _tiny_dinov2(tmp_path / "repo")
    sha = sha256_file(tmp_path / "repo" / "model.safetensors")
    code = (
        "import astrozoo, numpy as np\n"
        "from astrozoo.registry import ModelEntry, WeightsSource, register_model, list_models\n"
        "from astrozoo.tasks.features.templates import dinov2_config\n"
        "list_models()\n"
        "register_model(ModelEntry(name='dinov2-tiny', task='features', sha256=%r,\n"
        "    weights=WeightsSource(hub_repo='facebook/dinov2-tiny', format='transformers'),\n"
        "    template=dinov2_config('dinov2-tiny', hub_repo='facebook/dinov2-tiny')))\n"
        "x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype('float32') + 5\n"
        "for ref in ('dinov2-tiny', 'hf-hub:facebook/dinov2-tiny'):\n"
        "    m = astrozoo.load(ref)\n"
        "    print('OUT', ref, m.embed(x, bands=['g', 'r', 'i'], unit='nJy', progress=False).sum())\n"
    ) % sha
    env = {"HF_HOME": str(tmp_path / "hf")}
    with HubServer({"facebook/dinov2-tiny": tmp_path / "repo"}) as url:
        online = run_python(code, env={**env, "HF_ENDPOINT": url})
    offline = run_python(code, env={**env, "HF_HUB_OFFLINE": "1"})
    outs = [[l for l in r.stdout.splitlines() if l.startswith("OUT")] for r in (online, offline)]
    assert len(outs[0]) == 2 and outs[0] == outs[1]
    assert outs[0][0].split()[-1] == outs[0][1].split()[-1]
    res = run_python("import astrozoo; astrozoo.load('dinov2-small')", check=False,
                     env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty")})
    assert res.returncode != 0 and "WeightsNotAvailableError" in res.stderr
    assert "astrozoo download dinov2-small" in res.stderr


def test_dinov2_entries_are_pinned_and_listed_offline():
    from astrozoo.registry import get_entry

    for size in ("small", "base", "large", "giant"):
        e = get_entry(f"dinov2-{size}")
        assert e.weights.hub_repo == f"facebook/dinov2-{size}" and len(e.sha256) == 64
        assert e.config.input_spec.normalization == "lupton_rgb"  # no download needed


def test_similarity_search_finds_planted_duplicate():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(5000, 32)).astype(np.float32)
    query = emb[1234] + 0.05 * rng.normal(size=32)
    for block in (700, 65536):  # blocked and in one go agree
        t = SimilarityIndex(emb, ids=np.arange(5000) + 10, block=block).search(query, k=5)
        assert t["id"][0] == 1244 and t["rank"][0] == 1 and t["similarity"][0] > 0.99
        assert (np.diff(t["similarity"]) <= 0).all()


def test_similarity_index_from_memory_map(tmp_path):
    from astrozoo.embeddings import load_embeddings, save_embeddings

    rng = np.random.default_rng(2)
    emb = rng.normal(size=(3000, 16)).astype(np.float32)
    emb[7] = np.nan  # an unreadable row is never returned
    save_embeddings(tmp_path / "emb", emb, ids=[f"obj{i}" for i in range(3000)])
    mm, ids = load_embeddings(tmp_path / "emb")
    assert isinstance(mm, np.memmap)
    t = SimilarityIndex(mm, ids=ids, block=256).search(emb[42], k=3)
    assert t["id"][0] == "obj42" and "obj7" not in list(t["id"])


def test_anomaly_ranking_puts_planted_outlier_on_top():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 24))
    emb = centres[rng.integers(5, size=999)] + 0.3 * rng.normal(size=(999, 24))
    emb = np.vstack([emb, rng.normal(size=24) * 3])  # row 999: belongs to no group
    scores = anomaly_scores(emb, k=10)
    assert np.argsort(-scores)[0] == 999


def test_cluster_and_map(tmp_path):
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(3, 8)) * 3
    truth = rng.integers(3, size=300)
    emb = centres[truth] + 0.2 * rng.normal(size=(300, 8))
    labels = cluster(emb, 3)
    # same partition up to renaming
    assert all(len(set(labels[truth == k])) == 1 for k in range(3))
    hdb = cluster(emb, method="hdbscan", min_cluster_size=20)
    assert len(set(hdb) - {-1}) == 3
    images = rng.normal(size=(300, 3, 16, 16))
    xy = embedding_map(emb, images, tmp_path / "map.png", method="pca", n_thumbnails=9,
                       labels=truth)
    assert xy.shape == (300, 2) and (tmp_path / "map.png").stat().st_size > 10_000


def test_bundled_ssl_encoder_offline(cutouts):
    """The bundled encoder (no Hub): 10-NN accuracy on 250 seeded morphology cutouts is high
    and well above the same architecture with random weights; a re-observation of a galaxy
    (new noise) finds the galaxy itself first; an artefact (a bright trail across an empty
    field) ranks among the most anomalous 10 %."""
    from astrozoo.tasks.features.model import SSLEncoder
    from astrozoo.tasks.morphology.simulate import BANDS as MBANDS, SURVEY

    x, labels = cutouts
    model = astrozoo.load("features")
    assert model.name == "features-resnet-lsst"
    emb = astrozoo.embed(model, x, bands=BANDS, unit="nJy", progress=False)
    assert emb.shape == (250, 256)
    torch.manual_seed(0)
    random = SSLEncoder(model.config).eval()
    emb_r = random.embed(x, bands=BANDS, unit="nJy", progress=False)
    m, m_r = embedding_metrics(emb, labels, n_probe=100), embedding_metrics(emb_r, labels, n_probe=100)
    assert m["knn_accuracy"] >= 0.75 and m["knn_accuracy"] >= m_r["knn_accuracy"] + 0.15, (m, m_r)
    rng = np.random.default_rng(6)
    sky = SURVEY.sky_sigma(MBANDS).astype(np.float32)[None, :, None, None]
    rows = np.arange(0, 250, 10)
    again = x[rows] + 0.5 * sky * rng.normal(size=(len(rows), 3, 64, 64)).astype(np.float32)
    q = astrozoo.embed(model, again, bands=BANDS, unit="nJy", progress=False)
    idx, _ = SimilarityIndex(emb).search_arrays(q, k=1)
    assert (idx[:, 0] == rows).mean() >= 0.9
    odd = np.random.default_rng(5).normal(0, 3, size=(1, 3, 64, 64)).astype(np.float32)
    odd[0, :, 30:33, :] += 3000.0
    scores = anomaly_scores(np.vstack([emb, astrozoo.embed(model, odd, bands=BANDS, unit="nJy",
                                                              progress=False)]))
    # a stated limit of a galaxies-only encoder (card, Limitations): near the top, not first
    assert (scores > scores[250]).sum() < 0.1 * len(scores)
