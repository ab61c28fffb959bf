"""The fast path gives the safe path's values, and falls back when a file differs."""

import pickle

import numpy as np
import pytest
from astropy.io import fits

from astrozoo.config import InputSpec
from astrozoo.exceptions import InputError
from astrozoo.io import open_inputs
from astrozoo.io import dataset as io_dataset

SPEC = InputSpec(bands=("g", "r", "i"), pixel_scale=0.2, size=16)


def write(path, k, dtype=np.float32, extra=None, size=16, order="irg"):
    rng = np.random.default_rng(k)
    hdus = [fits.PrimaryHDU()]
    for b in order:
        data = (rng.normal(100, 10, (size, size))).astype(dtype)
        if extra and "BLANK" in extra:
            data[k % size, 3] = extra["BLANK"]
        h = fits.ImageHDU(data, name=b)
        h.header.update(FILTER=b, BUNIT="uJy", OBJECT=f"obj{k:04d}", CRVAL1=150 + k / 1000)
        if extra:
            h.header.update(extra)
        hdus.append(h)
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.fixture
def count_safe(monkeypatch):
    calls = []
    real = io_dataset.read_fits

    def spy(path, *a, **k):
        calls.append(path.name)
        return real(path, *a, **k)

    monkeypatch.setattr(io_dataset, "read_fits", spy)
    return calls


@pytest.mark.parametrize("order", ["irg", "gri", "grzi"])  # strided runs of extensions
def test_fast_equals_safe_and_skips_astropy(tmp_path, count_safe, order):
    paths = [write(tmp_path / f"o{k}.fits", k, order=order) for k in range(6)]
    cs = open_inputs(paths, SPEC)
    fast = cs.read_batch(range(6))
    assert count_safe == ["o0.fits"]  # only the template file went through astropy
    # bands in spec order in equally spaced extensions are read as one strided view
    assert len(cs._reader.steps) == {"irg": 3, "gri": 1, "grzi": 2}[order]
    safe = open_inputs(paths, SPEC, fast=False).read_batch(range(6))
    np.testing.assert_array_equal(fast.data, safe.data)
    expect = fits.getdata(paths[4], "r").astype(np.float32) * np.float32(1000)
    np.testing.assert_array_equal(fast.data[4, 1], expect)


@pytest.mark.parametrize("extra", [{"BSCALE": 0.25, "BZERO": 7.0},
                                   {"BSCALE": 0.25, "BZERO": 7.0, "BLANK": -32768}])
def test_integer_scaled_fast_path_matches_astropy(tmp_path, count_safe, extra):
    paths = [write(tmp_path / f"i{k}.fits", k, np.int16, extra) for k in range(3)]
    fast = open_inputs(paths, SPEC).read_batch(range(3))
    assert count_safe == ["i0.fits"]
    safe = open_inputs(paths, SPEC, fast=False).read_batch(range(3))
    np.testing.assert_allclose(fast.data, safe.data, rtol=1e-6)
    np.testing.assert_array_equal(fast.n_bad_pixels, [3 * ("BLANK" in extra)] * 3)


@pytest.mark.parametrize("extra, size", [({"BSCALE": 2.0}, 16), ({"MAGZP": 30.0}, 16),
                                         ({"CD1_1": -5e-5}, 16), ({}, 20)])
def test_differing_file_falls_back(tmp_path, count_safe, extra, size):
    paths = [write(tmp_path / f"o{k}.fits", k) for k in range(3)]
    odd = write(tmp_path / "odd.fits", 9, extra=extra, size=size)
    cs = open_inputs(paths + [odd], SPEC)
    got = cs.read_batch(range(4))
    assert count_safe == ["o0.fits", "odd.fits"]
    np.testing.assert_array_equal(got.data, open_inputs(paths + [odd], SPEC, fast=False)
                                  .read_batch(range(4)).data)


def test_pickle_and_dataloader_workers(tmp_path):
    import torch
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    paths = [write(tmp_path / f"o{k}.fits", k) for k in range(10)]
    cs = open_inputs(paths, SPEC)
    clone = pickle.loads(pickle.dumps(cs))
    assert clone.ids == cs.ids
    first = cs.read_batch([0, 1])  # builds the fast reader, which must pickle too
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(cs)).read_batch([0, 1]).data,
                                  first.data)
    sampler = BatchSampler(SequentialSampler(range(len(cs))), batch_size=4, drop_last=False)
    loader = DataLoader(cs, sampler=sampler, batch_size=None, num_workers=2,
                        collate_fn=lambda b: b)
    batches = list(loader)
    assert [b.ids for b in batches] == [cs.ids[:4], cs.ids[4:8], cs.ids[8:]]
    np.testing.assert_array_equal(np.concatenate([b.data for b in batches]),
                                  cs.read_batch(range(10)).data)
    assert torch.from_numpy(batches[0].data).shape == (4, 3, 16, 16)


@pytest.mark.parametrize("order, size", [("gri", 16), ("gri", 12), ("rgi", 20), ("grz", 14)])
def test_cube_planes_and_padding_match_safe(tmp_path, count_safe, order, size):
    rng = np.random.default_rng(1)
    paths = []
    for k in range(4):
        h = fits.PrimaryHDU(rng.normal(0, 1, (len(order), size, size)).astype(np.float32))
        h.header.update(BANDS=",".join(order), MAGZP=27.0, OBJECT=f"c{k}")
        paths.append(tmp_path / f"c{k}.fits")
        h.writeto(paths[-1])
    if "z" in order:  # a missing band is an error on both paths
        with pytest.raises(InputError, match="missing band 'i'"):
            open_inputs(paths, SPEC)[0]
        return
    fast = open_inputs(paths, SPEC, max_missing=1.0).read_batch(range(4))
    assert count_safe == ["c0.fits"]
    safe = open_inputs(paths, SPEC, max_missing=1.0, fast=False).read_batch(range(4))
    np.testing.assert_array_equal(fast.data, safe.data)
    np.testing.assert_array_equal(fast.flags, safe.flags)
    np.testing.assert_array_equal(fast.n_bad_pixels, safe.n_bad_pixels)
