"""Dense network output -> segmentation map: centre peaks seed the sources, and every
foreground pixel joins the centre its predicted offset points to (Panoptic-DeepLab grouping).

Written here because neither photutils nor scikit-image groups pixels by predicted offsets
(their watershed follows the flux, whose saddle points are not where the truth rule - the
object contributing most flux - puts the boundary of an unequal pair). The same function runs on
a 128 x 128 scene and on a whole stitched survey image, so a tiled image is grouped once,
without seams.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["find_centers", "group_pixels"]


def find_centers(heatmap: np.ndarray, foreground: np.ndarray, *, center_threshold: float,
                 nms_kernel: int) -> np.ndarray:
    """(K, 2) ``(y, x)`` pixel positions of the local maxima of `heatmap` above
    `center_threshold` within `nms_kernel` pixels, on foreground pixels, in raster order."""
    peak = ndimage.maximum_filter(heatmap, size=nms_kernel, mode="constant", cval=-np.inf)
    keep = (heatmap == peak) & (heatmap > center_threshold) & foreground
    # plateaus (equal neighbouring maxima) give one centre each: the first pixel of each
    lab, n = ndimage.label(keep, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros((0, 2))
    idx = ndimage.minimum(np.arange(lab.size).reshape(lab.shape), lab, np.arange(1, n + 1))
    return np.stack(np.unravel_index(np.asarray(idx, int), lab.shape), 1).astype(float)


def group_pixels(dense: np.ndarray, *, fg_threshold: float = 0.5, center_threshold: float = 0.3,
                 nms_kernel: int = 5, min_area: int = 5, max_vote_distance: float = 12.0,
                 ) -> np.ndarray:
    """Segmentation map of one image's dense prediction.

    Parameters
    ----------
    dense : np.ndarray
        (4, H, W): foreground probability, centre heatmap, x and y offsets (pixels) from each
        pixel to its object's centre (`DeblendUNet.dense`).
    fg_threshold : float
        Foreground probability above which a pixel belongs to a source.
    center_threshold, nms_kernel : float, int
        Centre peaks: heatmap above this, maximal within this window (`find_centers`).
    min_area : int
        Sources with fewer pixels go back to background.
    max_vote_distance : float
        A foreground pixel whose offset lands farther than this (pixels) from every centre
        votes for no centre; connected groups of such pixels of at least `min_area` become
        sources of their own (a source whose centre peak was missed is kept whole rather than
        given to a distant neighbour).

    Returns
    -------
    np.ndarray
        int32 (H, W): 0 background, 1..k sources (numbered in raster order of their centres).
    """
    fg = dense[0] > fg_threshold
    centers = find_centers(dense[1], fg, center_threshold=center_threshold, nms_kernel=nms_kernel)
    seg = np.zeros(fg.shape, np.int32)
    yy, xx = np.nonzero(fg)
    if len(yy) == 0:
        return seg
    votes = np.stack([yy + dense[3, yy, xx], xx + dense[2, yy, xx]], 1)
    if len(centers):
        dist, nearest = cKDTree(centers).query(votes, distance_upper_bound=max_vote_distance)
        voted = np.isfinite(dist)
        seg[yy[voted], xx[voted]] = nearest[voted] + 1
    orphans = seg == 0
    orphans &= fg
    lab, n = ndimage.label(orphans)
    if n:
        seg[orphans] = lab[orphans] + len(centers)
    areas = np.bincount(seg.ravel())
    areas[0] = 0
    keep = np.flatnonzero(areas >= min_area)
    relabel = np.zeros(len(areas), np.int32)
    relabel[keep] = np.arange(1, len(keep) + 1)
    return relabel[seg]
