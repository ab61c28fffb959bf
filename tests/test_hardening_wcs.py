"""Survey images under every WCS astropy reads: cutouts by sky position equal `Cutout2D`'s pixel
for pixel (projections, SIP, TPV, lookup tables, -TAB, rotated/flipped CD), broken WCSs are
named errors (or flagged rows), and one unplaceable catalogue row fails alone."""

import pickle
import zlib

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.table import Table
from astropy.wcs import WCS, DistortionLookupTable

from astrozoo.config import InputSpec
from astrozoo.exceptions import InputError
from astrozoo.io import Flag, open_inputs
from astrozoo.io.cutouts import cut
from astrozoo.io.layouts import read_fits

SHAPE = (200, 200)
SCALE = 0.2  # arcsec/pixel
#: Sky positions no image here covers: a degree away, far side of the sky, the poles.
FAR = [(151.0, 2.0), (149.0, 2.5), (330.0, -2.0), (150.0, 89.5), (10.0, -89.0)]
#: Not sky positions: each row alone is unplaceable.
INVALID = [(np.nan, 2.0), (150.0, np.nan), (150.0, 95.0), (np.inf, 2.0), (150.0, -91.0)]


def header(proj="TAN", crval=(150.0, 2.0), cd=None, **extra):
    s = SCALE / 3600
    h = fits.Header()
    h.update(CTYPE1=f"RA---{proj}", CTYPE2=f"DEC--{proj}", CRPIX1=100.5, CRPIX2=100.5,
             CRVAL1=crval[0], CRVAL2=crval[1], CUNIT1="deg", CUNIT2="deg", RADESYS="ICRS")
    for (i, j), v in np.ndenumerate(np.array(cd if cd is not None else [[-s, 0], [0, s]])):
        h[f"CD{i + 1}_{j + 1}"] = v
    h.update(extra)
    return h


def rotation(deg, flip=False):
    s = SCALE / 3600
    c, sn = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[-s * c, s * sn], [s * sn, s * c]]) * ([[-1, 1], [-1, 1]] if flip else 1)


def write(path, hdr, extensions=()):
    data = np.random.default_rng(zlib.crc32(path.name.encode())).normal(
        0, 1, SHAPE).astype(np.float32)
    hdu = fits.PrimaryHDU(data, header=hdr)
    hdu.header.update(FILTER="g", BUNIT="nJy")
    fits.HDUList([hdu, *extensions]).writeto(path)
    return path


def lookup_file(path):
    """An image with HST-style lookup-table distortions: CPDIS (WCSDVARR) and D2IM (D2IMARR)."""
    w = WCS(header())
    rng = np.random.default_rng(1)
    tables = [rng.uniform(-0.05, 0.05, (9, 9)).astype(np.float32) for _ in range(3)]
    w.cpdis1, w.cpdis2, w.det2im1 = (DistortionLookupTable(t, (1, 1), (1, 1), (25, 25))
                                     for t in tables)
    hdul = w.to_fits(relax=True)
    return write(path, hdul[0].header, hdul[1:])


def tab_file(path):
    """An image whose celestial axes are -TAB: sky positions tabulated on a grid of nodes."""
    ref = WCS(header())
    nodes = np.linspace(-10, 210, 21)
    ra, dec = ref.wcs_pix2world(*np.meshgrid(nodes, nodes), 0)
    coords = np.stack([ra, dec], -1)[None]
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="COORDS", format=f"{coords.size}D", dim="(2,21,21)", array=coords),
         fits.Column(name="INDEX1", format="21D", array=(nodes + 1)[None]),
         fits.Column(name="INDEX2", format="21D", array=(nodes + 1)[None])], name="WCS-TAB")
    h = fits.Header()
    h.update(CTYPE1="RA---TAB", CTYPE2="DEC--TAB", CRPIX1=0, CRPIX2=0, CDELT1=1, CDELT2=1,
             CRVAL1=0, CRVAL2=0, CUNIT1="deg", CUNIT2="deg", RADESYS="ICRS")
    for i in (1, 2):
        h.update({f"PS{i}_0": "WCS-TAB", f"PS{i}_1": "COORDS", f"PS{i}_2": f"INDEX{i}",
                  f"PV{i}_3": i})
    return write(path, h, [table])


#: The projections and distortions the issue names, tested with more positions than the others.
MAIN = {"TAN", "SIN", "ZEA", "AIT", "CAR", "ARC", "STG", "MER", "CEA", "COE", "SIP",
        "SIP-rotated-flipped", "rotated", "flipped", "lookup", "tab"}
SIP = dict(A_ORDER=3, B_ORDER=3, A_2_0=2e-4, A_0_2=-1e-4, A_1_1=1e-4, B_2_0=1e-4, B_0_2=2e-4,
           A_3_0=1e-6, B_0_3=-1e-6)
CASES = {
    **{p: header(p) for p in ("TAN", "SIN", "ZEA", "AIT", "CAR", "ARC", "STG", "MER", "CEA")},
    "COE": header("COE", PV2_1=10.0),
    **{p: header(p) for p in ("AIR", "CYP", "SFL", "PAR", "MOL", "PCO", "TSC", "CSC", "QSC",
                              "HPX", "XPH")},
    "AZP": header("AZP", PV2_1=2.0), "SZP": header("SZP", PV2_1=2.0),
    "ZPN": header("ZPN", PV2_1=1.0, PV2_3=50.0), "COD": header("COD", PV2_1=10.0),
    "COO": header("COO", PV2_1=10.0), "COP": header("COP", PV2_1=10.0),
    "BON": header("BON", PV2_1=10.0),
    "TPV": header("TPV", PV1_1=1.0, PV2_1=1.0, PV1_4=40.0, PV2_4=-30.0, PV1_5=20.0),
    "SIP": header("TAN-SIP", **SIP),
    "SIP-rotated-flipped": header("TAN-SIP", cd=rotation(33, flip=True), **SIP),
    "rotated": header(cd=rotation(117)), "flipped": header(cd=rotation(0, flip=True)),
    "galactic": header(crval=(45.0, 60.0), CTYPE1="GLON-TAN", CTYPE2="GLAT-TAN"),
    "pole": header(crval=(150.0, 89.999)), "ra-wrap": header(crval=(0.001, -30.0)),
    "lookup": lookup_file, "tab": tab_file,
}


def positions(w, rng, n=240):
    """Sky positions of random pixel positions, half of them on or within 0.004 pixel of a
    multiple of 0.5 (where a cutout window edge falls for odd or even sizes)."""
    k = n // 2
    edge = rng.integers(-10, 410, (2, k)) / 2 + rng.choice([-0.004, 0.0, 0.004], (2, k))
    xy = np.hstack([rng.uniform(-5, SHAPE[1] + 5, (2, n - k)), edge])
    sky = w.pixel_to_world(xy[0], xy[1]).icrs
    return sky.ra.deg, sky.dec.deg


@pytest.mark.parametrize("name", list(CASES))
def test_cutouts_equal_cutout2d(tmp_path, name):
    case = CASES[name]
    path = case(tmp_path / "g.fits") if callable(case) else write(tmp_path / "g.fits", case)
    size = 15 if len(name) % 2 else 16  # odd and even sizes: edges at x.5 and at integers
    with fits.open(path) as hdul:
        wcs = WCS(hdul[0].header, fobj=hdul)
        raw = hdul[0].data.copy()
    ra, dec = positions(wcs, np.random.default_rng(len(name)), 240 if name in MAIN else 100)
    coords = SkyCoord(ra, dec, unit="deg")  # as a user would, from the catalogue's numbers
    n = len(coords)
    ra, dec = np.r_[ra, [p[0] for p in FAR + INVALID]], np.r_[dec, [p[1] for p in FAR + INVALID]]
    spec = InputSpec(bands=("g",), pixel_scale=SCALE, size=size)
    cs = open_inputs({"g": path}, spec, catalog=Table({"ra": ra, "dec": dec}), on_error="flag")
    img, _, _, x0, y0, _ = cs.geometry.bands[0]
    assert img.pixel_scale == pytest.approx(SCALE, rel=2e-3)
    batch = cs.read_batch(range(len(ra)))
    checked = 0
    for i in range(n):
        try:
            ref = Cutout2D(raw, coords[i], size, wcs=wcs, mode="partial").data
        except NoOverlapError:  # Cutout2D refuses, we flag
            assert batch.flags[i] & Flag.ALL_BAD
            continue
        checked += 1
        np.testing.assert_array_equal(cut(raw, int(x0[i]), int(y0[i]), size)[0], ref)
        ok = np.isfinite(ref)
        np.testing.assert_array_equal(batch.data[i, 0][ok], ref[ok])
        assert batch.n_bad_pixels[i] == np.count_nonzero(~ok)
    assert checked > 0.9 * n
    # far rows: off the image or unplaceable, never a cutout; invalid rows: unplaceable
    for i in range(n, len(ra)):
        if batch.flags[i] & Flag.READ_ERROR:
            assert "no pixel coordinates" in batch.errors[i]
        else:
            assert i < n + len(FAR) and batch.flags[i] & Flag.ALL_BAD, (ra[i], dec[i])
            assert cut(raw, int(x0[i]), int(y0[i]), size)[1] == size * size
    assert all(batch.flags[n + len(FAR):] & Flag.READ_ERROR)
    assert "|dec| > 90" in batch.errors[n + len(FAR) + 2]


def test_dropping_the_lookup_tables_would_move_cutouts(tmp_path):
    """Dropping the lookup tables (WCS from the header alone) moves some cutouts by a pixel:
    the exactness test above would catch it."""
    path = lookup_file(tmp_path / "g.fits")
    with fits.open(path) as hdul:
        full = WCS(hdul[0].header, fobj=hdul)
        hdr = hdul[0].header.copy()
    for key in [k for k in hdr if k.startswith(("CPDIS", "DP", "D2IM"))]:
        del hdr[key]
    coords = SkyCoord(*positions(full, np.random.default_rng(0), 400), unit="deg")
    x, y = full.world_to_pixel(coords)
    xs, ys = WCS(hdr).world_to_pixel(coords)
    moved = (np.ceil(x - 7.5) != np.ceil(xs - 7.5)) | (np.ceil(y - 7.5) != np.ceil(ys - 7.5))
    assert moved.sum() > 20
    assert 0.005 < np.abs(x - xs).max() < 0.2


def test_lookup_and_tab_files_are_read_not_called_corrupt(tmp_path):
    for make in (lookup_file, tab_file):
        path = make(tmp_path / f"{make.__name__}.fits")
        (image,), _ = read_fits(path, "nJy")
        assert image.band == "g" and image.pixel_scale == pytest.approx(SCALE, rel=2e-3)
        # the WCS is not pickled with the image (astropy cannot pickle -TAB); positions are
        cs = open_inputs({"g": path}, InputSpec(bands=("g",), pixel_scale=SCALE, size=15),
                         catalog=Table({"ra": [150.0], "dec": [2.0]}))
        again = pickle.loads(pickle.dumps(cs))
        np.testing.assert_array_equal(again.read_batch([0]).data, cs.read_batch([0]).data)


def test_dec_ra_axis_order_is_placed_right(tmp_path):
    """CTYPE1='DEC--TAN': Cutout2D(SkyCoord) swaps x and y there (astropy #10468); we do not."""
    s = SCALE / 3600
    h = header(cd=[[0, s], [-s, 0]], CTYPE1="DEC--TAN", CTYPE2="RA---TAN", CRVAL1=2.0,
               CRVAL2=150.0)
    path = write(tmp_path / "g.fits", h)
    w, raw = WCS(h), fits.getdata(path)
    x, y = np.array([30.3, 150.0, 60.2]), np.array([70.6, 40.1, 160.7])
    world = w.all_pix2world(x, y, 0)
    cat = Table({"ra": world[1], "dec": world[0]})
    batch = open_inputs({"g": path}, InputSpec(bands=("g",), pixel_scale=SCALE, size=15),
                        catalog=cat).read_batch(range(3))
    for i in range(3):
        right = Cutout2D(raw, (x[i], y[i]), 15, mode="partial").data
        np.testing.assert_array_equal(batch.data[i, 0], right)
        wrong = Cutout2D(raw, SkyCoord(cat["ra"][i], cat["dec"][i], unit="deg"), 15, wcs=w,
                         mode="partial").data
        assert not np.array_equal(np.nan_to_num(wrong), right)


def test_sip_far_rows_fail_alone(tmp_path):
    """One row a degree from a SIP image makes all_world2pix diverge: that row is unplaceable,
    the others are placed (raise mode: at its row, naming the file and why)."""
    path = write(tmp_path / "g.fits", header("TAN-SIP", **SIP))
    w = WCS(fits.getheader(path))
    ra, dec = w.all_pix2world([50.0, 120.0], [60.0, 80.0], 0)
    cat = Table({"ra": np.r_[ra[0], 151.0, ra[1], 330.0, 150.0],
                 "dec": np.r_[dec[0], 2.0, dec[1], -2.0, 95.0]})
    spec = InputSpec(bands=("g",), pixel_scale=SCALE, size=15)
    cs = open_inputs({"g": path}, spec, catalog=cat)
    raw = fits.getdata(path)
    good = cs.read_batch([0, 2])
    np.testing.assert_array_equal(good.data[0, 0], raw[53:68, 43:58])
    np.testing.assert_array_equal(good.data[1, 0], raw[73:88, 113:128])
    reasons = {1: "does not converge", 3: "does not reach", 4: "|dec| > 90"}
    for i, why in reasons.items():
        with pytest.raises(InputError, match=f"row {i}: position has no pixel coordinates") as e:
            cs.read_batch([i])
        assert why in str(e.value) and e.value.path == str(path)
    flagged = open_inputs({"g": path}, spec, catalog=cat, on_error="flag").read_batch(range(5))
    assert [bool(f & Flag.READ_ERROR) for f in flagged.flags] == [False, True, False, True, True]
    assert all(why in flagged.errors[i] for i, why in reasons.items())


def test_broken_wcs_is_a_named_error_or_flagged_rows(tmp_path):
    lookup = fits.getheader(lookup_file(tmp_path / "lookup.fits"))
    broken = {
        "cunit": write(tmp_path / "cunit.fits", header(CUNIT1="furlong")),
        "no-table": write(tmp_path / "no-table.fits", lookup),  # WCSDVARR extensions lost
        "frame": write(tmp_path / "frame.fits", header(RADESYS="FOO")),
    }
    expect = {"cunit": "CUNIT1", "no-table": "invalid WCS", "frame": "frame is unknown"}
    cat = Table({"ra": [150.0, 150.001], "dec": [2.0, 2.001]})
    spec = InputSpec(bands=("g",), pixel_scale=SCALE, size=15)
    for name, path in broken.items():
        with pytest.raises(InputError, match=expect[name]) as e:
            open_inputs({"g": path}, spec, catalog=cat)
        assert e.value.path == str(path) and "wcslib" not in str(e.value)
        batch = open_inputs({"g": path}, spec, catalog=cat, on_error="flag").read_batch([0, 1])
        assert all(batch.flags & Flag.READ_ERROR) and expect[name] in batch.errors[1]
        if name != "frame":  # the layout reader needs no frame; the others it names, too
            with pytest.raises(InputError, match=expect[name]) as e:
                read_fits(path, "nJy")
            assert "corrupt" not in str(e.value)


def test_non_celestial_wcs_is_no_wcs(tmp_path):
    h = fits.Header()
    h.update(CTYPE1="PIXEL", CTYPE2="PIXEL", CRPIX1=1.0, CRPIX2=1.0, CDELT1=1.0, CDELT2=1.0)
    path = write(tmp_path / "g.fits", h)
    spec = InputSpec(bands=("g",), pixel_scale=SCALE, size=15)
    with pytest.raises(InputError, match="no usable positions.*no celestial WCS"):
        open_inputs({"g": path}, spec, catalog=Table({"ra": [150.0], "dec": [2.0]}))
    cat = Table({"ra": [150.0, 1.0], "dec": [2.0, 1.0], "x": [50.0, np.nan], "y": [60.0, 3.0]})
    batch = open_inputs({"g": path}, spec, catalog=cat, on_error="flag").read_batch([0, 1])
    np.testing.assert_array_equal(batch.data[0, 0], fits.getdata(path)[53:68, 43:58])
    assert batch.flags[1] & Flag.READ_ERROR and "x/y is not finite" in batch.errors[1]


def test_deblending_image_wcs_keeps_lookup_tables(tmp_path):
    from astrozoo.tasks.deblending.segment import read_image

    spec = InputSpec(bands=("g",), pixel_scale=SCALE, size=15)
    _, wcs, _ = read_image(lookup_file(tmp_path / "lookup.fits"), spec)
    assert wcs.cpdis1 is not None and wcs.det2im1 is not None
    h = fits.Header()
    h.update(CTYPE1="PIXEL", CTYPE2="PIXEL")
    with pytest.warns(UserWarning, match="no pixel scale"):
        _, wcs, _ = read_image(write(tmp_path / "pixel.fits", h), spec)
    assert wcs is None
