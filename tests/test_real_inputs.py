"""Inputs as surveys deliver them: each finding of the real-inputs review, reproduced, now giving
the right number, a flag with a reason, or a clear error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, Table, join

import astrozoo
from astrozoo.config import InputSpec
from astrozoo.exceptions import InputError
from astrozoo.io import Flag, open_inputs
from astrozoo.io.units import unit_factor
from astrozoo.surveys import get_survey

LSST = get_survey("lsst")
NMGY_TO_NJY = unit_factor("nanomaggy", "nJy")
ONE_BAND = InputSpec(bands=("r",), size=8, pixel_scale=0.2, normalization="asinh",
                     normalization_kwargs={"sky_sigma": [1.0]})  # not scale-free


@pytest.fixture(scope="module")
def photoz():
    return astrozoo.load("photoz-lsst")


@pytest.fixture(scope="module")
def lens():
    return astrozoo.load("lens-finding")


@pytest.fixture(scope="module")
def galaxies():
    from astrozoo.tasks.photoz.simulate_lsst import simulate

    return simulate(24, 777)


def _cube(path, data, **cards):
    h = fits.PrimaryHDU(np.asarray(data, np.float32))
    h.header.update(cards)
    h.writeto(path)
    return path


# -- calibration ----------------------------------------------------------------------------
def test_uncalibrated_files_are_flagged_and_warned_not_silently_assumed(tmp_path, photoz,
                                                                        galaxies):
    bands = ",".join(LSST.bands)
    paths = [_cube(tmp_path / f"g{i}.fits", img / NMGY_TO_NJY, BANDS=bands)  # no BUNIT
             for i, img in enumerate(galaxies["images"])]
    with pytest.warns(UserWarning, match="no flux calibration.*unit="):
        t = photoz.predict(paths, progress=False)
    assert (t["flags"] & Flag.UNCALIBRATED).all()
    # stated by the user, the number is right: the same as the nJy arrays
    stated = photoz.predict(paths, unit="nanomaggy", progress=False)
    ref = photoz.predict(galaxies["images"], bands=list(LSST.bands), unit="nJy", progress=False)
    assert not (stated["flags"] & Flag.UNCALIBRATED).any()
    np.testing.assert_allclose(stated["z_median"], ref["z_median"], rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="no flux calibration"):
        photoz.predict(paths, uncalibrated="raise", progress=False)


def test_a_scale_free_model_needs_no_calibration(tmp_path, lens):
    assert lens.spec.scale_free and not astrozoo.load("photoz-lsst").spec.scale_free
    x = np.random.default_rng(0).normal(0, 2, (2, 3, 64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = lens.predict(x, bands=["g", "r", "i"], progress=False)
    assert not (t["flags"] & Flag.UNCALIBRATED).any()


@pytest.mark.parametrize("cards, factor", [
    ({"FLUXMAG0": 10 ** (0.4 * 27.0)}, 10 ** (-0.4 * (27.0 - LSST.zero_point))),
    ({"MAGZERO": 25.0}, 10 ** (-0.4 * (25.0 - LSST.zero_point))),
    # HST: ZP_AB = -2.5 log10(PHOTFLAM) - 5 log10(PHOTPLAM) - 2.408
    ({"PHOTFLAM": 1e-19, "PHOTPLAM": 8000.0},
     10 ** (-0.4 * (-2.5 * np.log10(1e-19) - 5 * np.log10(8000.0) - 2.408 - LSST.zero_point))),
])
def test_more_calibration_keywords(tmp_path, cards, factor):
    p = _cube(tmp_path / "c.fits", np.full((8, 8), 3.0), FILTER="r", **cards)
    b = open_inputs(p, ONE_BAND)[0]
    np.testing.assert_allclose(b.data, 3.0 * factor, rtol=1e-5)
    assert not b.flags[0] & Flag.UNCALIBRATED
    # the caller's statement overrides the header
    np.testing.assert_allclose(open_inputs(p, ONE_BAND, zeropoint=LSST.zero_point)[0].data, 3.0,
                               rtol=1e-5)
    with pytest.raises(InputError, match="PHOTPLAM"):
        open_inputs(_cube(tmp_path / "h.fits", np.ones((8, 8)), FILTER="r", PHOTFLAM=1e-19),
                    ONE_BAND)[0]


def test_catalogue_units_follow_the_column_or_the_declaration():
    from astrozoo.tasks.photoz.sdss import load_sdss

    pz = astrozoo.load("photo-z")
    cat = load_sdss("test")[:50]
    ref = pz.predict(cat, progress=False)  # columns carry their unit (nanomaggy)
    assert not (ref["flags"] & Flag.UNCALIBRATED).any()
    plain = Table(cat, copy=True)
    njy = Table(cat, copy=True)
    for c in plain.colnames:
        plain[c].unit = None
        njy[c].unit = None
        if c.startswith(("flux_", "flux_err_")):
            njy[c] = njy[c] * NMGY_TO_NJY
    with pytest.warns(UserWarning, match="no flux calibration"):
        t = pz.predict(plain, progress=False)
    assert (t["flags"] & Flag.UNCALIBRATED).all()
    # unit="nJy" is honoured for catalogue models
    t = pz.predict(njy, unit="nJy", progress=False)
    np.testing.assert_allclose(t["z_median"], ref["z_median"], rtol=1e-4)


# -- bands ------------------------------------------------------------------------------------
def test_arrays_without_band_names_are_refused(photoz, galaxies):
    reverse = galaxies["images"][:, ::-1]
    with pytest.raises(InputError, match="never guessed"):
        photoz.predict(reverse, unit="nJy", progress=False)
    t = photoz.predict(reverse, bands=list(LSST.bands)[::-1], unit="nJy", progress=False)
    ref = photoz.predict(galaxies["images"], bands=list(LSST.bands), unit="nJy", progress=False)
    np.testing.assert_allclose(t["z_median"], ref["z_median"], rtol=1e-5)


@pytest.mark.parametrize("cards", [{"BANDS": "grz"}, {"BANDS": "g r z"}, {"BANDS": "g,r,z"},
                                   {"BAND0": "g", "BAND1": "r", "BAND2": "z"}])
def test_legacy_survey_band_conventions(tmp_path, cards):
    spec = InputSpec(bands=("z", "g"), size=8, pixel_scale=0.262)
    data = np.stack([np.full((8, 8), v) for v in (1.0, 2.0, 3.0)])
    b = open_inputs(_cube(tmp_path / "ls.fits", data, BUNIT="nanomaggy", **cards), spec)[0]
    np.testing.assert_allclose(b.data[0, :, 0, 0], [3 * NMGY_TO_NJY, 1 * NMGY_TO_NJY], rtol=1e-6)


@pytest.mark.parametrize("name", ["HSC-G", "LSST_g", "DECam g", "g DECam SDSS c0001 4720.0 1520.0"])
def test_band_names_as_surveys_write_them(tmp_path, name):
    spec = InputSpec(bands=("g",), size=8, pixel_scale=0.2)
    p = _cube(tmp_path / "f.fits", np.ones((8, 8)), FILTER=name, BUNIT="nJy")
    assert open_inputs(p, spec)[0].data.shape == (1, 1, 8, 8)


def test_pipeline_image_mask_variance(tmp_path):
    img = np.full((8, 8), 5.0, np.float32)
    img[2, 3] = 1e6  # a cosmic ray, masked
    mask = np.zeros((8, 8), np.int32)
    mask[2, 3] = 1 << 3  # CR bit
    mask[4, 4] = 1 << 5  # DETECTED: a source, not bad
    hdr = fits.Header({"MP_BAD": 0, "MP_SAT": 1, "MP_CR": 3, "MP_DETECTED": 5})
    hdus = fits.HDUList([fits.PrimaryHDU(header=fits.Header({"FILTER": "r", "BUNIT": "nJy"})),
                         fits.ImageHDU(img, name="IMAGE"), fits.ImageHDU(mask, hdr, name="MASK"),
                         fits.ImageHDU(np.ones((8, 8), np.float32), name="VARIANCE")])
    hdus.writeto(tmp_path / "calexp.fits")
    b = open_inputs(tmp_path / "calexp.fits", ONE_BAND)[0]
    assert b.n_bad_pixels[0] == 1 and b.flags[0] & Flag.BAD_PIXELS
    assert (b.data == 5.0).all()  # the masked pixel replaced, VARIANCE not read as a band


def test_bands_option_reaches_fits_and_conflicts_are_refused(tmp_path):
    spec = InputSpec(bands=("g", "r"), size=8, pixel_scale=0.2)
    data = np.stack([np.full((8, 8), 1.0), np.full((8, 8), 2.0)])
    p = _cube(tmp_path / "nob.fits", data, BUNIT="nJy")
    with pytest.raises(InputError, match="bands="):
        open_inputs(p, spec)[0]
    b = open_inputs(p, spec, bands=["r", "g"])[0]
    assert b.data[0, :, 0, 0].tolist() == [2.0, 1.0]
    q = _cube(tmp_path / "named.fits", data, BUNIT="nJy", BANDS="g,r")
    with pytest.raises(InputError, match="which is right"):
        open_inputs(q, spec, bands=["r", "g"])[0]


# -- per-band files ---------------------------------------------------------------------------
def test_per_band_files_grouped_by_pattern(tmp_path, lens):
    from astrozoo.examples import DATA_DIR, example_inputs

    ref = lens.predict(example_inputs("mef"), progress=False)
    folder = lens.predict(DATA_DIR / "perband", progress=False)  # a folder of {id}_{band}.fits
    assert list(folder["id"]) == list(ref["id"])
    np.testing.assert_allclose(folder["p_lens"], ref["p_lens"], atol=1e-4)
    glob = lens.predict(str(DATA_DIR / "perband" / "*.fits"), progress=False, keep=["path"])
    assert list(glob["id"]) == list(ref["id"]) and glob["path"][0].count(",") == 2
    # another naming scheme, stated by the user
    import shutil

    for p in (DATA_DIR / "perband").glob("*.fits"):
        oid, band = p.stem.split("_")
        shutil.copy(p, tmp_path / f"cutout-{band}-{oid}.fits")
    mine = lens.predict(tmp_path, group="cutout-{band}-{id}", progress=False)
    np.testing.assert_allclose(mine["p_lens"], ref["p_lens"], atol=1e-4)
    with pytest.raises(InputError, match="does not fit the per-band pattern"):
        lens.predict(tmp_path, group="{id}_{band}", progress=False)


# -- edges and sizes ----------------------------------------------------------------------------
def _noise_image(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    paths = {}
    for b, s in zip("gri", LSST.sky_sigma(("g", "r", "i"))):
        h = fits.PrimaryHDU(rng.normal(0, s, (300, 300)).astype(np.float32))
        h.header.update(FILTER=b, BUNIT="nJy")
        paths[b] = tmp_path / f"{b}.fits"
        h.writeto(paths[b])
    return paths


def test_off_image_pixels_are_missing_not_signal(tmp_path, lens):
    paths = _noise_image(tmp_path)
    cat = Table({"x": [0.0, 2.0, 10.0, 150.0, 28.0], "y": [0.0, 2.0, 10.0, 150.0, 150.0]})
    t = lens.predict(paths, catalog=cat, progress=False)
    # mostly off the image: flagged, and no confident score
    assert (t["flags"][:3] & Flag.TOO_MANY_MISSING).all() and np.isnan(t["p_lens"][:3]).all()
    assert (t["flags"][:3] & Flag.EDGE_PADDED).all() and (t["n_bad_pixels"][:3] > 0).all()
    # noise in the middle and a little off the edge (6% missing): scored, and not a lens
    assert not (t["flags"][3:] & Flag.TOO_MANY_MISSING).any()
    assert (t["p_lens"][3:] < 0.5).all()
    forced = lens.predict(paths, catalog=cat, progress=False, score_incomplete=True)
    assert np.isfinite(forced["p_lens"]).all()


def test_undersized_cutouts_warn_and_flag(tmp_path, lens):
    from astrozoo.examples import DATA_DIR

    with fits.open(DATA_DIR / "mef" / "obj00.fits") as h:
        small = fits.HDUList([h[0].copy()] + [
            fits.ImageHDU(x.data[8:56, 8:56], x.header) for x in h[1:]])
        small.writeto(tmp_path / "small.fits")
    with pytest.warns(UserWarning, match="smaller than the model's 64x64"):
        t = lens.predict([tmp_path / "small.fits"], progress=False)
    assert t["flags"][0] & Flag.UNDERSIZED and t["flags"][0] & Flag.TOO_MANY_MISSING
    assert np.isnan(t["p_lens"][0]) and t["n_bad_pixels"][0] == 3 * (64 ** 2 - 48 ** 2)


def test_pixel_scale_mismatch_names_the_option(tmp_path):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cdelt = [-0.262 / 3600 * 1.5, 0.262 / 3600 * 1.5]
    h = fits.PrimaryHDU(np.ones((8, 8), np.float32), header=w.to_header())
    h.header.update(FILTER="r", BUNIT="nJy")
    h.writeto(tmp_path / "ls.fits")
    with pytest.raises(InputError, match="scale_max_rtol"):
        open_inputs(tmp_path / "ls.fits", ONE_BAND)[0]


def test_zero_filled_bands_are_not_offered(lens):
    with pytest.raises(ValueError, match="silently wrong"):
        lens.predict(np.zeros((1, 2, 64, 64)), bands=["g", "r"], missing_band="zero",
                     progress=False)
    with pytest.raises(InputError, match="missing band 'i'.*needs"):
        lens.predict(np.zeros((1, 2, 64, 64)), bands=["g", "r"], progress=False)


def test_a_local_folder_does_not_shadow_a_task(tmp_path, monkeypatch):
    (tmp_path / "photo-z").mkdir()
    monkeypatch.chdir(tmp_path)
    assert astrozoo.load("photo-z").name == "photoz-sdss"


# -- catalogues ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sdss():
    from astrozoo.tasks.photoz.sdss import load_sdss

    return load_sdss("test")[:40]


@pytest.fixture(scope="module")
def sdss_ref(sdss):
    return astrozoo.load("photo-z").predict(sdss, progress=False)


@pytest.mark.parametrize("kind", ["qtable", "pandas", "dict", "structured"])
def test_catalogue_containers(sdss, sdss_ref, kind):
    pz = astrozoo.load("photo-z")
    cols = ["id"] + [c for c in sdss.colnames if c.startswith(("flux_", "extinction_"))]
    t = sdss[cols]
    src = {"qtable": lambda: QTable(t), "pandas": lambda: t.to_pandas(),
           "dict": lambda: {c: np.asarray(t[c]) for c in cols},
           "structured": lambda: t.as_array()}[kind]()
    out = pz.predict(src, progress=False, unit="nanomaggy")
    np.testing.assert_allclose(out["z_median"], sdss_ref["z_median"], rtol=1e-5)
    row = pz.predict(sdss[3], progress=False)
    assert len(row) == 1 and row["z_median"][0] == pytest.approx(sdss_ref["z_median"][3], rel=1e-5)


def test_sdss_native_columns_magnitudes_and_mapping(sdss, sdss_ref):
    pz = astrozoo.load("photo-z")
    bands = "ugriz"
    native = Table({"objID": sdss["id"]})
    for b in bands:
        native[f"modelFlux_{b}"] = sdss[f"flux_{b}"]
        native[f"modelFluxIvar_{b}"] = 1 / np.asarray(sdss[f"flux_err_{b}"]) ** 2
        native[f"extinction_{b}"] = sdss[f"extinction_{b}"]
    out = pz.predict(native, progress=False)
    np.testing.assert_allclose(out["z_median"], sdss_ref["z_median"], rtol=1e-4)
    two_d = Table({"id": sdss["id"],
                   "MODELFLUX": np.stack([sdss[f"flux_{b}"] for b in bands], 1),
                   "MODELFLUX_IVAR": np.stack([1 / np.asarray(sdss[f"flux_err_{b}"]) ** 2
                                               for b in bands], 1),
                   "EXTINCTION": np.stack([sdss[f"extinction_{b}"] for b in bands], 1)})
    two_d["MODELFLUX"].unit = "nanomaggy"
    np.testing.assert_allclose(pz.predict(two_d, progress=False)["z_median"],
                               sdss_ref["z_median"], rtol=1e-4)
    mags = Table({"id": sdss["id"]})
    for b in bands:
        f, e = np.asarray(sdss[f"flux_{b}"]), np.asarray(sdss[f"flux_err_{b}"])
        mags[f"{b}_mag"] = 22.5 - 2.5 * np.log10(f)
        mags[f"{b}_magerr"] = 2.5 / np.log(10) * e / f
        mags[f"a_{b}"] = sdss[f"extinction_{b}"]
    m = pz.predict(mags, progress=False)
    ok = np.all([np.asarray(sdss[f"flux_{b}"]) > 0 for b in bands], axis=0)
    np.testing.assert_allclose(m["z_median"][ok], sdss_ref["z_median"][ok], rtol=1e-3)
    mine = Table({"ID": sdss["id"], **{f"F_{b.upper()}": sdss[f"flux_{b}"] for b in bands},
                  **{f"E_{b.upper()}": sdss[f"flux_err_{b}"] for b in bands}})
    mapping = {**{f"flux_{b}": f"F_{b.upper()}" for b in bands},
               **{f"flux_err_{b}": f"E_{b.upper()}" for b in bands}}
    mm = pz.predict(mine, columns=mapping, progress=False)
    assert np.isfinite(mm["z_median"]).all()
    with pytest.raises(InputError, match=r"no photometry for bands.*flux_err_<b>"):
        pz.predict(mine, progress=False)


def test_ids_keep_their_type_and_columns_are_carried(sdss, sdss_ref):
    assert sdss_ref["id"].dtype.kind == "i"
    joined = join(sdss, sdss_ref, keys="id")
    assert len(joined) == len(sdss)
    t = astrozoo.load("photo-z").predict(sdss, keep=["ra", "dec"], progress=False)
    np.testing.assert_array_equal(t["ra"], sdss["ra"])
    assert t.colnames[:3] == ["id", "ra", "dec"]


def test_vizier_positions(tmp_path, lens):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150.0, 2.0], [100.5, 100.5]
    w.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    paths = {}
    for b in "gri":
        h = fits.PrimaryHDU(np.random.default_rng(1).normal(0, 1, (200, 200)).astype(np.float32),
                            header=w.to_header())
        h.header.update(FILTER=b, BUNIT="nJy")
        paths[b] = tmp_path / f"{b}.fits"
        h.writeto(paths[b])
    cat = Table({"RAJ2000": [150.0], "DEJ2000": [2.0]})
    t = lens.predict(paths, catalog=cat, keep=["RAJ2000"], progress=False)
    assert t["flags"][0] == 0 and t["RAJ2000"][0] == 150.0


def test_survey_image_masks_are_used(tmp_path):
    img = np.full((50, 50), 5.0, np.float32)
    mask = np.zeros((50, 50), np.int32)
    mask[24:27, 24:27] = 1  # BAD
    hdus = fits.HDUList([fits.PrimaryHDU(header=fits.Header({"FILTER": "r", "BUNIT": "nJy"})),
                         fits.ImageHDU(img, name="IMAGE"),
                         fits.ImageHDU(mask, fits.Header({"MP_BAD": 0}), name="MASK"),
                         fits.ImageHDU(np.ones((50, 50), np.float32), name="VARIANCE")])
    hdus.writeto(tmp_path / "calexp.fits")
    cs = open_inputs({"r": tmp_path / "calexp.fits"}, ONE_BAND,
                     catalog=Table({"x": [25.0, 5.0], "y": [25.0, 5.0]}))
    b = cs.read_batch([0, 1])
    assert b.n_bad_pixels.tolist() == [9, 0] and (b.data == 5.0).all()
