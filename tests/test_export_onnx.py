"""ONNX export: every bundled model's network runs in onnxruntime with torch's outputs."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import astrozoo
from astrozoo.export import input_shape
from astrozoo.registry import get_entry, list_models

BUNDLED = [m for m in list_models() if get_entry(m).weights.bundled_dir is not None]


def test_there_are_bundled_models_to_export():
    assert {"lens-resnet10t-lsst", "photoz-sdss", "deblend-unet-lsst"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_onnx_export_matches_torch(name, tmp_path):
    torch.set_num_threads(1)
    model = astrozoo.load(name).eval()
    path = model.export_onnx(tmp_path / f"{name}.onnx")
    rng = np.random.default_rng(0)
    if model.spec.kind == "image":  # sky-like noise around a bright source
        x = rng.normal(0, 30, (5, *model.spec.shape)).astype(np.float32)
        x[..., x.shape[-2] // 2, x.shape[-1] // 2] += 500
    else:  # fluxes, errors, extinctions, one band missing
        c = len(model.spec.bands)
        x = np.concatenate([rng.lognormal(2, 1, (5, c)), rng.uniform(0.05, 1, (5, c)),
                            rng.uniform(0, 0.2, (5, c))], 1).astype(np.float32)
        x[0, c] = 0.0
    assert x.shape[1:] == input_shape(model.spec)
    with torch.no_grad():
        want = model(model.preprocess(torch.from_numpy(x))).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"flux": x})[0]  # a batch other than the traced one
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    config = json.loads(meta["astrozoo.config"])
    assert config["name"] == name and meta["astrozoo.card"].startswith("---")


def test_predict_with_the_onnx_runtime_gives_torch_columns(tmp_path):
    from astrozoo.examples import example_inputs
    from astrozoo.tasks.photoz.sdss import load_sdss

    torch.set_num_threads(1)
    lens = astrozoo.load("lens-finding")
    want = lens.predict(example_inputs("mef"), progress=False)
    got = lens.predict(example_inputs("mef"), progress=False, runtime="onnx", batch_size=3)
    assert got.meta["RUNTIME"] == "onnx" and want.meta["RUNTIME"] == "torch"
    np.testing.assert_array_equal(got["id"], want["id"])
    np.testing.assert_allclose(got["p_lens"], want["p_lens"], atol=1e-5)
    pz = astrozoo.load("photo-z")
    rows = load_sdss("test")[:300]
    want, got = (pz.predict(rows, progress=False, runtime=r) for r in ("torch", "onnx"))
    for col in ("z_median", "z_std", "z_lo68", "mdn_mu"):
        np.testing.assert_allclose(got[col], want[col], atol=2e-5)
    with pytest.raises(ValueError, match="without tta"):
        lens.predict(example_inputs("mef"), progress=False, runtime="onnx", tta=True)
    with pytest.raises(ValueError, match="runtime must be"):
        lens.predict(example_inputs("mef"), progress=False, runtime="tensorrt")
