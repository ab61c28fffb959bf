"""The scene path: segment a survey image of any size with a deblender, as photutils'
``SourceFinder`` does, and measure the sources with photutils' ``SourceCatalog``.

The image is cut into overlapping tiles; the network's dense output (foreground, centre heatmap,
offsets) of each tile's inner part is written into one map of the whole image, and the pixels
are grouped once on that map (`group_pixels`). Because grouping never sees a tile, an object
across a seam gets one label; because the normalisation is a fixed stretch (no per-tile
statistics), the stitched map equals the untiled one away from the tiles' outer margins.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from astrozoo.exceptions import InputError

__all__ = ["Segmentation", "read_image", "dense_map", "segment"]


class Segmentation(NamedTuple):
    """Result of `segment`.

    Attributes
    ----------
    segm : photutils.segmentation.SegmentationImage
        0 background, 1..k sources.
    table : astropy.table.QTable
        One row per source (`SourceCatalog.to_table` columns plus per-band fluxes).
    catalog : photutils.segmentation.SourceCatalog
        On the band-summed detection image, for any further photutils property.
    """

    segm: object
    table: object
    catalog: object


def read_image(image, spec, *, bands=None, pixel_scale=None, unit=None, zeropoint=None):
    """A survey image in the model's bands and unit: ``(data (C, H, W) float32 with NaN where
    missing, wcs or None, where)``.

    `image` is an array (C, H, W) with ``bands=`` (in the spec's flux unit unless ``unit=`` or
    ``zeropoint=``), a FITS path (multi-extension or cube), or a list of per-band FITS paths.
    """
    from astropy.io import fits

    from astrozoo.io.conform import match_bands, write_scaled, zoom_for
    from astrozoo.io.layouts import celestial_wcs, read_fits
    from astrozoo.io.units import unit_factor, zeropoint_factor

    if isinstance(image, np.ndarray) or hasattr(image, "__array__") and not isinstance(
            image, (str, Path, list, tuple)):
        data = np.asarray(image, np.float32)
        if data.ndim == 2:
            data = data[None]
        if bands is None:
            raise ValueError(f"an image array {data.shape} needs bands=[...] naming its planes "
                             f"(the model needs {list(spec.bands)})")
        if len(bands) != len(data):
            raise ValueError(f"bands={list(bands)} names {len(bands)} planes, the array has "
                             f"{len(data)}")
        plan = match_bands(list(bands), spec.bands, path="image array")
        factor = (unit_factor(unit, spec.flux_unit) if unit is not None else
                  zeropoint_factor(zeropoint, spec.flux_unit) if zeropoint is not None else 1.0)
        if unit is None and zeropoint is None:
            warnings.warn(f"image array: fluxes taken to be in the model's unit "
                          f"({spec.flux_unit}); pass unit= or zeropoint= otherwise", stacklevel=3)
        if pixel_scale is None:
            warnings.warn(f"image array: pixel scale taken to be the model's "
                          f"({spec.pixel_scale}\"/pixel); pass pixel_scale= otherwise",
                          stacklevel=3)
        else:
            zoom_for(pixel_scale, spec.pixel_scale, scale_max_rtol=0.01, path="image array")
        return data[plan] * np.float32(factor), None, "image array"
    paths = [image] if isinstance(image, (str, Path)) else list(image)
    where = ", ".join(str(p) for p in paths)
    found, wcs = [], None
    for p in paths:
        images, sources = read_fits(p, spec.flux_unit, bands=bands if len(paths) == 1 else None,
                                    unit=unit, zeropoint=zeropoint)
        found += images
        if wcs is None:
            # with the open file, so that lookup-table distortions and -TAB axes are applied
            with fits.open(p) as hdul:
                wcs = celestial_wcs(hdul[sources[0][0]].header, hdul, p)
    plan = match_bands([im.band for im in found], spec.bands, path=where)
    out = []
    for i in plan:
        im = found[i]
        scale = im.pixel_scale if pixel_scale is None else pixel_scale
        if scale is None:
            warnings.warn(f"{where}: no pixel scale in the header of band {im.band!r}; taken "
                          f"to be the model's ({spec.pixel_scale}\"/pixel)", stacklevel=3)
        else:
            # segmentation maps are in the image's own pixels: no resampling
            zoom_for(scale, spec.pixel_scale, scale_max_rtol=0.01, path=where)
        if not im.calibrated:
            raise InputError(f"band {im.band!r} has no flux calibration (BUNIT or MAGZP); pass "
                             "unit= or zeropoint=", where)
        # the input pipeline's scaling (astropy's order), then its missing-pixel marks
        d = np.empty(np.shape(im.data), np.float32)
        write_scaled(np.asarray(im.data), d, im.bscale, im.bzero, im.factor)
        if im.blank is not None:
            d[np.asarray(im.data) == im.blank] = np.nan
        if im.mask is not None:
            d[im.mask] = np.nan
        out.append(d)
    shapes = {o.shape for o in out}
    if len(shapes) > 1:
        raise InputError(f"bands have different shapes {sorted(shapes)}; the images must be "
                         "on one pixel grid", where)
    return np.stack(out), wcs, where


def _windows(n: int, tile: int, overlap: int):
    """Tile starts along one axis, and the part of each tile kept: tiles lie inside the image
    (the last one shifted back to end at the edge); a tile keeps all but `overlap` pixels on
    each side that faces another tile, and everything up to the image edge."""
    starts = sorted({min(s, n - tile) for s in range(0, max(n - tile, 0) + tile - 2 * overlap,
                                                      tile - 2 * overlap)})
    out = []
    for s in starts:
        lo = s + overlap if s > 0 else 0
        hi = s + tile - overlap if s + tile < n else n
        out.append((s, lo, hi))
    return out


def dense_map(model, data: np.ndarray, *, tile: int | None = 256, overlap: int = 32,
              batch_size: int = 8, device=None, progress: bool = False) -> np.ndarray:
    """Dense prediction (4, H, W) of an image (C, H, W) in spec units without missing pixels:
    tiles of `tile` pixels overlapping by 2 x `overlap` (each pixel taken from a tile in which
    it is at least `overlap` pixels from any edge that faces another tile), or the whole image
    in one pass with ``tile=None`` or when it fits in one tile. Tiles never extend past the
    image, so the image's own edges are seen as in one pass."""
    import torch
    from tqdm.auto import tqdm

    from astrozoo.inference import select_device

    dev = select_device(device)
    model = model.to(dev).eval()
    c, h, w = data.shape

    def run(batch):
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(dev)
        with torch.inference_mode():
            return model.dense(model.preprocess(x)).cpu().numpy()

    if tile is None or (h <= tile and w <= tile):
        return run(data[None])[0]
    if tile <= 2 * overlap:
        raise ValueError(f"tile {tile} must exceed twice the overlap {overlap}")
    tile_y, tile_x = min(tile, h), min(tile, w)
    jobs = [(wy, wx) for wy in _windows(h, tile_y, overlap) for wx in _windows(w, tile_x, overlap)]
    out = np.zeros((4, h, w), np.float32)
    for s in tqdm(range(0, len(jobs), batch_size), disable=not progress, desc="tiles"):
        batch = jobs[s:s + batch_size]
        res = run(np.stack([data[:, y:y + tile_y, x:x + tile_x] for (y, _, _), (x, _, _) in batch]))
        # offsets are relative to each pixel, so a tile's output needs no shift
        for ((y, y0, y1), (x, x0, x1)), r in zip(batch, res):
            out[:, y0:y1, x0:x1] = r[:, y0 - y:y1 - y, x0 - x:x1 - x]
    return out


def segment(model, image, *, bands=None, pixel_scale=None, unit=None, zeropoint=None,
            tile: int | None = 256, overlap: int = 32, batch_size: int = 8, device=None,
            progress: bool = True, **grouping) -> Segmentation:
    """Segment a survey image of any size and catalogue its sources.

    Parameters
    ----------
    model : DeblendUNet
    image : array (C, H, W), FITS path or list of per-band FITS paths
        Arrays need ``bands=``; fluxes are converted to the model's unit from ``BUNIT`` /
        ``MAGZP`` (or ``unit=`` / ``zeropoint=``). The pixel scale must be the model's (within
        1 %): a segmentation map is in the image's own pixels, so nothing is resampled.
    tile, overlap : int
        Tile side and the margin each tile gives up to its neighbours, pixels (``tile=None``:
        the whole image in one pass, which needs memory ~ 100 x the image's float32 size).
    **grouping
        Override the model's grouping settings (`group_pixels`).

    Returns
    -------
    Segmentation
        ``segm`` (`SegmentationImage`), ``table`` (QTable: ``label``, ``x_centroid``,
        ``y_centroid``, ``sky_centroid`` (with a WCS), ``area``, ``semimajor_axis``,
        ``semiminor_axis`` (1-sigma extents), ``orientation``, ``ellipticity``, ``flux_<band>`` and
        ``flux_err_<band>`` (segment fluxes in the model's unit), ``n_bad_pixels``) and the
        photutils ``catalog`` of the band-summed image.

    Missing pixels (NaN, masked) are filled with 0 (the sky) for the network, left out of the
    fluxes and counted per source in ``n_bad_pixels``; a warning gives the total.
    """
    import astropy.units as u
    from photutils.segmentation import SegmentationImage, SourceCatalog

    from .postprocess import group_pixels

    spec = model.spec
    data, wcs, where = read_image(image, spec, bands=bands, pixel_scale=pixel_scale, unit=unit,
                                  zeropoint=zeropoint)
    bad = ~np.isfinite(data).all(0)
    if bad.any():
        warnings.warn(f"{where}: {int(bad.sum())} missing pixels (NaN or masked) filled with 0 "
                      "for the network and left out of the fluxes (n_bad_pixels per source)",
                      stacklevel=2)
    filled = np.where(np.isfinite(data), data, 0).astype(np.float32)
    dense = dense_map(model, filled, tile=tile, overlap=overlap, batch_size=batch_size,
                      device=device, progress=progress)
    segmap = group_pixels(dense, **{**model.postprocess_kwargs, **grouping})
    segm = SegmentationImage(segmap)
    if segmap.max() == 0:
        return Segmentation(segm, _empty_table(spec.bands), None)
    unit_q = u.Unit(spec.flux_unit)
    detection = filled.sum(0)
    cat = SourceCatalog(detection, segm, mask=bad, wcs=wcs)
    cols = ["label", "x_centroid", "y_centroid"] + (["sky_centroid"] if wcs is not None else []) + [
        "area", "semimajor_axis", "semiminor_axis", "orientation", "ellipticity"]
    table = cat.to_table(columns=cols)
    for b, plane in zip(spec.bands, filled):
        sigma = _sky_sigma(plane[~bad & (segmap == 0)])
        band_cat = SourceCatalog(plane, segm, mask=bad, error=np.full(plane.shape, sigma, np.float32))
        table[f"flux_{b}"] = np.asarray(band_cat.segment_flux) * unit_q
        table[f"flux_err_{b}"] = np.asarray(band_cat.segment_flux_err) * unit_q
    table["n_bad_pixels"] = np.bincount(segmap[bad], minlength=segmap.max() + 1)[1:]
    table.meta.update({"model": model.name, "image": where, "flux_unit": spec.flux_unit,
                       "tile": tile, "overlap": overlap, "grouping": {**model.postprocess_kwargs,
                                                                      **grouping}})
    return Segmentation(segm, table, cat)


def _sky_sigma(pixels: np.ndarray) -> float:
    """Robust sigma (1.4826 MAD) of background pixels: the segment flux errors' sky term."""
    if pixels.size < 10:
        return float("nan")
    med = np.median(pixels)
    return float(1.4826 * np.median(np.abs(pixels - med)))


def _empty_table(bands):
    from astropy.table import QTable

    names = ["label", "x_centroid", "y_centroid", "area"] + [
        f"{p}_{b}" for b in bands for p in ("flux", "flux_err")] + ["n_bad_pixels"]
    return QTable(names=names, dtype=[int, float, float, float] + [float] * 2 * len(bands) + [int])
