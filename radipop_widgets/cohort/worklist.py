"""The worklist: every study of a data folder with its status, volumes and flags.

The scan reads headers only (``io.scan_dicom_series``, the NIfTI header) and is
incremental: per folder it keeps the names, sizes and modification times of its files
and the series found, in ``<workspace>/.cohort/scan-<hash>.json`` (no patient data), and
reads again only the folders that changed. New studies appear at the next :meth:`scan`.

A row's status comes from the sessions in the workspace (``persist.list_sessions``:
in progress when it has a saved or autosaved session) and the explicit "done" of
:class:`~radipop_widgets.cohort.status.StatusStore`; its volumes and last edit time from
its newest session; who edits it now from the study's lock (:mod:`radipop_widgets.locks`).

The series added from a PACS (:mod:`.pacs_series`) are rows too, after the data folder's,
keyed by their SeriesInstanceUID like any series; a series the data folder holds as well
is listed once, as the folder's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import nibabel as nib
import numpy as np

from .. import locks, persist
from ..atomic import atomic_write_bytes
from ..io import StudyEntry
from ..io.dicom_files import scan_dicom_series
from ..io.nifti import is_nifti, nifti_entry
from ..study import Study
from .flags import Flag, cohort_flags, volume_flags
from .pacs_series import PacsRecord, PacsSeriesStore
from .status import DONE, IN_PROGRESS, NOT_STARTED, CohortError, StatusStore, cohort_dir

SCAN_VERSION = 1


def _is_uid(uid) -> bool:
    return bool(uid) and all(c.isdigit() or c == "." for c in str(uid))


def _path_key(path, series_uid) -> str:
    uid = "" if not series_uid or str(series_uid).startswith("no-uid") else str(series_uid)
    text = f"{Path(path).resolve()}|{uid}"
    return "path-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def row_key(entry: StudyEntry) -> str:
    """The study's key: ``uid-<SeriesInstanceUID>`` (as its session folder is named), else
    one from its resolved path (and series key)."""
    return f"uid-{entry.series_uid}" if _is_uid(entry.series_uid) else \
        _path_key(entry.path, entry.series_uid)


def study_row_key(study: Study) -> str:
    """:func:`row_key` of a loaded study (to find its row)."""
    if _is_uid(study.series_uid):
        return f"uid-{study.series_uid}"
    return _path_key(study.path or "", study.series_uid)


def _session_key(entry: persist.SessionEntry, root: Path) -> str | None:
    try:
        top = entry.folder.relative_to(root).parts[0]
    except (ValueError, IndexError):
        return None
    if top.startswith("uid-"):
        return top
    return _path_key(entry.study_path, entry.series_uid) if entry.study_path else None


@dataclasses.dataclass
class WorklistRow:
    """One study of the worklist.

    ``status`` is one of ``status.STATES``; ``by`` who marked it done, or who edits it now
    (or edited it last: the released lock names them);
    ``editor`` the live lock's holder (another annotator has it open), else None;
    ``sessions`` its non-damaged sessions, newest first; ``volumes_ml`` and ``last_edit``
    from the newest; ``flags`` the stored checks of its labels and the volume checks;
    ``pacs`` the record of a series added from a PACS (``entry.path`` is its cache
    folder), else None.
    """

    key: str
    entry: StudyEntry
    thickness_mm: float | None = None
    pixel_mm: tuple | None = None
    status: str = NOT_STARTED
    by: str | None = None
    done_at: str | None = None
    editor: locks.LockHolder | None = None
    sessions: list = dataclasses.field(default_factory=list)
    volumes_ml: dict | None = None
    last_edit: str | None = None
    phase: str | None = None
    flags: list = dataclasses.field(default_factory=list)
    pacs: PacsRecord | None = None

    @property
    def description(self) -> str:
        return self.entry.description or Path(self.entry.path).name

    @property
    def where(self) -> str:
        """Where the study comes from: its path, or ``PACS <host> · date · PatientID``
        (``, cached`` once downloaded)."""
        if self.pacs is None:
            return self.entry.path
        p = self.pacs
        return (f"PACS {urlsplit(p.server).hostname} · {p.date or 'no date'} · "
                f"{p.patient_id or '(no ID)'}" + (", cached" if p.cached else ""))

    @property
    def session(self):
        """The session an export reads: the saved one, else the newest autosave."""
        saved = [s for s in self.sessions if s.kind == "saved"]
        return (saved or self.sessions or [None])[0]


def _folder_signature(folder: str, files: list[str]) -> list:
    sig = []
    for name in files:
        try:
            st = os.stat(os.path.join(folder, name))
        except OSError:
            continue
        sig.append([name, st.st_size, st.st_mtime_ns])
    return sig


def _nifti_details(path: str) -> dict:
    zooms = [float(z) for z in nib.load(path).header.get_zooms()[:3]]
    axis = int(np.flatnonzero(nib.orientations.io_orientation(nib.load(path).affine)[:, 0]
                              == 2)[0]) if len(zooms) == 3 else 2
    return {"thickness_mm": zooms[axis], "pixel_mm": [z for i, z in enumerate(zooms)
                                                      if i != axis]}


def _scan_folder(folder: str, files: list[str]) -> list[dict]:
    """The studies whose files lie directly in ``folder``: entry fields and details."""
    found = []
    niftis = sorted(f for f in files if is_nifti(f))
    for name in niftis:
        entry = nifti_entry(Path(folder) / name)
        if entry is not None:
            try:
                details = _nifti_details(entry.path)
            except (OSError, ValueError, IndexError):  # the entry loads; details optional
                details = {}
            found.append({**dataclasses.asdict(entry), **details})
    if len(niftis) < len(files):
        for entry, details in scan_dicom_series(folder):
            found.append({**dataclasses.asdict(entry), **details})
    return found


def _download_details(cache: Path) -> dict:
    """The slice thickness and pixel size of a downloaded PACS series: read from its
    headers once, then kept in the download's ``.series.json``."""
    record = cache / ".series.json"
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    if "pixel_mm" in recorded:
        return recorded
    found = scan_dicom_series(cache)
    if len(found) != 1:
        return {}
    details = {key: found[0][1].get(key) for key in ("thickness_mm", "pixel_mm")}
    try:
        atomic_write_bytes(record, json.dumps({**recorded, **details}).encode())
    except OSError:          # a read-only cache: read the headers again next time
        pass
    return details


class Worklist:
    """The studies under ``data_root`` and where each stands.

    Parameters
    ----------
    data_root : path or None
        The data folder (DICOM series in folders, NIfTI files), searched recursively;
        None for a worklist of PACS series only (:meth:`series_rows`).
    workspace : path, optional
        Where sessions, the status records and the scan cache live.
    """

    def __init__(self, data_root, workspace=None):
        self.data_root = Path(data_root).expanduser().resolve() if data_root is not None \
            else None
        self.workspace = persist.workspace_dir(workspace)
        self.status = StatusStore(self.workspace)
        self.pacs = PacsSeriesStore(self.workspace)
        digest = hashlib.sha256(str(self.data_root or "").encode()).hexdigest()[:16]
        self.cache_path = cohort_dir(self.workspace) / f"scan-{digest}.json"
        self.rows: list[WorklistRow] = []
        self.last_scan = {"folders": 0, "read": 0}
        self.pacs_problem: str | None = None   # why the PACS series are not listed

    # ----------------------------------------------------------------- the scan
    def _load_cache(self) -> dict:
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
            if data.get("version") == SCAN_VERSION and isinstance(data.get("folders"), dict):
                return data["folders"]
        except (OSError, ValueError, AttributeError):
            pass
        return {}

    def scan_entries(self, progress=None) -> list[tuple[StudyEntry, dict]]:
        """Every study under the data folder (headers only, cached per folder)."""
        if self.data_root is None:
            return []
        cache, fresh, read = self._load_cache(), {}, 0
        walked = []
        for folder, dirs, files in os.walk(self.data_root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and not os.path.islink(os.path.join(folder, d)))
            files = sorted(f for f in files if not f.startswith("."))
            if files:
                walked.append((folder, files))
        studies = []
        for i, (folder, files) in enumerate(walked):
            sig = _folder_signature(folder, files)
            cached = cache.get(folder)
            if cached is not None and cached.get("sig") == sig:
                found = cached["studies"]
            else:
                found, read = _scan_folder(folder, files), read + 1
            fresh[folder] = {"sig": sig, "studies": found}
            for item in found:
                fields = {f.name: item[f.name] for f in dataclasses.fields(StudyEntry)}
                studies.append((StudyEntry(**fields), item))
            if progress is not None:
                progress(i + 1, len(walked))
        if read or set(fresh) != set(cache):
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.cache_path, json.dumps(
                {"version": SCAN_VERSION, "folders": fresh}).encode())
        self.last_scan = {"folders": len(walked), "read": read}
        return studies

    def _sessions_by_key(self) -> dict[str, list]:
        sessions: dict[str, list] = {}
        for s in persist.list_sessions(self.workspace):
            if s.damaged:
                continue
            keys = {_session_key(s, self.workspace)}
            if s.study_path:
                keys.add(_path_key(s.study_path, s.series_uid))
            for key in keys - {None}:
                sessions.setdefault(key, []).append(s)
        return sessions

    def series_rows(self, series_uids, entries=None) -> dict[str, WorklistRow]:
        """Where each series of a PACS query stands in the workspace: the row a study with
        that SeriesInstanceUID has (status, who, volumes, flags), by UID. ``entries`` maps
        a UID to its description (a :class:`StudyEntry` or None)."""
        sessions = self._sessions_by_key()
        rows = {}
        for uid in series_uids:
            key = f"uid-{uid}"
            found = sorted(sessions.get(key, []), key=lambda s: s.saved_at or "", reverse=True)
            row = WorklistRow(key, (entries or {}).get(uid), sessions=found)
            self._fill(row)
            rows[uid] = row
        return rows

    def scan(self, progress=None) -> list[WorklistRow]:
        """Scan the data folder and the workspace; the rows, sorted by path, then the PACS
        series added (in the order they were added)."""
        sessions = self._sessions_by_key()
        entries = self.scan_entries(progress)
        seen: dict[str, int] = {}
        for entry, _ in entries:
            seen[row_key(entry)] = seen.get(row_key(entry), 0) + 1
        rows = []
        for entry, details in entries:
            key = row_key(entry)
            if seen[key] > 1:   # one series in several folders (copies): told apart by path
                key = _path_key(entry.path, entry.series_uid)
            rows.append(self._row(key, entry, details, sessions))
        in_folder = {entry.series_uid for entry, _ in entries}
        try:
            records, self.pacs_problem = self.pacs.records(), None
        except CohortError as exc:    # a damaged store: the data folder's rows still show
            records, self.pacs_problem = [], str(exc)
        for record in records:
            if record.series_uid in in_folder:
                continue
            details = _download_details(Path(record.cache)) if record.cached else {}
            rows.append(self._row(f"uid-{record.series_uid}", record.entry(), details,
                                  sessions, record))
        self._cohort_flags(rows)
        self.rows = rows
        return rows

    def _row(self, key: str, entry: StudyEntry, details: dict, sessions: dict,
             pacs: PacsRecord | None = None) -> WorklistRow:
        """The row of a study: its header ``details``, its sessions (newest first) and
        where it stands."""
        found = sorted(sessions.get(key, []), key=lambda s: s.saved_at or "", reverse=True)
        row = WorklistRow(key, entry, details.get("thickness_mm"),
                          tuple(details["pixel_mm"]) if details.get("pixel_mm") else None,
                          sessions=found, pacs=pacs)
        self._fill(row)
        return row

    def _fill(self, row: WorklistRow) -> None:
        record = self.status.record(row.key)
        info = record["info"]
        row.phase = info.get("phase")
        if row.sessions:
            newest = row.sessions[0]
            row.status, row.volumes_ml, row.last_edit = IN_PROGRESS, newest.volumes_ml, \
                newest.saved_at
        events = record["events"]
        if events and events[-1]["action"] == "done":
            row.status, row.by, row.done_at = DONE, events[-1]["by"], events[-1]["at"]
        folder = self.session_dir(row)
        holder = locks.read_lock(folder) if folder is not None else None
        row.editor = holder if holder is not None and holder.live else None
        if row.status != DONE and (row.editor is not None or holder is not None
                                   and row.status == IN_PROGRESS):
            row.by = holder.user   # who edits it now, or who edited it last
        stored = info.get("flags") or []
        if stored and info.get("flags_for") == row.last_edit:
            row.flags = [Flag(**f) for f in stored]
        row.flags += volume_flags(row.volumes_ml or {})

    def session_dir(self, row: WorklistRow) -> Path | None:
        """The study's session folder (where its lock lives); None before its first save
        when the study has no UID."""
        if row.key.startswith("uid-"):
            return self.workspace / row.key
        for s in row.sessions:
            return self.workspace / s.folder.relative_to(self.workspace).parts[0]
        return None

    def _cohort_flags(self, rows) -> None:
        done = {r.key: r.volumes_ml or {} for r in rows if r.status == DONE}
        for key, flags in cohort_flags(done).items():
            next(r for r in rows if r.key == key).flags += flags

    # ----------------------------------------------------------------- actions
    def row(self, key: str) -> WorklistRow:
        for r in self.rows:
            if r.key == key:
                return r
        raise CohortError(f"no study {key} in the worklist; scan the data folder again.")

    def mark_done(self, key: str, user: str | None = None, flags=None) -> dict:
        """Mark the study done (it needs a saved or autosaved session). ``flags``: the
        checks of its labels as they are now (stored with the session's time)."""
        row = self.row(key)
        if not row.sessions:
            raise CohortError(f"{row.description}: nothing is saved for this study yet; "
                              "segment it and save the session before marking it done.")
        if flags is not None:
            self.note(key, flags=[dataclasses.asdict(f) for f in flags],
                      flags_for=row.last_edit)
        event = self.status.mark_done(key, user, saved_at=row.last_edit)
        row.status, row.by, row.done_at = DONE, event["by"], event["at"]
        return event

    def undo_done(self, key: str, user: str | None = None) -> None:
        """The study is in progress again."""
        self.status.undo_done(key, user)
        row = self.row(key)
        row.status, row.by, row.done_at = (IN_PROGRESS if row.sessions else NOT_STARTED,
                                           None, None)

    def note(self, key: str, **info) -> None:
        """Remember the study's estimated phase, its label flags (``flags``, ``flags_for``)."""
        self.status.set_info(key, **info)
