"""Partitioning a catalogue for scale-out: by survey-image tile, then by sky region.

A survey is delivered as many tiles (one image per band each) and a catalogue of millions of
positions. Each row is assigned to the tile that holds it best (the one where it lies farthest
from an edge), so that a partition opens one tile's images; within a tile (or a whole catalogue,
for catalogue models) rows are ordered along the HEALPix nested curve (cdshealpix, the library
HATS and LSDB use) and cut into blocks, so that a partition is a compact patch of sky and its
cutouts are close together in the memory-mapped images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import InputError
from ..io.catalog import as_table, find_column

__all__ = ["Partition", "partition_catalog", "assign_tiles", "as_tiles", "partitions_fingerprint",
           "check_images", "HEALPIX_ORDER"]

#: HEALPix order of the sort key: pixels of ~52" (order 12), finer than any partition.
HEALPIX_ORDER = 12
_RA = ("ra", "ra_deg", "alpha", "raj2000", "_raj2000", "ra_icrs")
_DEC = ("dec", "dec_deg", "delta", "dej2000", "_dej2000", "de_icrs", "dec_icrs")


@dataclass(frozen=True)
class Partition:
    """One unit of work: catalogue rows and the tile they are cut from.

    Attributes
    ----------
    key : str
        Unique, file-name safe (``t0003-00012``: tile 3, block 12); names the output file.
    rows : np.ndarray
        Indices into the catalogue, ascending within a block's sky order.
    images : dict or None
        ``{band: path}`` of the tile (None for catalogue models).
    """

    key: str
    rows: np.ndarray = field(repr=False)
    images: dict | None = None

    def __len__(self) -> int:
        return len(self.rows)


def as_tiles(images) -> list[dict] | None:
    """``None``, one ``{band: path}`` dict, a list of them, or a Table with one column per band
    and one row per tile -> a list of ``{band: str path}`` (or None)."""
    if images is None:
        return None
    if isinstance(images, dict):
        images = [images]
    elif hasattr(images, "colnames"):
        images = [{b: row[b] for b in images.colnames} for row in images]
    tiles = [{str(b): str(p) for b, p in t.items()} for t in images]
    if not tiles:
        raise ValueError("no survey-image tiles given")
    return tiles


def check_images(model, images) -> None:
    """Refuse survey images for a catalogue model, and their absence for a cutout model."""
    if model.spec.kind == "image" and images is None:
        raise ValueError(f"{model.name} is a cutout model: pass images= (survey-image tiles)")
    if model.spec.kind == "catalog" and images is not None:
        raise ValueError(f"{model.name} is a catalogue model: it takes no images")


def _sky(table):
    ra, dec = find_column(table, _RA), find_column(table, _DEC)
    if ra and dec:
        return np.asarray(table[ra], float), np.asarray(table[dec], float)
    return None


def assign_tiles(table, tiles: list[dict], flux_unit: str = "nJy") -> np.ndarray:
    """Index of the tile each row is cut from: the tile where the row lies farthest inside
    (its distance in pixels to the nearest edge of the tile's first band, negative outside).

    A row inside no tile goes to the tile it is closest to, where the engine flags it
    (`Flag.EDGE_PADDED` / `Flag.ALL_BAD`) as it would on a single image; a row that no
    tile's WCS can place goes to tile 0, where the engine reports why.

    Raises
    ------
    InputError
        With several tiles and a catalogue without ra/dec (x/y positions name no tile).
    """
    from ..io.cutouts import SurveyImage, survey_positions

    table = as_table(table)
    if len(tiles) == 1:
        return np.zeros(len(table), np.int64)
    if _sky(table) is None:
        raise InputError("several survey-image tiles need ra/dec positions in the catalogue: "
                         "x/y pixel positions do not say which tile a row is on")
    best = np.full(len(table), -np.inf)
    tile = np.zeros(len(table), np.int64)
    for k, t in enumerate(tiles):
        band, path = next(iter(t.items()))
        image = SurveyImage(band, path, flux_unit)
        if image.wcs is None:
            raise image.wcs_error or InputError("the tile has no celestial WCS", path)
        x, y, _ = survey_positions(table, image)
        ny, nx = image.data.shape
        margin = np.fmin.reduce([x + 0.5, nx - 0.5 - x, y + 0.5, ny - 0.5 - y])
        margin = np.where(np.isfinite(margin), margin, -np.inf)
        better = margin > best
        tile[better], best[better] = k, margin[better]
    return tile


def _sky_order(table, rows: np.ndarray) -> np.ndarray:
    """`rows` reordered along the HEALPix nested curve (input order without ra/dec)."""
    sky = _sky(table)
    if sky is None or not len(rows):
        return rows
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix.nested import lonlat_to_healpix

    ra, dec = sky[0][rows], sky[1][rows]
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    pix = np.full(len(rows), np.iinfo(np.int64).max)  # unplaceable rows last
    if ok.any():
        pix[ok] = lonlat_to_healpix(Longitude(ra[ok] % 360, u.deg), Latitude(dec[ok], u.deg),
                                    HEALPIX_ORDER)
    return rows[np.argsort(pix, kind="stable")]


def partition_catalog(catalog, images=None, *, max_rows: int = 10_000,
                      flux_unit: str = "nJy") -> list[Partition]:
    """Cut a catalogue into partitions of at most `max_rows` rows, by tile then sky region.

    Parameters
    ----------
    catalog : Table or path
        Positions (``ra``/``dec`` or, for one tile, ``x``/``y``) for image models, or the
        photometry table of a catalogue model.
    images : dict, list of dict, Table, optional
        Survey-image tiles, each ``{band: path}`` (`as_tiles`); None for catalogue models.
    max_rows : int
        Largest partition. Each partition loads nothing but its rows and its tile's
        memory-mapped images, so its memory is about ``max_rows`` x one output row.
    flux_unit : str
        The model's flux unit (only to open the tiles' headers).

    Returns
    -------
    list of Partition
        Covering every row exactly once; deterministic for a given catalogue and tiles.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, not {max_rows}")
    table = as_table(catalog)
    tiles = as_tiles(images)
    which = assign_tiles(table, tiles, flux_unit) if tiles else np.zeros(len(table), np.int64)
    parts = []
    for k in np.unique(which):
        rows = _sky_order(table, np.flatnonzero(which == k))
        for b, start in enumerate(range(0, len(rows), max_rows)):
            parts.append(Partition(f"t{k:04d}-{b:05d}", rows[start:start + max_rows],
                                   tiles[k] if tiles else None))
    return parts


def partitions_fingerprint(parts: list[Partition]) -> str:
    """sha256 of the partition plan (keys, rows, tiles): a job's identity on rerun."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.key.encode())
        h.update(np.ascontiguousarray(p.rows, np.int64).tobytes())
        h.update(repr(sorted((p.images or {}).items())).encode())
    return h.hexdigest()
