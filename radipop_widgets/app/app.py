"""The dashboard: its panels composed into one page and bound to one Session.

Each panel owns its widgets and handlers and talks to a narrow
:class:`~radipop_widgets.app.context.Context` (session, viewer, messages, jobs, slice
shown): ``header``, ``navigation`` (slices, overview strip), ``segment`` (tools and
labels), ``thresholds`` (with the organs' ranges), ``extend_panel``, ``fill`` (fill
between slices), ``view`` (window and overlay), ``studies``, ``resume_panel``,
``save_panel`` and ``statistics``. ``App`` lays them out, routes the image's events,
reacts to session changes, and keeps the handlers (``set_slice``, ``mouse_down``,
``assign``, ``extend``, ``save``, ...) as plain methods: tests and notebooks call them.
Every value that comes from the browser is validated and clamped before it reaches the
Session.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from pathlib import Path

import ipywidgets as widgets

from .. import persist
from ..events import Change, SessionEvent
from ..io.phantom import phantom_study_path
from ..reformat import view_letters
from ..session import Session
from .annotate import CSS as ANNOTATION_CSS
from .context import Context
from .extend import ExtendPanel
from .fill import FillPanel
from .header import Header
from .jobs import HELD_CSS, JobRunner
from .keys import KeyMap, key_table
from .messages import MessagePanel, guarded
from .navigation import Navigation
from .ortho import OrthoPanel
from .pacs import PacsPanel
from .readout import Readout
from .resume import ResumePanel
from .save import SavePanel
from .segment import SegmentPanel
from .statistics import StatisticsPanel
from .studies import StudyPanel
from .thresholds import ThresholdsPanel
from .ui import heading, send_states, tagged, to_number
from .view import ViewPanel
from .viewer import Viewer

TABS = ("Segment", "View", "Study", "PACS", "Save & export", "Statistics", "Help")
# Tabs as wide as their titles (ipywidgets gives each 144 px: seven did not fit at 1366 px)
TAB_CSS = (".radipop-app .widget-tab > .lm-TabBar .lm-TabBar-tab "
           "{ flex: 0 1 auto; min-width: 0; padding: 0 8px; }")


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
            data_root = phantom_study_path()
        self.data_root = Path(data_root).expanduser().resolve() if data_root is not None else None
        self.workspace = persist.workspace_dir(workspace)
        self.output_root = Path(output_root or self.workspace.parent / "exports").expanduser()
        self.messages = MessagePanel()
        self.viewer = Viewer()
        self.jobs = JobRunner(self.messages, background)
        self.ctx = ctx = Context(self.viewer, self.messages, self.jobs)
        self.header = Header(ctx)
        self.navigation = Navigation(ctx, on_change=self._slice_changed)
        self.segment = SegmentPanel(ctx)
        self.thresholds = ThresholdsPanel(ctx)
        self.extend_panel = ExtendPanel(ctx)
        self.fill = FillPanel(ctx, self.segment.brush)
        self.view = ViewPanel(ctx, on_window=lambda: self.ortho.render_ct(),
                              on_overlay=lambda: self.ortho.render_overlay())
        self.ortho = OrthoPanel(ctx, self.view.window, lambda: self.view.opacity,
                                self.navigation.set_slice, lambda: self.tool.name == "pan")
        self.readout = Readout(ctx)
        self._pointer: tuple[str, float, float] | None = None   # view, y, x of the mouse
        # A standby kernel (Voilà's preheat) has no page yet: it loads the first study now
        # and shows it (taking its lock) once a page shows the image.
        self._page_shown = threading.Event()
        if os.environ.get("VOILA_PREHEAT") != "True":
            self._page_shown.set()
        self.resume_panel = ResumePanel(ctx, self.workspace,
                                        lambda session: self._show_session(session, offer=False))
        self.studies = StudyPanel(ctx, self.data_root, self.workspace, self._show_session,
                                  self._show_tab, self.output_root,
                                  pacs_client=lambda url: self.pacs.server(url))
        self.pacs = PacsPanel(ctx, self.workspace, self.output_root, self._show_session,
                              self._show_tab)
        self.save_panel = SavePanel(ctx, self.output_root, self.resume_panel)
        self.statistics = StatisticsPanel(ctx, self.navigation.set_slice)
        self.key_map = KeyMap(key_table(list(self.segment.tools.values())))
        self._listener = ctx.callback("Updating the display")(self._session_changed)
        self._layout()
        self._bind_image()
        self._update_css()
        self.studies.refresh()
        if study is not None:
            self.set_study(study)
        elif self.studies.entries and self.studies.on_pacs_only(0):
            # Nothing is asked of a PACS before the user asks: no download at start.
            self.messages.info("The worklist's first series is on the PACS: open it in the "
                               "Study tab to download it.")
            self._show_tab("Study")
        elif self.studies.entries:
            guarded(self.messages, "Opening the study")(self.studies.open)(
                0, shown=self._page_shown)
        else:
            self.messages.warning(f"No studies found under {self.data_root}.")

    # ----------------------------------------------------------------- layout
    def _layout(self) -> None:
        w = widgets
        image = w.Box([self.viewer.canvas, self.viewer.annotation.html], layout=w.Layout(
            border="1px solid #444", width="fit-content", overflow="hidden"))
        image.add_class("radipop-viewport")
        left = w.VBox([image, self.viewer.zoom.style, self.viewer.strip, self.navigation.row,
                       self.readout.widget], layout=w.Layout(flex="0 0 auto"))
        segment = w.VBox([*self.segment.tool_rows, *self.fill.rows, *self.segment.label_rows,
                          *self.thresholds.rows, *self.extend_panel.rows])
        view = w.VBox([self.view.widget, heading("Views"), self.ortho.shown])
        self.tabs = w.Tab(children=[segment, view, self.studies.widget, self.pacs.widget,
                                    self.save_panel.widget, self.statistics.widget,
                                    w.HTML(self.key_map.help_html())],
                          layout=w.Layout(width="100%"))
        for i, name in enumerate(TABS):
            self.tabs.set_title(i, name)
        self.statistics.watch(self.tabs, TABS.index("Statistics"))
        self.studies.watch(self.tabs, TABS.index("Study"))
        right = w.VBox([self.resume_panel.widget, self.tabs, heading("Messages"),
                        self.messages.output],
                       layout=w.Layout(flex="1 1 auto", min_width="430px", max_width="900px"))
        body = w.HBox([left, self.ortho.widget, right], layout=w.Layout(align_items="flex-start"))
        # Per-study CSS (display scale on larger screens) and the keyboard helper.
        self.style = w.HTML(layout=w.Layout(height="0px", margin="0"))
        self.widget = w.VBox([self.style, self.header.widget, body],
                             layout=w.Layout(padding="4px"))
        self.widget.add_class("radipop-app")
        self.ctx.jobs.root = self.widget
        tagged({"messages": self.messages.output, "tabs": self.tabs})

    def _bind_image(self) -> None:
        cb, canvas, strip = self.ctx.callback, self.viewer.canvas, self.viewer.strip
        canvas.on_client_ready(cb("Drawing the image")(self._client_ready))
        canvas.on_mouse_down(cb("Handling a click")(self.segment.mouse_down))
        canvas.on_mouse_move(cb("Handling the mouse")(self.mouse_move))
        canvas.on_mouse_up(cb("Handling a click")(self.segment.mouse_up))
        canvas.on_mouse_out(cb("Handling the mouse")(self.mouse_out))
        canvas.on_mouse_wheel(cb("Changing slice")(self.navigation.wheel))
        canvas.on_key_down(cb("Handling a key")(self.key))
        strip.on_mouse_down(cb("Changing slice")(self.navigation.strip_click))
        strip.on_key_down(cb("Handling a key")(self.key))
        for name, view in self.ortho.views.items():
            view.canvas.on_mouse_move(cb("Handling the mouse")(
                lambda x, y, name=name: self.ortho_mouse_move(name, x, y)))
            view.canvas.on_mouse_out(cb("Handling the mouse")(lambda x, y: self.mouse_out(x, y)))
            view.canvas.on_key_down(cb("Handling a key")(self.key))
        self.ortho.shown.observe(cb("Showing the views")(lambda _: self._views_shown()), "value")

    def _update_css(self) -> None:
        self.style.value = (self.viewer.css(self.ortho.css_views())
                            + f"<style>{ANNOTATION_CSS}{TAB_CSS}{HELD_CSS}</style>"
                            + self.key_map.helper_html())

    def _views_shown(self) -> None:
        self._update_css()
        self.ortho.render_cross()

    def _client_ready(self) -> None:
        """A new browser view: send it every widget's state, then the image. The page may
        have been built from widget states older than what the loading job set (Voilà
        builds it while the study loads), and updates sent before it connected are lost."""
        self._page_shown.set()
        send_states(self.widget)
        self.viewer.redraw()
        self.ortho.redraw()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _show_tab(self, name: str) -> None:
        self.tabs.selected_index = TABS.index(name)

    # -------------------------------------------------------- session binding
    def set_study(self, study) -> None:
        """Open a new session on ``study`` (offering its saved session if there is one)."""
        self._show_session(Session(study, workspace=self.workspace, autosave=True))

    def _show_session(self, session, offer: bool = True) -> None:
        """Bind the panels to ``session`` and (``offer``) offer the study's saved session."""
        study = session.study
        self.cancel()
        previous, self.ctx.session = self.ctx.session, session
        if previous is None or previous.study is not study:
            # another study: its own window and extent, not the last study's
            self.view.reset()
            self.extend_panel.reset()
        session.add_listener(self._listener)
        n, rows, cols = study.shape
        self.viewer.resize(rows, cols)
        self.viewer.annotation.letters = view_letters(study.affine, "axial")
        self.viewer.annotation.mm_per_pixel = float(study.spacing[2])
        self.ortho.show(session)
        self._update_css()
        for panel in (self.header, self.navigation, self.thresholds, self.extend_panel,
                      self.studies, self.pacs, self.save_panel, self.statistics):
            panel.show(session)
        self.status(f"Opened {study.series_description or study.name}: {n} slices of "
                    f"{rows} x {cols}. Click a green candidate region, then press Liver or "
                    "Spleen (keys 1, 2); the Help tab lists every shortcut.")
        for warning in study.warnings[:5]:
            self.messages.warning(warning)
        if offer:
            self.resume_panel.offer(study)
        self.navigation.set_slice(self.navigation.start_slice(), force=True)
        self.ortho.render()
        self.header.update()

    def _slice_changed(self) -> None:
        self.segment.cancel()
        self.thresholds.sync()
        self.view.render_ct()
        self.view.render_overlay()
        self.fill.render()
        self.navigation.render_strip()
        self.statistics.slice_changed()
        self.ortho.render_cross()
        self.readout.clear()

    def _session_changed(self, event: SessionEvent) -> None:
        """Session listener: redraw the overlay first (the latency users feel), then the rest."""
        n = self.ctx.session.study.n_slices
        slices = tuple(z for z in event.slices if 0 <= z < n) if event.slices else tuple(range(n))
        if self.ctx.z in slices:
            self.view.render_overlay()
            if Change.THRESHOLDS in event.changes:
                self.thresholds.sync()
        if Change.RANGES in event.changes:
            self.thresholds.ranges.sync()
        if event.labels_changed:
            self.ortho.render_overlay(slices)
            self.fill.refresh()
            self.navigation.render_strip()
            self.statistics.update(slices)
        if event.labels_changed or event.regions_changed:
            self.header.update()

    # ------------------------------------------------- state and long operations
    @property
    def session(self):
        """The open Session (None before a study is open)."""
        return self.ctx.session

    @property
    def z(self) -> int:
        """The slice shown."""
        return self.ctx.z

    @property
    def tool(self):
        """The current editing tool."""
        return self.segment.tool

    @property
    def busy(self) -> str | None:
        """What the long operation running now does ("Loading", ...), or None."""
        return self.jobs.busy

    def wait(self, timeout: float | None = 60.0):
        """Wait for the last long operation to end; return its result or raise its error."""
        return self.jobs.wait(timeout)

    def status(self, text: str) -> None:
        """Tell the user something in the message panel."""
        self.ctx.status(text)

    # ------------------------------------------------ handlers (panels do the work)
    def set_slice(self, z, force: bool = False) -> None:
        """Show slice ``z`` (clamped to the study)."""
        self.navigation.set_slice(z, force)

    def step_slice(self, delta: int) -> None:
        self.navigation.step_slice(delta)

    def strip_click(self, x, y) -> None:
        self.navigation.strip_click(x, y)

    def wheel(self, dx, dy) -> None:
        self.navigation.wheel(dx, dy)

    def key(self, key, shift=False, ctrl=False, meta=False) -> None:
        """A key pressed on the image (see :mod:`radipop_widgets.app.keys`)."""
        self.key_map.dispatch(self, key, shift, ctrl, meta)

    def mouse_down(self, x, y) -> None:
        self.segment.mouse_down(x, y)

    def mouse_move(self, x, y) -> None:
        """The mouse over the axial image: the readout, then the tool."""
        pixel = self.viewer.to_pixel(x, y)
        if pixel is not None and self.session is not None:
            self._pointer = ("axial", pixel[0] + 0.5, pixel[1] + 0.5)
            self.readout.show(self.z, *pixel)
        self.segment.mouse_move(x, y)

    def mouse_up(self, x, y) -> None:
        self.segment.mouse_up(x, y)

    def mouse_out(self, x, y) -> None:
        self.readout.clear()
        self.segment.mouse_out(x, y)

    def ortho_click(self, view: str, x, y) -> None:
        """A click in the coronal or sagittal view (canvas position)."""
        self.ortho.mouse_down(view, x, y)

    def ortho_mouse_move(self, view: str, x, y) -> None:
        """The mouse over a reformat: the readout of the voxel under it (and panning)."""
        voxel = self.ortho.voxel_at(view, x, y)
        if voxel is not None:
            self._pointer = (view, float(y), float(x))
            self.readout.show(*voxel)
        self.ortho.mouse_move(view, x, y)

    def zoom(self, step: int) -> bool:
        """Zoom the view under the mouse one level in (``step`` > 0) or out, at the mouse."""
        view, y, x = self._pointer or ("axial", None, None)
        zoom = self.viewer.zoom if view == "axial" else self.ortho.views[view].zoom
        return zoom.zoom_at(1 if (to_number(step) or 0) > 0 else -1, y, x)

    def reset_zoom(self) -> None:
        """The whole image again in the view under the mouse."""
        view = self._pointer[0] if self._pointer else "axial"
        (self.viewer.zoom if view == "axial" else self.ortho.views[view].zoom).reset()

    def set_tool(self, name) -> None:
        self.segment.set_tool(name)

    def cancel(self) -> None:
        """Abandon the stroke being drawn and the fill preview (Esc)."""
        self.segment.cancel()
        self.fill.cancel()

    def assign(self, label) -> int:
        """Give the selected region of this slice ``label`` (0 removes the label)."""
        return self.segment.assign(label)

    def fill_preview(self) -> dict:
        """Preview filling the brush label between its labelled slices (slice -> mask)."""
        return self.fill.preview()

    def apply_fill(self) -> int:
        """Apply the fill preview (one undo step); returns the number of slices filled."""
        return self.fill.apply()

    def set_organ_range(self, label, low=None, high=None) -> None:
        """Set an organ's intensity range by hand (HU), as typed beside the thresholds."""
        self.thresholds.ranges.set_range(label, low, high)

    def set_thresholds(self, bone=None, vessel=None, organ=None) -> None:
        """Apply thresholds (HU) to this slice or all slices, as the scope control says."""
        self.thresholds.set_thresholds(bone, vessel, organ)

    def apply_suggested_thresholds(self) -> None:
        self.thresholds.apply_suggested()

    def extend(self, below: bool = False, above: bool = False) -> Future:
        """Carry this slice's labels below and/or above in the background; returns a
        Future of the ExtendReport (see :meth:`wait`)."""
        return self.extend_panel.extend(below, above)

    def undo(self) -> bool:
        return self.header.undo()

    def redo(self) -> bool:
        return self.header.redo()

    def save(self, replace: bool = False) -> Path | None:
        """Save the session into the workspace (None: another session saved there since,
        and the Save panel asks whether to replace it)."""
        return self.save_panel.save(replace)

    def export(self, kind: str) -> Future:
        """Export the labels (``nifti``, ``legacy`` or ``dicom_seg``) in the background;
        returns a Future of the path written (see :meth:`wait`)."""
        return self.save_panel.export(kind)

    def refresh_studies(self) -> None:
        self.studies.refresh()

    def open_study(self, index) -> Future:
        """Load the study at ``index`` of the picker in the background and show it."""
        return self.studies.open(index)

    def next_study(self) -> Future | None:
        """Open the study after the open one in the worklist's order (None at the end)."""
        return self.studies.step(1)

    def previous_study(self) -> Future | None:
        """Open the study before the open one in the worklist's order (None at the start)."""
        return self.studies.step(-1)

    def search_pacs(self) -> Future:
        """Search the PACS tab's server for the patient / date typed (a job)."""
        return self.pacs.search()

    def open_pacs(self, index) -> Future:
        """Open the PACS tab's listed series at ``index`` (a job; cached after once)."""
        return self.pacs.open(index)

    def resume(self) -> None:
        """Replace the new session by the chosen saved or autosaved session."""
        self.resume_panel.resume()

    def start_new(self) -> None:
        """Keep the new session (the saved one stays on disk until saved over)."""
        self.resume_panel.start_new()
