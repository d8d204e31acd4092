"""The Study panel: the worklist of the data folder and of the PACS series added to it
(status, who, volumes, flags), opening a study from its row (a PACS series from its
cache, else downloaded through the PACS tab's client), next / previous study, its patient
data."""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import ipywidgets as widgets

from ..cohort import Worklist
from ..dicomweb import DicomWeb
from ..errors import RadipopError
from ..io import load_study
from ..session import Session
from .context import Context
from .offer import local_time
from .ui import button, clamp_int, heading, tagged
from .worklist import WorklistPanel, folder_width, row_text


class StudyPanel:
    """Lists the studies under ``data_root`` (None: none) and the PACS series added to the
    workspace's worklist, and opens one as a job.

    ``show_session(session)`` binds the dashboard to the opened study's session;
    ``show_tab(name)`` selects a tab ("Study" when the first study fails to open, so the
    error stays in view; "Segment" once a study is open). The page is not switched to
    "Study" and back while it loads: the browser's tab bar, still being built, would send
    its own tab back and win. The study shown holds its session-folder lock
    (:mod:`radipop_widgets.locks`); when another kernel holds it, the study is read-only
    here until taken over.
    """

    def __init__(self, ctx: Context, data_root: Path | None, workspace: Path,
                 show_session: Callable[[Session], None], show_tab: Callable[[str], None],
                 output_root: Path | None = None,
                 pacs_client: Callable[[str], DicomWeb] | None = None):
        self.ctx = ctx
        self.pacs_client = pacs_client
        self.data_root = data_root
        self.workspace = workspace
        self.show_session = show_session
        self.show_tab = show_tab
        self.entries = []
        self.worklist = WorklistPanel(ctx, Worklist(data_root, workspace),
                                      output_root or workspace.parent / "exports", self.refresh)
        self.study_list = self.worklist.table
        self._shown: Session | None = None
        self.refresh_button = button("Refresh", "Scan the data folder again", icon="refresh")
        self.open_button = button("Open", "Open the selected study", "#c8e6c9", icon="folder-open")
        self.previous_button = button("Previous", "Open the study above this one in the list",
                                      icon="arrow-up")
        self.next_button = button("Next", "Open the study below this one in the list",
                                  icon="arrow-down")
        self.data_root_text = widgets.HTML()
        self.metadata = widgets.HTML()
        w = self.worklist
        self.widget = widgets.VBox([
            self.data_root_text, w.lock_row, w.controls, w.header, self.study_list, w.summary,
            widgets.HBox([self.open_button, self.previous_button, self.next_button,
                          self.refresh_button, w.remove_button]),
            w.actions,
            widgets.HTML("<small style='color:#555'>Listed: DICOM CT series and CT NIfTI "
                         "files (label maps and other files are left out), then the PACS "
                         "series added from the PACS tab.</small>"),
            heading("This study (shown, never logged)"), self.metadata])
        tagged({"study-list": self.study_list, "open": self.open_button,
                "next-study": self.next_button, "previous-study": self.previous_button})
        ctx.jobs.hold(self.open_button, self.next_button, self.previous_button)
        self.refresh_button.on_click(ctx.callback("Scanning the data folder")(
            lambda _: self.refresh()))
        self.open_button.on_click(ctx.callback("Opening the study")(
            lambda _: self.open(self.study_list.value)))
        self.next_button.on_click(ctx.callback("Opening the next study")(
            lambda _: self.step(1)))
        self.previous_button.on_click(ctx.callback("Opening the previous study")(
            lambda _: self.step(-1)))

    def refresh(self) -> None:
        """Scan the data folder and the workspace; list the studies with their status,
        volumes and flags (marking those with a saved session)."""
        chosen = self._entry_key(self.study_list.value)
        rows = self.worklist.scan()
        self.entries = [row.entry for row in rows]
        folders = [self._folder(row) for row in rows]
        width = folder_width(folders)
        texts = {}
        for i, (row, rel) in enumerate(zip(rows, folders, strict=True)):
            saved = [s for s in row.sessions if s.kind == "saved"]
            texts[i] = row_text(row, rel, local_time(saved[0].saved_at) if saved else None,
                                width)
        self.worklist.texts = texts
        self.worklist.show_header(width)
        keys = [self._entry_key(i) for i in range(len(self.entries))]
        self.worklist.render(keys.index(chosen) if chosen in keys else
                             self._index_of(self.ctx.session))
        n_pacs = sum(row.pacs is not None for row in rows)
        folder = (f"Data folder: <code>{html.escape(str(self.data_root))}</code> · "
                  f"{len(rows) - n_pacs} studies" if self.data_root is not None else
                  "No data folder configured")
        problem = self.worklist.worklist.pacs_problem
        problem = f" <b style='color:#b00020'>{html.escape(problem)}</b>" if problem else ""
        self.data_root_text.value = f"<small>{folder} · {n_pacs} PACS series{problem}</small>"

    def _folder(self, row) -> str:
        """The row's folder column: its folder under the data folder, or its PACS."""
        path = Path(row.entry.path)
        if row.pacs is not None:
            return row.where
        if self.data_root is not None and path.is_relative_to(self.data_root):
            return str(path.relative_to(self.data_root))
        return path.name

    def watch(self, tabs, index: int) -> None:
        """Scan again whenever the Study tab is shown: new studies appear, statuses follow
        the other annotators' work."""
        def shown(change):
            if change["new"] == index:
                self.refresh()
        tabs.observe(self.ctx.callback("Scanning the data folder")(shown), "selected_index")

    def step(self, delta: int) -> Future | None:
        """Open the next (``delta`` 1) or previous (-1) study in the list's order."""
        current = self._index_of(self.ctx.session)
        index = self.worklist.neighbour(current if current is not None
                                        else self.study_list.value, delta)
        if index is None or index == current:
            self.ctx.status(f"This is the {'last' if delta > 0 else 'first'} study of the list.")
            return None
        return self.open(index)

    def _entry_key(self, index):
        """What identifies the entry at ``index`` across rescans (None: no such entry)."""
        if not isinstance(index, int) or not 0 <= index < len(self.entries):
            return None
        entry = self.entries[index]
        return str(Path(entry.path).resolve()), entry.series_uid

    def on_pacs_only(self, index) -> bool:
        """Whether the row at ``index`` is a PACS series not downloaded yet."""
        row = self.worklist.pacs_row(index)
        return row is not None and not row.pacs.cached

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

    def _client(self, url: str) -> DicomWeb:
        """The PACS tab's client of the server ``url``."""
        if self.pacs_client is None:
            raise RadipopError("This dashboard has no PACS tab: open the series from the PACS "
                               "tab of the full dashboard.")
        return self.pacs_client(url)

    def open(self, index, shown: threading.Event | None = None) -> Future:
        """Load the study at ``index`` of the list as a job and show it once ``shown`` is
        set (at once without it); returns a Future."""
        index = clamp_int(index, 0, len(self.entries) - 1) if self.entries else None
        if index is None:
            raise RadipopError("Choose a study in the list first.")
        entry = self.entries[index]
        row = self.worklist.rows[index] if index < len(self.worklist.rows) else None
        web = self._client(row.pacs.server) if self.on_pacs_only(index) else None
        self.ctx.status(f"Loading {entry.description or Path(entry.path).name} "
                        f"({entry.n_slices} slices){' from the PACS' if web else ''}...")

        def work(progress):
            study = web.load(entry.series_uid, progress=progress) if web is not None else \
                load_study(entry.path, series=entry.series_uid, progress=progress)
            session = Session(study, workspace=self.workspace, autosave=True)
            session.phase  # noqa: B018 - estimated (once) here in the worker, not on show
            if shown is not None:
                shown.wait()
            return session

        def done(session):
            if row is not None:
                phase = session.phase
                self.worklist.worklist.note(row.key, phase=phase.name if phase else None)
            self.show_session(session)
            shown_at = index
            if web is not None:
                self.refresh()                  # the row is marked "cached" now
                shown_at = self._index_of(session)
            with self.ctx.quiet():
                self.study_list.value = shown_at
            self.show_tab("Segment")

        def failed(error):
            if self.ctx.session is None:
                self.show_tab("Study")
        return self.ctx.jobs.run("Loading", work, done, "Opening the study", failed)

    def show(self, session) -> None:
        """Show the patient data, the geometry and the contrast phase of the session's study;
        take its lock (or say who edits it)."""
        previous, self._shown = self._shown, session
        self.worklist.bind(session, previous)
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
