"""The key table: one row per shortcut group, generating the dispatch of keys on the
image, the Help tab's rows and the browser's keyboard helper.

>>> keys = KeyMap(key_table([]))
>>> keys.chord("S", shift=True), keys.chord("z", shift=True, command=True)
('s', 'ctrl+shift+z')
>>> keys.help_rows()[2]
('1, 2, 3', 'label the selected region Liver, Spleen, Other')
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Callable, Protocol

from ..labels import BACKGROUND, MEASURED, ORGANS

MAX_KEY_LENGTH = 16


class Commands(Protocol):
    """What the keys act on (the App)."""

    def step_slice(self, delta: int) -> None: ...
    def set_tool(self, name: str) -> None: ...
    def assign(self, label: int) -> int: ...
    def undo(self) -> bool: ...
    def redo(self) -> bool: ...
    def fill_preview(self) -> dict: ...
    def cancel(self) -> None: ...
    def zoom(self, step: int) -> bool: ...
    def reset_zoom(self) -> None: ...
    def next_study(self) -> object: ...
    def previous_study(self) -> object: ...


@dataclass(frozen=True)
class KeyRow:
    """One row of the help: the keys as shown, what they do, and per key chord
    (``"s"``, ``"ArrowUp"``, ``"ctrl+shift+z"``) the action on the :class:`Commands`."""

    keys: str
    help: str
    bindings: tuple[tuple[str, Callable[[Commands], object]], ...]


def key_table(tools) -> tuple[KeyRow, ...]:
    """The shortcuts of the dashboard; tool keys from ``tools``, organ keys from ORGANS."""
    def step(delta):
        return lambda c: c.step_slice(delta)

    def assign(label):
        return lambda c: c.assign(label)

    def tool(name):
        return lambda c: c.set_tool(name)

    def undo(c):
        return c.undo()

    def redo(c):
        return c.redo()

    def zoom(step):
        return lambda c: c.zoom(step)

    return (
        KeyRow("↑ / ↓, Page Up / Page Down, mouse wheel",
               "next / previous slice (↑ towards the head)",
               (("ArrowUp", step(1)), ("PageUp", step(1)), ("ArrowDown", step(-1)),
                ("PageDown", step(-1)))),
        KeyRow(", ".join(t.key.upper() for t in tools),
               "tools: " + ", ".join(t.name.capitalize() for t in tools),
               tuple((t.key, tool(t.name)) for t in tools)),
        KeyRow(", ".join(o.key for o in ORGANS),
               "label the selected region " + ", ".join(o.title for o in ORGANS),
               tuple((o.key, assign(o.value)) for o in ORGANS)),
        KeyRow("0 or Delete", "remove the label of the selected region",
               tuple((key, assign(BACKGROUND)) for key in ("0", "Delete", "Backspace"))),
        KeyRow("+ / -, R", "zoom in / out at the mouse (1-8x); R: the whole image again "
               "(tool Pan, key H, drags the zoomed image)",
               (("+", zoom(1)), ("=", zoom(1)), ("-", zoom(-1)), ("r", lambda c: c.reset_zoom()))),
        KeyRow("[ / ]", "previous / next study of the worklist",
               (("[", lambda c: c.previous_study()), ("]", lambda c: c.next_study()))),
        KeyRow("F", "fill the brush label between labelled slices (a preview: Apply or Esc)",
               (("f", lambda c: c.fill_preview()),)),
        KeyRow("Ctrl+Z / Ctrl+Y (or Ctrl+Shift+Z)", "undo / redo",
               (("ctrl+z", undo), ("ctrl+shift+z", redo), ("ctrl+y", redo),
                ("ctrl+shift+y", redo))),
        KeyRow("Esc", "abandon the stroke being drawn or the fill preview",
               (("Escape", lambda c: c.cancel()),)),
    )


class KeyMap:
    """Dispatch of key chords to actions, built from a key table (a chord bound twice is
    an error: adding an organ whose key a tool already uses fails here)."""

    def __init__(self, rows: tuple[KeyRow, ...]):
        self.rows = rows
        self.actions: dict[str, Callable[[Commands], object]] = {}
        for row in rows:
            for chord, action in row.bindings:
                if chord in self.actions:
                    raise ValueError(f"the key {chord!r} is bound twice")
                self.actions[chord] = action

    @staticmethod
    def chord(key: str, shift: bool = False, command: bool = False) -> str:
        """The table's name of a key press: letters in lower case; Shift counts only with
        Ctrl or Cmd (``command``)."""
        name = key.lower() if len(key) == 1 else key
        return ("ctrl+shift+" if shift else "ctrl+") + name if command else name

    def dispatch(self, commands: Commands, key, shift=False, ctrl=False, meta=False) -> bool:
        """Act on a key from the browser (anything else than a short string is ignored);
        returns whether the key is bound."""
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            return False
        action = self.actions.get(self.chord(key, bool(shift), bool(ctrl) or bool(meta)))
        if action is None:
            return False
        action(commands)
        return True

    def help_rows(self) -> list[tuple[str, str]]:
        return [(row.keys, row.help) for row in self.rows]

    def browser_keys(self) -> tuple[list[str], list[str]]:
        """The ``KeyboardEvent.key`` values bound without and with Ctrl / Cmd."""
        plain, command = set(), set()
        for chord in self.actions:
            target, name = (command, chord.rsplit("+", 1)[1]) if chord.startswith("ctrl+") \
                else (plain, chord)
            target.update({name, name.upper()} if len(name) == 1 else {name})
        return sorted(plain), sorted(command)

    def helper_html(self) -> str:
        """The keyboard helper, installed once per page.

        The image takes the keyboard focus when the mouse enters it (unless a text box or
        slider readout is being edited); Enter in a box or a slider's readout ends its
        editing and gives the focus back to the image (a slider's readout keeps the focus
        after Enter otherwise, and the next key went into it: "d8.0"), and bound keys
        pressed while a button or nothing has the focus are passed to the image. ipycanvas
        only hears keys on a focused canvas, and ipywidgets runs no <script>: an image
        error handler carries the code.
        """
        plain, command = (json.dumps(keys) for keys in self.browser_keys())
        script = _KEYS_JS.replace("PLAIN_KEYS", plain).replace("COMMAND_KEYS", command)
        return (f'<img src="data:," alt="" style="display:none" '
                f'onerror="{html.escape(" ".join(script.split()), quote=True)}">')

    def help_html(self) -> str:
        """The Help tab."""
        rows = "".join(f"<tr><td style='padding-right:12px'><b>{html.escape(k)}</b></td>"
                       f"<td>{html.escape(v)}</td></tr>" for k, v in self.help_rows())
        organs = " or ".join(f"<i>{o.title}</i>" for o in MEASURED)
        return ("<div style='font-size:13px'>The keys act on the image while the mouse is over "
                "it (and after clicking a button); in a box you are typing in they stay there "
                f"until Enter.<table>{rows}</table><p><b>Segmenting:</b> tool <i>Select</i>, "
                f"click a green candidate region, press {organs}: the click learns the organ's "
                "intensity range (shown beside the thresholds, and typed there to set it by "
                "hand). Adjust the thresholds when the organ leaks into its neighbours, or "
                "<i>Cut</i> across the leak. Then <i>Extend</i> to the neighbouring slices and "
                "check them with the arrow keys. <i>Grow</i> adds a missed piece with one "
                "click, <i>Draw</i> with \"stop at the organ's edge\" paints only the organ, "
                "<i>Fill between slices</i> interpolates the brush label between two labelled "
                "slices. Numbers in boxes and slider readouts can be typed.</p></div>")


_KEYS_JS = """
if (!window.radipopKeys) {
  window.radipopKeys = true;
  const image = () => document.querySelector('canvas.radipop-image');
  const editing = (el) => !!el && (el.isContentEditable ||
      ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName));
  const plain = new Set(PLAIN_KEYS), command = new Set(COMMAND_KEYS);
  document.addEventListener('mouseover', (e) => {
    const c = image();
    if (c && e.target === c && document.activeElement !== c && !editing(document.activeElement))
      c.focus({preventScroll: true});
  }, true);
  document.addEventListener('keydown', (e) => {
    const c = image(), t = e.target;
    if (e.key === 'Enter' && (t.tagName === 'INPUT' || t.isContentEditable) &&
        t.closest('.radipop-app')) {
      setTimeout(() => { t.blur(); if (c) c.focus({preventScroll: true}); }, 0);
      return;
    }
    if (!c || t === c || !(t === document.body || t.tagName === 'BUTTON')) return;
    if (!(e.ctrlKey || e.metaKey ? command : plain).has(e.key)) return;
    e.preventDefault();
    c.focus({preventScroll: true});
    c.dispatchEvent(new KeyboardEvent('keydown', {key: e.key, shiftKey: e.shiftKey,
        ctrlKey: e.ctrlKey, metaKey: e.metaKey, bubbles: true, cancelable: true}));
  }, true);
}
"""
