"""The dashboard: widgets bound to one Session.

``App`` is both the layout and the controller. Its handlers (``set_slice``,
``mouse_down``, ``assign``, ``extend``, ``save``, ...) are plain methods: the widgets
call them, and so do the tests. Every value that comes from the browser is
validated and clamped here before it reaches the Session.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import html
import math
import re
import threading
from concurrent.futures import Future
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from .. import persist
from ..export import dicom_seg_problem
from ..errors import RadipopError
from ..labels import BACKGROUND, LIVER, OTHER, SPLEEN
from ..render import WINDOW_PRESETS, overlay_indexed, overlay_palette, window
from .messages import MessagePanel, guarded, sentence
from .tools import TOOLS
from .viewer import Viewer, overview_strip, to_number

LABEL_BUTTONS = (("Liver", LIVER, "#e57373", "1"), ("Spleen", SPLEEN, "#7fa6ff", "2"),
                 ("Other", OTHER, "#ffe36e", "3"), ("Remove label", BACKGROUND, "#e0e0e0", "0"))
THRESHOLD_RANGES = {"bone": (100, 1500), "vessel": (50, 600), "organ": (-100, 300)}
MAX_KEY_LENGTH = 16
WHEEL_STEP = 50  # wheel delta (pixels) per slice: one mouse-wheel notch, several trackpad events

# Keyboard helper, installed once per page: the image takes the keyboard focus when the
# mouse enters it (unless a text box or slider readout is being edited; Enter ends the
# editing of a box), and shortcut keys pressed while a button or nothing has the focus
# are passed to the image. ipycanvas only
# hears keys on a focused canvas, and ipywidgets runs no <script>: an image error handler
# carries the code.
_KEYS_JS = """
if (!window.radipopKeys) {
  window.radipopKeys = true;
  const image = () => document.querySelector('canvas.radipop-image');
  const editing = (el) => !!el && (el.isContentEditable ||
      ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName));
  const keys = /^(Arrow(Up|Down)|Page(Up|Down)|Escape|Delete|Backspace|[0-3sdecSDECzyZY])$/;
  document.addEventListener('mouseover', (e) => {
    const c = image();
    if (c && e.target === c && document.activeElement !== c && !editing(document.activeElement))
      c.focus({preventScroll: true});
  }, true);
  document.addEventListener('keydown', (e) => {
    const c = image(), t = e.target;
    if (e.key === 'Enter' && t.tagName === 'INPUT' && t.closest('.radipop-app')) {
      setTimeout(() => t.blur(), 0);
      return;
    }
    if (!c || t === c || !(t === document.body || t.tagName === 'BUTTON')) return;
    if (!keys.test(e.key) || ((e.ctrlKey || e.metaKey) && !/^[zyZY]$/.test(e.key))) return;
    e.preventDefault();
    c.focus({preventScroll: true});
    c.dispatchEvent(new KeyboardEvent('keydown', {key: e.key, shiftKey: e.shiftKey,
        ctrlKey: e.ctrlKey, metaKey: e.metaKey, bubbles: true, cancelable: true}));
  }, true);
}
"""
KEYBOARD_HELPER = (f'<img src="data:," alt="" style="display:none" '
                   f'onerror="{html.escape(" ".join(_KEYS_JS.split()), quote=True)}">')

SHORTCUTS = (
    ("↑ / ↓, Page Up / Page Down, mouse wheel", "next / previous slice (↑ towards the head)"),
    ("S, D, E, C", "tools: Select, Draw, Erase, Cut"),
    ("1, 2, 3", "label the selected region Liver, Spleen, Other"),
    ("0 or Delete", "remove the label of the selected region"),
    ("Ctrl+Z / Ctrl+Y (or Ctrl+Shift+Z)", "undo / redo"),
    ("Esc", "abandon the stroke being drawn"),
)


def _button(description, tooltip="", colour=None, width="auto", icon=""):
    button = widgets.Button(description=description, tooltip=tooltip, icon=icon,
                            layout=widgets.Layout(width=width))
    if colour:
        button.style.button_color = colour
    return button


def _heading(text):
    return widgets.HTML(f"<b style='font-size:12px;color:#333'>{html.escape(text)}</b>",
                        layout=widgets.Layout(margin="6px 0 0 0"))


def _clamp_int(value, low: int, high: int) -> int | None:
    """An int in [low, high] from a browser value, or None if it is not a number."""
    value = to_number(value)
    if value is None:
        return None
    return int(min(max(math.floor(value), low), high))


class App:
    """The liver / spleen segmentation dashboard.

    Parameters
    ----------
    study : Study, optional
        Open this study. Default: the first study under ``data_root``.
    data_root : path, optional
        Folder whose studies the picker offers (DICOM folders, NIfTI files). Default:
        the bundled phantom (generated on first use).
    workspace : path, optional
        Where sessions are saved (default: ``$RADIPOP_WORKSPACE`` or
        ``~/.radipop-widgets/sessions``).
    output_root : path, optional
        Exports go into folders under this one (default: ``<workspace>/../exports``).
    background : bool
        Run long operations (loading, extend, export) in a worker thread so the page
        stays responsive; :meth:`wait` waits for the one running. False runs them in
        the calling thread.

    Examples
    --------
    In a notebook cell::

        import radipop_widgets as rw
        rw.App()
    """

    def __init__(self, study=None, data_root=None, workspace=None, output_root=None,
                 background=True):
        if data_root is None and study is None:
            from ..io.phantom import phantom_study_path
            data_root = phantom_study_path()
        self.data_root = Path(data_root).expanduser().resolve() if data_root is not None else None
        self.workspace = persist.workspace_dir(workspace)
        self.output_root = Path(output_root or self.workspace.parent / "exports").expanduser()
        self.session = None
        self.z = 0
        self.brush_label = LIVER
        self.brush_mm = 5.0
        self.entries = []
        self._wheel = 0.0
        self._syncing = False
        self._present = np.zeros((1, 2), bool)
        self.background = bool(background)
        # Held by every widget callback and by the worker while it applies its results,
        # so the session, the viewer and ipycanvas' command stream see one thread at a time.
        self._lock = threading.RLock()
        self._job: tuple[str, Future] | None = None   # (description, future) while running
        self._last_job: Future | None = None
        self._offer = None                            # saved session offered on open
        self.messages = MessagePanel()
        self.viewer = Viewer()
        self.tools = {tool.name: tool(self) for tool in TOOLS}
        self.tool = self.tools["select"]
        self._build()
        self._bind()
        self.output_root_text.value = (f"<small>Exports go under <code>"
                                       f"{html.escape(str(self.output_root))}</code></small>")
        self.style.value = self.viewer.css() + KEYBOARD_HELPER
        self.refresh_studies()
        self._show_no_study()
        if study is not None:
            self.set_study(study)
        elif self.entries:
            guarded(self.messages, "Opening the study")(self.open_study)(0)
        else:
            self.messages.warning(f"No studies found under {self.data_root}.")

    # ----------------------------------------------------------------- layout
    def _build(self):
        w = widgets
        self.title = w.HTML()
        self.volumes = w.HTML()
        self.undo_button = _button("Undo", "Undo (Ctrl+Z)", icon="undo", width="80px")
        self.redo_button = _button("Redo", "Redo (Ctrl+Y)", icon="repeat", width="80px")
        self.progress = w.FloatProgress(value=0, min=0, max=1, description="",
                                        layout=w.Layout(width="160px", visibility="hidden"))
        header = w.HBox([self.title, w.HBox([self.volumes, self.progress, self.undo_button,
                                             self.redo_button],
                                            layout=w.Layout(align_items="center"))],
                        layout=w.Layout(justify_content="space-between", align_items="center",
                                        width="100%", border_bottom="1px solid #ddd"))

        # Slice navigation
        self.slice_slider = w.IntSlider(0, 0, 0, description="Slice", readout=False,
                                        continuous_update=True, layout=w.Layout(width="100%"),
                                        style={"description_width": "40px"})
        self.slice_text = w.BoundedIntText(0, min=0, max=0, layout=w.Layout(width="70px"))
        self.slice_total = w.HTML(layout=w.Layout(width="44px", margin="0 0 0 4px"))
        self._slice_row = slice_row = w.HBox([self.slice_slider, self.slice_text, self.slice_total],
                           layout=w.Layout(width=self.viewer.canvas.layout.width,
                                           align_items="center"))
        slice_row.add_class("radipop-slice-row")
        image = w.Box([self.viewer.canvas], layout=w.Layout(border="1px solid #444",
                                                           width="fit-content"))
        left = w.VBox([image, self.viewer.strip, slice_row],
                      layout=w.Layout(flex="0 0 auto"))

        # Tools and labels
        self.tool_buttons = w.ToggleButtons(
            options=[(t.name.capitalize(), t.name) for t in self.tools.values()],
            tooltips=[f"{t.help} (key {t.key.upper()})" for t in self.tools.values()],
            style={"button_width": "70px"})
        self.brush_label_buttons = w.ToggleButtons(
            options=[("Liver", LIVER), ("Spleen", SPLEEN), ("Other", OTHER)],
            tooltips=["Draw liver", "Draw spleen", "Draw other"], style={"button_width": "64px"})
        self.brush_slider = w.FloatSlider(self.brush_mm, min=1, max=30, step=0.5,
                                          description="size mm", readout_format=".1f",
                                          style={"description_width": "56px"},
                                          layout=w.Layout(width="250px"))
        self.label_buttons = {}
        for text, label, colour, key in LABEL_BUTTONS:
            self.label_buttons[label] = _button(
                text, f"Label the selected region {text.lower()} (key {key})", colour, "112px")

        # Thresholds
        self.threshold_sliders = {
            name: w.IntSlider(0, lo, hi, description=name.capitalize(), continuous_update=False,
                              style={"description_width": "52px"}, layout=w.Layout(width="360px"))
            for name, (lo, hi) in THRESHOLD_RANGES.items()}
        self.scope = w.ToggleButtons(options=[("This slice", "slice"), ("All slices", "all")],
                                     value="all", style={"button_width": "80px"},
                                     tooltips=["New thresholds apply to this slice only",
                                               "New thresholds apply to every slice"])
        self.suggested_button = _button("Use suggested", "Set the study's suggested thresholds")
        self.suggested_text = w.HTML()

        # Extend
        self.extend_n = w.BoundedIntText(5, min=1, max=10000, description="Slices",
                                         style={"description_width": "42px"},
                                         layout=w.Layout(width="110px"))
        self.extend_to_end = w.Checkbox(True, description="or to the organ's end", indent=False,
                                        layout=w.Layout(width="170px"))
        self.extend_below_button = _button("Extend below", "Carry the labels of this slice downwards")
        self.extend_above_button = _button("Extend above", "Carry the labels of this slice upwards")
        self.extend_report = w.HTML(layout=w.Layout(max_height="90px", overflow="auto"))

        segment = w.VBox([
            _heading("Tool"), w.HBox([self.tool_buttons]),
            w.HBox([w.Label("Brush label"), self.brush_label_buttons, self.brush_slider],
                   layout=w.Layout(align_items="center")),
            _heading("Label the selected region"), w.HBox(list(self.label_buttons.values())),
            _heading("Thresholds (HU): bone and vessels are removed, organ is kept above"),
            *self.threshold_sliders.values(),
            w.HBox([self.scope, self.suggested_button, self.suggested_text],
                   layout=w.Layout(align_items="center")),
            _heading("Extend the labels of this slice"),
            w.HBox([self.extend_n, self.extend_to_end, self.extend_below_button,
                    self.extend_above_button], layout=w.Layout(align_items="center")),
            self.extend_report,
        ])

        # View
        self.preset = w.Dropdown(options=[(n.capitalize(), n) for n in WINDOW_PRESETS] + [("Custom", "")],
                                 value="abdomen", description="Window",
                                 style={"description_width": "52px"}, layout=w.Layout(width="220px"))
        level, width = WINDOW_PRESETS["abdomen"]
        self.level_slider = w.IntSlider(int(level), -1000, 2000, description="Level",
                                        style={"description_width": "52px"},
                                        layout=w.Layout(width="360px"))
        self.width_slider = w.IntSlider(int(width), 1, 4000, description="Width",
                                        style={"description_width": "52px"},
                                        layout=w.Layout(width="360px"))
        self.opacity_slider = w.FloatSlider(0.5, min=0, max=1, step=0.05, description="Opacity",
                                            style={"description_width": "52px"},
                                            layout=w.Layout(width="360px"))
        self.outline_box = w.Checkbox(False, description="Outline only", indent=False)
        view = w.VBox([_heading("Display window"), self.preset, self.level_slider, self.width_slider,
                       _heading("Overlay"), self.opacity_slider, self.outline_box])

        # Study
        self.study_list = w.Select(options=[], rows=8, layout=w.Layout(width="98%"))
        self.refresh_button = _button("Refresh", "Scan the data folder again", icon="refresh")
        self.open_button = _button("Open", "Open the selected study", "#c8e6c9", icon="folder-open")
        self.data_root_text = w.HTML()
        self.metadata = w.HTML()
        study = w.VBox([self.data_root_text, self.study_list,
                        w.HBox([self.open_button, self.refresh_button]),
                        w.HTML("<small style='color:#555'>Listed: DICOM CT series and CT NIfTI "
                               "files. Label maps and other files are left out.</small>"),
                        _heading("This study (shown, never logged)"), self.metadata])

        # Save and export
        self.output_text = w.Text("exports", description="Folder",
                                  style={"description_width": "52px"},
                                  layout=w.Layout(width="360px"))
        self.output_root_text = w.HTML()
        self.save_button = _button("Save session", "Save labels and thresholds to the workspace",
                                   "#c8e6c9", "160px", icon="save")
        self.export_buttons = {
            "nifti": _button("NIfTI labels", "labels.nii.gz: 1 liver, 2 spleen, 3.. other"),
            "legacy": _button("Legacy per-slice", "One <i>.p mask file per slice, as RadiPOP wrote"),
            "dicom_seg": _button("DICOM SEG", "A DICOM Segmentation object referencing the series"),
        }
        self.saved_text = w.HTML()
        self.export_note = w.HTML()
        save = w.VBox([_heading("Session"), self.save_button, self.saved_text,
                       _heading("Export into a folder"), self.output_root_text, self.output_text,
                       w.HBox(list(self.export_buttons.values())), self.export_note])

        rows = "".join(f"<tr><td style='padding-right:12px'><b>{html.escape(k)}</b></td>"
                       f"<td>{html.escape(v)}</td></tr>" for k, v in SHORTCUTS)
        help_panel = w.HTML(
            "<div style='font-size:13px'>The keys act on the image while the mouse is over it "
            "(and after clicking a button); in a box you are typing in they stay there until "
            "Enter."
            f"<table>{rows}</table><p><b>Segmenting:</b> tool <i>Select</i>, click a green "
            "candidate region, press <i>Liver</i> or <i>Spleen</i>. Adjust the thresholds when "
            "the organ leaks into its neighbours, or <i>Cut</i> across the leak. Then "
            "<i>Extend</i> to the neighbouring slices and check them with the arrow keys. "
            "Numbers in boxes and slider readouts can be typed.</p></div>")

        self.tabs = w.Tab(children=[segment, view, study, save, help_panel],
                          layout=w.Layout(width="100%"))
        for i, name in enumerate(["Segment", "View", "Study", "Save & export", "Help"]):
            self.tabs.set_title(i, name)
        # Reopening a study with a saved session: resume it or start new.
        self.resume_text = w.HTML()
        self.resume_button = _button("Resume saved session", "Load the saved labels and "
                                     "thresholds", "#c8e6c9", icon="history")
        self.start_new_button = _button("Start new", "Keep the fresh session; the saved files "
                                        "stay until you save over them")
        self.resume_box = w.VBox(
            [self.resume_text, w.HBox([self.resume_button, self.start_new_button])],
            layout=w.Layout(display="none", border="2px solid #8a5a00", padding="4px 8px",
                            margin="0 0 4px 0"))
        right = w.VBox([self.resume_box, self.tabs, _heading("Messages"), self.messages.output],
                       layout=w.Layout(flex="1 1 auto", min_width="430px", max_width="900px"))
        body = w.HBox([left, right], layout=w.Layout(align_items="flex-start"))
        # Per-study CSS (display scale on larger screens) and the keyboard helper.
        self.style = w.HTML(layout=w.Layout(height="0px", margin="0"))
        self.widget = w.VBox([self.style, header, body], layout=w.Layout(padding="4px"))
        self.widget.add_class("radipop-app")
        # Stable CSS classes for the browser tests and benchmarks.
        named = {"undo": self.undo_button, "redo": self.redo_button, "tools": self.tool_buttons,
                 "slice-text": self.slice_text, "slice": self.slice_slider,
                 "extend-below": self.extend_below_button, "extend-above": self.extend_above_button,
                 "extend-n": self.extend_n, "extend-to-end": self.extend_to_end,
                 "save": self.save_button, "scope": self.scope, "volumes": self.volumes,
                 "messages": self.messages.output, "tabs": self.tabs,
                 "progress": self.progress, "study-list": self.study_list,
                 "open": self.open_button, "resume": self.resume_button,
                 "start-new": self.start_new_button, "resume-box": self.resume_box,
                 "title": self.title}
        named.update({f"threshold-{n}": s for n, s in self.threshold_sliders.items()})
        named.update({f"label-{b.description.split()[0].lower()}": b
                      for b in self.label_buttons.values()})
        named.update({f"export-{k}": b for k, b in self.export_buttons.items()})
        for name, widget in named.items():
            widget.add_class(f"radipop-{name}")

    def _callback(self, action: str):
        """Decorator for widget callbacks: one at a time (the lock), errors to the panel."""
        def decorate(handler):
            guarded_handler = guarded(self.messages, action)(handler)

            def locked(*args, **kwargs):
                with self._lock:
                    return guarded_handler(*args, **kwargs)
            return locked
        return decorate

    def _bind(self):
        g = self._callback
        v = self.viewer
        v.canvas.on_client_ready(g("Drawing the image")(v.redraw))
        v.canvas.on_mouse_down(g("Handling a click")(self.mouse_down))
        v.canvas.on_mouse_move(g("Handling the mouse")(self.mouse_move))
        v.canvas.on_mouse_up(g("Handling a click")(self.mouse_up))
        v.canvas.on_mouse_out(g("Handling the mouse")(self.mouse_out))
        v.canvas.on_mouse_wheel(g("Changing slice")(self.wheel))
        v.canvas.on_key_down(g("Handling a key")(self.key))
        v.strip.on_mouse_down(g("Changing slice")(self.strip_click))
        v.strip.on_key_down(g("Handling a key")(self.key))
        self.slice_slider.observe(g("Changing slice")(lambda c: self.set_slice(c["new"])), "value")
        self.slice_text.observe(g("Changing slice")(lambda c: self.set_slice(c["new"])), "value")
        self.tool_buttons.observe(g("Choosing a tool")(lambda c: self.set_tool(c["new"])), "value")
        self.brush_label_buttons.observe(g("Choosing the brush label")(self._brush_changed), "value")
        self.brush_slider.observe(g("Choosing the brush width")(self._brush_changed), "value")
        for label, button in self.label_buttons.items():
            button.on_click(g("Labelling the region")(lambda _, label=label: self.assign(label)))
        for slider in self.threshold_sliders.values():
            slider.observe(g("Changing the thresholds")(self._threshold_changed), "value")
        self.suggested_button.on_click(g("Setting the suggested thresholds")(
            lambda _: self.apply_suggested_thresholds()))
        self.extend_below_button.on_click(g("Extending the labels")(
            lambda _: self.extend(below=True)))
        self.extend_above_button.on_click(g("Extending the labels")(
            lambda _: self.extend(above=True)))
        self.preset.observe(g("Choosing a window")(lambda c: self.set_window_preset(c["new"])), "value")
        for slider in (self.level_slider, self.width_slider):
            slider.observe(g("Changing the window")(self._window_changed), "value")
        for control in (self.opacity_slider, self.outline_box):
            control.observe(g("Drawing the overlay")(lambda _: self.render_overlay()), "value")
        self.undo_button.on_click(g("Undoing")(lambda _: self.undo()))
        self.redo_button.on_click(g("Redoing")(lambda _: self.redo()))
        self.refresh_button.on_click(g("Scanning the data folder")(lambda _: self.refresh_studies()))
        self.open_button.on_click(g("Opening the study")(lambda _: self.open_study(self.study_list.value)))
        self.save_button.on_click(g("Saving the session")(lambda _: self.save()))
        self.resume_button.on_click(g("Resuming the saved session")(lambda _: self.resume()))
        self.start_new_button.on_click(g("Starting a new session")(lambda _: self.start_new()))
        for kind, button in self.export_buttons.items():
            button.on_click(g("Exporting")(lambda _, kind=kind: self.export(kind)))

    @contextlib.contextmanager
    def _quiet(self):
        """Set widget values without their observers acting on the change."""
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --------------------------------------------------------------- helpers
    def status(self, text: str) -> None:
        """Tell the user something in the message panel."""
        self.messages.info(text)

    def _progress(self, description: str):
        """A ``progress(done, total)`` callback driving the progress bar."""
        bar = self.progress
        bar.description = description
        bar.value = 0
        bar.layout.visibility = "visible"

        def progress(done, total=1):
            done, total = to_number(done), to_number(total)
            if done is not None and total:
                bar.value = min(max(done / total, 0.0), 1.0)
        return progress

    def _progress_done(self):
        self.progress.layout.visibility = "hidden"

    @property
    def busy(self) -> str | None:
        """What the long operation running now does ("Loading", ...), or None."""
        job = self._job               # read once: the worker clears it when it ends
        return job[0] if job else None

    def _edit_controls(self):
        return [*self.label_buttons.values(), *self.threshold_sliders.values(),
                self.suggested_button, self.extend_below_button, self.extend_above_button,
                self.undo_button, self.redo_button, self.save_button,
                *self.export_buttons.values(), self.open_button, self.resume_button,
                self.start_new_button]

    def _run(self, description: str, work, done, action: str) -> Future:
        """Run ``work(progress)`` as a long operation, then ``done(result)`` under the lock.

        ``description`` labels the progress bar ("Loading"); ``action`` names it in
        an error message ("Opening the study failed: ...").

        In the background (the default) the page stays responsive: the progress bar
        moves, slices and windows can be browsed, and edits wait until it ends (their
        controls are disabled). Errors go to the message panel. Returns a Future.
        """
        busy = self.busy
        if busy is not None:
            raise RadipopError(f"{busy} is still running: wait until it ends.")
        future = Future()
        self._job, self._last_job = (description, future), future
        for control in self._edit_controls():
            control.disabled = True
        progress = self._progress(description)

        def target():
            result = error = None
            try:
                result = work(progress)
                with self._lock:
                    done(result)
            except Exception as exc:  # noqa: BLE001 - the user must see every failure
                error = exc
                self.messages.report(exc, action)
            finally:
                with self._lock:
                    self._job = None
                    self._progress_done()
                    self._enable_controls()
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        if self.background:
            threading.Thread(target=target, name=f"radipop {description}", daemon=True).start()
        else:
            target()
        return future

    def _enable_controls(self) -> None:
        for control in self._edit_controls():
            control.disabled = False
        self.export_buttons["dicom_seg"].disabled = bool(
            self.session and dicom_seg_problem(self.session.study))
        if self.session is not None:
            self._update_status()
        else:
            self.undo_button.disabled = self.redo_button.disabled = True

    def wait(self, timeout: float | None = 60.0):
        """Wait for the last long operation to end; return its result or raise its error."""
        return self._last_job.result(timeout) if self._last_job else None

    def _require_session(self):
        busy = self.busy
        if busy is not None:
            raise RadipopError(f"{busy} is still running: wait until it ends.")
        if self.session is None:
            raise RadipopError("No study is open: choose one in the Study tab and press Open.")
        return self.session

    @property
    def pixel_mm(self) -> float:
        return float(min(self.session.study.spacing[1:])) if self.session else 1.0

    # ---------------------------------------------------------------- studies
    def refresh_studies(self) -> None:
        """Scan the data folder and list its studies in the picker."""
        if self.data_root is None:
            self.data_root_text.value = "No data folder configured."
            return
        from ..io import scan_studies
        self.entries = list(scan_studies(self.data_root))
        saved = self._saved_sessions()
        options = []
        for i, entry in enumerate(self.entries):
            name = entry.description or Path(entry.path).name
            rel = Path(entry.path).relative_to(self.data_root) if Path(entry.path).is_relative_to(
                self.data_root) else Path(entry.path).name
            when = saved.get(str(Path(entry.path).resolve()))
            note = f" · saved session ({when})" if when else ""
            options.append((f"{name} — {entry.n_slices} slices — {rel}{note}", i))
        self.study_list.options = options
        self.data_root_text.value = (f"<small>Data folder: <code>{html.escape(str(self.data_root))}"
                                     f"</code> · {len(options)} studies</small>")

    def _saved_sessions(self) -> dict[str, str]:
        """Study path -> when its session was saved (local time), from the workspace."""
        found = {}
        for state in sorted(self.workspace.glob(f"*/{persist.STATE_FILE}")):
            try:
                info = persist.read_session_info(state.parent)
            except RadipopError:
                continue
            if info.get("study_path"):
                found[str(Path(info["study_path"]).resolve())] = _local_time(info.get("saved_at"))
        return found

    def open_study(self, index) -> Future:
        """Load the study at ``index`` of the picker in the background (with progress)
        and show it; returns a Future (see :meth:`wait`)."""
        from ..io import load_study
        from ..session import Session
        index = _clamp_int(index, 0, len(self.entries) - 1) if self.entries else None
        if index is None:
            raise RadipopError("Choose a study in the list first.")
        entry = self.entries[index]
        if self.session is None:
            self.tabs.selected_index = 2      # the Study tab stays if the study cannot load
        self.status(f"Loading {entry.description or Path(entry.path).name} "
                    f"({entry.n_slices} slices)...")

        def work(progress):
            study = load_study(entry.path, series=entry.series_uid, progress=progress)
            return study, Session(study, workspace=self.workspace, autosave=True)

        def done(result):
            self._show_session(result[1])
            with self._quiet():
                self.study_list.value = index
            self.tabs.selected_index = 0
        return self._run("Loading", work, done, "Opening the study")

    def set_study(self, study) -> None:
        """Open a new session on ``study`` (offering its saved session if there is one)."""
        from ..session import Session
        self._show_session(Session(study, workspace=self.workspace, autosave=True))

    def _show_session(self, session, offer: bool = True) -> None:
        """Bind the widgets to ``session`` and (``offer``) offer the study's saved session."""
        study = session.study
        self.tool.cancel()
        self.session = session
        session.add_listener(self._callback("Updating the display")(self._session_changed))
        n, rows, cols = study.shape
        self.viewer.resize(rows, cols)
        self.style.value = self.viewer.css() + KEYBOARD_HELPER
        self._slice_row.layout.width = self.viewer.canvas.layout.width
        with self._quiet():
            for control in (self.slice_slider, self.slice_text):
                control.max = n - 1
            self.extend_n.max = max(1, n - 1)
        self.slice_total.value = f"/ {n - 1}"
        self._update_present()
        suggested = session.suggested_thresholds
        self.suggested_text.value = (f"<small>suggested: bone {suggested.bone:g}, vessel "
                                     f"{suggested.vessel:g}, organ {suggested.organ:g}</small>")
        self._show_metadata(study)
        self.output_text.value = re.sub(r"[^A-Za-z0-9._-]+", "_",
                                        study.series_description or study.name).strip("._") or "study"
        self.title.value = (f"<b style='font-size:15px'>RadiPOP</b> &nbsp; "
                            f"{html.escape(study.series_description or study.name)} "
                            f"<small>({n} × {rows} × {cols})</small>")
        problem = dicom_seg_problem(study)
        self.export_buttons["dicom_seg"].disabled = bool(problem)
        self.export_buttons["dicom_seg"].tooltip = problem or "A DICOM Segmentation object " \
            "referencing the series"
        self.export_note.value = (f"<small style='color:#8a5a00'>{html.escape(problem)}</small>"
                                  if problem else "")
        self.saved_text.value = ""
        self.extend_report.value = ""
        self.status(f"Opened {study.series_description or study.name}: {n} slices of "
                    f"{rows} x {cols}. Click a green candidate region, then press Liver or "
                    "Spleen (keys 1, 2); the Help tab lists every shortcut.")
        for warning in study.warnings[:5]:
            self.messages.warning(warning)
        if offer:
            self._offer_saved_session(study)
        self.set_slice(self._start_slice(), force=True)
        self._update_status()

    def _offer_saved_session(self, study) -> None:
        """Offer the newest of the study's saved session and its autosaved work.

        While the offer is open the new session does not autosave, so the work on disk
        cannot be overwritten before the user chose."""
        self._offer = None
        self.resume_box.layout.display = "none"
        found = []
        for kind, folder in (("autosaved", persist.find_autosave(study, self.workspace)),
                             ("saved", persist.find_saved_session(study, self.workspace))):
            if folder is None:
                continue
            try:
                found.append((persist.read_session_info(folder).get("saved_at") or "", kind,
                              folder))
            except RadipopError as exc:
                self.messages.warning(f"The {kind} session of this study cannot be read "
                                      f"({exc}); it is left on disk untouched.")
        if not found:
            return
        saved_at, kind, folder = max(found)
        self._offer = folder
        self.session.autosave = False
        when = _local_time(saved_at)
        what = ("work that was autosaved but not saved" if kind == "autosaved"
                else "a saved session")
        self.resume_text.value = (
            f"<b>This study has {what}</b> ({kind} {html.escape(when)}).<br>"
            "<small>Resume it, or start new: the files on disk stay until you choose.</small>")
        self.resume_box.layout.display = "flex"
        self.messages.warning(f"This study has {what} ({kind} {when}): "
                              "Resume it or Start new (above the tabs).")

    def resume(self) -> None:
        """Replace the new session by the offered saved or autosaved session."""
        from ..session import Session
        offered = self._offer
        if offered is None or self.session is None:
            raise RadipopError("There is no saved session to resume for this study.")
        self._require_session()
        discarded = self.session.can_undo
        session = Session.open(offered, study=self.session.study, workspace=self.workspace,
                               autosave=True)
        self._offer = None
        self.resume_box.layout.display = "none"
        self._show_session(session, offer=False)
        self.status(f"Resumed the session from {offered}"
                    + (" (the edits made before were discarded)." if discarded else "."))

    def start_new(self) -> None:
        """Keep the new session and start autosaving it; a saved session stays on disk
        until Save session replaces it."""
        self._offer = None
        self.resume_box.layout.display = "none"
        if self.session is not None:
            self.session.autosave = True
        self.status("New session, autosaved after each edit. The saved session stays on "
                    "disk until you press Save session, which replaces it.")

    def _show_no_study(self) -> None:
        self.title.value = ("<b style='font-size:15px'>RadiPOP</b> &nbsp; <i>no study open: "
                            "choose one in the Study tab</i>")
        self.undo_button.disabled = self.redo_button.disabled = True

    def _update_present(self, slices=None) -> None:
        """Which slices carry liver and spleen (for the overview strip)."""
        labels = self.session.labels
        if slices is None:
            self._present = np.stack([(labels == label).any(axis=(1, 2))
                                      for label in (LIVER, SPLEEN)], axis=1)
            return
        for z in slices:
            self._present[z] = (labels[z] == LIVER).any(), (labels[z] == SPLEEN).any()

    def _start_slice(self) -> int:
        """The middle of the labelled slices, else the middle of the study."""
        labelled = np.flatnonzero(self._present.any(axis=1))
        if labelled.size:
            return int(labelled[labelled.size // 2])
        return self.session.study.n_slices // 2

    def _show_metadata(self, study) -> None:
        rows = [(k, v) for k, v in (study.metadata or {}).items() if v not in (None, "")]
        rows += [("Series", study.series_description or "—"), ("Modality", study.modality),
                 ("Size", " × ".join(map(str, study.shape))),
                 ("Spacing (mm)", " × ".join(f"{s:.3g}" for s in study.spacing))]
        self.metadata.value = "<table style='font-size:12px'>" + "".join(
            f"<tr><td style='padding-right:10px;color:#555'>{html.escape(str(k))}</td>"
            f"<td>{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>"

    # ------------------------------------------------------------- rendering
    def render_ct(self) -> None:
        """Window the current slice and send it (only on slice or window change)."""
        if self.session is None:
            return
        hu = self.session.study.hu[self.z]
        self.viewer.show_ct(window(hu, self.level_slider.value, max(1, self.width_slider.value)))

    def render_overlay(self) -> None:
        """Send the label overlay of the current slice (never the CT)."""
        if self.session is None:
            return
        s = self.session
        selection = s.selection
        selected = selection[1] if selection and selection[0] == self.z else None
        index = overlay_indexed(s.labels[self.z], s.regions(self.z), selected,
                                outline=bool(self.outline_box.value))
        self.viewer.show_overlay(index, overlay_palette(self.opacity_slider.value))

    def render_strip(self) -> None:
        if self.session is None:
            return
        self.viewer.show_strip(overview_strip(self._present, self.z, int(self.viewer.strip.width)))

    def _update_status(self) -> None:
        s = self.session
        volumes = s.volumes_ml()
        self.volumes.value = (
            f"<span style='color:#c62828'><b>Liver</b> {volumes.get('liver', 0):.1f} mL</span>"
            f" &nbsp; <span style='color:#1e4fd8'><b>Spleen</b> {volumes.get('spleen', 0):.1f} mL"
            "</span> &nbsp;")
        self.undo_button.disabled = not s.can_undo
        self.redo_button.disabled = not s.can_redo

    def _sync_threshold_sliders(self) -> None:
        t = self.session.thresholds(self.z)
        with self._quiet():
            for name, slider in self.threshold_sliders.items():
                slider.value = int(min(max(round(getattr(t, name)), slider.min), slider.max))

    def _session_changed(self, event) -> None:
        """Session listener: redraw the overlay first (the latency users feel), then the rest."""
        s = self.session
        n = s.study.n_slices
        slices = tuple(z for z in event.slices if 0 <= z < n) if event.slices else tuple(range(n))
        if self.z in slices:
            self.render_overlay()
            if event.regions_changed:
                self._sync_threshold_sliders()
        if not event.labels_changed:
            if event.regions_changed:
                self._update_status()
            return
        self._update_present(slices)
        self.render_strip()
        self._update_status()

    # ------------------------------------------------------------- navigation
    def set_slice(self, z, force: bool = False) -> None:
        """Show slice ``z`` (clamped to the study)."""
        if self._syncing or self.session is None:
            return
        z = _clamp_int(z, 0, self.session.study.n_slices - 1)
        if z is None or (z == self.z and not force):
            return
        self.tool.cancel()
        self.z = z
        with self._quiet():
            self.slice_slider.value = z
            self.slice_text.value = z
        self._sync_threshold_sliders()
        self.render_ct()
        self.render_overlay()
        self.render_strip()

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.z + delta)

    def strip_click(self, x, y) -> None:
        x = to_number(x)
        if x is None or self.session is None:
            return
        width = int(self.viewer.strip.width)
        self.set_slice(math.floor(min(max(x, 0), width - 1) * self.session.study.n_slices / width))

    def wheel(self, dx, dy) -> None:
        """Mouse wheel over the image: up = next slice (towards the head), down = previous."""
        dy = to_number(dy)
        if not dy:
            return
        self._wheel = min(max(self._wheel + dy, -WHEEL_STEP), WHEEL_STEP)
        if abs(self._wheel) >= WHEEL_STEP:
            self.step_slice(-1 if self._wheel > 0 else 1)
            self._wheel = 0.0

    # ---------------------------------------------------------------- window
    def set_window_preset(self, name) -> None:
        if name not in WINDOW_PRESETS:
            return
        level, width = WINDOW_PRESETS[name]
        with self._quiet():
            self.level_slider.value, self.width_slider.value = int(level), int(width)
        self.render_ct()

    def _window_changed(self, change) -> None:
        if self._syncing:
            return
        with self._quiet():
            self.preset.value = ""
        self.render_ct()

    # ------------------------------------------------------------ thresholds
    def _threshold_changed(self, change) -> None:
        if self._syncing:
            return
        self.set_thresholds(**{name: s.value for name, s in self.threshold_sliders.items()})

    def set_thresholds(self, bone=None, vessel=None, organ=None) -> None:
        """Apply thresholds (HU) to this slice or all slices, as the scope control says."""
        s = self._require_session()
        values = {}
        for name, value in (("bone", bone), ("vessel", vessel), ("organ", organ)):
            if value is not None:
                lo, hi = THRESHOLD_RANGES[name]
                clamped = _clamp_int(value, lo, hi)
                if clamped is None:
                    raise RadipopError(f"The {name} threshold must be a number of HU.")
                values[name] = clamped
        s.set_thresholds(**values, slices=[self.z] if self.scope.value == "slice" else None)

    def apply_suggested_thresholds(self) -> None:
        t = self._require_session().suggested_thresholds
        self.set_thresholds(bone=t.bone, vessel=t.vessel, organ=t.organ)

    # ----------------------------------------------------------------- tools
    def set_tool(self, name) -> None:
        if name not in self.tools or self.tools[name] is self.tool:
            return
        self.tool.cancel()
        self.tool = self.tools[name]
        if self.tool_buttons.value != name:
            self.tool_buttons.value = name
        self.status(self.tool.help)

    def _brush_changed(self, change) -> None:
        label = self.brush_label_buttons.value
        self.brush_label = label if label in (LIVER, SPLEEN, OTHER) else LIVER
        width = to_number(self.brush_slider.value)
        self.brush_mm = float(min(max(width, 1.0), 30.0)) if width is not None else 5.0

    def mouse_down(self, x, y) -> None:
        if self.session is None:
            return
        pixel = self.viewer.to_pixel(x, y)
        if pixel is not None:
            busy = self.busy
            if busy is not None:
                self.status(f"{busy} is still running: the image can be browsed, "
                            "edits wait until it ends.")
                return
            self.tool.press(*pixel)

    def mouse_move(self, x, y) -> None:
        if self.session is None:
            return
        pixel = self.viewer.to_pixel(x, y)
        if pixel is not None and self.tool.name != "select":
            self.tool.move(*pixel)

    def mouse_up(self, x, y) -> None:
        if self.session is None:
            return
        pixel = self.viewer.to_pixel(x, y)
        self.tool.release(*(pixel or (None, None)))

    def mouse_out(self, x, y) -> None:
        """Leaving the image ends a stroke where it left."""
        if self.session is None:
            return
        self.tool.release(None, None)
        self.viewer.clear_interaction()

    def key(self, key, shift=False, ctrl=False, meta=False) -> None:
        """Keyboard shortcuts on the image (see ``SHORTCUTS``)."""
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            return
        command = bool(ctrl) or bool(meta)
        lower = key.lower()
        if command and lower == "z":
            self.redo() if shift else self.undo()
        elif command and lower == "y":
            self.redo()
        elif command:
            return
        elif key in ("ArrowUp", "PageUp"):
            self.step_slice(1)
        elif key in ("ArrowDown", "PageDown"):
            self.step_slice(-1)
        elif key == "Escape":
            self.tool.cancel()
        elif key in ("Delete", "Backspace", "0"):
            self.assign(BACKGROUND)
        elif key in ("1", "2", "3"):
            self.assign(int(key))
        else:
            for tool in self.tools.values():
                if lower == tool.key:
                    self.set_tool(tool.name)

    # ----------------------------------------------------------------- edits
    def assign(self, label) -> int:
        """Give the selected region of this slice ``label`` (0 removes the label)."""
        s = self._require_session()
        label = _clamp_int(label, 0, 255)
        if label is None:
            return 0
        selection = s.selection
        if not selection or selection[0] != self.z:
            self.status("Select a region on this slice first (tool Select, click the region).")
            return 0
        changed = s.assign(self.z, label)
        names = {LIVER: "liver", SPLEEN: "spleen", BACKGROUND: "unlabelled"}
        self.status(f"Region labelled {names.get(label, 'other')} ({changed} pixels changed).")
        return changed

    def extend(self, below: bool = False, above: bool = False) -> Future:
        """Carry this slice's labels below and/or above (n slices, or to the organ's end),
        in the background; returns a Future of the ExtendReport (see :meth:`wait`)."""
        s = self._require_session()
        n = None if self.extend_to_end.value else _clamp_int(self.extend_n.value, 1, s.study.n_slices)
        z = self.z
        where = " and ".join(w for w, on in (("below", below), ("above", above)) if on)
        self.extend_report.value = ""

        def work(progress):
            return s.extend(z, below=n if below else 0, above=n if above else 0,
                            progress=progress)

        def done(report):
            self.extend_report.value = ("<pre style='font-size:11px;line-height:1.3;margin:0'>"
                                        f"{html.escape(report.text())}</pre>")
            labelled = sorted({row.slice for row in report.rows if row.status == "labelled"})
            reach = f"slices {labelled[0]}-{labelled[-1]}" if labelled else "no slice"
            self.status(f"Extended the labels of slice {z} {where} to {len(labelled)} "
                        f"slice(s) ({reach}); the report is under the Extend buttons.")
        return self._run("Extending", work, done, "Extending the labels")

    def undo(self) -> bool:
        s = self._require_session()
        done = s.undo()
        self.status(sentence(s.last_message))
        return done

    def redo(self) -> bool:
        s = self._require_session()
        done = s.redo()
        self.status(sentence(s.last_message))
        return done

    # ---------------------------------------------------------- save, export
    def save(self) -> Path:
        """Save the session into the workspace."""
        path = self._require_session().save()
        if self._offer is not None:
            self.start_new()
        self.saved_text.value = f"<small>Saved to <code>{html.escape(str(path))}</code></small>"
        self.status(f"Session saved to {path}.")
        return path

    def export(self, kind: str) -> Future:
        """Export the labels as ``nifti``, ``legacy`` or ``dicom_seg`` into the chosen folder,
        in the background; returns a Future of the path written (see :meth:`wait`)."""
        s = self._require_session()
        targets = {"nifti": ("labels.nii.gz", s.export_nifti),
                   "legacy": ("legacy_masks", s.export_legacy),
                   "dicom_seg": ("segmentation.dcm", s.export_dicom_seg)}
        if kind not in targets:
            raise RadipopError(f"Unknown export {kind!r}: choose nifti, legacy or dicom_seg.")
        if kind == "dicom_seg" and dicom_seg_problem(s.study):
            raise RadipopError(dicom_seg_problem(s.study))
        folder = persist.resolve_inside(self.output_root, self.output_text.value.strip() or ".")
        name, write = targets[kind]
        path = folder / name

        def work(progress):
            folder.mkdir(parents=True, exist_ok=True)
            write(path)
            return path
        return self._run("Exporting", work, lambda path: self.status(f"Exported to {path}."),
                         "Exporting")


def _local_time(iso) -> str:
    """An ISO time stamp (as saved) in local time, ``YYYY-MM-DD HH:MM``; '?' if unknown."""
    try:
        return _dt.datetime.fromisoformat(str(iso)).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "?"
