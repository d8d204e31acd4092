"""Editing state the dashboard must bound or reset: a flood of mouse moves costs bounded
work, opening another study starts from the defaults, and a job in one App never leaves
another App's (a reloaded page's) controls disabled."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_app_controller import GEOMETRY, browser_event, organ_point

from radipop_widgets.app import App
from radipop_widgets.app.extend import DEFAULT_N
from radipop_widgets.app.jobs import BUSY_CLASS
from radipop_widgets.app.throttle import INTERVAL
from radipop_widgets.app.tools import MAX_STROKE_POINTS
from radipop_widgets.app.view import DEFAULT_PRESET
from radipop_widgets.io import load_study
from radipop_widgets.io.phantom import phantom_study, write_phantom_series
from radipop_widgets.labels import LIVER
from radipop_widgets.render import WINDOW_PRESETS

MOVES = 20_000
# The old handler (the whole stroke re-sent on each move) took 4.6 s for these moves on an
# idle machine, 24 s on a loaded one; the coalescing one 0.3-0.5 s.
MOVES_SECONDS = 2.0


@pytest.fixture(scope="module")
def phantom():
    return phantom_study(**GEOMETRY)


@pytest.fixture
def app(phantom, tmp_path):
    return App(study=phantom[0], workspace=tmp_path / "sessions", background=False)


def serpentine(n: int) -> list[tuple[int, int]]:
    """``n`` distinct neighbouring pixels (row, col) snaking over a 128 x 128 image."""
    points = []
    for i, row in enumerate(range(6, 122, 3)):
        cols = range(6, 122) if i % 2 == 0 else range(121, 5, -1)
        points += [(row, c) for c in cols]
        points += [(row + k, points[-1][1]) for k in (1, 2)]
    return points[:n]


class DrawnPoints:
    """Counts the stroke points the viewer is asked to draw."""

    def __init__(self, viewer, monkeypatch):
        self.points = self.calls = 0
        for name in ("preview_stroke", "extend_stroke"):
            real = getattr(viewer, name, None)
            if real is None:
                continue

            def counted(points, *args, real=real):
                self.points += len(points)
                self.calls += 1
                return real(points, *args)
            monkeypatch.setattr(viewer, name, counted)


def test_a_flood_of_mouse_moves_costs_bounded_work_and_keeps_the_stroke(app, monkeypatch):
    path = serpentine(MAX_STROKE_POINTS)
    # five moves per pixel, as a fast client sends them (sub-pixel steps)
    moves = [(c + 0.5 + f, r + 0.5) for r, c in path for f in (-0.4, -0.2, 0.0, 0.2, 0.4)]
    assert len(moves) == MOVES
    app.set_tool("draw")
    app.segment.brush.width_slider.value = 3            # about one pixel wide
    drawn = DrawnPoints(app.viewer, monkeypatch)
    browser_event(app, "mouse_down", x=moves[0][0], y=moves[0][1])
    start = time.perf_counter()
    for x, y in moves:
        browser_event(app, "mouse_move", x=x, y=y)
    elapsed = time.perf_counter() - start
    assert elapsed < MOVES_SECONDS, f"{MOVES} moves took {elapsed:.2f} s"
    # the preview draws each point about once (the old code: 8 million points), at most
    # once per interval
    assert drawn.points <= 2 * len(path) + drawn.calls
    assert drawn.calls <= elapsed / INTERVAL + 3
    tool = app.tool
    assert tool.points == path                          # every point is kept
    app.mouse_up(*moves[-1])
    labels = app.session.labels[app.z]
    assert all(labels[r, c] == LIVER for r, c in path)  # the committed stroke is the path


def test_the_preview_catches_up_after_the_last_move(app):
    """A move within the interval is drawn at its end: the preview never lags for good."""
    app.set_tool("draw")
    app.mouse_down(10.5, 10.5)
    app.mouse_move(20.5, 10.5)                  # drawn at once
    app.mouse_move(30.5, 10.5)                  # within the interval: deferred
    tool = app.tool
    assert tool._shown == 2 and tool._render.pending
    deadline = time.monotonic() + 5
    while tool._render.pending and time.monotonic() < deadline:
        time.sleep(0.005)
    assert tool._shown == 3
    app.mouse_out(40.5, 10.5)                   # leaving ends the stroke; nothing pending
    assert not tool._render.pending and (app.session.labels[app.z][10, 10:31] == LIVER).all()


def test_a_flood_of_hover_moves_draws_the_cursor_at_a_bounded_rate(app, monkeypatch):
    app.set_tool("erase")
    cursors = []
    real = app.viewer.show_cursor
    monkeypatch.setattr(app.viewer, "show_cursor", lambda *a: (cursors.append(a), real(*a)))
    start = time.perf_counter()
    for i in range(MOVES):
        browser_event(app, "mouse_move", x=5.5 + i % 100, y=5.5 + i // 1000)
    elapsed = time.perf_counter() - start
    assert len(cursors) <= elapsed / INTERVAL + 3       # the old code: one per move
    browser_event(app, "mouse_out", x=-1, y=-1)
    time.sleep(3 * INTERVAL)
    drawn = len(cursors)
    time.sleep(3 * INTERVAL)                             # nothing pending after leaving
    assert len(cursors) == drawn


@pytest.fixture
def two_studies(tmp_path):
    data = tmp_path / "data"
    write_phantom_series(data / "a", **GEOMETRY)
    write_phantom_series(data / "b", shape=(10, 96, 96), pixel_mm=4.0, slice_mm=10.0)
    return data


def test_opening_another_study_resets_the_window_the_extend_count_and_the_choice(
        two_studies, tmp_path):
    app = App(data_root=two_studies, workspace=tmp_path / "sessions", background=False)
    entries = app.studies.entries
    first = app.studies.study_list.value
    assert first is not None and app.session.study.path == Path(entries[first].path)
    other = 1 - first
    app.view.preset.value = "bone"
    app.extend_panel.n.value = 3
    app.extend_panel.to_end.value = False
    app.studies.study_list.value = other
    app.open_study(other)
    assert app.session.study.path == Path(entries[other].path)
    assert app.view.preset.value == DEFAULT_PRESET
    level, width = WINDOW_PRESETS[DEFAULT_PRESET]
    assert (app.view.level_slider.value, app.view.width_slider.value) == (level, width)
    assert app.extend_panel.n.value == DEFAULT_N and app.extend_panel.to_end.value
    assert app.studies.study_list.value == other
    # the list shows the opened study after a rescan too
    app.refresh_studies()
    assert app.studies.study_list.value == other
    # a study opened through the API is the one selected in the list
    app.view.preset.value = "lung"
    app.set_study(load_study(entries[first].path))
    assert app.studies.study_list.value == first and app.view.preset.value == DEFAULT_PRESET


def test_resuming_the_same_study_keeps_the_window(phantom, tmp_path):
    app = App(study=phantom[0], workspace=tmp_path / "sessions", background=False)
    app.view.preset.value = "bone"
    app.extend_panel.n.value = 3
    app._show_session(app.session, offer=False)         # what Resume does: the same study
    assert app.view.preset.value == "bone" and app.extend_panel.n.value == 3


def busy(app) -> bool:
    return BUSY_CLASS in app.widget._dom_classes


def edit_controls(app):
    return [*app.segment.label_buttons.values(), app.extend_panel.below_button,
            app.extend_panel.above_button, *app.thresholds.sliders.values(),
            app.save_panel.save_button, app.studies.open_button]


def test_a_job_of_another_page_never_disables_a_new_page(phantom, tmp_path):
    """A reload during an extend: the old page's App is still extending when the new
    page's App starts on the same workspace."""
    workspace = tmp_path / "sessions"
    data = tmp_path / "data"
    write_phantom_series(data / "case", **GEOMETRY)
    old = App(study=phantom[0], workspace=workspace, background=True)
    x, y, _ = organ_point(old, phantom[1], LIVER)
    old.mouse_down(x, y)
    old.assign(LIVER)
    started, release = threading.Event(), threading.Event()
    real_extend = old.session.extend

    def slow_extend(*args, **kwargs):
        started.set()
        assert release.wait(20)
        return real_extend(*args, **kwargs)

    old.session.extend = slow_extend
    old.extend_panel.below_button.click()
    assert started.wait(10) and old.busy == "Extending"
    assert busy(old)
    try:
        new = App(study=phantom[0], workspace=workspace, background=True)
        assert new.busy is None and not busy(new)
        assert not any(c.disabled for c in edit_controls(new))
        loaded = App(data_root=data, workspace=workspace, background=True)
        loaded.wait()
        assert loaded.busy is None and not busy(loaded)
        assert not any(c.disabled for c in edit_controls(loaded))
        old.widget.close()                              # the old page went
        for control in edit_controls(old)[:2]:
            control.close()
    finally:
        release.set()
    old.wait()
    assert old.busy is None and not busy(old) and not busy(new)


def test_a_failing_idle_callback_still_enables_every_control(app):
    def broken():
        raise RuntimeError("the page went")

    app.jobs._on_idle.insert(0, broken)
    app.export("nifti")
    app.wait()
    assert not busy(app) and not any(c.disabled for c in edit_controls(app))
    assert "the page went" in " ".join(text for _, text in app.messages.messages)
