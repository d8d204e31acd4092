"""The key table (dispatch, help rows, browser helper) and what derives from the organ table."""

from __future__ import annotations

import html

import pytest

from radipop_widgets.app import App, keys
from radipop_widgets.app.keys import KeyMap, KeyRow, key_table
from radipop_widgets.app.ui import mix
from radipop_widgets.io.phantom import phantom_study
from radipop_widgets.labels import BACKGROUND, ORGANS, Organ
from radipop_widgets.render import overlay_palette

HELP = [
    ("↑ / ↓, Page Up / Page Down, mouse wheel", "next / previous slice (↑ towards the head)"),
    ("S, G, D, E, C, H", "tools: Select, Grow, Draw, Erase, Cut, Pan"),
    ("1, 2, 3", "label the selected region Liver, Spleen, Other"),
    ("0 or Delete", "remove the label of the selected region"),
    ("+ / -, R", "zoom in / out at the mouse (1-8x); R: the whole image again "
                 "(tool Pan, key H, drags the zoomed image)"),
    ("[ / ]", "previous / next study of the worklist"),
    ("F", "fill the brush label between labelled slices (a preview: Apply or Esc)"),
    ("Ctrl+Z / Ctrl+Y (or Ctrl+Shift+Z)", "undo / redo"),
    ("Esc", "abandon the stroke being drawn or the fill preview"),
]


class Recorder:
    """Commands that record what the keys asked for."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    study, _ = phantom_study(shape=(6, 64, 64), pixel_mm=5.0, slice_mm=10.0)
    return App(study=study, workspace=tmp_path_factory.mktemp("sessions"), background=False)


def test_one_table_gives_the_help_rows_and_the_help_tab(app):
    assert app.key_map.help_rows() == HELP
    help_tab = app.tabs.children[-1].value
    assert all(html.escape(k) in help_tab and html.escape(v) in help_tab for k, v in HELP)


@pytest.mark.parametrize("press, expected", [
    (("ArrowUp",), ("step_slice", 1)), (("PageDown",), ("step_slice", -1)),
    (("S", True), ("set_tool", "select")), (("c",), ("set_tool", "cut")),
    (("g",), ("set_tool", "grow")), (("F",), ("fill_preview",)),
    (("2",), ("assign", 2)), (("Backspace",), ("assign", BACKGROUND)),
    (("z", False, True), ("undo",)), (("Z", True, False, True), ("redo",)),
    (("y", True, True), ("redo",)), (("Escape",), ("cancel",)),
    (("+",), ("zoom", 1)), (("=",), ("zoom", 1)), (("-",), ("zoom", -1)),
    (("R", True), ("reset_zoom",)), (("h",), ("set_tool", "pan")),
    (("]",), ("next_study",)), (("[",), ("previous_study",)),
])
def test_dispatch(app, press, expected):
    commands = Recorder()
    assert app.key_map.dispatch(commands, *press)
    assert commands.calls == [expected]


@pytest.mark.parametrize("press", [("z",), ("1", False, True), ("x",), ("F13",), ("",),
                                   (None,), (5,), ("ArrowUp" * 3,)])
def test_unbound_and_hostile_keys_do_nothing(app, press):
    commands = Recorder()
    assert not app.key_map.dispatch(commands, *press)
    assert commands.calls == []


def test_the_browser_helper_forwards_exactly_the_bound_keys(app):
    plain, command = app.key_map.browser_keys()
    assert command == ["Y", "Z", "y", "z"]
    assert {"ArrowUp", "PageDown", "Escape", "Delete", "0", "1", "3", "s", "S", "c", "g", "G",
            "f", "F"} <= set(plain)
    assert "z" not in plain and "Enter" not in plain
    helper = html.unescape(app.key_map.helper_html())
    assert '"ArrowDown"' in helper and "PLAIN_KEYS" not in helper
    assert helper in html.unescape(app.style.value)


def test_a_key_bound_twice_is_refused():
    row = KeyRow("1", "twice", (("1", lambda c: None),))
    with pytest.raises(ValueError, match="'1' is bound twice"):
        KeyMap(key_table([]) + (row,))


def test_an_organ_added_to_the_table_gets_its_key_and_help(monkeypatch):
    kidney = Organ(4, "kidney", (150, 60, 200), "4", ("64033007", "Kidney"))
    monkeypatch.setattr(keys, "ORGANS", ORGANS + (kidney,))
    table = KeyMap(key_table([]))
    assert ("1, 2, 3, 4", "label the selected region Liver, Spleen, Other, Kidney") in \
        table.help_rows()
    commands = Recorder()
    table.dispatch(commands, "4")
    assert commands.calls == [("assign", 4)]


def test_buttons_brush_and_colours_come_from_the_organ_table(app):
    buttons = app.segment.label_buttons
    assert list(buttons) == [o.value for o in ORGANS] + [BACKGROUND]
    for o in ORGANS:
        assert buttons[o.value].description == o.title
        assert buttons[o.value].style.button_color == mix(o.colour, (255, 255, 255), 0.4)
        assert f"radipop-label-{o.name}" in buttons[o.value]._dom_classes
        assert f"(key {o.key})" in buttons[o.value].tooltip
    assert app.segment.brush.label_buttons.options == tuple((o.title, o.value) for o in ORGANS)
    palette = overlay_palette(1.0)
    assert [tuple(palette[1 + 4 * i, :3]) for i in range(len(ORGANS))] == \
        [o.colour for o in ORGANS]
    assert "Liver</b> 0.0 mL" in app.header.volumes.value
