"""The inference engine: order, batching invariance, streamed output, errors, TTA, progress."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from torch import nn

from astrozoo.config import InputSpec, ModelConfig
from astrozoo.exceptions import InputError
from astrozoo.inference import amp_dtype, embed, predict, read_table, select_device
from astrozoo.inference.tta import dihedral, inverse_dihedral
from astrozoo.io import Flag
from astrozoo.modeling import ZooModel
from astrozoo.tasks.photoz.mdn import MixturePhotoZMixin

BANDS = ("g", "r", "i")
SIZE = 16


class TinyLens(ZooModel):
    """Conv + pooling + linear head; not rotation-invariant by construction."""

    def __init__(self, config):
        super().__init__(config)
        self.conv = nn.Conv2d(len(BANDS), 8, 3)
        self.head = nn.Linear(8, 20)

    def forward_features(self, x):
        return self.conv(x).relu().mean((-2, -1))

    def forward(self, x):
        return self.head(self.forward_features(x))

    def postprocess(self, out):
        # Columns of each kind the tasks produce: scalar, (N, K) and (N, H, W) integer.
        return {"p_lens": torch.sigmoid(out[:, 0]).numpy(),
                "mdn_weight": torch.softmax(out[:, 1:4], 1).numpy(),
                "segmap": (out[:, 4:20].reshape(-1, 4, 4) > 0).to(torch.int16).numpy()}


def tiny_model(seed=0) -> TinyLens:
    torch.manual_seed(seed)
    cfg = ModelConfig(name="tiny-lens", task="lens-finding", architecture="tiny", arch_kwargs={},
                      input_spec=InputSpec(bands=BANDS, size=SIZE, pixel_scale=0.2),
                      outputs=("p_lens",))
    return TinyLens(cfg)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return rng.normal(10, 3, size=(40, len(BANDS), SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(model, images):
    return predict(model, images, bands=BANDS, batch_size=40, num_workers=0, progress=False)


def write_mef(path, cube):
    hdus = [fits.PrimaryHDU()]
    for band, plane in zip(BANDS, cube):
        hdr = fits.Header({"EXTNAME": band, "BUNIT": "nJy"})
        hdus.append(fits.ImageHDU(plane, header=hdr))
    fits.HDUList(hdus).writeto(path)


def test_order_and_ids_from_fits_files(model, images, reference, tmp_path):
    # Files named out of alphabetical order, read by 2 worker processes in batches of 3:
    # rows follow the input list, ids are the file stems.
    order = np.random.default_rng(2).permutation(12)
    paths = []
    for k, i in enumerate(order):
        p = tmp_path / f"obj{i:02d}.fits"
        write_mef(p, images[k])
        paths.append(p)
    t = predict(model, paths, batch_size=3, num_workers=2, progress=False)
    assert list(t["id"]) == [f"obj{i:02d}" for i in order]
    np.testing.assert_allclose(t["p_lens"], reference["p_lens"][:12], rtol=1e-5)
    assert t.colnames[0] == "id" and "error" not in t.colnames
    assert list(t["n_bad_pixels"]) == [0] * 12 and list(t["flags"]) == [0] * 12


@pytest.mark.parametrize("batch_size,num_workers", [(1, 0), (7, 0), (16, 2), (64, 1)])
def test_batch_size_and_workers_do_not_change_results(model, images, reference, batch_size,
                                                      num_workers):
    t = predict(model, images, bands=BANDS, batch_size=batch_size, num_workers=num_workers,
                progress=False)
    assert list(t["id"]) == list(range(len(images)))  # array rows: integer ids
    for name in ("p_lens", "mdn_weight"):
        np.testing.assert_allclose(t[name], reference[name], rtol=1e-5, atol=1e-7)


def test_provenance_and_quality_columns(model, reference):
    m = reference.meta
    assert (m["MODEL"], m["TASK"], m["PRESET"], m["NORM"], m["TTA"]) == (
        "tiny-lens", "lens-finding", "lsst", "asinh", False)
    assert len(m["SHA256"]) == 64 and m["ASTROZOO"] and m["DATE"].startswith("20")
    assert reference["mdn_weight"].shape == (40, 3) and reference["segmap"].shape == (40, 4, 4)
    np.testing.assert_allclose(reference["mdn_weight"].sum(1), 1, rtol=1e-6)


def test_bad_pixels_reported(model, images):
    x = images[:4].copy()
    x[1, 0, :2, :3] = np.nan
    t = predict(model, x, bands=BANDS, progress=False, num_workers=0)
    assert list(t["n_bad_pixels"]) == [0, 6, 0, 0]
    assert t["flags"][1] & Flag.BAD_PIXELS and not t["flags"][0]
    assert np.isfinite(t["p_lens"]).all()


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".parquet"])
def test_streamed_output_matches_and_is_readable(model, images, reference, tmp_path, suffix,
                                                 monkeypatch):
    from astrozoo.inference import writers

    def no_reencoding(*args):
        raise AssertionError("a part was re-encoded")

    # The parts share the job's layout (ids at their job-wide width; no error column), so they
    # are joined without decoding any row (Parquet: without astropy).
    monkeypatch.setattr(writers, "_reencode", no_reencoding)
    out = tmp_path / f"cat{suffix}"
    # Chunks of 4 rows: ids "0".."3" first, wider ones later.
    path = predict(model, images, bands=BANDS, batch_size=8, chunk_size=4, output=out,
                   progress=False)
    assert path == out and out.is_file() and not (tmp_path / f"cat{suffix}.partial").exists()
    t = read_table(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_metadata(out)
        assert meta.num_rows == 40 and meta.num_row_groups == 10  # one per chunk of 4
        # astropy reads the file too, but flattens columns of 3+ dimensions (segmaps) in its
        # Parquet round trip; read_table restores their shape from the stored metadata.
        plain = Table.read(out)
        np.testing.assert_allclose(plain["mdn_weight"], reference["mdn_weight"], rtol=1e-5)
        assert plain.meta["MODEL"] == "tiny-lens"
        back = read_table(out)
    else:
        back = Table.read(out)
    for table in (t, back):
        assert [str(i) for i in table["id"]] == [str(i) for i in range(40)]
        np.testing.assert_allclose(table["p_lens"], reference["p_lens"], rtol=1e-5)
        np.testing.assert_allclose(table["mdn_weight"], reference["mdn_weight"], rtol=1e-5)
        np.testing.assert_array_equal(table["segmap"], reference["segmap"])
        assert table.meta["MODEL"] == "tiny-lens"
        assert table.meta["SHA256"] == reference.meta["SHA256"]
        assert {"ASTROZOO", "PRESET", "DATE"} <= set(table.meta)
        assert "error" not in table.colnames


def test_output_guards(model, images, tmp_path):
    with pytest.raises(ValueError, match="unsupported output suffix"):
        predict(model, images, bands=BANDS, output=tmp_path / "cat.txt", progress=False)
    out = tmp_path / "cat.fits"
    first = predict(model, images[:4], bands=BANDS, output=out, progress=False, num_workers=0,
                    read_back=True)
    stamp = out.stat().st_mtime_ns
    # the same job again: the finished output is returned, nothing recomputed or rewritten
    assert predict(model, images[:4], bands=BANDS, output=out, progress=False,
                   num_workers=0) == out
    again = predict(model, images[:4], bands=BANDS, output=out, progress=False, num_workers=0,
                    read_back=True)
    assert out.stat().st_mtime_ns == stamp and list(again["p_lens"]) == list(first["p_lens"])
    # another job (other inputs) does not silently replace it
    with pytest.raises(FileExistsError, match="cat.fits.*another job.*IDS256"):
        predict(model, images[:5], bands=BANDS, output=out, progress=False, num_workers=0)
    t = predict(model, images[:5], bands=BANDS, output=out, progress=False, num_workers=0,
                overwrite=True, read_back=True)
    assert len(t) == 5


def test_resume_refuses_a_different_job(model, images, tmp_path):
    out = tmp_path / "cat.ecsv"
    partial = tmp_path / "cat.ecsv.partial"
    partial.mkdir()
    (partial / "manifest.json").write_text('{"model": "other", "n_rows": 40}')
    with pytest.raises(ValueError, match="different job"):
        predict(model, images, bands=BANDS, output=out, progress=False)


corrupt_file_warning = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")


@pytest.fixture()
def files_with_a_corrupt_one(images, tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"obj{i}.fits"
        write_mef(p, images[i])
        paths.append(p)
    paths[3].write_bytes(b"SIMPLE  =                    T" + b"garbage" * 10)
    return paths


@corrupt_file_warning
@pytest.mark.parametrize("num_workers", [0, 1])
def test_on_error_raise_names_the_file(model, files_with_a_corrupt_one, num_workers):
    with pytest.raises(InputError, match="obj3.fits"):
        predict(model, files_with_a_corrupt_one, batch_size=2, num_workers=num_workers,
                progress=False)


@corrupt_file_warning
def test_on_error_flag_writes_a_flagged_row(model, files_with_a_corrupt_one, reference, tmp_path):
    out = tmp_path / "cat.fits"
    # The error lands in the middle chunk of three: the column layout must still be one.
    t = predict(model, files_with_a_corrupt_one, batch_size=2, on_error="flag", output=out,
                chunk_size=2, progress=False, read_back=True)
    mem = predict(model, files_with_a_corrupt_one, batch_size=4, on_error="flag", progress=False)
    for table in (t, mem, Table.read(out, character_as_bytes=False, mask_invalid=False)):
        assert list(table["id"]) == [f"obj{i}" for i in range(6)]
        assert table["flags"][3] & Flag.READ_ERROR
        assert "obj3.fits" in table["error"][3] and not table["error"][2]
        assert np.isnan(table["p_lens"][3])
        good = [0, 1, 2, 4, 5]
        np.testing.assert_allclose(table["p_lens"][good], reference["p_lens"][good], rtol=1e-5)


def test_dihedral_group():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    copies = [dihedral(x, k) for k in range(8)]
    assert len({tuple(c.flatten().tolist()) for c in copies}) == 8
    for k in range(8):
        assert torch.equal(inverse_dihedral(copies[k], k), x)


def symmetric_images(n=3):
    # Centred Gaussians of different widths: unchanged by every flip and quarter turn.
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    r2 = xx ** 2 + yy ** 2
    return np.stack([[100 * np.exp(-r2 / (2 * (1.5 + i + b) ** 2)) + 1 + 0.1 * b
                      for b in range(len(BANDS))] for i in range(n)]).astype(np.float32)


def test_tta_is_invariant_on_symmetric_input(model):
    x = symmetric_images()
    plain = predict(model, x, bands=BANDS, progress=False, num_workers=0)
    tta = predict(model, x, bands=BANDS, tta=True, progress=False, num_workers=0)
    np.testing.assert_allclose(tta["p_lens"], plain["p_lens"], rtol=1e-5)
    np.testing.assert_allclose(tta["p_lens_tta_std"], 0, atol=1e-6)
    assert tta.meta["TTA"] is True


def test_tta_prediction_does_not_depend_on_orientation(model, images):
    x = images[:6]
    rotated = np.rot90(x, 1, axes=(-2, -1)).copy()
    plain, plain_rot = (predict(model, a, bands=BANDS, progress=False, num_workers=0)["p_lens"]
                        for a in (x, rotated))
    assert np.abs(plain - plain_rot).max() > 1e-4  # the model itself is orientation-dependent
    t, t_rot = (predict(model, a, bands=BANDS, tta=True, progress=False, num_workers=0) for a in (x, rotated))
    np.testing.assert_allclose(t["p_lens"], t_rot["p_lens"], rtol=1e-5)
    assert (t["p_lens_tta_std"] > 0).all()


def test_embed(model, images):
    e = embed(model, images, bands=BANDS, batch_size=16, progress=False, num_workers=0)
    assert e.shape == (40, 8) and e.dtype == np.float32
    np.testing.assert_allclose(model.embed(images[5:7], bands=BANDS, progress=False, num_workers=0), e[5:7],
                               rtol=1e-5)
    sym = embed(model, symmetric_images(), bands=BANDS, tta=True, progress=False, num_workers=0)
    np.testing.assert_allclose(sym, embed(model, symmetric_images(), bands=BANDS, progress=False,
                                          num_workers=0), rtol=1e-5)


def test_quiet_and_progress(model, images, capfd):
    predict(model, images, bands=BANDS, progress=False, num_workers=0)
    assert capfd.readouterr().err == ""
    model.predict(images, bands=BANDS, progress=True, num_workers=0)
    err = capfd.readouterr().err
    assert "obj/s" in err and "40/40" in err


def test_device_and_precision_selection(monkeypatch):
    assert select_device("cpu") == torch.device("cpu")
    assert amp_dtype(torch.device("cpu")) is None
    assert amp_dtype(torch.device("cpu"), True) is torch.bfloat16
    assert amp_dtype(torch.device("cuda"), "fp16") is torch.float16
    assert amp_dtype(torch.device("mps")) is torch.float16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert select_device() == torch.device("cuda")
    assert amp_dtype(select_device()) is torch.float16
    with pytest.raises(ValueError, match="amp"):
        amp_dtype(torch.device("cpu"), "int8")


def test_bf16_autocast_on_cpu_is_close(model, images, reference):
    # The autocast path that GPUs take by default, exercised on CPU.
    t = predict(model, images, bands=BANDS, amp="bf16", channels_last=True, progress=False, num_workers=0)
    np.testing.assert_allclose(t["p_lens"], reference["p_lens"], atol=2e-2)


class TinyCatalog(MixturePhotoZMixin, ZooModel):
    """A one-component photo-z mixture from a linear layer."""

    def __init__(self, config):
        super().__init__(config)
        self.lin = nn.Linear(3 * len(config.input_spec.bands), 3)

    def forward(self, x):
        out = self.lin(x)
        return torch.cat([out[:, :2], nn.functional.softplus(out[:, 2:]) + 0.01], 1)


def test_catalogue_model_takes_a_table_with_ids():
    torch.manual_seed(0)
    spec = InputSpec(kind="catalog", survey="sdss", bands=tuple("ugriz"),
                     flux_unit="nanomaggy", normalization="identity")
    model = TinyCatalog(ModelConfig(name="tiny-photoz", task="photo-z", architecture="tiny",
                                    arch_kwargs={}, input_spec=spec, outputs=("z_mean",)))
    rng = np.random.default_rng(3)
    cat = Table({"objid": [f"sdss{i}" for i in range(10)]})
    for b in "ugriz":
        cat[f"flux_{b}"] = rng.uniform(1, 50, 10)
        cat[f"flux_err_{b}"] = rng.uniform(0.1, 1, 10)
    t = predict(model, cat, id_column="objid", batch_size=4, progress=False)
    assert list(t["id"]) == list(cat["objid"])
    rows = np.column_stack([cat[f"flux_{b}"] for b in "ugriz"]
                           + [cat[f"flux_err_{b}"] for b in "ugriz"] + [np.zeros((10, 5))])
    with torch.no_grad():
        expected = model(torch.tensor(rows, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(t["mdn_mu"][:, 0], expected[:, 1], rtol=1e-5)
    with pytest.raises(ValueError, match="image inputs"):
        predict(model, cat, tta=True, progress=False)


def test_reader_count_follows_the_measured_rates():
    from astrozoo.inference import reader_count

    # reading negligible next to the forward: no reader
    assert reader_count(0.01, 1.0, 2.0, remaining=10, cores=2) == 0
    # a CPU forward keeping both cores busy: readers would only compete with it
    assert reader_count(0.5, 0.5, 0.9, remaining=10, cores=2) == 0
    # an accelerator (the forward holds no core): enough readers to keep up, within the cores
    assert reader_count(0.5, 0.25, 0.01, remaining=10, cores=16) == 3
    assert reader_count(0.5, 0.05, 0.0, remaining=10, cores=2) == 2
    assert reader_count(0.5, 0.05, 0.0, remaining=1, cores=8) == 0


def test_auto_readers_feed_a_forward_that_holds_no_cpu(images, tmp_path, monkeypatch):
    import time

    from astrozoo.inference import engine

    paths = []
    for i in range(12):
        paths.append(tmp_path / f"obj{i:02d}.fits")
        write_mef(paths[-1], images[i])
    model = tiny_model()
    ref = predict(model, paths, batch_size=2, num_workers=0, progress=False)
    measured, chosen = [], []
    real = engine._dataloader

    def spy_loader(runner, cutouts, batches, workers, prefetch_factor):
        chosen.append((len(batches), workers))
        return real(runner, cutouts, batches, workers, prefetch_factor)

    def spy_count(*args, **kwargs):
        measured.append(args)
        return 2

    forward = model.forward

    def sleeping(x):  # an accelerator's forward: wall time, no host CPU
        time.sleep(0.05)
        return forward(x)

    monkeypatch.setattr(engine, "_dataloader", spy_loader)
    monkeypatch.setattr(engine, "reader_count", spy_count)
    monkeypatch.setattr(model, "forward", sleeping)
    t = predict(model, paths, batch_size=2, progress=False)
    # two batches read in-process to measure; the second batch's consumer time is the sleep,
    # and it held (almost) no CPU
    (read_s, consumer_s, cpu_s), = measured
    assert read_s > 0 and consumer_s >= 0.05 and cpu_s < 0.5 * consumer_s
    assert chosen == [(4, 2)]  # the other 4 batches by 2 reader processes
    assert list(t["id"]) == list(ref["id"])
    np.testing.assert_allclose(t["p_lens"], ref["p_lens"], rtol=1e-6)
