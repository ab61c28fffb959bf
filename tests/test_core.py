"""Registry, model format, integrity checks and load() on the shipped weights."""

import json
import shutil

import pytest
import torch

import astrozoo
from astrozoo.cards import card_body
from astrozoo.config import ModelConfig
from astrozoo.exceptions import IntegrityError
from astrozoo.hub import sha256_file
from astrozoo.modeling import ZooModel, load
from astrozoo.registry import (ModelEntry, WeightsSource, unregister, default_model,
                               get_entry, register_model)

from conftest import REPO

LENS = default_model("lens-finding")


def _forward(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((4, *model.spec.shape), generator=g) * 100
    with torch.no_grad():
        return model(model.preprocess(x))


def test_listing():
    assert {"lens-finding", "photo-z"} <= set(astrozoo.list_tasks())
    assert LENS in astrozoo.list_models("lens-finding")
    assert "photoz-sdss" in astrozoo.list_models("photo-z")
    assert set(astrozoo.list_models()) >= {LENS, "photoz-sdss"}
    # only tasks with a real model are listed
    assert set(astrozoo.list_tasks()) == {get_entry(n).task for n in astrozoo.list_models()}
    with pytest.raises(ValueError, match="unknown task"):
        astrozoo.list_models("astrology")
    with pytest.raises(KeyError, match="unknown model or task"):
        get_entry("no-such-model")


def test_load_by_task_and_name_are_the_same_model():
    a, b = astrozoo.load("lens-finding"), astrozoo.load(LENS)
    assert a.name == b.name == LENS and a.task == "lens-finding" and not a.training
    assert torch.equal(_forward(a), _forward(b))
    assert a.spec.kind == "image" and a.spec.size == 64 and a.spec.pixel_scale == 0.2


@pytest.mark.parametrize("name", [LENS, "photoz-sdss"])
def test_bundled_files_match_registry_and_card(name):
    entry = get_entry(name)
    d = entry.weights.bundled_dir
    assert entry.weights.describe() == "bundled"
    assert sha256_file(d / "model.safetensors") == entry.sha256
    cfg = ModelConfig.from_json(d / "config.json")
    assert cfg.weights_sha256 == entry.sha256 and cfg.name == name and cfg.task == entry.task
    assert cfg.metrics, "the benchmark must have written measured metrics"
    assert (d / "model.safetensors").stat().st_size < 12 * 2**20
    # the bundled card is rendered from model_cards/: same prose, metadata from the config
    readme = (d / "README.md").read_text()
    assert card_body(readme).strip() == card_body((REPO / cfg.card).read_text()).strip()
    assert f"license: {cfg.license.lower()}" in readme and "model-index" in readme


def test_save_load_round_trip_is_exact(tmp_path):
    model = astrozoo.load(LENS)
    model.save_pretrained(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["README.md", "config.json",
                                                                   "model.safetensors"]
    again = astrozoo.load(tmp_path / "a")
    assert again.config == model.config
    sd1, sd2 = model.state_dict(), again.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert torch.equal(_forward(model), _forward(again))
    again.save_pretrained(tmp_path / "b")
    for f in ("model.safetensors", "config.json", "README.md"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_fp16_storage_round_trip(tmp_path):
    model = astrozoo.load(LENS)
    model.save_pretrained(tmp_path, dtype=torch.float16)
    again = astrozoo.load(tmp_path)
    assert next(again.parameters()).dtype == torch.float32
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(again.state_dict()[k], v.half().float())


def _copy_bundled(tmp_path, name=LENS):
    dst = tmp_path / name
    shutil.copytree(get_entry(name).weights.bundled_dir, dst)
    return dst


def test_sha256_mismatch_is_refused(tmp_path):
    d = _copy_bundled(tmp_path)
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="sha256 mismatch") as e:
        load(d)
    assert str(d / "model.safetensors") in str(e.value)


def test_registry_pin_is_enforced(tmp_path):
    entry = get_entry(LENS)
    fake = ModelEntry(name="tmp-pinned", task="lens-finding", sha256="0" * 64,
                      weights=WeightsSource(bundled=entry.weights.bundled))
    register_model(fake)
    try:
        with pytest.raises(IntegrityError, match="tmp-pinned: sha256 mismatch"):
            astrozoo.load("tmp-pinned")
    finally:
        unregister("tmp-pinned")


def test_pickle_checkpoints_are_never_loaded(tmp_path):
    d = _copy_bundled(tmp_path)
    (d / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1)}, d / "pytorch_model.bin")
    with pytest.raises(IntegrityError, match="never unpickles"):
        load(d)


def test_non_safetensors_file_is_refused(tmp_path):
    d = _copy_bundled(tmp_path)
    (d / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file" * 10)
    cfg = json.loads((d / "config.json").read_text())
    cfg["weights_sha256"] = sha256_file(d / "model.safetensors")
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(IntegrityError, match="not a valid safetensors"):
        load(d)


def test_only_shipped_architectures_can_be_built(tmp_path):
    d = _copy_bundled(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["architecture"] = "os:system"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown architecture"):
        load(d)


def test_push_to_hub_uploads_the_model_directory(tmp_path, monkeypatch):
    """push_to_hub goes through huggingface_hub's HfApi; record what it would upload."""
    import huggingface_hub

    calls = {}

    def create_repo(self, repo_id, **kw):
        calls["create"] = (repo_id, kw)

    def upload_folder(self, *, repo_id, folder_path, revision=None, commit_message=None, **kw):
        calls["files"] = {p.name: p.read_bytes() for p in sorted(__import__("pathlib").Path(folder_path).iterdir())}
        calls["upload"] = (repo_id, revision, commit_message)
        return "commit-info"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr("astrozoo.hub.hub_unreachable", lambda: None)
    model = astrozoo.load(LENS)
    assert model.push_to_hub("me/lens", revision="v1") == "commit-info"
    assert calls["create"][0] == "me/lens" and calls["create"][1]["exist_ok"]
    assert calls["upload"][:2] == ("me/lens", "v1")
    assert set(calls["files"]) == {"README.md", "config.json", "model.safetensors"}
    (tmp_path / "pushed").mkdir()
    for k, v in calls["files"].items():
        (tmp_path / "pushed" / k).write_bytes(v)
    assert torch.equal(_forward(load(tmp_path / "pushed")), _forward(model))


def test_repr_and_spec():
    model = astrozoo.load(LENS)
    assert LENS in repr(model) and isinstance(model, ZooModel)
    assert model.spec.shape == (len(model.spec.bands), 64, 64)


def test_push_to_hub_offline_is_one_clear_error(monkeypatch):
    from astrozoo.exceptions import HubUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE.*save_pretrained"):
        astrozoo.load(LENS).push_to_hub("me/lens")
