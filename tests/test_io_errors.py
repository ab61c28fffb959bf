"""Unreadable inputs raise InputError naming the file, or are flagged rows with on_error='flag'."""

import numpy as np
import pytest
from astropy.io import fits

from astrozoo.config import InputSpec
from astrozoo.exceptions import InputError
from astrozoo.io import Flag, open_inputs

SPEC = InputSpec(bands=("g",), pixel_scale=0.2, size=8)
RAMP = np.arange(64, dtype=np.float32).reshape(8, 8) + 3.0


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.fits"
    h = fits.PrimaryHDU(RAMP)
    h.header["FILTER"] = "g"
    h.writeto(good)
    raw = good.read_bytes()
    (tmp_path / "trunc.fits").write_bytes(raw[: 2880 + 100])
    (tmp_path / "text.fits").write_text("this is not FITS\n" * 200)
    corrupt = bytearray(raw)
    corrupt[:80] = b"GARBAGE".ljust(80)
    (tmp_path / "corrupt.fits").write_bytes(bytes(corrupt))
    return {n: tmp_path / f"{n}.fits" for n in ("good", "trunc", "text", "corrupt", "missing")}


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("name", ["trunc", "text", "corrupt", "missing"])
def test_bad_file_raises_naming_it(files, name):
    cs = open_inputs([files["good"], files[name]], SPEC)
    with pytest.raises(InputError, match=rf"{name}\.fits") as e:
        cs.read_batch([0, 1])
    assert e.value.path == str(files[name])


def test_same_size_garbage_after_fast_path_template_is_named(files, tmp_path):
    # the first file builds the fast-path template; the size check alone must not accept this
    bad = tmp_path / "same_size.fits"
    bad.write_bytes(b"X" * files["good"].stat().st_size)
    with pytest.raises(InputError, match="same_size"):
        open_inputs([files["good"], bad], SPEC).read_batch([0, 1])


def test_on_error_flag_keeps_going(files):
    cs = open_inputs([files["good"], files["text"], files["good"]], SPEC, on_error="flag")
    batch = cs.read_batch([0, 1, 2])
    assert batch.flags.tolist() == [0, Flag.READ_ERROR, 0]
    assert batch.errors[0] is None and "text.fits" in batch.errors[1]
    assert (batch.data[1] == 0).all() and (batch.data[2] == RAMP).all()


def test_empty_glob_and_unknown_option(tmp_path):
    with pytest.raises(InputError, match="matches no file"):
        open_inputs(str(tmp_path / "*.fits"), SPEC)
    with pytest.raises(TypeError, match="unknown options"):
        open_inputs(str(tmp_path), SPEC, colour="red")
