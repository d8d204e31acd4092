"""Long operations (loading, extend, export) in the worker thread: browsing goes on, edits
wait, the held controls are greyed with one message to the page, failures are reported and
release the controls."""

from __future__ import annotations

import threading

import pytest
from test_app_controller import GEOMETRY, errors, organ_point

from radipop_widgets.app import App
from radipop_widgets.app.jobs import BUSY_CLASS, HELD_CLASS
from radipop_widgets.errors import RadipopError
from radipop_widgets.io.phantom import phantom_study
from radipop_widgets.labels import LIVER


@pytest.fixture(scope="module")
def phantom():
    return phantom_study(**GEOMETRY)


@pytest.fixture
def app(phantom, tmp_path):
    return App(study=phantom[0], workspace=tmp_path / "sessions", output_root=tmp_path / "exports")


def busy(app) -> bool:
    """The page shows a job running (its held controls greyed, taking no clicks)."""
    return BUSY_CLASS in app.widget._dom_classes


def test_a_job_starts_with_a_few_messages_to_the_page_not_one_per_control(app, monkeypatch):
    """Each message at a job's start is one the page handles before the next key: one per
    held control (38) delayed a slice key during an extend from 35 to 115 ms."""
    import ipywidgets

    sent, real_send = [], ipywidgets.Widget._send
    monkeypatch.setattr(ipywidgets.Widget, "_send", lambda self, msg, buffers=None: (
        sent.append(type(self).__name__), real_send(self, msg, buffers))[1])
    release = threading.Event()
    app.jobs.run("Waiting", lambda progress: release.wait(10), lambda _: None, "Waiting")
    started = len(sent)
    release.set()
    app.wait()
    assert started <= 6, sent[:started]


def test_a_slider_moved_by_a_key_during_a_job_shows_the_applied_threshold_again(app):
    organ = app.thresholds.sliders["organ"]
    applied = organ.value
    release = threading.Event()
    app.jobs.run("Waiting", lambda progress: release.wait(10), lambda _: None, "Waiting")
    organ.value = applied + 7                  # a focused slider takes arrow keys
    release.set()
    app.wait()
    assert organ.value == applied and "still running" in app.messages.messages[0][1]


def test_long_operation_keeps_browsing_and_holds_edits(app, phantom):
    """Extend runs in a worker thread: slices can be browsed, edits wait, results land."""
    _, reference = phantom
    x, y, _ = organ_point(app, reference, LIVER)
    app.mouse_down(x, y)
    app.assign(LIVER)
    z, session = app.z, app.session
    started, release = threading.Event(), threading.Event()
    real_extend = session.extend

    def slow_extend(*args, **kwargs):
        started.set()
        assert release.wait(10)
        return real_extend(*args, **kwargs)

    session.extend = slow_extend
    app.extend_panel.below_button.click()
    assert started.wait(10)
    assert app.busy == "Extending" and app.jobs.progress.layout.visibility == "visible"
    held = (app.extend_panel.above_button, app.segment.label_buttons[LIVER],
            app.header.undo_button, app.save_panel.save_button)
    assert busy(app) and all(HELD_CLASS in c._dom_classes for c in held)   # greyed, no clicks
    app.extend_panel.above_button.click()                   # a second start is refused
    app.header.undo_button.click()                           # edits wait
    app.mouse_down(x, y)
    assert "still running" in app.messages.messages[0][1]
    refused = "failed: Extending is still running: wait until it ends."
    assert errors(app)[:2] == ["Undoing " + refused, "Extending the labels " + refused]
    app.key("ArrowDown")                              # browsing goes on
    assert app.z == z - 1
    release.set()
    report = app.wait()
    assert report.rows and app.busy is None and app.jobs.progress.layout.visibility == "hidden"
    assert not busy(app) and not app.header.undo_button.disabled
    assert (session.labels[z - 1] == LIVER).any() and app.navigation.present[z - 1, 0]
    assert session.can_undo and (session.labels[z] == LIVER).any()    # the undo was refused
    assert "Extended the labels" in app.messages.messages[0][1]


def test_a_failing_long_operation_is_reported_and_releases_the_controls(app):
    def broken(*args, **kwargs):
        raise RadipopError("the disk is full")

    app.session.export_nifti = broken
    app.save_panel.export_buttons["nifti"].click()
    with pytest.raises(RadipopError, match="the disk is full"):
        app.wait()
    assert errors(app)[0] == "Exporting failed: the disk is full"
    assert app.busy is None and not busy(app) and not app.save_panel.save_button.disabled
