"""Overlay colours (render.overlay_rgba), the preview of a pending edit, and the viewer's
image encoding and strip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from radipop_widgets.app.viewer import Viewer, overview_strip, palette_png
from radipop_widgets.render import (
    overlay_indexed,
    overlay_palette,
    overlay_rgba,
    preview_indexed,
    preview_palette,
)


@pytest.fixture
def slice2d():
    labels = np.zeros((40, 60), np.uint8)
    regions = np.zeros((40, 60), np.int32)
    regions[5:20, 5:25] = 1                      # liver region
    labels[5:20, 5:25] = 1
    regions[5:20, 30:50] = 2                     # spleen region
    labels[5:20, 30:50] = 2
    regions[25:35, 5:25] = 3                     # unlabelled candidate
    regions[25:35, 30:50] = 4                    # another label, "other"
    labels[25:35, 30:50] = 7
    return labels, regions


def dominant(rgba):
    r, g, b = (int(v) for v in rgba[:3])
    return "red" if r > max(g, b) + 40 else "blue" if b > max(r, g) + 40 else \
        "yellow" if min(r, g) > b + 100 else "green" if g > max(r, b) + 40 else "none"


def test_colours_per_label_and_candidates(slice2d):
    rgba = overlay_rgba(*slice2d, opacity=0.6)
    assert rgba.shape == (40, 60, 4) and rgba.dtype == np.uint8
    assert dominant(rgba[10, 10]) == "red" and rgba[10, 10, 3] == round(0.6 * 255)
    assert dominant(rgba[10, 40]) == "blue"
    assert dominant(rgba[30, 40]) == "yellow"
    assert dominant(rgba[30, 10]) == "green"
    assert rgba[30, 10, 3] < rgba[10, 10, 3]     # candidates are fainter than labels
    assert rgba[0, 0, 3] == 0 and rgba[22, 28, 3] == 0
    assert rgba[5, 10, 3] > rgba[10, 10, 3]      # edges are more opaque


def test_selected_region_is_brighter(slice2d):
    labels, regions = slice2d
    plain = overlay_rgba(labels, regions, opacity=0.5).astype(int)
    selected = overlay_rgba(labels, regions, selected=regions == 3, opacity=0.5).astype(int)
    assert selected[30, 10, :3].sum() > plain[30, 10, :3].sum()
    assert selected[30, 10, 3] > plain[30, 10, 3]
    np.testing.assert_array_equal(selected[:20], plain[:20])   # other regions unchanged
    by_id = overlay_rgba(labels, regions, selected=3, opacity=0.5)   # or by region id
    np.testing.assert_array_equal(by_id, selected)


def test_a_selection_that_is_no_candidate_region_is_drawn(slice2d):
    """A click finds its region with its own intensity range: the selection may cover
    background and only part of a candidate region, and is drawn as it is."""
    labels, regions = slice2d
    selection = np.zeros(labels.shape, bool)
    selection[22:30, 8:15] = True               # background and the top of region 3
    rgba = overlay_rgba(labels, regions, selected=selection, opacity=0.5).astype(int)
    plain = overlay_rgba(labels, regions, opacity=0.5).astype(int)
    assert dominant(rgba[23, 12]) == "green" and plain[23, 12, 3] == 0
    assert rgba[27, 12, 3] > plain[27, 12, 3] and rgba[32, 12, 3] == plain[32, 12, 3]
    index = overlay_indexed(labels, regions, selected=selection, outline=True)
    assert index[22, 12] and index[29, 12] and not index[23, 12]   # its own outline
    with pytest.raises(ValueError, match="the selection"):
        overlay_indexed(labels, regions, selected=selection[:-1])


def test_preview_is_a_dashed_outline_with_stripes():
    mask = np.zeros((30, 40), bool)
    mask[5:25, 5:35] = True
    index = preview_indexed(mask)
    inner = ndimage.binary_erosion(mask, iterations=2)
    edge = mask & ~inner                                        # two pixels wide
    assert set(np.unique(index[edge])) == {0, 1}                # dashes and gaps
    assert 0.3 < (index[edge] == 1).mean() < 0.7
    assert (index[~mask] == 0).all()
    assert set(np.unique(index[inner])) == {0, 2} and (index[inner] == 2).mean() < 0.3
    palette = preview_palette((30, 90, 255))
    assert palette[0, 3] == 0 and palette[1, 3] == 255 and tuple(palette[1, :3]) == (30, 90, 255)
    with pytest.raises(ValueError, match="2-D"):
        preview_indexed(mask[None])


def test_outline_keeps_only_edges_and_opacity_scales(slice2d):
    outline = overlay_rgba(*slice2d, opacity=0.5, outline=True)
    assert outline[10, 10, 3] == 0 and outline[5, 10, 3] > 0 and dominant(outline[5, 10]) == "red"
    assert overlay_rgba(*slice2d, opacity=0.0)[10, 10, 3] == 0
    assert overlay_palette(np.nan).shape == (17, 4)            # a bad value falls back
    with pytest.raises(ValueError, match="same 2-D shape"):
        overlay_indexed(slice2d[0], slice2d[1][:-1])


def test_palette_png_is_lossless_rgba(slice2d):
    labels, regions = slice2d
    index = overlay_indexed(labels, regions, selected=regions == 2)
    palette = overlay_palette(0.7)
    decoded = np.array(Image.open(io.BytesIO(palette_png(index, palette))).convert("RGBA"))
    np.testing.assert_array_equal(decoded, overlay_rgba(labels, regions, selected=regions == 2,
                                                        opacity=0.7))


def test_ct_layer_is_lossless_grey_png():
    viewer = Viewer(32, 48)
    grey = np.arange(32 * 48, dtype=np.uint32).reshape(32, 48).astype(np.uint8)
    viewer.show_ct(grey)
    decoded = Image.open(io.BytesIO(viewer._ct_png))
    assert decoded.format == "PNG" and decoded.mode == "L"
    np.testing.assert_array_equal(np.array(decoded), grey)
    with pytest.raises(ValueError, match="2-D uint8"):
        viewer.show_ct(np.zeros((32, 48, 3), np.uint8))
    assert viewer.to_pixel(47.9, 31.2) == (31, 47)
    assert viewer.to_pixel(48, 0) is None and viewer.to_pixel(-0.5, 0) is None


def test_overview_strip_marks_organs_and_current_slice():
    present = np.zeros((10, 2), bool)
    present[2:5, 0] = True
    present[6, 1] = True
    strip = overview_strip(present, current=8, width=100)
    assert strip.shape[1] == 100
    assert dominant(strip[2, 35]) == "red" and dominant(strip[-3, 35]) == "none"
    assert dominant(strip[-3, 65]) == "blue"
    assert (strip[5, 79, :3] == 0).all() and (strip[5, 90, :3] == 0).all()  # framed in black
    assert (strip[0, 84, :3] == 0).all() and (strip[-1, 84, :3] == 0).all()  # triangles


def test_overview_strip_keeps_the_labels_of_the_current_slice():
    """The marker of the slice shown used to paint it white, hiding its own labels."""
    present = np.zeros((10, 2), bool)
    present[8] = True
    strip = overview_strip(present, current=8, width=100)
    assert dominant(strip[5, 85]) == "red" and dominant(strip[-6, 85]) == "blue"
