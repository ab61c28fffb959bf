"""The bad-input suite: each hostile file is read right, becomes a flagged row with its reason
(``on_error="flag"``), or raises an `InputError` naming it; never a library traceback or a
silently wrong number."""

import numpy as np
import pytest
from astropy.io import fits

from astrozoo.config import InputSpec
from astrozoo.exceptions import InputError
from astrozoo.io import Flag, open_inputs

SPEC = InputSpec(bands=("g",), pixel_scale=0.2, size=8)
RAMP = np.arange(64, dtype=np.float32).reshape(8, 8) + 3.0


def _write(path, hdus):
    fits.HDUList(hdus).writeto(path)
    return path


def _primary(data, **cards):
    h = fits.PrimaryHDU(data)
    h.header["FILTER"] = "g"
    for k, v in cards.items():
        h.header[k] = v
    return h


def _unreadable(tmp_path):
    """name -> file that no reader can turn into a g-band 8x8 cutout."""
    good = _write(tmp_path / "good.fits", [_primary(RAMP)])
    out = {"zero_byte": tmp_path / "zero_byte.fits", "no_data": tmp_path / "no_data.fits",
           "one_d": tmp_path / "one_d.fits", "four_d": tmp_path / "four_d.fits",
           "table_only": tmp_path / "table_only.fits", "groups": tmp_path / "groups.fits",
           "checksum": tmp_path / "checksum.fits", "dup_bands": tmp_path / "dup_bands.fits"}
    out["zero_byte"].write_bytes(b"")
    _write(out["no_data"], [fits.PrimaryHDU()])
    _write(out["one_d"], [_primary(np.arange(64, dtype=np.float32))])
    _write(out["four_d"], [_primary(np.zeros((1, 1, 8, 8), np.float32))])
    _write(out["table_only"], [fits.PrimaryHDU(),
                               fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])])
    gdata = fits.GroupData(np.zeros((2, 1, 8, 8), np.float32), parnames=["u"],
                           pardata=[np.zeros(2, np.float32)], bitpix=-32)
    fits.GroupsHDU(gdata).writeto(out["groups"])
    hdul = fits.HDUList([_primary(RAMP)])
    hdul.writeto(out["checksum"], checksum=True)
    damaged = bytearray(out["checksum"].read_bytes())
    damaged[2880 + 10] ^= 0x01  # one pixel's bit: DATASUM no longer matches
    out["checksum"].write_bytes(bytes(damaged))
    g1, g2 = fits.ImageHDU(RAMP, name="G"), fits.ImageHDU(RAMP, name="G2")
    g1.header["FILTER"] = g2.header["FILTER"] = "g"
    _write(out["dup_bands"], [fits.PrimaryHDU(), g1, g2])
    return good, out


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["zero_byte", "no_data", "one_d", "four_d", "table_only",
                                  "groups", "checksum", "dup_bands"])
def test_unreadable_files_are_named_or_flagged(tmp_path, name):
    good, bad = _unreadable(tmp_path)
    with pytest.raises(InputError) as e:
        open_inputs([good, bad[name]], SPEC, fast=False).read_batch([0, 1])
    assert e.value.path == str(bad[name]) and e.value.reason
    batch = open_inputs([good, bad[name], good], SPEC, on_error="flag").read_batch([0, 1, 2])
    assert batch.flags.tolist() == [0, Flag.READ_ERROR, 0]
    assert batch.errors[1] and name in batch.errors[1]
    assert (batch.data[1] == 0).all() and (batch.data[0] == RAMP).all()


def test_checksums_verified_only_when_present(tmp_path):
    ok = tmp_path / "ok.fits"
    fits.HDUList([_primary(RAMP)]).writeto(ok, checksum=True)
    batch = open_inputs([ok], SPEC).read_batch([0])
    assert batch.flags.tolist() == [0] and (batch.data[0] == RAMP).all()


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_non_finite_pixels_are_counted_as_bad(tmp_path, value):
    data = RAMP.copy()
    data[2, 3] = data[5, 5] = value
    f = _write(tmp_path / "nonfinite.fits", [_primary(data)])
    batch = open_inputs([f], SPEC).read_batch([0])
    assert batch.n_bad_pixels.tolist() == [2] and batch.flags[0] & Flag.BAD_PIXELS
    assert np.isfinite(batch.data).all()
    keep = np.isfinite(data)
    np.testing.assert_array_equal(batch.data[0, 0][keep], RAMP[keep])


def test_scaled_integers_blank_and_big_endian(tmp_path):
    ints = (RAMP * 10).astype(">i2")  # FITS is big-endian; numpy keeps the byte order
    ints[1, 1] = -999
    h = _primary(ints, BSCALE=0.1, BZERO=0.0, BLANK=-999)
    f = _write(tmp_path / "scaled.fits", [h])
    batch = open_inputs([f], SPEC).read_batch([0])
    assert batch.n_bad_pixels.tolist() == [1]
    keep = np.ones((8, 8), bool)
    keep[1, 1] = False
    np.testing.assert_allclose(batch.data[0, 0][keep], RAMP[keep], rtol=1e-6)


@pytest.mark.parametrize("ctype", ["RICE_1", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1"])
def test_every_tile_compression_reads_losslessly(tmp_path, ctype):
    ints = (RAMP * 4).astype(np.int32)
    hdu = fits.CompImageHDU(ints, compression_type=ctype)
    hdu.header["FILTER"] = "g"
    f = _write(tmp_path / f"{ctype}.fits", [fits.PrimaryHDU(), hdu])
    batch = open_inputs([f], SPEC).read_batch([0])
    np.testing.assert_array_equal(batch.data[0, 0], ints.astype(np.float32))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("fill", [np.nan, 0.0, 7.0])
def test_all_nan_zero_and_constant_cutouts_are_flagged_and_finite(tmp_path, fill):
    f = _write(tmp_path / "flat.fits", [_primary(np.full((8, 8), fill, np.float32))])
    batch = open_inputs([f], SPEC).read_batch([0])
    assert np.isfinite(batch.data).all()
    want = Flag.ALL_BAD if np.isnan(fill) else Flag.CONSTANT
    assert batch.flags[0] & want


@pytest.mark.filterwarnings("ignore")
def test_oversized_cutout_is_cropped_centrally_and_flagged(tmp_path):
    big = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    f = _write(tmp_path / "big.fits", [_primary(big)])
    batch = open_inputs([f], SPEC).read_batch([0])
    assert batch.flags[0] & Flag.CROPPED
    np.testing.assert_array_equal(batch.data[0, 0], big[12:20, 12:20])


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="Linux /proc")
def test_a_2gb_survey_image_is_memory_mapped_not_loaded(tmp_path):
    from astropy.table import Table
    from astropy.wcs import WCS

    n = 23_200  # 23,200^2 float32 = 2.15 GB, a sparse file: no disk is used
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [150.0, 2.0], [n / 2, n / 2]
    w.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    hdr = fits.Header({"SIMPLE": True, "BITPIX": -32, "NAXIS": 2, "NAXIS1": n, "NAXIS2": n})
    hdr.update(w.to_header())
    hdr["FILTER"], hdr["BUNIT"] = "g", "nJy"
    path = tmp_path / "huge.fits"
    head = hdr.tostring().encode()
    data_bytes = -(-(n * n * 4) // 2880) * 2880
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + data_bytes)
    with open(path, "r+b") as f:  # one recognisable pixel (big-endian float32 1.0) at x=y=5000
        f.seek(len(head) + (5000 * n + 5000) * 4)
        f.write(np.array([1.0], ">f4").tobytes())
    assert path.stat().st_size > 2 * 2**30
    before = _rss_mb()
    cs = open_inputs({"g": path}, SPEC, catalog=Table({"x": [5000.0, 20_000.0], "y": [5000.0, 9.0]}))
    batch = cs.read_batch([0, 1])
    assert _rss_mb() - before < 200
    assert batch.data[0, 0, 4, 4] == 1.0 and batch.data[0, 0].sum() == 1.0  # Cutout2D's centring
    assert batch.data[1].sum() == 0.0


def test_a_gzipped_file_without_simple_is_refused_not_looped_on(tmp_path):
    # found by benchmarks/fuzz_fits.py: astropy loops, memory growing, on such a gzip stream
    import gzip

    raw = bytearray(_write(tmp_path / "ok.fits", [_primary(RAMP)]).read_bytes())
    raw[:80] = b"ZCMPTYPE= 'junk'".ljust(80)
    bad = tmp_path / "bad.fits.gz"
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(InputError, match="first header card is not SIMPLE = T") as e:
        open_inputs([bad], SPEC).read_batch([0])
    assert e.value.path == str(bad)


def test_fast_path_compares_end_cards_whole(tmp_path):
    # found by benchmarks/fuzz_fits.py: "END       -1" is no END for astropy, so the primary
    # header runs on into the first extension's and one band disappears
    spec = InputSpec(bands=("g", "r", "i"), pixel_scale=0.2, size=8)
    hdus = [fits.PrimaryHDU()]
    for b in "gri":
        hdus.append(fits.ImageHDU(RAMP, name=b.upper()))
        hdus[-1].header["FILTER"] = b
    good = _write(tmp_path / "good.fits", hdus)
    raw = bytearray(good.read_bytes())
    end = raw.index(b"END" + b" " * 77)
    raw[end + 10:end + 12] = b"-1"
    bad = tmp_path / "bad.fits"
    bad.write_bytes(bytes(raw))
    batch = open_inputs([good, bad], spec, on_error="flag").read_batch([0, 1])
    safe = open_inputs([good, bad], spec, on_error="flag", fast=False).read_batch([0, 1])
    assert batch.flags.tolist() == safe.flags.tolist() == [0, Flag.READ_ERROR]
    assert "missing band" in batch.errors[1]


def test_a_negative_axis_length_is_refused_not_looped_on(tmp_path):
    # found by benchmarks/fuzz_fits.py: astropy steps backwards through the file for ever
    raw = bytearray(_write(tmp_path / "ok.fits", [_primary(RAMP)]).read_bytes())
    card = raw.index(b"NAXIS1  =")
    raw[card:card + 80] = b"NAXIS1  = -32".ljust(80)
    bad = tmp_path / "bad.fits"
    bad.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="NAXIS1 = -32 in a header") as e:
        open_inputs([bad], SPEC).read_batch([0])
    assert e.value.path == str(bad)


def _wcs_cards(**extra):
    cards = dict(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.0, CRVAL2=2.0, CRPIX1=4.5,
                 CRPIX2=4.5, CD1_1=-0.2 / 3600, CD1_2=0.0, CD2_1=0.0, CD2_2=0.2 / 3600)
    cards.update(extra)
    return cards


def test_a_blank_reference_pixel_keeps_the_pixel_scale_but_not_sky_positions(tmp_path):
    # found by benchmarks/fuzz_fits.py: given "CRPIX2 =" with no value, wcslib also loses the CD
    # matrix and reads 0.2"/px as 1 deg/px; the fast path (which does not parse CRPIX) read it
    from astropy.table import Table

    good = _write(tmp_path / "good.fits", [_primary(RAMP, **_wcs_cards())])
    raw = bytearray(good.read_bytes())
    card = raw.index(b"CRPIX2  =")
    raw[card:card + 80] = b"CRPIX2  =".ljust(80)
    bad = tmp_path / "bad.fits"
    bad.write_bytes(bytes(raw))
    for fast in (True, False):
        batch = open_inputs([good, bad], SPEC, fast=fast).read_batch([0, 1])
        assert batch.flags.tolist() == [0, 0]
        np.testing.assert_array_equal(batch.data[1, 0], RAMP)
    with pytest.raises(InputError, match="CRPIX2 has no value"):
        open_inputs({"g": bad}, SPEC, catalog=Table({"ra": [150.0], "dec": [2.0]})
                    ).read_batch([0])


def test_a_gzipped_file_with_a_damaged_header_ends(tmp_path):
    # found by benchmarks/fuzz_fits.py: on a gzip stream (size unknown) astropy read HDU after
    # HDU for ever once a header card was garbage; it is now given the decompressed bytes
    import gzip

    raw = bytearray(_write(tmp_path / "ok.fits", [_primary(RAMP)]).read_bytes())
    card = raw.index(b"NAXIS2  =")
    raw[card:card + 80] = bytes(range(128, 208))
    bad = tmp_path / "bad.fits.gz"
    bad.write_bytes(gzip.compress(bytes(raw)))
    batch = open_inputs([bad], SPEC, on_error="flag").read_batch([0])
    assert batch.flags.tolist() == [Flag.READ_ERROR] and str(bad) in batch.errors[0]
