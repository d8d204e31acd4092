"""Overlay colours (render.overlay_rgba) and the viewer's image encoding and strip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from radipop_widgets.app.viewer import Viewer, overview_strip, palette_png
from radipop_widgets.render import overlay_indexed, overlay_palette, overlay_rgba


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
    plain = overlay_rgba(*slice2d, opacity=0.5).astype(int)
    selected = overlay_rgba(*slice2d, selected_region=3, opacity=0.5).astype(int)
    assert selected[30, 10, :3].sum() > plain[30, 10, :3].sum()
    assert selected[30, 10, 3] > plain[30, 10, 3]
    np.testing.assert_array_equal(selected[:20], plain[:20])   # other regions unchanged


def test_outline_keeps_only_edges_and_opacity_scales(slice2d):
    outline = overlay_rgba(*slice2d, opacity=0.5, outline=True)
    assert outline[10, 10, 3] == 0 and outline[5, 10, 3] > 0 and dominant(outline[5, 10]) == "red"
    assert overlay_rgba(*slice2d, opacity=0.0)[10, 10, 3] == 0
    assert overlay_palette(np.nan).shape == (17, 4)            # a bad value falls back
    with pytest.raises(ValueError, match="same 2-D shape"):
        overlay_indexed(slice2d[0], slice2d[1][:-1])


def test_palette_png_is_lossless_rgba(slice2d):
    index = overlay_indexed(*slice2d, selected_region=2)
    palette = overlay_palette(0.7)
    decoded = np.array(Image.open(io.BytesIO(palette_png(index, palette))).convert("RGBA"))
    np.testing.assert_array_equal(decoded, overlay_rgba(*slice2d, selected_region=2, opacity=0.7))


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
    assert (strip[5, 81:89, :3] == 255).all()    # the current slice is marked white
