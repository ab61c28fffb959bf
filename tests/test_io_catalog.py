"""Catalogue inputs for photo-z: flux, error and extinction rows in nanomaggies."""

import numpy as np
import pytest
from astropy.table import Table

from astrozoo.config import InputSpec
from astrozoo.exceptions import InputError
from astrozoo.io import Flag, open_inputs

SPEC = InputSpec(kind="catalog", survey="sdss", bands=("u", "g", "r"), flux_unit="nanomaggy")


def table():
    t = Table({"objid": [7, 8], "flux_r": [3.0, 4.0], "flux_g": [2.0, np.nan],
               "flux_u": [1.0, 1.5], "flux_err_u": [0.1, 0.2], "flux_err_g": [0.2, 0.3],
               "flux_err_r": [0.3, 0.4], "extinction_g": [0.05, 0.06]})
    return t


@pytest.mark.parametrize("fmt", ["table", "ecsv", "csv", "fits", "parquet"])
def test_rows_from_table_and_files(tmp_path, fmt):
    t = table()
    src = t if fmt == "table" else tmp_path / f"cat.{fmt}"
    if fmt != "table":
        t.write(src)
    batch = open_inputs(src, SPEC, unit="nanomaggy").read_batch([0, 1])
    assert batch.ids == [7, 8]  # ids keep the column's type
    np.testing.assert_allclose(batch.data[0], [1, 2, 3, 0.1, 0.2, 0.3, 0, 0.05, 0], rtol=1e-6)
    assert np.isnan(batch.data[1, 1])  # NaN flux passed through for the model
    assert batch.n_bad_pixels.tolist() == [0, 1]
    assert batch.flags.tolist() == [0, Flag.BAD_PIXELS]


def test_flux_units_converted_and_missing_band():
    t = table()
    t["flux_r"].unit = "nJy"
    t["flux_err_r"].unit = "nJy"
    batch = open_inputs(t, SPEC, unit="nanomaggy")[0]
    np.testing.assert_allclose(batch.data[0, [2, 5]], [3 / 3631, 0.3 / 3631], rtol=1e-6)
    t.remove_column("flux_u")
    # the error lists what the catalogue has and what it needs
    with pytest.raises(InputError, match=r"no photometry for bands \['u'\].*flux_err_<b>"):
        open_inputs(t, SPEC, unit="nanomaggy")
    batch = open_inputs(t, SPEC, unit="nanomaggy", missing_band="unmeasured")[0]
    assert batch.flags[0] & Flag.BAND_MISSING and np.isnan(batch.data[0, 0])
    with pytest.raises(ValueError, match="not offered for image inputs"):
        open_inputs(np.ones((1, 1, 8, 8)), InputSpec(bands=("r",), size=8, pixel_scale=0.2),
                    missing_band="zero")
