"""The PACS series added to a workspace's worklist (the PACS tab's "Add to worklist").

One JSON file, ``<workspace>/.cohort/pacs-series.json``, read-modify-written atomically
under a file lock (two annotators adding at once lose nothing). Per series: the server's
DICOMweb address, the SeriesInstanceUID and StudyInstanceUID, the PatientID, the study
date, the series and study descriptions, the number of slices, the cache folder its
download goes to (``DicomWeb.cache_folder``) and when it was added. Never a credential
(an address with ``user:password@`` is refused) and never the patient's name. A series
is kept once, by its SeriesInstanceUID.

Examples
--------
>>> import tempfile
>>> store = PacsSeriesStore(tempfile.mkdtemp())
>>> one = PacsRecord("https://pacs.example.org/dicom-web", "1.2.3.4", "1.2.3", "P-7",
...                  "20240102", "Abdomen portal", "CT abdomen", 300, "/cache/1.2.3.4")
>>> store.add([one, one]), store.add([one])
(1, 0)
>>> [r.series_uid for r in store.records()], one.cached
(['1.2.3.4'], False)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from .. import persist
from ..atomic import atomic_write_bytes
from ..io import StudyEntry
from .status import CohortError, cohort_dir

STORE_FILE = "pacs-series.json"
STORE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class PacsRecord:
    """One PACS series of the worklist (no credential, no patient name)."""

    server: str
    series_uid: str
    study_uid: str
    patient_id: str
    study_date: str
    series_description: str
    study_description: str
    n_slices: int | None
    cache: str
    added_at: str = ""

    @property
    def cached(self) -> bool:
        """Downloaded: its cache folder is complete (``DicomWeb.is_cached``)."""
        return (Path(self.cache) / ".series.json").is_file()

    @property
    def date(self) -> str:
        """The study date as ``YYYY-MM-DD`` (else as stored)."""
        d = self.study_date
        return f"{d[:4]}-{d[4:6]}-{d[6:]}" if len(d) == 8 and d.isdigit() else d

    def entry(self) -> StudyEntry:
        """The study to load: the cache folder (read like a data folder's series)."""
        return StudyEntry(self.cache, "dicom", self.series_description, self.n_slices or 0,
                          self.series_uid)


def pacs_record(web, study, series) -> PacsRecord:
    """The record of a series a search found (``DicomWeb``, ``PacsStudy``, ``PacsSeries``)."""
    return PacsRecord(web.url, series.series_uid, study.study_uid, study.patient_id,
                      study.date, series.description, study.description, series.n_slices,
                      str(web.cache_folder(series.series_uid)))


class PacsSeriesStore:
    """The PACS series added to the worklist of ``workspace``."""

    def __init__(self, workspace=None):
        self.path = cohort_dir(workspace) / STORE_FILE
        # the default cache (<workspace>/../pacs-cache) is kept relative to this folder, so
        # that a workspace moved or copied with its cache still finds its downloads
        self.base = persist.workspace_dir(workspace).parent

    def _stored(self, cache: str) -> str:
        path = Path(cache)
        return str(path.relative_to(self.base)) if path.is_relative_to(self.base) else cache

    def _resolved(self, cache: str) -> str:
        return cache if Path(cache).is_absolute() else str(self.base / cache)

    def records(self) -> list[PacsRecord]:
        """The series added, in the order they were added (none before the first)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        fields = {f.name for f in dataclasses.fields(PacsRecord)}
        try:
            records = [PacsRecord(**{k: v for k, v in item.items() if k in fields})
                       for item in json.loads(text)["series"]]
            return [dataclasses.replace(r, cache=self._resolved(r.cache)) for r in records]
        except (ValueError, KeyError, TypeError) as exc:
            raise CohortError(f"{self.path} is damaged ({exc}): delete it and add the series "
                              "again from the PACS tab (their sessions and status are "
                              "kept).") from exc

    def find(self, series_uid: str) -> PacsRecord | None:
        """The record of the series, None if it was not added."""
        return next((r for r in self.records() if r.series_uid == series_uid), None)

    def add(self, records) -> int:
        """Add the series not in the store yet; returns how many were added."""
        records = list(records)
        for record in records:
            if urlsplit(record.server).username or urlsplit(record.server).password:
                raise CohortError("the server address holds credentials: remove them from "
                                  "it; they come from the environment or the config file.")
        with self._locked():
            known = self.records()
            uids = {r.series_uid for r in known}
            now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            new = []
            for record in records:
                if record.series_uid not in uids:
                    uids.add(record.series_uid)
                    new.append(dataclasses.replace(record, added_at=record.added_at or now))
            if new:
                self._write(known + new)
        return len(new)

    def remove(self, series_uids) -> int:
        """Take these series off the worklist; returns how many were on it. Their
        sessions, status and download stay: added again, a series is where it stood."""
        drop = set(series_uids)
        with self._locked():
            known = self.records()
            kept = [r for r in known if r.series_uid not in drop]
            if len(kept) < len(known):
                self._write(kept)
        return len(known) - len(kept)

    def _write(self, records) -> None:
        atomic_write_bytes(self.path, json.dumps(
            {"version": STORE_VERSION,
             "series": [dataclasses.asdict(dataclasses.replace(r, cache=self._stored(r.cache)))
                        for r in records]}, indent=1).encode())

    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(".pacs-series.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
