"""Coronal and sagittal views, their link to the axial view, zoom and pan, the cursor
readout and the orientation letters (controller level: handlers called directly)."""

from __future__ import annotations

import numpy as np
import pytest

from radipop_widgets.app import App
from radipop_widgets.io.phantom import phantom_study
from radipop_widgets.reformat import view_letters
from radipop_widgets.study import Study, affine_from_geometry

SHAPE, PIXEL_MM, SLICE_MM = (24, 96, 128), 3.0, 5.0


@pytest.fixture
def app(tmp_path):
    study, labels = phantom_study(shape=SHAPE, pixel_mm=PIXEL_MM, slice_mm=SLICE_MM)
    app = App(study=study, workspace=tmp_path / "sessions", background=False)
    app.reference = labels
    return app


def click_view(app, view, z, across):
    """Click the display pixel showing (slice z, column or row ``across``) of a reformat."""
    y, x = app.ortho.views[view].grid.to_canvas(z, across)
    app.ortho_click(view, x, y)


def set_slice_labels(app, z, liver_mask):
    labels = app.session.labels.copy()
    labels[z] = np.where(liver_mask, 1, labels[z])
    app.session.set_labels(labels)


def test_reformats_keep_the_voxel_aspect(app):
    for view, across_mm in (("coronal", SHAPE[2] * PIXEL_MM), ("sagittal", SHAPE[1] * PIXEL_MM)):
        grid = app.ortho.views[view].grid
        tall = SHAPE[0] * SLICE_MM
        assert abs(grid.width / grid.height - across_mm / tall) < 0.02, view
        assert max(grid.width, grid.height) == 256
        canvas = app.ortho.views[view].canvas       # one canvas pixel per voxel
        assert (int(canvas.height), int(canvas.width)) == (SHAPE[0], across_mm / PIXEL_MM)
        assert canvas.layout.width == f"{grid.width}px"


def test_a_click_in_the_coronal_view_moves_the_axial_slice_and_the_sagittal_plane(app):
    click_view(app, "coronal", 5, 40)
    assert app.z == 5 and app.ortho.sagittal.index == 40
    assert app.viewer.annotation.cross == (app.ortho.coronal.index + 0.5, 40.5)
    click_view(app, "sagittal", 17, 30)
    assert app.z == 17 and app.ortho.coronal.index == 30
    assert app.viewer.annotation.cross == (30.5, 40.5)
    y, x = app.ortho.coronal.annotation.cross
    assert app.ortho.coronal.grid.to_voxel(y, x) == (17, 40)      # crosshair on the point


def test_the_head_is_at_the_top_of_the_reformats(app):
    grid = app.ortho.coronal.grid
    assert grid.to_voxel(0.5, 10)[0] == SHAPE[0] - 1              # top row: the last slice
    assert grid.to_voxel(SHAPE[0] - 0.5, 10)[0] == 0
    assert app.ortho.coronal.annotation.letters == {"left": "R", "right": "L", "top": "S",
                                                    "bottom": "I"}
    assert app.viewer.annotation.letters == {"left": "R", "right": "L", "top": "A",
                                             "bottom": "P"}


@pytest.mark.parametrize("name, rows_dir, cols_dir, normal, axial, coronal", [
    ("prone", (-1, 0, 0), (0, -1, 0), (0, 0, 1), ("L", "R", "P", "A"), ("L", "R", "S", "I")),
    ("feet first", (-1, 0, 0), (0, 1, 0), (0, 0, -1), ("L", "R", "A", "P"), ("L", "R", "S", "I")),
    ("oblique", (0.8, 0.6, 0), (-0.6, 0.8, 0), (0, 0, 1), ("RA", "LP", "AL", "PR"),
     ("RA", "LP", "S", "I")),
])
def test_orientation_letters_follow_the_direction_cosines(name, rows_dir, cols_dir, normal,
                                                          axial, coronal):
    affine = affine_from_geometry((0, 0, 0), rows_dir, cols_dir, normal, (2.5, 0.7, 0.7))
    edges = ("left", "right", "top", "bottom")
    assert tuple(view_letters(affine, "axial")[e] for e in edges) == axial, name
    assert tuple(view_letters(affine, "coronal")[e] for e in edges) == coronal, name


def test_feet_first_reformats_still_show_the_head_at_the_top(tmp_path):
    affine = affine_from_geometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, -1), (5.0, 2.0, 2.0))
    hu = np.zeros((10, 32, 32), np.int16)
    hu[-1] = 500                                     # the last slice lies towards the feet
    study = Study(hu=hu, spacing=(5.0, 2.0, 2.0), affine=affine)
    app = App(study=study, workspace=tmp_path, background=False)
    grid = app.ortho.coronal.grid
    assert not grid.flip and grid.to_voxel(9.5, 5)[0] == 9          # feet at the bottom


def test_reformats_follow_edits_undo_and_extend(app):
    coronal = app.ortho.coronal
    z = app.z
    liver = app.reference[z] == 1
    rows, cols = np.nonzero(liver)
    app.ortho.set_planes(row=int(np.median(rows)))
    sent = coronal.overlay_sends
    set_slice_labels(app, z, liver)
    assert coronal.overlay_sends == sent + 1
    assert np.isin(coronal._overlay, [1, 2]).any()                  # liver classes shown
    app.undo()
    assert coronal.overlay_sends == sent + 2 and not np.isin(coronal._overlay, [1, 2]).any()
    app.redo()
    app.wait(app.extend(below=True, above=True))
    shown = app.session.labels[:, coronal.index, :]
    expected = coronal.grid.orient(shown == 1)
    assert np.array_equal(np.isin(coronal._overlay, [1, 2]), expected)


def test_an_edit_off_the_planes_sends_no_reformat(app):
    sent = {v: view.overlay_sends for v, view in app.ortho.views.items()}
    app.ortho.set_planes(row=2, col=2)                               # planes in the air
    sent = {v: view.overlay_sends for v, view in app.ortho.views.items()}
    mask = np.zeros(SHAPE[1:], bool)
    mask[40:50, 60:70] = True
    set_slice_labels(app, app.z, mask)
    assert {v: view.overlay_sends for v, view in app.ortho.views.items()} == sent


def test_reformat_ct_is_sent_only_when_its_plane_or_the_window_changes(app):
    sends = app.ortho.coronal.ct_sends
    app.step_slice(1)
    app.step_slice(1)
    assert app.ortho.coronal.ct_sends == sends                       # only the crosshair moved
    app.view.set_preset("liver")
    assert app.ortho.coronal.ct_sends == sends + 1
    click_view(app, "sagittal", 3, 20)                              # a new coronal plane
    assert app.ortho.coronal.ct_sends == sends + 2


def test_axial_only_hides_and_stops_the_reformats(app):
    app.ortho.shown.value = False
    assert app.ortho.widget.layout.display == "none"
    sends = app.ortho.coronal.ct_sends
    app.view.set_preset("bone")
    assert app.ortho.coronal.ct_sends == sends and app.viewer.annotation.cross is None
    app.ortho.shown.value = True
    assert app.ortho.coronal.ct_sends == sends + 1


def test_readout_gives_the_hu_and_position_under_the_mouse(app):
    hu = app.session.study.hu
    app.mouse_move(70.4, 33.9)
    text = app.readout.widget.value
    assert f"data-hu='{hu[app.z, 33, 70]}'" in text and f"row 33, col 70, slice {app.z}" in text
    x, y, z = (app.session.study.affine @ [app.z, 33, 70, 1])[:3]
    assert f"x {x:.1f}, y {y:.1f}, z {z:.1f} mm" in text
    y_, x_ = app.ortho.sagittal.grid.to_canvas(4, 50)
    app.ortho_mouse_move("sagittal", x_, y_)
    assert f"row 50, col {app.ortho.sagittal.index}, slice 4" in app.readout.widget.value
    app.mouse_out(0, 0)
    assert "Move the mouse" in app.readout.widget.value


def test_zoom_at_the_mouse_and_its_limits(app):
    app.mouse_move(100.5, 20.5)                                      # row 20, column 100
    assert app.zoom(1)
    zoom = app.viewer.zoom
    assert zoom.zoom == 1.5 and "scale(1.5)" in zoom.style.value
    assert zoom.to_screen(20.5, 100.5) == pytest.approx((20.5 / 96, 100.5 / 128))  # stays put
    while app.zoom(1):
        pass
    assert zoom.zoom == 8.0 and not app.zoom(1)
    top, left, height, width = zoom.visible
    assert 0 <= top <= 96 - height and 0 <= left <= 128 - width and width == 16
    app.key("r")
    assert zoom.zoom == 1.0 and zoom.style.value == ""
    assert app.viewer.to_pixel(127.9, 95.9) == (95, 127)            # canvas pixels unchanged


def test_pan_tool_moves_the_zoomed_image_and_edits_nothing(app):
    app.mouse_move(64, 48)
    app.zoom(1)
    app.zoom(1)                                                       # 2x, centre on (48, 64)
    zoom = app.viewer.zoom
    before_top, before_left = zoom.top, zoom.left
    labels = app.session.labels.copy()
    app.set_tool("pan")
    app.mouse_down(60, 50)
    app.mouse_move(55, 40)                                           # drag up-left by (10, 5)
    app.mouse_up(55, 40)
    assert (zoom.top, zoom.left) == (before_top + 10, before_left + 5)
    assert np.array_equal(app.session.labels, labels)
    draws = app.viewer.annotation.draws
    app.key("-")
    assert app.viewer.annotation.draws == draws + 1                 # scale bar redrawn


def test_zoom_in_a_reformat_zooms_that_view(app):
    y, x = app.ortho.coronal.grid.to_canvas(10, 64)
    app.ortho_mouse_move("coronal", x, y)
    app.key("+")
    assert app.ortho.coronal.zoom.zoom == 1.5 and app.viewer.zoom.zoom == 1.0


def test_letters_and_scale_bar_keep_their_size_and_follow_the_zoom(app):
    html = app.viewer.annotation.html.value
    # 128 columns of 3 mm = 384 mm across: a 50 mm bar, 50 / 3 / 128 of the box
    assert "data-mm='50'" in html and "width:13.02%" in html
    assert all(f">{letter}</span>" in html for letter in "RLAP")
    for _ in range(4):
        app.zoom(1)                                   # 4x: 96 mm across, a 20 mm bar
    html = app.viewer.annotation.html.value
    assert "data-mm='20'" in html and f"width:{100 * 20 / 3 / 32:.2f}%" in html


@pytest.mark.parametrize("outline", [False, True])
def test_an_edit_redraws_the_reformat_as_a_full_redraw_would(app, outline):
    from radipop_widgets.reformat import plane
    from radipop_widgets.render import overlay_indexed

    coronal, sagittal = app.ortho.coronal, app.ortho.sagittal
    coronal.outline.value = sagittal.outline.value = outline
    rng = np.random.default_rng(3)
    for z in (0, SHAPE[0] - 1, 7, 8, 12):             # the first and last slice too
        labels = app.session.labels.copy()
        labels[z, 40:60, 50:80] = rng.integers(0, 3, (20, 30))
        app.session.set_labels(labels)
        for view in (coronal, sagittal):
            drawn = view.grid.orient(plane(app.session.labels, view.view, view.index))
            full = overlay_indexed(np.ascontiguousarray(drawn), np.zeros(drawn.shape, np.uint8),
                                   outline=outline)
            assert np.array_equal(view._overlay, full), (z, view.view)
