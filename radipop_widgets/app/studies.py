"""The Study panel: the studies of the data folder, opening one, its patient data."""

from __future__ import annotations

import contextlib
import html
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

import ipywidgets as widgets

from .. import persist
from ..errors import RadipopError
from ..io import load_study, scan_studies
from ..session import Session
from .context import Context
from .offer import local_time
from .ui import button, clamp_int, heading, tagged


class StudyPanel:
    """Lists the studies under ``data_root`` and opens one as a job.

    ``show_session(session)`` binds the dashboard to the opened study's session;
    ``show_tab(name)`` selects a tab ("Study" when the first study fails to open, so the
    error stays in view; "Segment" once a study is open). The page is not switched to
    "Study" and back while it loads: the browser's tab bar, still being built, would send
    its own tab back and win.
    """

    def __init__(self, ctx: Context, data_root: Path | None, workspace: Path,
                 show_session: Callable[[Session], None], show_tab: Callable[[str], None]):
        self.ctx = ctx
        self.data_root = data_root
        self.workspace = workspace
        self.show_session = show_session
        self.show_tab = show_tab
        self.entries = []
        self.study_list = widgets.Select(options=[], rows=8, layout=widgets.Layout(width="98%"))
        self.refresh_button = button("Refresh", "Scan the data folder again", icon="refresh")
        self.open_button = button("Open", "Open the selected study", "#c8e6c9", icon="folder-open")
        self.data_root_text = widgets.HTML()
        self.metadata = widgets.HTML()
        self.widget = widgets.VBox([
            self.data_root_text, self.study_list,
            widgets.HBox([self.open_button, self.refresh_button]),
            widgets.HTML("<small style='color:#555'>Listed: DICOM CT series and CT NIfTI "
                         "files. Label maps and other files are left out.</small>"),
            heading("This study (shown, never logged)"), self.metadata])
        tagged({"study-list": self.study_list, "open": self.open_button})
        ctx.jobs.hold(self.open_button)
        self.refresh_button.on_click(ctx.callback("Scanning the data folder")(
            lambda _: self.refresh()))
        self.open_button.on_click(ctx.callback("Opening the study")(
            lambda _: self.open(self.study_list.value)))

    def refresh(self) -> None:
        """Scan the data folder and list its studies (marking those with a saved session)."""
        if self.data_root is None:
            self.data_root_text.value = "No data folder configured."
            return
        chosen = self._entry_key(self.study_list.value)
        self.entries = list(scan_studies(self.data_root))
        saved = self._saved_sessions()
        options = []
        for i, entry in enumerate(self.entries):
            path = Path(entry.path)
            name = entry.description or path.name
            rel = path.relative_to(self.data_root) if path.is_relative_to(self.data_root) \
                else path.name
            when = saved.get(str(path.resolve()))
            note = f" · saved session ({when})" if when else ""
            options.append((f"{name} — {entry.n_slices} slices — {rel}{note}", i))
        keys = [self._entry_key(i) for i in range(len(self.entries))]
        with self.ctx.quiet():
            self.study_list.options = options     # (selects the first: the choice is kept)
            self.study_list.value = keys.index(chosen) if chosen in keys else \
                self._index_of(self.ctx.session)
        self.data_root_text.value = (f"<small>Data folder: <code>{html.escape(str(self.data_root))}"
                                     f"</code> · {len(options)} studies</small>")

    def _entry_key(self, index):
        """What identifies the entry at ``index`` across rescans (None: no such entry)."""
        if not isinstance(index, int) or not 0 <= index < len(self.entries):
            return None
        entry = self.entries[index]
        return str(Path(entry.path).resolve()), entry.series_uid

    def _index_of(self, session) -> int | None:
        """The list's entry of the session's study (None if it is not listed)."""
        study = session.study if session is not None else None
        if study is None or study.path is None:
            return None
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            path = str(Path(study.path).resolve())
            same = [i for i in range(len(self.entries)) if self._entry_key(i)[0] == path]
            if len(same) > 1:
                same = [i for i in same if self.entries[i].series_uid == study.series_uid]
            return same[0] if len(same) == 1 else None
        return None

    def _saved_sessions(self) -> dict[str, str]:
        """Resolved study path -> when its session was saved (local time); damaged
        sessions and autosaves are left out."""
        found = {}
        for entry in persist.list_sessions(self.workspace):
            if entry.kind == "saved" and not entry.damaged and isinstance(entry.study_path, str):
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    found[str(Path(entry.study_path).resolve())] = local_time(entry.saved_at)
        return found

    def open(self, index) -> Future:
        """Load the study at ``index`` of the list as a job and show it; returns a Future."""
        index = clamp_int(index, 0, len(self.entries) - 1) if self.entries else None
        if index is None:
            raise RadipopError("Choose a study in the list first.")
        entry = self.entries[index]
        self.ctx.status(f"Loading {entry.description or Path(entry.path).name} "
                        f"({entry.n_slices} slices)...")

        def work(progress):
            study = load_study(entry.path, series=entry.series_uid, progress=progress)
            session = Session(study, workspace=self.workspace, autosave=True)
            session.phase  # noqa: B018 - estimated (once) here in the worker, not on show
            return session

        def done(session):
            self.show_session(session)
            with self.ctx.quiet():
                self.study_list.value = index
            self.show_tab("Segment")

        def failed(error):
            if self.ctx.session is None:
                self.show_tab("Study")
        return self.ctx.jobs.run("Loading", work, done, "Opening the study", failed)

    def show(self, session) -> None:
        """Show the patient data, the geometry and the contrast phase of the session's study."""
        index = self._index_of(session)
        if index is not None and index != self.study_list.value:
            with self.ctx.quiet():
                self.study_list.value = index          # the list shows the opened study
        study, phase = session.study, session.phase
        rows = [(k, v) for k, v in (study.metadata or {}).items() if v not in (None, "")]
        rows += [("Series", study.series_description or "—"), ("Modality", study.modality),
                 ("Size", " × ".join(map(str, study.shape))),
                 ("Spacing (mm)", " × ".join(f"{s:.3g}" for s in study.spacing)),
                 ("Contrast phase", phase.text() if phase else "not estimated (no aorta found)")]
        self.metadata.value = "<table style='font-size:12px'>" + "".join(
            f"<tr><td style='padding-right:10px;color:#555'>{html.escape(str(k))}</td>"
            f"<td>{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>"
