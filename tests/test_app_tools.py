"""The correction tools in the dashboard: Grow, the edge-aware brush, fill between slices,
the organs' ranges beside the thresholds, the contrast phase, and the selection overlay
(what the click selected, not a candidate region)."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image
from test_app_controller import GEOMETRY, errors, organ_point
from test_session_tools import arterial_study

from radipop_widgets import session as session_module
from radipop_widgets.app import App
from radipop_widgets.io.phantom import phantom_study, write_phantom_series
from radipop_widgets.labels import LIVER, SPLEEN
from radipop_widgets.session import Session


@pytest.fixture(scope="module")
def phantom():
    return phantom_study(**GEOMETRY)


@pytest.fixture
def app(phantom, tmp_path):
    return App(study=phantom[0], workspace=tmp_path / "sessions", background=False)


@pytest.fixture(scope="module")
def arterial():
    return arterial_study()


@pytest.fixture
def arterial_app(arterial, tmp_path):
    app = App(study=arterial[0], workspace=tmp_path / "sessions", background=False)
    app.set_slice(2)
    return app


def overlay_selected(app) -> np.ndarray:
    """The pixels the overlay sent to the browser draws as selected."""
    index = np.array(Image.open(io.BytesIO(app.viewer._overlay_png)))
    return (index > 0) & ((index.astype(int) - 1) // 2 % 2 == 1)


def stroke(app, points):
    app.mouse_down(*points[0])
    for x, y in points[1:]:
        app.mouse_move(x, y)
    app.mouse_up(*points[-1])


def test_selection_overlay_is_the_clicked_region_not_a_candidate(arterial_app):
    """On the arterial study the click on the bright spleen finds its region with the
    tissue's own range: the overlay shows that, not the candidate region under it."""
    app, s = arterial_app, arterial_app.session
    app.mouse_down(92.5, 64.5)                           # (row 64, col 92): the spleen
    selected = s.selected_mask(2)
    candidate = s.regions(2) == s.selection[1]
    assert (selected != candidate).sum() > 100           # the two differ on this study
    np.testing.assert_array_equal(overlay_selected(app), selected)
    assert f"({int(selected.sum())} pixels, tissue " in app.messages.messages[0][1]
    app.key("2")
    assert (s.labels[2] == SPLEEN)[selected].all()
    assert "Spleen" in app.thresholds.ranges.texts[SPLEEN].value and \
        "(1 click)" in app.thresholds.ranges.texts[SPLEEN].value


def test_grow_adds_the_piece_under_the_click(app, phantom):
    _, reference = phantom
    app.key("g")
    assert app.tool.name == "grow" and app.segment.tool_buttons.value == "grow"
    assert ("Grow", "grow") in app.segment.tool_buttons.options
    app.segment.brush.label_buttons.value = SPLEEN
    x, y, _ = organ_point(app, reference, SPLEEN)
    app.mouse_down(x, y)
    app.mouse_up(x, y)
    grown = app.session.labels[app.z] == SPLEEN
    spleen = reference[app.z] == SPLEEN
    assert 2 * (grown & spleen).sum() / (grown.sum() + spleen.sum()) > 0.9
    same = Session(phantom[0])                           # what the API does with that click
    same.grow(app.z, int(y), int(x), SPLEEN)
    np.testing.assert_array_equal(app.session.labels, same.labels)
    message = app.messages.messages[0][1]
    assert message.startswith(f"Grew spleen: {int(grown.sum())} pixels on slice {app.z}; "
                              "spleen range ") and message.endswith("(1 click).")
    assert "(1 click)" in app.thresholds.ranges.texts[SPLEEN].value   # the range it learned
    app.mouse_down(3, 3)                                 # air: nothing grown, said so
    assert app.messages.messages[0][1].startswith("Nothing grown")
    app.undo()
    assert not (app.session.labels == SPLEEN).any()


def test_edge_aware_brush_paints_only_the_organ(arterial_app, arterial):
    """The option reaches the session: the same wide stroke across the spleen's edge paints
    fat and muscle without it, only spleen with it."""
    app, s = arterial_app, arterial_app.session
    _, reference = arterial
    spleen = reference[2] == SPLEEN
    app.set_tool("draw")
    app.segment.brush.label_buttons.value = SPLEEN
    app.segment.brush.width_slider.value = 12
    across = [(92.5, 64.5), (100.5, 64.5), (112.5, 64.5)]   # from the spleen out to the wall
    stroke(app, across)
    plain = s.labels[2] == SPLEEN
    assert (plain & ~spleen).sum() > 100
    app.undo()
    app.segment.brush.edge_box.value = True
    assert app.segment.brush.edge_aware
    stroke(app, across)
    aware = s.labels[2] == SPLEEN
    assert aware.sum() > 50 and (aware & ~spleen).sum() < 0.05 * aware.sum()
    same = Session(arterial[0])
    same.draw(2, [(64, 92), (64, 100), (64, 112)], SPLEEN, width_mm=12, edge_aware=True)
    np.testing.assert_array_equal(s.labels, same.labels)


def label_slice(app, z, reference, label=LIVER):
    """Label the organ on slice ``z`` with one click and the label key."""
    app.set_slice(z)
    app.set_tool("select")
    x, y, _ = organ_point(app, reference, label)
    app.mouse_down(x, y)
    app.key(str(label))


def test_fill_between_slices_previews_then_applies_as_one_step(app, phantom):
    _, reference = phantom
    z = app.z
    for key_slice in (z - 3, z + 3):
        label_slice(app, key_slice, reference)
    app.set_slice(z)
    before = app.session.labels.copy()
    app.key("f")                                         # the preview, nothing changed yet
    fill = app.fill
    assert fill.pending and sorted(fill.masks) == list(range(z - 2, z + 3))
    np.testing.assert_array_equal(app.session.labels, before)
    assert f"fills slices {z - 2}-{z + 2}: <b>Apply</b> or <b>Cancel</b>" in fill.text.value
    assert fill.actions.layout.display == "flex" and app.viewer.previewing
    app.set_slice(z + 3)                                 # a key slice: nothing to show there
    assert fill.pending and not app.viewer.previewing
    app.set_slice(z)
    assert app.viewer.previewing
    app.set_tool("draw")                                 # an edit: the preview follows it
    stroke(app, [(20.5, 10.5), (24.5, 10.5)])
    assert sorted(fill.masks) == [z - 2, z - 1, z + 1, z + 2] and not app.viewer.previewing
    app.undo()
    assert sorted(fill.masks) == list(range(z - 2, z + 3)) and app.viewer.previewing
    preview = {k: v.copy() for k, v in fill.masks.items()}
    fill.apply_button.click()
    assert not fill.pending and not app.viewer.previewing
    assert fill.actions.layout.display == "none"
    for k, mask in preview.items():
        assert (app.session.labels[k] == LIVER)[mask].all()
    assert app.messages.messages[0][1] == "Filled liver on 5 slice(s). Undo with Ctrl+Z."
    app.key("z", ctrl=True)                              # one undo step
    np.testing.assert_array_equal(app.session.labels, before)


def test_fill_preview_is_cancelled_by_esc_and_explains_an_empty_fill(app, phantom):
    _, reference = phantom
    z = app.z
    app.key("f")
    assert not app.fill.pending and "Nothing to fill" in app.messages.messages[0][1]
    for key_slice in (z - 2, z + 2):
        label_slice(app, key_slice, reference)
    app.fill.fill_button.click()
    assert app.fill.pending
    app.key("Escape")
    assert not app.fill.pending and not app.viewer.previewing and app.fill.text.value == ""
    with pytest.raises(Exception, match="no fill to apply"):
        app.fill.apply()
    app.fill_preview()
    app.set_slice(z + 2)
    app.set_tool("erase")                                # nothing left to fill: it closes
    app.segment.brush.width_slider.value = 30
    for key_slice in (z - 2, z + 2):
        app.set_slice(key_slice)
        for row in range(0, 128, 8):
            stroke(app, [(0.5, row + 0.5), (127.5, row + 0.5)])
    assert not app.fill.pending and errors(app) == []


def test_range_boxes_set_the_range_and_follow_undo(app, phantom):
    _, reference = phantom
    ranges = app.thresholds.ranges
    low, high = ranges.boxes[LIVER]["low"], ranges.boxes[LIVER]["high"]
    assert "not learned yet" in ranges.texts[LIVER].value and ranges.forget_buttons[LIVER].disabled
    low.value = "40"                                     # one end waits for the other
    assert app.session.organ_range(LIVER) is None and "Type the high end" in \
        app.messages.messages[0][1] and low.value == "40"
    high.value = "90"
    assert tuple(app.session.organ_range(LIVER))[:2] == (40, 90)
    assert "Liver</b> 40-90 HU (set by hand)" in ranges.texts[LIVER].value
    assert not ranges.forget_buttons[LIVER].disabled
    high.value = "120"                                   # then each end on its own
    assert tuple(app.session.organ_range(LIVER))[:2] == (40, 120)
    high.value = "10"                                    # below the low end: said, not set
    assert "low < high" in errors(app)[0] and high.value == "120"
    low.value = "a lot"
    assert "must be a number" in errors(app)[0] and low.value == "40"
    app.undo()
    assert "40-90 HU" in ranges.texts[LIVER].value and high.value == "90"
    app.undo()
    assert "not learned yet" in ranges.texts[LIVER].value and low.value == high.value == ""
    app.redo()
    assert "40-90 HU (set by hand)" in ranges.texts[LIVER].value
    ranges.forget_buttons[LIVER].click()
    assert app.session.organ_range(LIVER) is None and ranges.forget_buttons[LIVER].disabled
    label_slice(app, app.z, reference)                   # a click learns it
    assert "(1 click)" in ranges.texts[LIVER].value
    band = app.session.organ_range(LIVER)
    assert low.value == f"{band.low:.0f}" and high.value == f"{band.high:.0f}"
    app.set_organ_range(LIVER, high=200)                  # the API the boxes use
    assert app.session.organ_range(LIVER).high == 200 and high.value == "200"
    with pytest.raises(Exception, match="low and/or high"):
        ranges.set_range(LIVER)
    for slider in app.thresholds.sliders.values():       # the sliders stay and work
        slider.value += 5
    assert "not learned yet" in ranges.texts[SPLEEN].value


def test_phase_beside_the_suggestion_and_in_the_study_table(arterial_app):
    text = arterial_app.thresholds.suggested_text.value
    assert "phase: arterial (aorta 400 HU)" in text and "suggested: bone" in text
    assert "Contrast phase" in arterial_app.studies.metadata.value
    assert "arterial (aorta 400 HU on 5 slices)" in arterial_app.studies.metadata.value


def test_phase_is_estimated_in_the_loading_job(tmp_path, monkeypatch):
    write_phantom_series(tmp_path / "data" / "case", **GEOMETRY)
    threads = []
    estimate = session_module.estimate_phase

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return estimate(*args, **kwargs)

    monkeypatch.setattr(session_module, "estimate_phase", recording)
    app = App(data_root=tmp_path / "data", workspace=tmp_path / "sessions")
    app.wait()
    assert threads == ["radipop Loading"]                # once, in the worker
    assert "phase: portal venous" in app.thresholds.suggested_text.value
