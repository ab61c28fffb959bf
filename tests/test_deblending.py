"""Deblending: truth rule, targets, grouping, metrics, the shipped model against photutils, and
the tiled survey-image path."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

import astrozoo  # noqa: E402
from astrozoo.evaluation.deblending import (deblending_metrics, iou_matrix,  # noqa: E402
                                            label_agreement)
from astrozoo.exceptions import InputError  # noqa: E402
from astrozoo.tasks.deblending.postprocess import group_pixels  # noqa: E402
from astrozoo.tasks.deblending.simulate import (BANDS, simulate, simulate_field,  # noqa: E402
                                                truth_segmentation)


@pytest.fixture(scope="module")
def model():
    return astrozoo.load("deblending")


@pytest.fixture(scope="module")
def blended3():
    """40 scenes of 3 galaxies in close pairs, no stars (seeds disjoint from training)."""
    return simulate(40, 9_500_000, n_galaxies=3, star_probabilities=(1.0,), close_fraction=1.0)


def test_truth_rule_brightest_above_one_sigma():
    models = np.zeros((3, 8, 8))
    models[0, :, :4] = 5.0
    models[1, :, 3:] = 4.0  # column 3: object 0 is brighter there
    models[2, 0, 0] = 100.0  # one pixel only: not a source, its pixel goes to nobody else
    models[0, 7, 0] = 0.5  # below sigma: background
    seg, kept = truth_segmentation(models, sigma=1.0, min_pixels=5)
    assert list(kept) == [0, 1]
    assert (seg[1:7, :4] == 1).all() and (seg[:, 4:] == 2).all()
    assert seg[0, 0] == 0 and seg[7, 0] == 0


def test_simulated_truth_labels_match_objects():
    x, seg, meta = simulate(6, 11)
    objects = meta.meta["objects"]
    assert x.shape == (6, 3, 128, 128) and seg.shape == (6, 128, 128)
    for i in range(6):
        labels = sorted(objects[(objects["scene"] == i) & (objects["label"] > 0)]["label"])
        assert labels == list(range(1, seg[i].max() + 1))
        assert meta["n_sources"][i] == seg[i].max()
    # a source's own centre lies inside its segment for most sources
    inside = [seg[r["scene"], int(round(r["y"])), int(round(r["x"]))] == r["label"]
              for r in objects if r["label"] > 0]
    assert np.mean(inside) > 0.8


def test_dense_targets_point_at_segment_centres():
    import torch

    from astrozoo.tasks.deblending.train import dense_targets

    seg = torch.zeros(1, 16, 16, dtype=torch.long)
    seg[0, 2:5, 2:5] = 1  # centre (3, 3)
    seg[0, 10:14, 8:12] = 3  # centre (11.5, 9.5) (y, x); label 2 absent
    fg, heat, off, area = dense_targets(seg)
    assert fg.sum() == 9 + 16
    assert area[0, 3, 3] == 9 and area[0, 12, 10] == 16 and area[0, 0, 0] == 0
    assert heat[0, 3, 3] == 1 and heat[0, 12, 10] == 1 and heat.max() == 1
    assert torch.allclose(off[0, :, 2, 2], torch.tensor([1.0, 1.0]))
    assert torch.allclose(off[0, :, 10, 8], torch.tensor([1.5, 1.5]))
    assert (off[0, :, 0, 0] == 0).all()


def test_group_pixels_by_offsets_and_orphans():
    h = w = 32
    dense = np.zeros((4, h, w), np.float32)
    yy, xx = np.mgrid[:h, :w]
    left, right = (xx < 16) & (abs(yy - 10) < 6), (xx >= 16) & (abs(yy - 10) < 6)
    dense[0][left | right] = 1
    for mask, (cy, cx) in ((left, (10, 8)), (right, (10, 24))):
        dense[2][mask] = (cx - xx)[mask]
        dense[3][mask] = (cy - yy)[mask]
        dense[1][cy, cx] = 0.9
    # a source whose centre peak was missed: its pixels point nowhere near the other centres
    lone = (abs(xx - 16) < 3) & (abs(yy - 26) < 3)
    dense[0][lone] = 1
    seg = group_pixels(dense)
    assert seg.max() == 3
    assert len(np.unique(seg[left])) == 1 and len(np.unique(seg[right])) == 1
    assert seg[10, 8] != seg[10, 24]
    assert len(np.unique(seg[lone])) == 1 and seg[26, 16] not in (0, seg[10, 8], seg[10, 24])
    assert (seg[~(left | right | lone)] == 0).all()


def test_metrics_count_match_and_merge():
    truth = np.zeros((10, 10), int)
    truth[:, :5], truth[:, 5:] = 1, 2
    merged = (truth > 0).astype(int)
    m = deblending_metrics([truth, truth], [truth.copy(), merged])
    assert m["count_accuracy"] == 0.5 and m["count_accuracy_n2"] == 0.5
    assert m["recall"] == 0.5 and m["precision"] == pytest.approx(2 / 3)
    assert m["mean_iou"] == 1.0
    assert iou_matrix(truth, merged)[0, 0] == pytest.approx(0.5)


def test_shipped_model_beats_photutils_on_blends(model, blended3):
    """Count accuracy on 40 seeded scenes of 3 blended galaxies, model against photutils'
    SourceFinder (detect_sources + deblend_sources) with its usual settings."""
    from astropy.convolution import convolve
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import SourceFinder, make_2dgaussian_kernel

    x, seg, meta = blended3
    table = model.predict(x, bands=list(BANDS), unit="nJy", batch_size=20, progress=False)
    assert list(table["n_sources"]) == [int(s.max()) for s in table["segmap"]]
    m_model = deblending_metrics(seg, list(table["segmap"]), images=x, objects=meta.meta["objects"])
    finder = SourceFinder(n_pixels=5, n_levels=32, contrast=0.001, progress_bar=False)
    kernel = make_2dgaussian_kernel(3.0, size=5)
    pu = []
    for im in x:
        summed = im.sum(0)
        s = finder(convolve(summed, kernel), 1.5 * sigma_clipped_stats(summed)[2])
        pu.append(np.zeros(summed.shape, int) if s is None else s.data)
    m_pu = deblending_metrics(seg, pu)
    assert m_model["count_accuracy"] >= m_pu["count_accuracy"] + 0.2, (m_model, m_pu)
    assert m_model["count_accuracy"] >= 0.6
    assert m_model["mean_iou"] >= 0.75 and m_model["recall"] >= 0.6


def test_segment_stitches_an_object_across_a_seam(model):
    """A galaxy drawn on a tile seam gets one label, and tiling equals the untiled map away
    from the seams."""
    from astrozoo.tasks.deblending.postprocess import group_pixels
    from astrozoo.tasks.deblending.segment import _windows, dense_map

    image, truth, objects = simulate_field(256, 5, density=3.0)
    tile, overlap = 128, 16
    seams = [lo for _, lo, _ in _windows(256, tile, overlap)[1:]]
    assert seams == [112, 144]
    res = model.segment(image, bands=list(BANDS), unit="nJy", pixel_scale=0.2, tile=tile,
                        overlap=overlap, progress=False)
    tiled = res.segm.data
    whole = group_pixels(dense_map(model, image, tile=None), **model.postprocess_kwargs)
    near = np.zeros(tiled.shape, bool)
    for s in seams:
        near[s - overlap:s + overlap] = True
        near[:, s - overlap:s + overlap] = True
    assert label_agreement(whole, tiled, ~near) > 0.995

    def crosses(lab):
        ys, xs = np.nonzero(truth == lab)
        return len(ys) > 60 and any(a.min() < s <= a.max() for a in (ys, xs) for s in seams)

    straddling = [lab for lab in range(1, truth.max() + 1) if crosses(lab)]
    assert straddling, "the field should have a bright source on a seam"
    for lab in straddling:  # kept whole across the seam wherever the untiled map keeps it whole
        tiled_labels, whole_labels = tiled[truth == lab], whole[truth == lab]
        n_whole = np.unique(whole_labels[whole_labels > 0])
        n_tiled = np.unique(tiled_labels[tiled_labels > 0])
        assert len(n_tiled) <= len(n_whole), f"truth source {lab} split at a seam"


def test_segment_fits_table_and_errors(model, tmp_path):
    import astropy.units as u
    from astropy.io import fits
    from astropy.wcs import WCS

    x, seg, _ = simulate(1, 21, n_galaxies=2, star_probabilities=(1.0,))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [64, 64]
    w.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    hdus = [fits.PrimaryHDU()]
    for b, plane in zip(BANDS, x[0]):
        h = w.to_header()
        h["EXTNAME"], h["BUNIT"] = b, "uJy"
        hdus.append(fits.ImageHDU(plane / 1000.0, header=h))
    path = tmp_path / "scene.fits"
    fits.HDUList(hdus).writeto(path)
    res = model.segment(path, progress=False)
    t = res.table
    assert len(t) == res.segm.n_labels >= 1
    assert t["flux_r"].unit == u.nJy and "sky_centroid" in t.colnames
    # the segment fluxes are those of the image in nJy (BUNIT uJy converted)
    lab = int(t["label"][np.argmax(t["flux_r"])])
    assert t["flux_r"].max().value == pytest.approx(x[0, 1][res.segm.data == lab].sum(), rel=1e-4)
    # scenes through predict, from the same file
    table = model.predict([path], progress=False)
    assert table["n_sources"][0] == res.segm.n_labels
    with pytest.raises(ValueError, match="bands"):
        model.segment(x[0], progress=False)
    with pytest.raises(InputError, match="pixel scale"):
        model.segment(x[0], bands=list(BANDS), unit="nJy", pixel_scale=0.262, progress=False)
    holes = x[0].copy()
    holes[:, 10:20, 10:20] = np.nan
    with pytest.warns(UserWarning, match="100 missing pixels"):
        model.segment(holes, bands=list(BANDS), unit="nJy", pixel_scale=0.2, progress=False)


def test_tta_turns_offsets_back_into_the_input_frame(model):
    import torch

    from astrozoo.inference.tta import tta_outputs

    # an exactly equivariant "network": offsets from each pixel to the image's flux centroid
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    img = torch.exp(-((xx - 4) ** 2 + (yy - 11) ** 2) / 4)[None, None]

    def forward(x):
        f = x[:, 0]
        cx, cy = (f * xx).sum((-2, -1)) / f.sum((-2, -1)), (f * yy).sum((-2, -1)) / f.sum((-2, -1))
        off = torch.stack([cx[:, None, None] - xx, cy[:, None, None] - yy], 1)
        return torch.cat([x[:, :1], x[:, :1], off], 1)

    from astrozoo.tasks.deblending.model import _dihedral_vector_map

    outs = tta_outputs(forward, img)
    for k in range(8):  # every copy's vectors, not only the identity's, come back right
        back = torch.einsum("ij,bjhw->bihw", _dihedral_vector_map(k), outs[k, :, 2:])
        torch.testing.assert_close(back, forward(img)[:, 2:], atol=1e-5, rtol=0)
    torch.testing.assert_close(model.combine_tta(outs), forward(img), atol=1e-5, rtol=0)
