"""The dashboard's controller in plain pytest: set widget values, call handlers, check the Session.

ipywidgets works without a browser or kernel, so these tests drive the same code paths
as the browser (including the guarded canvas callbacks) and assert on the Session.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from radipop_widgets.app import App
from radipop_widgets.app.viewer import INTERACTION, larger_scales
from radipop_widgets.errors import MissingSliceError, RadipopError
from radipop_widgets.io.phantom import (
    PHANTOM_METADATA,
    phantom_study,
    write_phantom_series,
)
from radipop_widgets.labels import LIVER, SPLEEN
from radipop_widgets.persist import find_saved_session

SHAPE = (12, 128, 128)
GEOMETRY = dict(shape=SHAPE, pixel_mm=3.2, slice_mm=10.0)


@pytest.fixture(scope="module")
def phantom():
    return phantom_study(**GEOMETRY)


@pytest.fixture
def app(phantom, tmp_path):
    study, _ = phantom
    return App(study=study, workspace=tmp_path / "sessions", output_root=tmp_path / "exports")


def organ_point(app, reference, label):
    """(x, y) canvas position deep inside the candidate region of ``label`` on the shown
    slice, on the organ's own tissue (a click on a vessel inside it learns the vessel)."""
    regions = app.session.regions(app.z)
    ids, counts = np.unique(regions[reference[app.z] == label], return_counts=True)
    region = regions == ids[np.argmax(np.where(ids > 0, counts, 0))]
    local = ndimage.uniform_filter(app.session.study.hu[app.z].astype(float), 3)
    tissue = region & (np.abs(local - np.median(local[reference[app.z] == label])) < 15)
    row, col = np.unravel_index(np.argmax(ndimage.distance_transform_edt(tissue)), region.shape)
    return col + 0.5, row + 0.5, region


def browser_event(app, event, **content):
    """Deliver an event as the browser does (through ipycanvas and the guarded callbacks)."""
    app.viewer.canvas[INTERACTION]._handle_frontend_event(None, {"event": event, **content}, [])


def errors(app):
    return [text for level, text in app.messages.messages if level == "error"]


def test_click_and_label_button_label_the_region(app, phantom):
    _, reference = phantom
    x, y, region = organ_point(app, reference, LIVER)
    browser_event(app, "mouse_down", x=x, y=y)
    browser_event(app, "mouse_up", x=x, y=y)
    assert app.session.selection == (app.z, app.session.regions(app.z)[int(y), int(x)])
    app.segment.label_buttons[LIVER].click()
    liver = app.session.labels[app.z] == LIVER
    # the region, plus at most its partial-volume rim (one pixel around it)
    rim = ndimage.binary_dilation(region, np.ones((3, 3), bool))
    assert liver[region].all() and not (liver & ~rim).any()
    assert (app.session.labels == LIVER).sum() == liver.sum()
    assert "Liver</b> 0.0 mL" not in app.header.volumes.value
    assert not app.header.undo_button.disabled and app.header.redo_button.disabled


def test_label_key_needs_a_selection_on_this_slice(app, phantom):
    _, reference = phantom
    x, y, _ = organ_point(app, reference, SPLEEN)
    app.key("2")
    assert app.session.labels.sum() == 0
    assert "Select a region" in app.messages.messages[0][1]
    app.mouse_down(x, y)
    app.key("2")
    assert (app.session.labels[app.z] == SPLEEN).sum() > 100


@pytest.mark.parametrize("x, y", [(-1e12, 5), (5, 1e12), (math.nan, 5), (math.inf, 3),
                                  ("7", 7), (None, None), (True, 3), ([1], 2), (128, 5)])
def test_hostile_coordinates_change_nothing(app, x, y):
    for tool in ("select", "grow", "draw", "cut"):
        app.set_tool(tool)
        for event in ("mouse_down", "mouse_move", "mouse_up", "mouse_out"):
            browser_event(app, event, x=x, y=y)
    assert app.session.labels.sum() == 0 and not app.session.cuts(app.z)
    assert app.session.selection is None
    assert errors(app) == []


def test_hostile_slices_keys_and_wheel_are_clamped_or_ignored(app):
    n = SHAPE[0]
    app.set_slice(1e30)
    assert app.z == n - 1 and app.navigation.slider.value == n - 1
    app.set_slice(-5)
    assert app.z == 0
    for value in ("3", None, math.nan, [2]):
        app.set_slice(value)
    assert app.z == 0
    app.strip_click(1e30, 0)
    assert app.z == n - 1
    app.strip_click(-7, 0)
    assert app.z == 0
    for key in (None, 5, "", "x" * 1000, "F13"):
        browser_event(app, "key_down", key=key, shift_key=False, ctrl_key=False, meta_key=False)
    for dy in ("up", None, math.nan):
        browser_event(app, "mouse_wheel", x=0, y=dy)
    assert app.z == 0 and errors(app) == []
    app.set_thresholds(organ=1e9, vessel=-1e9)
    t = app.session.thresholds(0)
    assert t.organ == 300 and t.vessel == 50


def test_slice_navigation_sends_the_ct_only_on_slice_or_window_change(app, phantom):
    _, reference = phantom
    start, sends = app.z, app.viewer.ct_sends
    app.navigation.slider.value = start + 1
    assert app.z == start + 1 and app.navigation.text.value == start + 1
    app.navigation.text.value = start - 1
    assert app.z == start - 1 and app.navigation.slider.value == start - 1
    app.key("ArrowUp")
    app.key("PageUp")
    assert app.z == start + 1
    app.wheel(0, 120)
    assert app.z == start
    for _ in range(4):                             # small trackpad deltas add up
        app.wheel(0, -20)
    assert app.z == start + 1
    app.wheel(0, 120)
    assert app.viewer.ct_sends == sends + 7
    x, y, _ = organ_point(app, reference, LIVER)
    overlays = app.viewer.overlay_sends
    app.mouse_down(x, y)
    app.key("1")
    app.thresholds.sliders["organ"].value += 10
    app.view.opacity_slider.value = 0.8
    assert app.viewer.overlay_sends >= overlays + 4
    assert app.viewer.ct_sends == sends + 7       # overlay changes never re-send the CT
    app.view.preset.value = "liver"
    assert (app.view.level_slider.value, app.view.width_slider.value) == (90, 150)
    assert app.viewer.ct_sends == sends + 8


def test_threshold_scope_this_slice_or_all(app):
    z, other = app.z, app.z + 1
    old = app.session.thresholds(other)
    app.thresholds.scope.value = "slice"
    app.thresholds.sliders["organ"].value = 90
    assert app.session.thresholds(z).organ == 90 and app.session.thresholds(other) == old
    app.thresholds.scope.value = "all"
    app.thresholds.sliders["bone"].value = 400
    assert all(app.session.thresholds(i).bone == 400 for i in range(SHAPE[0]))
    app.thresholds.suggested_button.click()
    assert app.session.thresholds(z) == app.session.suggested_thresholds
    app.set_slice(other)                          # the sliders show the slice's thresholds
    assert app.thresholds.sliders["bone"].value == round(app.session.thresholds(other).bone)


def test_draw_erase_and_cut_strokes(app, phantom):
    _, reference = phantom
    app.set_tool("draw")
    app.segment.brush.label_buttons.value = SPLEEN
    app.segment.brush.width_slider.value = 10
    for event, (x, y) in zip(("mouse_down", "mouse_move", "mouse_move", "mouse_up"),
                             ((20, 20), (30, 20), (40, 25), (50, 25))):
        browser_event(app, event, x=x, y=y)
    drawn = app.session.labels[app.z] == SPLEEN
    assert drawn[20, 20] and drawn[25, 50] and drawn.sum() > 90
    app.key("e")
    assert app.tool.name == "erase" and app.segment.tool_buttons.value == "erase"
    app.mouse_down(20, 20)
    app.mouse_move(50, 25)
    app.mouse_out(60, 25)                          # leaving the image ends the stroke
    assert (app.session.labels[app.z] == SPLEEN).sum() < drawn.sum() // 4
    app.key("c")
    x, y, region = organ_point(app, reference, LIVER)
    rows = np.nonzero(region[:, int(x)])[0]
    app.mouse_down(x, max(0, rows.min() - 3))
    app.mouse_move(x, y)
    app.mouse_up(x, min(SHAPE[1] - 1, rows.max() + 3))
    assert len(app.session.cuts(app.z)) == 1
    app.key("Escape")


def test_extend_by_n_slices_shows_the_report(app, phantom):
    _, reference = phantom
    x, y, _ = organ_point(app, reference, LIVER)
    z = app.z
    app.mouse_down(x, y)
    app.key("1")
    app.extend_panel.to_end.value = False
    app.extend_panel.n.value = 2
    app.extend_panel.below_button.click()
    app.wait()
    present = (app.session.labels == LIVER).any(axis=(1, 2))
    assert present[z - 2:z + 1].all() and not present[z - 3] and not present[z + 1]
    assert f"slice {z - 1}" in app.extend_panel.report.value
    assert app.navigation.present[z - 2:z + 1, 0].all()      # the overview strip knows
    assert f"below to 2 slice(s) (slices {z - 2}-{z - 1})" in app.messages.messages[0][1]
    app.key("z", ctrl=True)
    assert not (app.session.labels[z - 1] == LIVER).any()
    assert app.messages.messages[0][1] == "Undid extend."
    app.key("y", ctrl=True)
    assert (app.session.labels[z - 1] == LIVER).any()
    assert app.messages.messages[0][1] == "Redid extend."


def test_save_export_and_path_checks(app, phantom, tmp_path):
    study, reference = phantom
    x, y, _ = organ_point(app, reference, LIVER)
    app.mouse_down(x, y)
    app.key("1")
    app.save_panel.save_button.click()
    folder = find_saved_session(study, tmp_path / "sessions")
    assert folder is not None and "Session saved" in app.messages.messages[0][1]
    app.save_panel.output_text.value = "case 1"
    app.save_panel.export_buttons["nifti"].click()
    assert app.wait() == tmp_path / "exports" / "case 1" / "labels.nii.gz"
    app.save_panel.export_buttons["legacy"].click()
    app.wait()
    out = tmp_path / "exports" / "case 1"
    assert (out / "labels.nii.gz").is_file() and any((out / "legacy_masks").iterdir())
    assert errors(app) == []
    assert app.save_panel.export_buttons["dicom_seg"].disabled   # not loaded from DICOM
    assert "Export NIfTI labels instead" in app.save_panel.export_buttons["dicom_seg"].tooltip
    app.save_panel.export_buttons["dicom_seg"].click()
    assert "DICOM SEG needs a DICOM study" in errors(app)[0]
    assert not (out / "segmentation.dcm").exists()
    app.save_panel.output_text.value = "../../outside"
    app.save_panel.export_buttons["nifti"].click()
    assert not (tmp_path / "outside").exists()
    assert "outside the allowed folder" in errors(app)[0]


def test_reopening_offers_the_saved_session(phantom, tmp_path):
    study, reference = phantom
    first = App(study=study, workspace=tmp_path)
    assert first.resume_panel.widget.layout.display == "none"
    x, y, region = organ_point(first, reference, LIVER)
    first.mouse_down(x, y)
    first.assign(LIVER)
    folder = first.save()
    saved = (folder / "labels.nii.gz").read_bytes()

    second = App(study=study, workspace=tmp_path)     # a fresh session, and the offer
    assert second.resume_panel.widget.layout.display == "flex" and second.session.labels.sum() == 0
    newest = second.resume_panel.choice.options[0][0]     # when it was saved (local time)
    assert newest.startswith("saved 20") and "liver" in newest
    second.resume_panel.start_new_button.click()
    assert second.resume_panel.widget.layout.display == "none"
    assert (folder / "labels.nii.gz").read_bytes() == saved   # kept until saved over
    second.save()                                     # Start new said it replaces them
    assert persist_labels(folder).sum() == 0

    assert first.save() is None                       # a stale page asks first
    assert first.save_panel.conflict.layout.display == "flex"
    assert "Another session saved this study at 20" in first.save_panel.conflict_text.value
    assert persist_labels(folder).sum() == 0 and "Not saved" in first.messages.messages[0][1]
    first.save_panel.keep_button.click()
    assert first.save_panel.conflict.layout.display == "none"
    first.save()
    first.save_panel.replace_button.click()           # the user says so
    assert persist_labels(folder).sum() == first.session.labels.sum() > 0
    assert first.save_panel.conflict.layout.display == "none"
    third = App(study=study, workspace=tmp_path)
    third.mouse_down(x, y)
    third.assign(SPLEEN)                              # an edit before resuming is discarded
    third.resume_panel.resume_button.click()
    np.testing.assert_array_equal(third.session.labels, first.session.labels)
    assert third.resume_panel.widget.layout.display == "none" and not third.session.can_undo
    assert "discarded" in third.messages.messages[0][1]
    liver_slices = (first.session.labels == LIVER).any(axis=(1, 2))
    assert (third.navigation.present[:, 0] == liver_slices).all()
    with pytest.raises(RadipopError, match="no saved session"):
        third.resume()


def test_autosaved_work_survives_a_lost_kernel(phantom, tmp_path):
    study, reference = phantom
    lost = App(study=study, workspace=tmp_path)
    x, y, _ = organ_point(lost, reference, LIVER)
    lost.mouse_down(x, y)
    lost.assign(LIVER)                                # autosaved, never saved
    assert find_saved_session(study, tmp_path) is None

    again = App(study=study, workspace=tmp_path)
    assert again.resume_panel.choice.options[0][0].startswith("autosaved 20")
    again.mouse_down(x, y)
    again.assign(SPLEEN)                              # no autosave over it before a choice
    again.resume_panel.resume_button.click()
    np.testing.assert_array_equal(again.session.labels, lost.session.labels)
    again.header.undo_button.click()                         # nothing to undo after resuming
    assert (again.session.labels == LIVER).any()
    assert again.session.autosave


def test_start_new_and_an_edit_still_offer_the_saved_session(phantom, tmp_path):
    study, reference = phantom
    first = App(study=study, workspace=tmp_path)
    x, y, _ = organ_point(first, reference, LIVER)
    first.mouse_down(x, y)
    first.assign(LIVER)
    first.save()

    second = App(study=study, workspace=tmp_path)
    second.resume_panel.start_new_button.click()
    second.mouse_down(x, y)
    second.assign(SPLEEN)                             # one edit: autosaved beside the save

    third = App(study=study, workspace=tmp_path)
    panel = third.resume_panel
    labels = [label for label, _ in panel.choice.options]     # each autosave and the save
    assert [label.split(" ")[0] for label in labels] == ["autosaved", "saved", "autosaved"]
    assert panel.widget.layout.display == "flex"
    assert all(" mL" in label and "liver" in label and "spleen" in label for label in labels)
    assert "spleen 0.0" not in labels[0] and "spleen 0.0" in labels[1]   # Start new's edit
    assert panel.choice.value == panel.choice.options[0][1]      # the newest is preselected
    assert all(label in third.messages.messages[0][1] for label in labels)
    panel.choice.value = panel.choice.options[1][1]              # the saved one
    panel.resume_button.click()
    np.testing.assert_array_equal(third.session.labels, first.session.labels)
    assert not (third.session.labels == SPLEEN).any() and panel.widget.layout.display == "none"


def test_a_damaged_session_of_the_study_is_named_not_fatal(phantom, tmp_path):
    study, reference = phantom
    first = App(study=study, workspace=tmp_path)
    x, y, _ = organ_point(first, reference, LIVER)
    first.mouse_down(x, y)
    first.assign(LIVER)
    folder = first.save()
    damaged = folder / "autosave-broken"
    damaged.mkdir()
    (damaged / "session.json").write_text(
        '{"format":"radipop-widgets session","format_version":"2"}')

    again = App(study=study, workspace=tmp_path)
    panel = again.resume_panel
    assert [label.split(" ")[0] for label, _ in panel.choice.options] == ["saved", "autosaved"]
    assert not any("autosave-broken" in label for label, _ in panel.choice.options)
    assert "autosave-broken" in panel.damaged_text.value
    assert "cannot be opened" in panel.damaged_text.value
    assert any("autosave-broken" in text and "cannot be opened" in text
               for _, text in again.messages.messages)
    panel.resume_button.click()
    np.testing.assert_array_equal(again.session.labels, first.session.labels)

    (folder / "session.json").write_text("{not json")   # the save damaged too
    last = App(study=study, workspace=tmp_path)
    assert [label.split(" ")[0] for label, _ in last.resume_panel.choice.options] == ["autosaved"]
    assert sum("cannot be opened" in text for _, text in last.messages.messages) == 2
    for autosave in folder.glob("autosave*"):
        (autosave / "session.json").write_text("[]")  # nothing left to resume: no offer
    none_left = App(study=study, workspace=tmp_path)
    assert none_left.resume_panel.widget.layout.display == "none"
    assert none_left.session is not None and not none_left.resume_panel.pending


def persist_labels(folder):
    from radipop_widgets.persist import load_session
    return load_session(folder)[0]


def test_tool_key_says_the_tool_once(app):
    app.key("d")
    app.key("d")
    assert app.tool.name == "draw"
    assert [text for _, text in app.messages.messages].count(app.tool.help) == 1


def test_larger_screens_get_larger_exact_scales(app):
    assert larger_scales(512, 512) == [640.0 / 512, 1.5, 1.75, 2.0]
    assert larger_scales(101, 122) == [5, 6, 7, 8]         # small images: integer factors
    assert larger_scales(333, 512) == [2.0]               # only whole screen pixels
    css = app.style.value
    # 128 px x 5 = 640 px, the reformats beside it 256 x 5 / 4 = 320 px, the panel 700 px
    assert "min-width: 1660px) and (min-height: 810px)" in css
    app.ortho.shown.value = False                         # the axial view alone
    assert "min-width: 1340px) and (min-height: 810px)" in app.style.value
    assert "width: 512px !important" in css and "image-rendering: pixelated" in css
    assert 'onerror="' in css                             # the keyboard helper
    # ipycanvas sends image coordinates whatever the display size: exact at every scale
    assert app.viewer.to_pixel(127.99, 0.0) == (0, 127)
    assert app.viewer.to_pixel(128.0, 0.0) is None


def test_study_picker_errors_and_metadata(tmp_path, caplog):
    data = tmp_path / "data"
    write_phantom_series(data / "good", **GEOMETRY)
    write_phantom_series(data / "gap", **GEOMETRY)
    files = sorted((data / "gap" / "dicom").iterdir())
    files[len(files) // 2].unlink()                # a missing slice
    caplog.set_level(logging.INFO)
    app = App(data_root=data, workspace=tmp_path / "sessions", output_root=tmp_path / "exports")
    labels = [label for label, _ in app.studies.study_list.options]
    assert len(labels) == 2 and all("slices" in label for label in labels)
    gap = next(i for label, i in app.studies.study_list.options if "gap" in label)
    good = next(i for label, i in app.studies.study_list.options if "good" in label)
    if gap == 0:                                   # the first study opens on start
        with pytest.raises(MissingSliceError, match="a slice is missing"):
            app.wait()
        assert app.session is None and "no study open" in app.header.title.value
        assert app.tabs.selected_index == 2 and app.header.undo_button.disabled
    else:
        app.wait()
    app.studies.study_list.value = gap
    app.studies.open_button.click()                        # the loader's error, in words
    with pytest.raises(MissingSliceError, match="a slice is missing"):
        app.wait()
    assert errors(app) and "Opening the study failed" in errors(app)[0]
    assert app.jobs.progress.layout.visibility == "hidden"
    app.studies.study_list.value = good
    app.studies.open_button.click()
    app.wait()
    assert app.session.study.n_slices == SHAPE[0] and app.tabs.selected_index == 0
    assert PHANTOM_METADATA["PatientName"] in app.studies.metadata.value
    app.save()
    app.refresh_studies()
    listed = {i: label for label, i in app.studies.study_list.options}
    assert "saved session (20" in listed[good] and "saved session" not in listed[gap]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for value in PHANTOM_METADATA.values():
        if len(value) > 3:
            assert value not in logged


def test_dicom_seg_export_of_a_dicom_study(tmp_path):
    write_phantom_series(tmp_path / "data" / "case", **GEOMETRY)
    app = App(data_root=tmp_path / "data", workspace=tmp_path / "sessions",
              output_root=tmp_path / "exports")
    app.wait()
    reference = np.load(tmp_path / "data" / "case" / "reference_labels.npz")["labels"]
    app.mouse_down(*organ_point(app, reference, LIVER)[:2])
    app.assign(LIVER)
    app.save_panel.output_text.value = "case"
    assert not app.save_panel.export_buttons["dicom_seg"].disabled
    app.save_panel.export_buttons["dicom_seg"].click()
    app.wait()
    assert errors(app) == []
    assert (tmp_path / "exports" / "case" / "segmentation.dcm").is_file()


def test_without_a_study_handlers_explain(tmp_path):
    app = App(data_root=tmp_path, workspace=tmp_path / "sessions")
    assert app.session is None and "No studies found" in app.messages.messages[0][1]
    app.segment.label_buttons[LIVER].click()
    app.header.undo_button.click()
    app.mouse_down(3, 3)
    assert "No study is open" in errors(app)[0]


def test_display_bundle_is_the_widget(app):
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert Path(app.output_root).name == "exports"
    # the export folder is named after the series description
    assert app.save_panel.output_text.value.startswith("Abdomen_phantom")
