"""State the app must not copy: each threshold slider sends only its own value, the brush
preview and the painted stroke use the Session's one pixel size, and a new browser view
gets the widgets' state as it is now."""

from __future__ import annotations

import dataclasses

import ipywidgets as widgets
import numpy as np
import pytest

from radipop_widgets.app import App
from radipop_widgets.app.viewer import INTERACTION
from radipop_widgets.io.phantom import phantom_study
from radipop_widgets.labels import LIVER

SHAPE = (8, 96, 96)


@pytest.fixture(scope="module")
def study():
    return phantom_study(shape=SHAPE, pixel_mm=3.2, slice_mm=10.0)[0]


@pytest.fixture
def app(study, tmp_path):
    return App(study=study, workspace=tmp_path / "sessions", background=False)


def test_bone_slider_on_all_slices_leaves_each_slices_organ_alone(app):
    app.thresholds.scope.value = "slice"
    for z, organ in ((2, 93), (5, 90)):
        app.set_slice(z)
        app.thresholds.sliders["organ"].value = organ
    app.thresholds.scope.value = "all"
    app.thresholds.sliders["bone"].value = 420
    s = app.session
    assert [s.thresholds(z).bone for z in range(SHAPE[0])] == [420] * SHAPE[0]
    assert (s.thresholds(2).organ, s.thresholds(5).organ) == (93, 90)


@pytest.mark.parametrize("scope", ["all", "slice"])
def test_a_threshold_set_in_python_survives_another_slider(app, scope):
    app.session.set_thresholds(vessel=150.6)
    app.thresholds.scope.value = scope
    app.thresholds.sliders["organ"].value += 7
    app.thresholds.sliders["bone"].value += 10
    assert {app.session.thresholds(z).vessel for z in range(SHAPE[0])} == {150.6}


def test_brush_preview_is_as_wide_as_the_painted_stroke(study, tmp_path):
    """On 0.5 x 2 mm pixels (row x column spacing) the preview and the paint agree."""
    spacing = (study.spacing[0], 0.5, 2.0)
    affine = study.affine @ np.diag([1.0, 0.5 / study.spacing[1], 2.0 / study.spacing[2], 1.0])
    app = App(study=dataclasses.replace(study, spacing=spacing, affine=affine),
              workspace=tmp_path / "sessions", background=False)
    app.set_tool("draw")
    app.segment.brush.width_slider.value = 6.0
    row = 8                                          # in the air above the body
    app.mouse_down(10.5, row + 0.5)
    app.mouse_move(60.5, row + 0.5)
    preview = app.viewer.canvas[INTERACTION].line_width
    app.mouse_up(60.5, row + 0.5)
    painted = int((app.session.labels[app.z][:, 35] == LIVER).sum())
    assert painted > 0
    assert abs(preview - painted) <= 1, (f"preview {preview:g} px wide, "
                                         f"painted stroke {painted} px")


def test_a_new_browser_view_gets_every_widget_state_again(app, monkeypatch):
    """The page can be built from widget states older than what the loading job set: when
    the image's view is ready, every widget's state is sent again, once."""
    sent = []
    monkeypatch.setattr(widgets.Widget, "send_state", lambda self, key=None: sent.append(self))
    app.viewer.canvas[INTERACTION]._handle_frontend_event(None, {"event": "client_ready"}, [])
    ids = [w.model_id for w in sent]
    assert len(ids) == len(set(ids)) > 100
    for widget in (app.header.title, app.tabs, app.resume_panel.widget.layout,
                   app.fill.actions.layout, app.thresholds.sliders["organ"],
                   app.navigation.text, app.messages.output, app.segment.tool_buttons.style):
        assert widget.model_id in ids
