"""Survey image + catalogue cutouts: pixel-identical to Cutout2D, edges padded and flagged."""

import mmap

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.table import Table
from astropy.wcs import WCS

from astrozoo.config import InputSpec
from astrozoo.io import Flag, open_inputs
from astrozoo.io.cutouts import cut, cutout_origins

SPEC = InputSpec(bands=("g", "r"), pixel_scale=0.2, size=15)
N = 300


def image_wcs(shape, rot=0.0):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    s = 0.2 / 3600
    c, sn = np.cos(np.radians(rot)), np.sin(np.radians(rot))
    w.wcs.cd = [[-s * c, s * sn], [s * sn, s * c]]
    w.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    w.wcs.crval = [150.1, 2.2]
    return w


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    d = tmp_path_factory.mktemp("survey")
    rng = np.random.default_rng(3)
    shape = (300, 400)
    paths = {}
    for k, b in enumerate("rg"):
        w = image_wcs(shape, rot=10.0 * k)  # bands on different pixel grids
        h = fits.PrimaryHDU(rng.normal(0, 1, shape).astype(np.float32), header=w.to_header())
        h.header.update(FILTER=b, BUNIT="nJy")
        paths[b] = d / f"{b}.fits"
        h.writeto(paths[b])
    # random positions over the image, many near or across its edges
    x, y = rng.uniform(-5, shape[1] + 5, N), rng.uniform(-5, shape[0] + 5, N)
    ra, dec = image_wcs(shape).all_pix2world(x, y, 0)
    cat = Table({"objid": np.arange(N) + 1000, "ra": ra, "dec": dec})
    return paths, cat


def test_pixel_identical_to_cutout2d(survey):
    paths, cat = survey
    batch = open_inputs(paths, SPEC, catalog=cat).read_batch(range(N))
    assert batch.ids[:2] == [1000, 1001]
    raw = {b: fits.getdata(p) for b, p in paths.items()}
    wcs = {b: WCS(fits.getheader(p)) for b, p in paths.items()}
    coords = SkyCoord(cat["ra"], cat["dec"], unit="deg")
    checked = 0
    for i in range(N):
        for c, b in enumerate("gr"):
            try:
                ref = Cutout2D(raw[b], coords[i], SPEC.size, wcs=wcs[b], mode="partial").data
            except Exception:  # no overlap at all: Cutout2D refuses, we return a flagged row
                assert batch.flags[i] & Flag.ALL_BAD
                continue
            ours = cut(raw[b], *[int(v) for v in cutout_origins(
                *wcs[b].world_to_pixel(coords[i]), SPEC.size)], SPEC.size)[0]
            np.testing.assert_array_equal(ours, ref)  # NaN where Cutout2D pads
            finite = np.isfinite(ref)
            np.testing.assert_array_equal(batch.data[i, c][finite], ref[finite])
            assert bool(batch.flags[i] & Flag.EDGE_PADDED) >= (not finite.all())
            checked += 1
    assert checked > 1.8 * N


def test_edge_padding_filled_and_flagged_xy(tmp_path):
    img = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    fits.PrimaryHDU(img).writeto(tmp_path / "g.fits")
    fits.PrimaryHDU(img * 2).writeto(tmp_path / "r.fits")
    cat = Table({"x": [50.0, 2.0], "y": [50.0, 50.0]})
    cat.write(tmp_path / "cat.csv")
    cs = open_inputs({"g": tmp_path / "g.fits", "r": tmp_path / "r.fits"}, SPEC,
                     catalog=tmp_path / "cat.csv")
    batch = cs.read_batch([0, 1])
    # off-image pixels are missing pixels: counted, flagged; 75 of 225 here (one third)
    assert batch.ids == [0, 1]
    assert batch.flags.tolist() == [0, Flag.EDGE_PADDED | Flag.BAD_PIXELS
                                    | Flag.TOO_MANY_MISSING]
    assert batch.n_bad_pixels.tolist() == [0, 2 * 75]
    np.testing.assert_array_equal(batch.data[0, 1], 2 * img[43:58, 43:58])
    real = img[43:58, 0:10]  # x0 = ceil(2 - 7.5) = -5: five padded columns
    np.testing.assert_array_equal(batch.data[1, 0, :, 5:], real)
    np.testing.assert_array_equal(batch.data[1, 0, :, :5], np.median(real))


def test_images_are_memory_mapped(survey):
    paths, cat = survey
    cs = open_inputs(paths, SPEC, catalog=cat)
    cs.read_batch([0])
    for entry in cs.geometry.bands:
        base = entry[0].data
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base, mmap.mmap)  # a view of the file, not a loaded copy


def test_survey_image_resampled_and_units(tmp_path):
    shape = (200, 200)
    w = image_wcs(shape)
    w.wcs.cd = np.array(w.wcs.cd) * 0.22 / 0.2  # 0.22"/pix: 10% off, resampled
    h = fits.PrimaryHDU(np.full(shape, 4.0, np.float32), header=w.to_header())
    h.header["BUNIT"] = "uJy"
    h.writeto(tmp_path / "g.fits")
    ra, dec = w.all_pix2world([100.0, 1.0], [100.0, 100.0], 0)
    spec = InputSpec(bands=("g",), pixel_scale=0.2, size=15)
    with pytest.warns(UserWarning, match="resampled"):
        cs = open_inputs({"g": tmp_path / "g.fits"}, spec, catalog=Table({"ra": ra, "dec": dec}))
    with pytest.warns(UserWarning, match="constant"):  # the image is 4.0 everywhere
        batch = cs.read_batch([0, 1])
    assert batch.flags.tolist() == [Flag.RESAMPLED | Flag.CONSTANT,
                                    Flag.CONSTANT | Flag.RESAMPLED | Flag.EDGE_PADDED
                                    | Flag.BAD_PIXELS | Flag.TOO_MANY_MISSING]
    np.testing.assert_allclose(batch.data[0], 4000.0 * (0.2 / 0.22) ** 2, rtol=1e-5)
    assert batch.n_bad_pixels[0] == 0 and batch.n_bad_pixels[1] > 0.3 * 15 * 15
