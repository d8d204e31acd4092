"""The worklist panel: the data folder's studies and the PACS series added to the
worklist as a table (status, who, volumes, last edit, flags), sorted and filtered; done /
undo done; who else edits the open study (and taking it over); the cohort export as a job.

The table is the Study tab's list (``table``, a Select whose values are indexes of
``rows``); :class:`~radipop_widgets.app.studies.StudyPanel` opens the chosen row.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets

from ..cohort import DONE, CohortError, Worklist, export_cohort, read_salt, study_flags
from ..cohort.status import STATES
from ..cohort.worklist import WorklistRow, study_row_key
from ..locks import SessionLockedError, current_user
from .context import Context
from .offer import local_time
from .ui import button, tagged


def _place(row: WorklistRow) -> tuple:
    """The folder order: the data folder's studies by path, then the PACS series by
    study date, PatientID, study and series."""
    p = row.pacs
    return (False, row.entry.path) if p is None else \
        (True, p.study_date, p.patient_id, p.study_uid, p.series_description, p.series_uid)


SORTS = {"folder": _place,
         "status": lambda r: (STATES.index(r.status), _place(r)),
         "liver mL": lambda r: -((r.volumes_ml or {}).get("liver") or 0),
         "spleen mL": lambda r: -((r.volumes_ml or {}).get("spleen") or 0),
         "last edit": lambda r: "~" if not r.last_edit else _negate(r.last_edit),
         "flags": lambda r: -len(r.flags)}
#: The salt file the dashboard's export pseudonymises with (the command line takes --salt-file)
SALT_ENV = "RADIPOP_SALT_FILE"
STATUS_HEADER = "status       by          liver spleen  flags  last edit       "
FOLDER_WIDTH = 56   # characters of the folder column at most (longer ones end in "…")
#: the table in a monospace font, so that its columns line up under the header
CSS = ("<style>.radipop-mono select, .radipop-worklist-header pre {font-family: "
       "'DejaVu Sans Mono', monospace; font-size: 11px}</style>")


def _negate(text: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def header_text(width: int) -> str:
    """The table's header above folder columns ``width`` characters wide."""
    return f"{'folder':<{width}} | {STATUS_HEADER} | study — slices, thickness"


def folder_width(folders) -> int:
    """The folder column's width: the longest folder, at most :data:`FOLDER_WIDTH`."""
    return min(max((len(f) for f in folders), default=6), FOLDER_WIDTH)


def row_text(row: WorklistRow, rel: str, saved_at: str | None, width: int | None = None) -> str:
    """One line of the table (monospace): the folder first, where a narrow screen still
    shows it, padded or cut to ``width`` characters, then where the study stands."""
    width = width or len(rel)
    folder = rel if len(rel) <= width else rel[:width - 1] + "…"
    v = row.volumes_ml or {}
    ml = [f"{v[o]:6.0f}" if v.get(o) else "     —" for o in ("liver", "spleen")]
    thick = f", {row.thickness_mm:g} mm" if row.thickness_mm else ""
    note = f" · saved session ({saved_at})" if saved_at else ""
    phase = f", {row.phase}" if row.phase else ""
    edited = local_time(row.last_edit) if row.last_edit else "—"
    return (f"{folder:<{width}} | {row.status:<12} {(row.by or '')[:10]:<10} {ml[0]} {ml[1]}  "
            f"{len(row.flags) or '':>5}  {edited:<16} | {row.description} — "
            f"{row.entry.n_slices} slices{thick}{phase}{note}")


class WorklistPanel:
    """The table and the cohort actions; ``ctx`` gives the open session."""

    def __init__(self, ctx: Context, worklist: Worklist, output_root: Path | None,
                 refresh: Callable[[], None]):
        self.ctx = ctx
        self.worklist = worklist
        self.output_root = output_root
        self.refresh = refresh  # rescan and redraw (the Study panel's refresh)
        self.rows: list[WorklistRow] = []
        self.texts: dict[int, str] = {}   # row index -> its line
        self.table = widgets.Select(options=[], rows=10, layout=widgets.Layout(width="98%"))
        self.table.add_class("radipop-mono")
        self.header = widgets.HTML(layout=widgets.Layout(width="98%", overflow="hidden"))
        self.show_header(folder_width([]))
        self.filter_text = widgets.Text(placeholder="filter: words of the study or folder",
                                        layout=widgets.Layout(width="220px"))
        self.status_filter = widgets.Dropdown(options=["all", *STATES], value="all",
                                              layout=widgets.Layout(width="120px"))
        self.sort = widgets.Dropdown(options=list(SORTS), value="folder",
                                     layout=widgets.Layout(width="110px"))
        self.done_button = button("Mark done", "Save this study's session and mark it done",
                                  "#c8e6c9", icon="check")
        self.undo_done_button = button("Undo done", "This study is in progress again",
                                       icon="undo")
        self.export_button = button("Export cohort", "Every done study: its mask and one row "
                                    "of cohort.csv", icon="table")
        salt = os.environ.get(SALT_ENV)
        self.pseudonymise = widgets.Checkbox(
            value=bool(salt), disabled=not salt, indent=False,
            description="pseudonymise" if salt else f"pseudonymise (set ${SALT_ENV})",
            layout=widgets.Layout(width="auto"))
        self.salt_file = salt
        self.remove_button = button("Remove", "Take the chosen PACS series off the worklist "
                                    "(its sessions, status and download are kept)",
                                    icon="minus")
        self.remove_button.disabled = True
        self.take_over_button = button("Take over", "Edit this study here; the other page "
                                       "can no longer save it", "#ffe0b2")
        self.lock_text = widgets.HTML()
        self.summary = widgets.HTML()
        self.lock_row = widgets.HBox([self.lock_text, self.take_over_button],
                                     layout=widgets.Layout(display="none"))
        self.controls = widgets.HBox([self.filter_text, self.status_filter,
                                      widgets.HTML("sort"), self.sort])
        for control in (self.done_button, self.undo_done_button, self.export_button):
            control.layout.flex = "0 0 auto"    # never squeezed to "Mar…" by the checkbox
        self.actions = widgets.HBox([self.done_button, self.undo_done_button,
                                     self.export_button, self.pseudonymise],
                                    layout=widgets.Layout(flex_flow="row wrap"))
        tagged({"worklist": self.table, "worklist-header": self.header, "worklist-filter": self.filter_text,
                "mark-done": self.done_button, "undo-done": self.undo_done_button,
                "export-cohort": self.export_button, "take-over": self.take_over_button,
                "remove-pacs": self.remove_button})
        ctx.jobs.hold(self.done_button, self.undo_done_button, self.export_button)
        cb = ctx.callback
        for control in (self.filter_text, self.status_filter, self.sort):
            control.observe(cb("Sorting the worklist")(lambda _: self.render()), "value")
        self.done_button.on_click(cb("Marking the study done")(lambda _: self.mark_done()))
        self.undo_done_button.on_click(cb("Undoing done")(lambda _: self.undo_done()))
        self.export_button.on_click(cb("Exporting the cohort")(lambda _: self.export()))
        self.take_over_button.on_click(cb("Taking the study over")(lambda _: self.take_over()))
        self.remove_button.on_click(cb("Removing the PACS series")(
            lambda _: self.remove_pacs(self.table.value)))
        self.table.observe(cb("Choosing a study")(lambda _: self._removable()), "value")

    # ----------------------------------------------------------------- the table
    def scan(self) -> list[WorklistRow]:
        self.rows = self.worklist.scan()
        return self.rows

    def order(self) -> list[int]:
        """Indexes of ``rows`` as the table shows them (filtered, sorted)."""
        words = self.filter_text.value.lower().split()
        status = self.status_filter.value
        shown = [i for i, r in enumerate(self.rows)
                 if (status == "all" or r.status == status)
                 and all(w in (r.description + " " + r.where).lower() for w in words)]
        return sorted(shown, key=lambda i: SORTS[self.sort.value](self.rows[i]))

    def show_header(self, width: int) -> None:
        """The header for folder columns ``width`` characters wide."""
        self.header.value = (f"{CSS}<pre style='margin:0; white-space:pre; line-height:1.3'>"
                             f"{header_text(width)}</pre>")

    def render(self, chosen: int | None = None) -> None:
        """Show the rows (keeping the chosen one when it is still shown)."""
        chosen = self.table.value if chosen is None else chosen
        order = self.order()
        with self.ctx.quiet():
            self.table.options = [(self.texts.get(i) or self.rows[i].description, i)
                                  for i in order]
            self.table.value = chosen if chosen in order else None
        self._removable()
        counts = {s: sum(r.status == s for r in self.rows) for s in STATES}
        self.summary.value = ("<small>" + " · ".join(f"{n} {s}" for s, n in counts.items())
                              + f" · {len(order)} shown</small>")

    def neighbour(self, index: int | None, step: int) -> int | None:
        """The row ``step`` places after ``index`` in the table's order (None at an end)."""
        order = self.order()
        if not order:
            return None
        if index not in order:
            return order[0] if step > 0 else order[-1]
        at = order.index(index) + step
        return order[at] if 0 <= at < len(order) else None

    def index_of(self, study) -> int | None:
        """The row of ``study``: by its path (a series copied into several folders), else
        by its key."""
        if study.path is not None:
            path = str(Path(study.path).resolve())
            same = [i for i, r in enumerate(self.rows)
                    if str(Path(r.entry.path).resolve()) == path]
            if len(same) > 1:
                same = [i for i in same if self.rows[i].entry.series_uid == study.series_uid]
            if len(same) == 1:
                return same[0]
        key = study_row_key(study)
        return next((i for i, r in enumerate(self.rows) if r.key == key), None)

    def pacs_row(self, index) -> WorklistRow | None:
        """The row at ``index`` when it is a PACS series added to the worklist, else None."""
        row = self.rows[index] if index is not None and 0 <= index < len(self.rows) else None
        return row if row is not None and row.pacs is not None else None

    def _removable(self) -> None:
        self.remove_button.disabled = self.pacs_row(self.table.value) is None

    # ----------------------------------------------------------------- actions
    def remove_pacs(self, index) -> None:
        """Take the PACS series of row ``index`` off the worklist; its sessions, status
        and download stay (added again, it is where it stood)."""
        self.ctx.jobs.check_idle()
        row, session = self.pacs_row(index), self.ctx.session
        if row is None:
            raise CohortError("Choose a PACS series in the list: only the series added from "
                              "the PACS tab can be removed; the data folder's studies are "
                              "listed while they are in it.")
        if session is not None and self.index_of(session.study) == index:
            raise CohortError(f"{row.description} is open: open another study before "
                              "removing it from the worklist.")
        self.worklist.pacs.remove([row.pacs.series_uid])
        self.refresh()
        self.ctx.status(f"{row.description} ({row.where}) is off the worklist; its sessions, "
                        "status and download are kept: add it again from the PACS tab.")

    def _open_row(self) -> WorklistRow:
        session = self.ctx.session
        index = self.index_of(session.study) if session is not None else None
        if index is None:
            raise CohortError("Open a study of the worklist first.")
        return self.rows[index]

    def mark_done(self) -> None:
        """Save the open study's session, then mark it done with the checks of its labels."""
        session = self.ctx.require_session()
        row = self._open_row()
        session.save()
        self.scan()
        row = self.rows[self.index_of(session.study)]
        measurements = session.measurements()
        phase = session.phase.name if session.phase else None
        flags = study_flags(session.labels, measurements, session.study.spacing, phase)
        self.worklist.note(row.key, phase=phase)
        self.worklist.mark_done(row.key, flags=flags)
        self.refresh()
        said = "; ".join(f.text() for f in flags) or "no flags"
        self.ctx.status(f"{row.description}: done ({said}).")

    def undo_done(self) -> None:
        row = self._open_row()
        if row.status != DONE:
            raise CohortError(f"{row.description} is not marked done.")
        self.worklist.undo_done(row.key)
        self.refresh()
        self.ctx.status(f"{row.description}: in progress again.")

    def export(self):
        """Export the cohort into ``<output root>/cohort`` as a job (pseudonymised with the
        salt of ``$RADIPOP_SALT_FILE`` when ticked)."""
        out = Path(self.output_root) / "cohort"
        salt = read_salt(self.salt_file) if self.pseudonymise.value and self.salt_file else None

        def work(progress):
            return export_cohort(self.worklist, out, salt,
                                 progress=lambda i, n, _: progress(i, n))

        def done(report):
            failed = "".join(f"; not exported: {w} ({why})" for w, why in report.failed)
            failed += "".join(f"; skipped: {w} ({why})" for w, why in report.skipped)
            self.ctx.status(f"{len(report.rows)} done studies exported to {report.out}{failed}")
            self.refresh()
        return self.ctx.jobs.run("Exporting the cohort", work, done, "Exporting the cohort")

    # ----------------------------------------------------------------- the lock
    def bind(self, session, previous) -> None:
        """The dashboard shows ``session``: release the previous session's lock, take this
        one's, or show who edits the study and offer to take it over."""
        if previous is not None and previous is not session:
            previous.unlock()
        try:
            session.lock()
        except SessionLockedError as exc:
            if exc.holder.user == current_user():
                # the same user's other page (a reload, a second tab): this one edits now
                session.lock(take_over=True)
                self.ctx.messages.warning(
                    f"You had this study open in another page ({exc.holder.text()}): this "
                    "page edits it now, and that one can no longer save it.")
            else:
                session.autosave = False
                self.show_lock(exc.holder.text())
                self.ctx.messages.warning(str(exc))
                return
        session.autosave = True
        self.show_lock(None)

    def show_lock(self, holder_text: str | None) -> None:
        """Say who edits the study (edits are refused here meanwhile), or nothing."""
        self.ctx.read_only = None if holder_text is None else f"being edited by {holder_text}"
        self.lock_row.layout.display = "none" if holder_text is None else "flex"
        if holder_text is not None:
            self.lock_text.value = (f"<b style='color:#b26a00'>Read-only</b>: being edited by "
                                    f"{html.escape(holder_text)}; nothing is saved here. ")

    def take_over(self) -> None:
        self.ctx.jobs.check_idle()
        session = self.ctx.session
        if session is None:
            return
        session.lock(take_over=True)
        session.autosave = True
        self.show_lock(None)
        self.ctx.status("You edit this study now; the other page can no longer save it.")

