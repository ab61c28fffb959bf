"""A survey-image tile built from cutouts: for examples, tests and benchmarks of the survey-image
and scale-out paths, where a real survey would deliver one large image per band and a catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

__all__ = ["write_tile"]


def write_tile(cutouts, bands, directory, *, name: str = "tile", ra: float = 150.0,
               dec: float = 2.2, ncols: int | None = None, pixel_scale: float = 0.2,
               unit: str = "nJy", first_id: int = 0):
    """Lay `cutouts` out on a grid, write one FITS image per band with a TAN WCS, and return
    ``({band: path}, catalogue)``.

    Parameters
    ----------
    cutouts : np.ndarray
        (N, C, S, S) images, channels in the order of `bands`.
    bands : sequence of str
        Band names (``FILTER`` of each image).
    directory : path
        Where ``<name>_<band>.fits`` are written.
    ra, dec : float
        Sky position of the tile's centre (degrees); north up, east left.
    ncols : int, optional
        Cells per row (default: the square root of N, rounded up); empty cells are zero.
    pixel_scale : float
        Arcsec per pixel.
    unit : str
        ``BUNIT`` of the images.
    first_id : int
        Id of the first cutout; ids run on from it.

    Returns
    -------
    images : dict
        ``{band: path}`` as `astrozoo.ZooModel.predict` takes survey images.
    catalog : astropy.table.Table
        ``id``, ``ra``, ``dec`` of each cutout's centre, in input order.
    """
    cutouts = np.asarray(cutouts)
    n, c, s = cutouts.shape[0], cutouts.shape[1], cutouts.shape[-1]
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = -(-n // ncols)
    grid = np.zeros((nrows * ncols, c, s, s), np.float32)
    grid[:n] = cutouts
    field = grid.reshape(nrows, ncols, c, s, s).transpose(2, 0, 3, 1, 4).reshape(
        c, nrows * s, ncols * s)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [field.shape[2] / 2 + 0.5, field.shape[1] / 2 + 0.5]
    wcs.wcs.cd = np.diag([-pixel_scale, pixel_scale]) / 3600
    paths = {}
    for band, plane in zip(bands, field):
        header = wcs.to_header()
        header["FILTER"], header["BUNIT"] = band, unit
        paths[band] = str(Path(directory) / f"{name}_{band}.fits")
        fits.writeto(paths[band], plane, header, overwrite=True)
    iy, ix = np.divmod(np.arange(n), ncols)
    sky = wcs.pixel_to_world(ix * s + (s - 1) / 2, iy * s + (s - 1) / 2)
    return paths, Table({"id": np.arange(n) + first_id, "ra": sky.ra.deg, "dec": sky.dec.deg})
