"""The PACS tab: search a DICOMweb server, open a series, send the DICOM SEG back.

The server field starts at ``$RADIPOP_DICOMWEB_URL`` (or the config file's first
server) and nothing is asked of the server until Search is pressed, so the dashboard
works as before when no PACS is configured. Searching, opening and sending run as jobs
(the page stays responsive); a series opened before is read from the workspace cache.
"Add to worklist" puts every CT series found into the workspace's worklist
(:class:`~radipop_widgets.cohort.PacsSeriesStore`): the Study tab lists them and opens them
through the same client (:meth:`PacsPanel.server`, which the App hands to it).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import ipywidgets as widgets

from .. import persist
from ..cohort import PacsSeriesStore, Worklist, pacs_record
from ..dicomweb import DicomWeb, default_url
from ..errors import PacsConfigError, RadipopError
from ..export import dicom_seg_problem
from ..session import Session
from .context import Context
from .ui import button, clamp_int, heading, tagged

SEG_NAME = "segmentation.dcm"


class PacsPanel:
    """Search (patient ID, study date), a list of the CT series found, Open, "Add to
    worklist" (every series found) and "Send DICOM SEG to PACS" (exports the labels as a
    DICOM SEG under ``output_root`` ``/pacs/`` and stores it on the server the study came
    from, else the one typed).

    ``show_session(session)`` binds the dashboard to an opened series' session;
    ``show_tab(name)`` selects a tab ("Segment" once it is open).
    """

    def __init__(self, ctx: Context, workspace: Path, output_root: Path,
                 show_session: Callable[[Session], None], show_tab: Callable[[str], None]):
        self.ctx = ctx
        self.workspace = workspace
        self.output_root = output_root
        self.show_session = show_session
        self.show_tab = show_tab
        self.servers: dict[str, DicomWeb] = {}
        self.added = PacsSeriesStore(workspace)   # the series put into the worklist
        self.progress = Worklist(None, workspace)   # where each series found stands
        self.found = []            # (server url, PacsStudy, PacsSeries) per list entry
        self.opened_from: dict[str, str] = {}   # series UID -> server URL it was loaded from
        wide = {"description_width": "72px"}
        try:
            url = default_url()
        except PacsConfigError as exc:      # a config file others may read: say it here
            url, self._config_problem = "", str(exc)
        else:
            self._config_problem = ""
        self.server_text = widgets.Text(url, description="Server", style=wide,
                                        placeholder="https://pacs.example.org/dicom-web",
                                        layout=widgets.Layout(width="98%"))
        self.patient_text = widgets.Text(description="Patient ID", style=wide,
                                         placeholder="any (wildcards * ?)",
                                         layout=widgets.Layout(width="44%"))
        self.date_text = widgets.Text(description="Study date", style=wide,
                                      placeholder="YYYYMMDD[-YYYYMMDD]",
                                      layout=widgets.Layout(width="54%"))
        self.search_button = button("Search", "Search the PACS for CT series", icon="search")
        self.series_list = widgets.Select(options=[], rows=8, layout=widgets.Layout(width="98%"))
        self.open_button = button("Open", "Download (or read from the cache) and open the "
                                  "selected series", "#c8e6c9", icon="folder-open")
        self.add_button = button("Add to worklist", "Put every CT series found into the "
                                 "worklist of the Study tab", icon="list")
        self.send_button = button("Send DICOM SEG to PACS", "Export the labels as a DICOM SEG "
                                  "and store it with the study on the PACS", icon="upload")
        self.found_text = widgets.HTML()
        self.sent_text = widgets.HTML()
        self.widget = widgets.VBox([
            self.server_text, widgets.HBox([self.patient_text, self.date_text]),
            widgets.HBox([self.search_button]), self.found_text, self.series_list,
            widgets.HBox([self.open_button, self.add_button]), heading("Results"),
            widgets.HBox([self.send_button]), self.sent_text,
            widgets.HTML("<small style='color:#555'>Credentials come from the server's "
                         "environment (RADIPOP_DICOMWEB_USER / _PASSWORD) or its config file, "
                         "never from this page. Opened series are kept in the workspace's "
                         "pacs-cache.</small>")])
        tagged({"pacs-server": self.server_text, "pacs-patient": self.patient_text,
                "pacs-date": self.date_text, "pacs-search": self.search_button,
                "pacs-series": self.series_list, "pacs-open": self.open_button,
                "pacs-add": self.add_button,
                "pacs-send": self.send_button})
        ctx.jobs.hold(self.search_button, self.open_button, self.add_button, self.send_button)
        ctx.jobs.on_idle(self._update_buttons)
        self.search_button.on_click(ctx.callback("Searching the PACS")(lambda _: self.search()))
        self.open_button.on_click(ctx.callback("Opening the PACS series")(
            lambda _: self.open(self.series_list.value)))
        self.add_button.on_click(ctx.callback("Adding the series to the worklist")(
            lambda _: self.add_to_worklist()))
        self.send_button.on_click(ctx.callback("Sending the DICOM SEG")(
            lambda _: self.send_seg()))
        self._describe()
        self._update_buttons()

    # -------------------------------------------------------------- state
    def server(self, url: str | None = None) -> DicomWeb:
        """The client of ``url`` (default: the server field), made once per address and
        shared with the Study tab."""
        url = (url or self.server_text.value).strip().rstrip("/")
        if not url:
            raise RadipopError("No PACS configured: type the DICOMweb address of your PACS "
                               "(e.g. https://pacs.example.org/dicom-web) in Server, or set "
                               "RADIPOP_DICOMWEB_URL where the dashboard runs.")
        if url not in self.servers:
            self.servers[url] = DicomWeb(url, workspace=self.workspace)
        return self.servers[url]

    def _describe(self, text: str = "") -> None:
        if not text and not self.server_text.value.strip():
            text = self._config_problem or ("No PACS configured: type its DICOMweb address "
                                            "above to search it.")
        self.found_text.value = f"<small>{html.escape(text)}</small>" if text else ""

    def _update_buttons(self) -> None:
        session = self.ctx.session
        self.open_button.disabled = self.add_button.disabled = not self.found
        self.send_button.disabled = session is None or bool(dicom_seg_problem(session.study))

    def show(self, session) -> None:
        """A study was opened (here or in the Study tab): the send button follows whether a
        SEG can reference it; the series found show whether they are cached now."""
        if self.found:
            self._list(self.series_list.value)
        problem = dicom_seg_problem(session.study)
        self.send_button.tooltip = problem or "Export the labels as a DICOM SEG and store it " \
                                              "with the study on the PACS"
        self.sent_text.value = ""
        self._update_buttons()

    # -------------------------------------------------------------- handlers
    def search(self) -> Future:
        """Search the server for CT series of the patient / date typed, as a job."""
        self.ctx.jobs.check_idle()
        web = self.server()
        filters = {"patient": self.patient_text.value.strip() or None,
                   "date": self.date_text.value.strip() or None}

        def work(progress):
            return web.studies(**filters)

        def done(studies):
            self.found = [(web.url, study, series) for study in studies
                          for series in study.series]
            self._list(0 if self.found else None)
            self._describe(f"{len(self.found)} CT series in {len(studies)} studies on "
                           f"{web.url}." if self.found else
                           f"No CT series on {web.url} match; widen the search.")
            self._update_buttons()
        return self.ctx.jobs.run("Searching the PACS", work, done, "Searching the PACS")

    def _list(self, chosen) -> None:
        """Show the series found, ``chosen`` selected."""
        with self.ctx.quiet():
            rows = self.progress.series_rows([series.series_uid for _, _, series in self.found])
            self.series_list.options = [
                (self._label(self.server(url), study, series) + _progress(
                    rows[series.series_uid]), i)
                for i, (url, study, series) in enumerate(self.found)]
            self.series_list.value = chosen

    def _label(self, web, study, series) -> str:
        date = study.date and f"{study.date[:4]}-{study.date[4:6]}-{study.date[6:]}"
        cached = ", cached" if web.is_cached(series.series_uid) else ""
        n = series.n_slices if series.n_slices is not None else "?"
        return (f"{date or 'no date'} · {study.patient_id or '(no ID)'} · "
                f"{series.description or '(no description)'} ({n} slices{cached}) · "
                f"{study.description or '(no study description)'}")

    def open(self, index) -> Future:
        """Load the listed series at ``index`` (from the cache when it was opened before)
        as a job and show it; returns a Future of the Session."""
        self.ctx.jobs.check_idle()
        index = clamp_int(index, 0, len(self.found) - 1) if self.found else None
        if index is None:
            raise RadipopError("Search the PACS and choose a series in the list first.")
        url, _study, series = self.found[index]
        web = self.server(url)
        how = "from the cache" if web.is_cached(series.series_uid) else "from the PACS"
        self.ctx.status(f"Loading {series.description or 'the series'} "
                        f"({series.n_slices} slices) {how}...")

        def work(progress):
            loaded = web.load(series.series_uid, progress=progress)
            session = Session(loaded, workspace=self.workspace, autosave=True)
            session.phase  # noqa: B018 - estimated (once) here in the worker, not on show
            return session

        def done(session):
            self.opened_from[series.series_uid] = url
            self.show_session(session)
            self._list(index)                  # now marked "cached"
            self.show_tab("Segment")
        return self.ctx.jobs.run("Loading", work, done, "Opening the PACS series")

    def add_to_worklist(self) -> int:
        """Put every CT series found into the workspace's worklist (those not in it yet);
        returns how many were added."""
        self.ctx.jobs.check_idle()
        if not self.found:
            raise RadipopError("Search the PACS first: Add to worklist adds the series found.")
        records = [pacs_record(self.server(url), study, series)
                   for url, study, series in self.found]
        added = self.added.add(records)
        self.ctx.status(f"{added} series added to the worklist ({len(records) - added} were "
                        "in it already): work through them in the Study tab.")
        return added

    def send_seg(self) -> Future:
        """Export the labels as a DICOM SEG and store it on the PACS, as a job; returns a
        Future of the SOPInstanceUIDs stored."""
        s = self.ctx.require_session()
        problem = dicom_seg_problem(s.study)
        if problem:
            raise RadipopError(problem)
        if not s.labels.any():
            raise RadipopError("No labels to send yet: label the liver or the spleen first.")
        added = self.added.find(s.study.series_uid)      # opened from the Study tab
        web = self.server(self.opened_from.get(s.study.series_uid)
                          or (added.server if added else None))
        folder = persist.resolve_inside(self.output_root, "pacs")
        path = folder / SEG_NAME

        def work(progress):
            folder.mkdir(parents=True, exist_ok=True)
            s.export_dicom_seg(path)
            return web.store(path)

        def done(stored):
            text = (f"Sent the DICOM SEG ({len(stored)} object) to {web.url}, filed with the "
                    f"study of series {s.study.series_description or s.study.series_uid}.")
            self.sent_text.value = f"<small>{html.escape(text)}</small>"
            self.ctx.status(text)
        return self.ctx.jobs.run("Sending the DICOM SEG", work, done, "Sending the DICOM SEG")


def _progress(row) -> str:
    """Where a series found stands in the workspace, as the worklist says it."""
    v = row.volumes_ml or {}
    ml = ", ".join(f"{o} {v[o]:.0f} mL" for o in ("liver", "spleen") if v.get(o))
    by = f" by {row.by}" if row.by else ""
    return f" · {row.status}{by}" + (f" ({ml})" if ml else "")
