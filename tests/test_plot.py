"""astrozoo.plot renders what it claims: the PNGs are read back and their pixels checked."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from astrozoo import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _png(fig, tmp_path, name="f.png"):
    path = tmp_path / name
    fig.savefig(path, dpi=fig.dpi)
    return plt.imread(path)[..., :3]


def _rgb_scene(size=32):
    """g, r, i planes: a red (i-bright) source on the left, a blue (g-bright) one on the right."""
    yy, xx = np.mgrid[:size, :size]
    left = np.exp(-((xx - 8) ** 2 + (yy - 16) ** 2) / 8.0)
    right = np.exp(-((xx - 24) ** 2 + (yy - 16) ** 2) / 8.0)
    g = 10 * right + 0.5 * left
    r = 2 * (left + right)
    i = 10 * left + 0.5 * right
    return np.stack([g, r, i])


def test_asinh_rgb_orders_bands_by_wavelength():
    img = _rgb_scene()
    rgb = plot.asinh_rgb(img, "gri").astype(int)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == int
    assert rgb[16, 8, 0] > 2 * rgb[16, 8, 2]  # red source red
    assert rgb[16, 24, 2] > 2 * rgb[16, 24, 0]  # blue source blue
    # the same planes given red-first with their names: the same picture
    np.testing.assert_array_equal(plot.asinh_rgb(img[[2, 1, 0]], ["i", "r", "g"]), rgb)


def test_cutout_grid_colours_and_captions(tmp_path):
    img = _rgb_scene()
    fig = plot.cutout_grid(img[None], bands="gri", captions=["p=0.93"], ncols=1, size=3)
    assert fig.axes[0].get_title() == "p=0.93"
    px = _png(fig, tmp_path)
    h, w = px.shape[:2]
    ax = fig.axes[0].get_window_extent()  # display pixels, origin at the bottom
    x0, x1 = ax.x0, ax.x1
    yc = int(h - (ax.y0 + ax.y1) / 2)
    left = px[yc, int(x0 + (x1 - x0) * 8.5 / 32)]
    right = px[yc, int(x0 + (x1 - x0) * 24.5 / 32)]
    assert left[0] > 2 * left[2] and left[0] > 0.3
    assert right[2] > 2 * right[0] and right[2] > 0.3


def test_roc_of_a_perfect_classifier_touches_the_top_left(tmp_path):
    y = np.r_[np.zeros(50), np.ones(50)]
    fig = plot.roc_curve(y, y + 0.01 * np.arange(100), label="perfect")
    line = fig.axes[0].get_lines()[0]
    xy = np.c_[line.get_xdata(), line.get_ydata()]
    assert any((xy[:, 0] == 0) & (xy[:, 1] == 1))
    assert "AUROC 1.0000" in fig.axes[0].get_legend().get_texts()[0].get_text()
    # in the image: the curve's colour (C0) at the top-left corner of the axes
    px = _png(fig, tmp_path)
    h = px.shape[0]
    bb = fig.axes[0].get_window_extent()
    corner = px[int(h - bb.y0 - (bb.y1 - bb.y0) / 1.01) + 1: int(h - bb.y0 - (bb.y1 - bb.y0) / 1.01) + 4,
                int(bb.x0) + 1: int(bb.x0) + 5]
    c0 = np.array(matplotlib.colors.to_rgb("C0"))
    assert np.min(np.abs(corner - c0).sum(-1)) < 0.25


def test_zphot_and_pit_figures(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.uniform(0.05, 0.6, 300)
    fig = plot.zphot_vs_zspec(z, z + 0.01 * rng.normal(size=300), path=tmp_path / "zz.png")
    assert (tmp_path / "zz.png").exists() and "sigma_MAD=0.00" in fig.axes[0].get_title()
    fig = plot.pit_histogram(rng.uniform(size=2000), bins=10)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert len(heights) == 10 and np.allclose(heights, 1, atol=0.25)


def test_confusion_matrix_cell_colours_follow_counts(tmp_path):
    cm = np.array([[90, 10], [40, 60]])
    fig = plot.confusion_matrix(cm, ["a", "b"], normalize=False, cmap="Greys")
    px = _png(fig, tmp_path)
    h = px.shape[0]
    bb = fig.axes[0].get_window_extent()
    cells = {}
    for i in range(2):
        for j in range(2):
            x = int(bb.x0 + (j + 0.25) * (bb.x1 - bb.x0) / 2)  # off the centred text
            y = int(h - (bb.y1 - (i + 0.25) * (bb.y1 - bb.y0) / 2))
            cells[cm[i, j]] = px[y, x].mean()
    darkness = [cells[c] for c in sorted(cells)]  # Greys: more counts, darker
    assert darkness == sorted(darkness, reverse=True)
    # from labels
    fig = plot.confusion_matrix(y_true=["a", "a", "b"], y_pred=["a", "b", "b"], labels=["a", "b"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b"]


def test_segmentation_overlay_outlines_lie_on_segment_boundaries(tmp_path):
    seg = np.zeros((40, 40), int)
    seg[5:15, 5:15] = 1
    seg[20:35, 18:30] = 2
    image = np.zeros((3, 40, 40))
    fig = plot.segmentation_overlay(image, seg, "gri")
    ax = fig.axes[0]
    drawn = ax.get_images()[0].get_array()
    green = (drawn[..., 1] == 255) & (drawn[..., 0] == 0)
    edge = plot.segment_boundaries(seg)
    np.testing.assert_array_equal(green, edge)
    assert edge[5, 5:15].all() and edge[14, 5:15].all() and not edge[6:14, 6:14].any()
    assert not edge[seg == 0].any()
    # rendered: green pixels only inside segment 2's bounding box or segment 1's
    px = _png(fig, tmp_path)
    g = (px[..., 1] > 0.7) & (px[..., 0] < 0.3) & (px[..., 2] < 0.5)
    assert g.sum() > 50
    photutils = pytest.importorskip("photutils.segmentation")
    fig = plot.segmentation_overlay(image, photutils.SegmentationImage(seg), mode="cmap")
    assert fig.axes[0].get_title() == "2 segments"


def test_embedding_map_places_thumbnails(tmp_path):
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(60, 2))
    thumbs = rng.normal(size=(60, 3, 16, 16))
    fig = plot.embedding_map(xy, thumbs, labels=rng.integers(0, 3, 60), n_thumbnails=9,
                             path=tmp_path / "map.png")
    from matplotlib.offsetbox import AnnotationBbox

    boxes = [a for a in fig.axes[0].artists if isinstance(a, AnnotationBbox)]
    assert 1 <= len(boxes) <= 9 and (tmp_path / "map.png").exists()
