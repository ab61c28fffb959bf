"""Each FITS layout (and array/NDData input) becomes the same conformed tensor."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, NDData

from astrozoo.config import InputSpec
from astrozoo.io import Flag, open_inputs

SPEC = InputSpec(bands=("g", "r", "i"), pixel_scale=0.2, size=16)
RNG = np.random.default_rng(42)
CUBE = RNG.normal(10, 1, size=(3, 16, 16)).astype(np.float32)  # bands g, r, i


def write_mef(path, key="EXTNAME", order=(2, 0, 1)):
    hdus = [fits.PrimaryHDU()]
    for c in order:
        h = fits.ImageHDU(CUBE[c])
        h.header[key] = "gri"[c]
        hdus.append(h)
    fits.HDUList(hdus).writeto(path)
    return path


def test_mef_by_extname_and_filter(tmp_path):
    a = write_mef(tmp_path / "a.fits", "EXTNAME")
    b = write_mef(tmp_path / "b.fits", "FILTER", order=(1, 2, 0))
    batch = open_inputs([a, b], SPEC).read_batch([0, 1])
    assert batch.ids == ["a", "b"]
    np.testing.assert_array_equal(batch.data[0], CUBE)
    np.testing.assert_array_equal(batch.data[1], CUBE)
    assert batch.data.dtype == np.float32 and batch.flags.tolist() == [0, 0]


@pytest.mark.parametrize("style", ["BANDS", "BANDn"])
def test_cube_band_keywords(tmp_path, style):
    cube = CUBE[::-1]  # stored i, r, g
    h = fits.PrimaryHDU(cube)
    if style == "BANDS":
        h.header["BANDS"] = "i,r,g"
    else:
        for k, b in enumerate("irg"):
            h.header[f"BAND{k}"] = b
    h.writeto(tmp_path / "cube.fits")
    data = open_inputs(tmp_path / "cube.fits", SPEC).read_batch([0]).data
    np.testing.assert_array_equal(data[0], CUBE)


def test_cube_without_band_names_is_an_error(tmp_path):
    fits.PrimaryHDU(CUBE).writeto(tmp_path / "c.fits")
    with pytest.raises(Exception, match=r"c\.fits.*BAND0"):
        open_inputs(tmp_path / "c.fits", SPEC).read_batch([0])


def write_band_files(tmp_path, name, key="FILTER"):
    paths = []
    for c, b in enumerate("rig"):
        h = fits.PrimaryHDU(CUBE["gri".index(b)])
        h.header[key] = b
        p = tmp_path / f"{name}_{b}.fits"
        h.writeto(p)
        paths.append(p)
    return paths


def test_per_band_files_grouped_per_object(tmp_path):
    objs = [write_band_files(tmp_path, "obj1"), write_band_files(tmp_path, "obj2", key="BAND")]
    batch = open_inputs(objs, SPEC).read_batch([0, 1])
    assert batch.ids == ["obj1", "obj2"]
    np.testing.assert_array_equal(batch.data, np.stack([CUBE, CUBE]))


def test_glob_and_directory(tmp_path):
    for n in ("x2", "x1", "x3"):
        write_mef(tmp_path / f"{n}.fits")
    (tmp_path / "notes.txt").write_text("not fits")
    assert open_inputs(str(tmp_path / "x*.fits"), SPEC).ids == ["x1", "x2", "x3"]
    cs = open_inputs(tmp_path, SPEC)
    assert cs.ids == ["x1", "x2", "x3"]
    np.testing.assert_array_equal(cs.read_batch([2]).data[0], CUBE)


def test_tile_compressed_and_integer_scaling(tmp_path):
    comp = fits.HDUList([fits.PrimaryHDU()] + [
        fits.CompImageHDU(CUBE[c], name="gri"[c]) for c in range(3)])
    comp.writeto(tmp_path / "comp.fits")
    decoded = np.stack([fits.getdata(tmp_path / "comp.fits", b) for b in "gri"])  # quantised
    np.testing.assert_allclose(decoded, CUBE, atol=0.1)
    np.testing.assert_array_equal(open_inputs(tmp_path / "comp.fits", SPEC)[0].data[0], decoded)

    raw = np.arange(16 * 16, dtype=np.int16).reshape(16, 16)
    raw[3, 4] = -32768
    hdus = [fits.PrimaryHDU()]
    for b in "gri":
        h = fits.ImageHDU(raw, name=b)
        h.header.update(BSCALE=0.5, BZERO=100.0, BLANK=-32768)
        hdus.append(h)
    fits.HDUList(hdus).writeto(tmp_path / "int.fits")
    batch = open_inputs(tmp_path / "int.fits", SPEC)[0]
    expect = raw * 0.5 + 100.0
    good = np.ones_like(raw, bool)
    good[3, 4] = False
    np.testing.assert_allclose(batch.data[0, 1][good], expect[good])
    # the BLANK pixel is bad: replaced by the band median of the good pixels
    assert batch.data[0, 1, 3, 4] == pytest.approx(np.median(expect[good]))
    assert batch.n_bad_pixels[0] == 3 and batch.flags[0] == Flag.BAD_PIXELS


def test_numpy_arrays_with_band_names_and_big_endian():
    arr = np.stack([CUBE[::-1], CUBE[::-1] * 2]).astype(">f8")  # bands i, r, g
    batch = open_inputs(arr, SPEC, bands=["i", "r", "g"]).read_batch([0, 1])
    assert batch.ids == [0, 1]
    np.testing.assert_allclose(batch.data[1], 2 * CUBE, rtol=1e-6)
    one = open_inputs(CUBE, SPEC, bands=["g", "r", "i"])  # (C, H, W)
    assert len(one) == 1 and np.array_equal(one[0].data[0], CUBE)
    # several bands and no names: never guessed, even when the channel count matches
    with pytest.raises(ValueError, match="bands=.*never guessed"):
        open_inputs(arr, SPEC)


def test_nddata_with_mask_and_ccddata_unit():
    mask = np.zeros(CUBE.shape, bool)
    mask[0, 0, 0] = True
    batch = open_inputs(NDData(CUBE, mask=mask), SPEC, bands=["g", "r", "i"])[0]
    assert batch.n_bad_pixels[0] == 1
    assert batch.data[0, 0, 0, 0] == pytest.approx(np.median(CUBE[0].ravel()[1:]))
    ccd = CCDData(CUBE[1], unit="uJy")  # 2-D: one band, named by bands=
    spec1 = InputSpec(bands=("r",), pixel_scale=0.2, size=16)
    np.testing.assert_allclose(open_inputs(ccd, spec1, bands=["r"])[0].data[0, 0],
                               CUBE[1] * 1000, rtol=1e-6)
