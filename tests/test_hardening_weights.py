"""Weights safety (issue 16, item 4): safetensors only, sha256 pins, truncated and tampered
files, pickles, links out of a model directory, and config.json validation."""

import json
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

import astrozoo
from astrozoo.config import MAX_ARCH_INT, MAX_BANDS, MAX_CONFIG_BYTES, MAX_SIZE, ModelConfig
from astrozoo.exceptions import ConfigError, IntegrityError
from astrozoo.hub import sha256_file
from astrozoo.modeling import load
from astrozoo.registry import (BUNDLED_ROOT, ModelEntry, WeightsSource, get_entry, list_models,
                               register_model, unregister)

from conftest import REPO

SMALL = "photoz-lsst"  # the smallest bundled weights file (0.75 MB)
BUNDLED = [n for n in list_models() if get_entry(n).weights.describe() == "bundled"]


class _Payload:
    """Unpickling this creates `marker`: proof that a pickle was (or was not) opened."""

    def __init__(self, marker):
        self.marker = Path(marker)

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _copy(tmp_path, name=SMALL) -> Path:
    d = tmp_path / name
    shutil.copytree(get_entry(name).weights.bundled_dir, d)
    return d


def _edit_config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    for k, v in changes.items():
        if "." in k:
            outer, inner = k.split(".", 1)
            cfg[outer][inner] = v
        else:
            cfg[k] = v
    (d / "config.json").write_text(json.dumps(cfg))


def _forward(model):
    x = torch.linspace(0, 40, 2 * len(model.spec.bands) * 64 * 64).reshape(2, *model.spec.shape)
    with torch.no_grad():
        return model(model.preprocess(x))


def test_no_code_path_unpickles():
    """No torch.load, pickle, joblib or remote code anywhere in the package (checkpoints
    included); transformers is only called with use_safetensors=True, trust_remote_code=False."""
    banned = re.compile(r"torch\.load\(|\bimport pickle\b|pickle\.loads?\(|joblib\.load|"
                        r"allow_pickle=True|weights_only=False|trust_remote_code=True|AutoModel")
    hits = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "astrozoo").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if banned.search(line)]
    assert hits == []
    calls = re.findall(r"\.from_pretrained\(([^)]*)\)",
                       (REPO / "astrozoo/tasks/features/dinov2.py").read_text())
    assert calls and all("use_safetensors=True" in c and "trust_remote_code=False" in c
                         for c in calls)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_weights_are_pinned(name):
    entry = get_entry(name)
    assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert sha256_file(entry.weights.bundled_dir / "model.safetensors") == entry.sha256


def test_one_flipped_byte_is_refused_by_the_registry_pin(tmp_path):
    d = _copy(tmp_path)
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit of one weight
    (d / "model.safetensors").write_bytes(bytes(raw))
    # the config's own record is updated, as a tamperer would: the registry pin still refuses
    _edit_config(d, weights_sha256=sha256_file(d / "model.safetensors"))
    register_model(ModelEntry(name="tmp-tampered", task="photo-z", sha256=get_entry(SMALL).sha256,
                              weights=WeightsSource(bundled=str(d))))
    try:
        with pytest.raises(IntegrityError, match="tmp-tampered: sha256 mismatch") as e:
            astrozoo.load("tmp-tampered")
        assert str(d / "model.safetensors") in str(e.value)
        assert get_entry(SMALL).sha256 in str(e.value)
    finally:
        unregister("tmp-tampered")
    # a plain directory is checked against its own config.json record (here the tamperer's)
    assert load(d).name == SMALL


@pytest.mark.parametrize("keep", [0, 5, 100, "header", "data", -1])
def test_truncated_weights_get_a_clear_error(tmp_path, keep):
    d = _copy(tmp_path)
    raw = (d / "model.safetensors").read_bytes()
    n = 8 + int.from_bytes(raw[:8], "little")
    cut = {"header": n - 10, "data": n + (len(raw) - n) // 2, -1: len(raw) - 1}.get(keep, keep)
    (d / "model.safetensors").write_bytes(raw[:cut])
    # even with a matching record the file is refused as truncated (checked before the hash)
    _edit_config(d, weights_sha256=sha256_file(d / "model.safetensors"))
    with pytest.raises(IntegrityError, match="is truncated") as e:
        load(d)
    assert str(d / "model.safetensors") in str(e.value) and "Safetensor" not in str(e.value)


def test_weights_that_do_not_fit_the_config_are_refused_before_loading(tmp_path):
    d = _copy(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    _edit_config(d, arch_kwargs={**cfg["arch_kwargs"], "hidden": 64})
    with pytest.raises(IntegrityError, match="does not hold the network .*shapes differ"):
        load(d)


@pytest.mark.parametrize("fname", ["pytorch_model.bin", "model.pt", "weights.pth", "last.ckpt",
                                   "state.pkl", "extra.PICKLE"])
def test_a_pickle_in_a_model_directory_is_refused_and_never_opened(tmp_path, fname):
    d = _copy(tmp_path)
    marker = tmp_path / "unpickled"
    (d / fname).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(IntegrityError, match=r"never unpickles.*Remove them") as e:
        load(d)
    assert fname in str(e.value) and not marker.exists()
    (d / "model.safetensors").unlink()  # a pickle alone: told how to convert it
    with pytest.raises(IntegrityError, match="Convert them with safetensors"):
        load(d)
    assert not marker.exists()


def _tiny_dinov2(path):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       patch_size=14, image_size=56)
    Dinov2Model(cfg).save_pretrained(path)
    return path


def test_transformers_layout_pickles_remote_code_and_redirects(tmp_path):
    """Upstream transformers repositories publish pytorch_model.bin beside model.safetensors:
    beside a pinned model.safetensors it is ignored (never opened), otherwise refused; config
    keys that would point transformers at other weights or remote code are refused."""
    from astrozoo.tasks.features.dinov2 import Dinov2Encoder

    d = _tiny_dinov2(tmp_path / "tiny")
    marker = tmp_path / "unpickled"
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(IntegrityError, match="never unpickles"):
        load(d)  # not pinned
    sha = sha256_file(d / "model.safetensors")
    model = Dinov2Encoder.from_transformers(d, expected_sha256=sha)
    assert model.backbone.config.hidden_size == 32 and not marker.exists()
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        Dinov2Encoder.from_transformers(d, expected_sha256="0" * 64)
    hf = json.loads((d / "config.json").read_text())
    for key, value in [("transformers_weights", "pytorch_model.bin"),
                       ("trust_remote_code", True), ("hidden_size", 10**6)]:
        (d / "config.json").write_text(json.dumps({**hf, key: value}))
        with pytest.raises(ConfigError, match=key):
            Dinov2Encoder.from_transformers(d, expected_sha256=sha)
    assert not marker.exists()


def test_links_out_of_the_model_directory_are_refused(tmp_path):
    d = _copy(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for name in ("model.safetensors", "config.json", "README.md"):
        shutil.move(d / name, outside / name)
        (d / name).symlink_to(outside / name)
        with pytest.raises(IntegrityError, match="outside the model directory") as e:
            load(d)
        assert str(d / name) in str(e.value)
        (d / name).unlink()
        shutil.move(outside / name, d / name)
    # a link inside the directory is fine
    (d / "v1").mkdir()
    shutil.move(d / "model.safetensors", d / "v1" / "weights.safetensors")
    (d / "model.safetensors").symlink_to(Path("v1") / "weights.safetensors")
    ref = _forward(load(get_entry(SMALL).weights.bundled_dir))
    assert torch.equal(_forward(load(d)), ref)
    # a directory or a device where the weights should be
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").mkdir()
    with pytest.raises(IntegrityError, match="not a regular file"):
        load(d)


def test_hub_cache_snapshot_links_only_into_its_own_blobs(tmp_path):
    """huggingface_hub's cache layout: snapshots/<commit>/<file> -> ../../blobs/<etag>."""
    src = get_entry(SMALL).weights.bundled_dir
    repo = tmp_path / "hub" / "models--astro--pz"
    snap = repo / "snapshots" / ("0" * 40)
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "README.md"):
        blob = repo / "blobs" / sha256_file(src / name)
        shutil.copy(src / name, blob)
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    assert torch.equal(_forward(load(snap)), _forward(load(src)))
    # ... not into another repository's blobs
    other = tmp_path / "hub" / "models--evil--x" / "blobs"
    other.mkdir(parents=True)
    shutil.move(repo / "blobs" / sha256_file(src / "model.safetensors"), other / "w")
    (snap / "model.safetensors").unlink()
    (snap / "model.safetensors").symlink_to(os.path.relpath(other / "w", snap))
    with pytest.raises(IntegrityError, match="outside the model directory"):
        load(snap)


# config.json values that must be refused, with the words the message must contain; the
# weights file is replaced by garbage, so each is caught before any weights are read
BAD_CONFIGS = [
    ({"weights_file": "../other/model.safetensors"}, "unknown fields"),
    ({"arch_kwargs.checkpoint_path": "/etc/passwd"}, "checkpoint_path.*refused"),
    ({"arch_kwargs.pretrained_cfg_overlay": {"file": "../x.pth"}}, "pretrained_cfg_overlay"),
    ({"arch_kwargs.pretrained": True}, "pretrained=True is refused"),
    ({"architecture": "os:system"}, r"unknown architecture 'os:system'.*'photoz-image-mdn'"),
    ({"architecture": "lens-classifier"}, "serves another task"),
    ({"task": "astrology"}, "unknown task"),
    ({"input_spec.size": MAX_SIZE + 1}, "input_spec.size"),
    ({"input_spec.size": "64"}, "input_spec.size"),
    ({"input_spec.pixel_scale": -0.2}, "pixel_scale"),
    ({"input_spec.bands": [f"b{i}" for i in range(MAX_BANDS + 1)]}, "input_spec.bands"),
    ({"input_spec.bands": ["g", "g", "r", "i", "z", "y"]}, "names a band twice"),
    ({"input_spec.size": MAX_SIZE}, "values per object"),  # 6 bands of 4096^2
    ({"input_spec.cutout_side": 64}, "not a valid astrozoo config"),
    ({"arch_kwargs.channels": [16, 32, 64, 10**7]}, r"channels\[3\] = 10000000 is out of bounds"),
    ({"arch_kwargs.hidden": MAX_ARCH_INT + 1}, "hidden"),
    ({"arch_kwargs.layers": [1] * 10_000}, "layers has 10000 entries"),
    ({"arch_kwargs.crop": float("nan")}, "crop = nan is not finite"),
    ({"input_spec.normalization_kwargs": {"sky_sigma": [float("inf")] * 6}}, "not finite"),
    ({"arch_kwargs": [1, 2]}, "arch_kwargs has the wrong type"),
    ({"architecture": None}, "architecture has the wrong type"),
]


@pytest.mark.parametrize("changes, message", BAD_CONFIGS,
                         ids=[next(iter(c)) + f"-{i}" for i, (c, _) in enumerate(BAD_CONFIGS)])
def test_invalid_configs_are_refused_before_the_weights(tmp_path, changes, message):
    d = _copy(tmp_path)
    (d / "model.safetensors").write_bytes(b"garbage, never read")
    _edit_config(d, **changes)
    with pytest.raises(ConfigError, match=message) as e:
        load(d)
    assert str(d / "config.json") in str(e.value)


def test_config_json_damage_is_a_config_error(tmp_path):
    d = _copy(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    del cfg["architecture"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="architecture"):
        load(d)
    (d / "config.json").write_text('{"name": "x", ')
    with pytest.raises(ConfigError, match="not a readable config.json"):
        load(d)
    (d / "config.json").write_text("[]")
    with pytest.raises(ConfigError, match="JSON object"):
        load(d)
    (d / "config.json").write_text(" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="is not a config.json"):
        load(d)


def test_every_shipped_config_is_within_the_bounds():
    """The bounds refuse nothing the zoo ships (bundled configs and the DINOv2 templates)."""
    for name in list_models():
        entry = get_entry(name)
        if entry.template is None:
            assert (BUNDLED_ROOT / entry.weights.bundled / "config.json").is_file()
        assert ModelConfig.from_dict(entry.config.to_dict(), where=name) == entry.config


def test_truncated_training_checkpoint_is_refused(tmp_path):
    from astrozoo.training.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(0)
    save_checkpoint(tmp_path, model, opt, gen, {"epoch": 1}, None)
    raw = (tmp_path / "last.safetensors").read_bytes()
    (tmp_path / "last.safetensors").write_bytes(raw[:-7])
    with pytest.raises(IntegrityError, match="last.safetensors is truncated"):
        load_checkpoint(tmp_path, model, opt, gen)
