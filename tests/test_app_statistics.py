"""The Statistics tab: its table shows the API's numbers, the area plot moves the slice, and
it measures only when shown and the labels changed (never on the click path)."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest
from scipy import ndimage

from radipop_widgets.app import App
from radipop_widgets.app.app import TABS
from radipop_widgets.app.statistics import CURSOR, PLOT_WIDTH, area_plot, slice_at
from radipop_widgets.io.phantom import phantom_study
from radipop_widgets.labels import LIVER, SPLEEN
from radipop_widgets.measure import liver_spleen_ratio

SHAPE = (12, 128, 128)
STATS = TABS.index("Statistics")


@pytest.fixture(scope="module")
def phantom():
    return phantom_study(shape=SHAPE, pixel_mm=3.2, slice_mm=10.0)


def make_app(phantom, tmp_path, background=False):
    study, _ = phantom
    return App(study=study, workspace=tmp_path / "sessions", output_root=tmp_path / "exports",
               background=background)


def paint(app, z, mask, label):
    """Give ``mask`` of slice z ``label`` (one undoable edit through the Session)."""
    new = app.session.labels.copy()
    new[z][mask] = label
    app.session.set_labels(new, "paint")


def click_and_assign(app, reference, label):
    """Click deep inside the organ on the slice shown and press its label button."""
    inside = ndimage.distance_transform_edt(reference[app.z] == label)
    row, col = np.unravel_index(np.argmax(inside), inside.shape)
    app.mouse_down(col + 0.5, row + 0.5)
    app.mouse_up(col + 0.5, row + 0.5)
    return app.assign(label)


def click_plot(app, label, x):
    """A click on an organ's area plot, as the browser delivers it (guarded callback)."""
    app.statistics.plots[label][CURSOR]._handle_frontend_event(
        None, {"event": "mouse_down", "x": x, "y": 20}, [])


def served_statistics(phantom, tmp_path):
    """(app, reference labels, measurings so far): a served app (background jobs) with the
    Statistics tab shown and measured."""
    app = make_app(phantom, tmp_path, background=True)
    app.wait()
    app.tabs.selected_index = STATS
    wait_measured(app)
    return app, phantom[1], app.statistics.runs


def wait_measured(app, timeout=10.0):
    """Wait (at most ``timeout`` s) until the served app's timer has measured."""
    deadline = time.monotonic() + timeout
    while app.statistics.stale and time.monotonic() < deadline:
        time.sleep(0.02)


def volume_cell(value):
    return f"<b>{value:,.1f}</b>".replace(",", "&#8239;")


def test_the_tab_shows_the_api_numbers(phantom, tmp_path):
    _, reference = phantom
    app = make_app(phantom, tmp_path)
    assert app.tabs.get_title(STATS) == "Statistics"
    app.session.labels[...] = reference                 # as a resumed session would
    app.tabs.selected_index = STATS
    m = app.session.measurements()
    table = app.statistics.table.value
    for organ in ("liver", "spleen"):
        assert volume_cell(m[organ]["volume_ml"]) in table
        assert f"{m[organ]['median_hu']:.1f}" in table
        assert f"{m[organ]['length_cc_mm']:.1f}" in table
        assert f"{m[organ]['diameter_max_mm']:.1f}" in table
    assert f"{m['spleen']['splenic_index_cm3']:.0f}" in table
    assert f"{liver_spleen_ratio(m):.2f}" in table
    assert app.statistics.measurements == m


def test_clicking_the_area_plot_at_slice_k_moves_the_app_there(phantom, tmp_path):
    _, reference = phantom
    app = make_app(phantom, tmp_path)
    app.session.labels[...] = reference
    app.tabs.selected_index = STATS
    n = SHAPE[0]
    for k in (0, 3, 7, n - 1):
        click_plot(app, SPLEEN, (k + 0.5) * PLOT_WIDTH / n)
        assert app.z == k and app.navigation.slider.value == k
    click_plot(app, LIVER, PLOT_WIDTH + 50)            # beyond the plot: the last slice
    assert app.z == n - 1
    click_plot(app, LIVER, float("nan"))                # not a number: nothing happens
    assert app.z == n - 1
    assert not [t for level, t in app.messages.messages if level == "error"]


def test_updates_after_assign_and_undo_only_while_shown(phantom, tmp_path):
    _, reference = phantom
    app = make_app(phantom, tmp_path)
    app.set_slice(6)
    runs = app.statistics.runs
    assert click_and_assign(app, reference, LIVER) > 0
    assert app.statistics.runs == runs and app.statistics.stale   # hidden: not measured
    app.tabs.selected_index = STATS
    assert app.statistics.runs == runs + 1 and not app.statistics.stale
    liver = app.session.measurements()["liver"]
    assert volume_cell(liver["volume_ml"]) in app.statistics.table.value
    app.set_slice(7)
    assert click_and_assign(app, reference, LIVER) > 0
    grown = app.session.measurements()["liver"]["volume_ml"]
    assert grown > liver["volume_ml"]
    assert volume_cell(grown) in app.statistics.table.value
    app.undo()
    assert volume_cell(liver["volume_ml"]) in app.statistics.table.value
    app.undo()
    assert "(not labelled)" in app.statistics.table.value
    app.tabs.selected_index = 0
    runs = app.statistics.runs
    paint(app, 7, reference[7] == LIVER, LIVER)
    app.set_slice(3)
    assert app.statistics.runs == runs                  # hidden again: nothing measured


def test_served_app_measures_later_off_the_click_path(phantom, tmp_path):
    app, reference, runs = served_statistics(phantom, tmp_path)
    paint(app, 5, reference[5] == SPLEEN, SPLEEN)
    assert app.statistics.runs == runs and app.statistics.pending   # not in the handler
    wait_measured(app)
    assert not app.statistics.stale and app.statistics.runs == runs + 1
    spleen = app.session.measurements()["spleen"]
    assert volume_cell(spleen["volume_ml"]) in app.statistics.table.value
    paint(app, 6, reference[6] == SPLEEN, SPLEEN)
    app.statistics.flush()                              # or at once, when asked
    assert not app.statistics.pending and not app.statistics.stale


def test_dashboard_export_writes_the_measurements_beside_the_nifti(phantom, tmp_path):
    _, reference = phantom
    app = make_app(phantom, tmp_path)
    app.session.labels[...] = reference
    path = app.export("nifti").result(10)
    folder = path.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "labels.nii.gz", "labels_measurements.csv", "labels_measurements.json"]
    with open(folder / "labels_measurements.csv", newline="") as f:
        rows = {r["organ"]: r for r in csv.DictReader(f)}
    m = app.session.measurements()
    assert float(rows["liver"]["volume_ml"]) == m["liver"]["volume_ml"]
    assert float(rows["spleen"]["splenic_index_cm3"]) == m["spleen"]["splenic_index_cm3"]


def test_area_plot_marks_missing_slices_steps_and_the_slice_shown():
    image = area_plot([(0, 10.0), (1, 100.0), (3, 90.0)], 5, (230, 30, 30), z=4,
                      missing=[2], steps=[1, 2, 3], width=50, height=20)
    column = {z: image[:, z * 10 + 5] for z in range(5)}
    assert (column[2] == (255, 170, 60, 255)).all()                 # missing: orange
    assert (column[4] == (40, 40, 40, 255)).all()                   # the slice shown
    assert (column[1][:, 0] == 200).any() and (column[1][-5:, 0] == 230).all()
    reds = [(column[z][:, :3] == (230, 30, 30)).all(axis=1).sum() for z in (0, 1, 3)]
    assert reds[0] < reds[2] < reds[1] + 3                          # heights follow areas
    assert [slice_at(x, 5, 50) for x in (0, 9.9, 10, 49, 60, -3)] == [0, 0, 1, 4, 4, 0]


def test_the_plot_marks_a_slice_that_stands_out_from_its_neighbours_as_the_flags_do():
    from types import SimpleNamespace

    from radipop_widgets.app.statistics import StatisticsPanel
    from radipop_widgets.cohort.flags import area_flags
    from radipop_widgets.measure import organ_measurements

    labels = np.zeros((7, 40, 40), np.uint8)
    for z, half in enumerate((6, 8, 10, 11, 10, 8, 6)):     # a smooth organ
        labels[z, 20 - half:20 + half, 20 - half:20 + half] = LIVER
    labels[4, 8:30, 30:33] = LIVER                          # slice 4 leaks a little
    spacing = (5.0, 1.0, 1.0)
    m = organ_measurements(labels, None, spacing)
    assert [f.code for f in area_flags(m)] == ["area_jump"]
    session = SimpleNamespace(study=SimpleNamespace(n_slices=7, spacing=spacing))
    caption = StatisticsPanel._view(session, m)["plots"][LIVER][0]
    assert "slices 4 stand out from their neighbours" in caption


@pytest.mark.parametrize("background", [False, True])
def test_measures_only_the_slices_that_may_hold_labels_and_equals_the_api(phantom, tmp_path,
                                                                        background):
    _, reference = phantom
    app = make_app(phantom, tmp_path, background=background)
    app.wait()
    app.tabs.selected_index = STATS

    def check():
        app.statistics.flush()
        wait_measured(app)
        assert app.statistics.measurements == app.session.measurements()

    check()
    assert app.statistics.measurements == {}
    for z, label in [(6, LIVER), (0, SPLEEN), (11, LIVER), (5, SPLEEN)]:
        paint(app, z, reference[z] == label, label)
        check()
    app.undo()
    app.undo()
    check()
    assert app.statistics.measurements["liver"]["slices"] == (6, 6)
    app.session.set_labels(reference)                  # every slice
    check()
    app.session.set_labels(np.zeros_like(reference))
    check()
    assert app.statistics.measurements == {}


def test_plots_send_small_pngs_and_a_slice_step_sends_no_image(phantom, tmp_path):
    _, reference = phantom
    app = make_app(phantom, tmp_path)
    app.session.labels[...] = reference
    app.tabs.selected_index = STATS
    sent = app.statistics.plot_bytes
    assert 0 < sent < 2 * 4000                      # two PNGs, not 2 x 94 KB of raw RGBA
    for z in (2, 3, 9):
        app.set_slice(z)
    assert app.statistics.plot_bytes == sent         # only the slice line moves
    paint(app, 4, reference[4] == SPLEEN, 0)         # the spleen's plot changes, not the liver's
    assert 0 < app.statistics.plot_bytes - sent < 4000


def test_served_app_measures_once_after_a_burst_of_edits(phantom, tmp_path):
    app, reference, runs = served_statistics(phantom, tmp_path)
    for z in (4, 5, 6, 7):                             # well within DELAY of each other
        paint(app, z, reference[z] == LIVER, LIVER)
    assert app.statistics.runs == runs and app.statistics.pending
    wait_measured(app)
    assert app.statistics.runs == runs + 1             # one measuring, after the pause
    assert app.statistics.measurements == app.session.measurements()
