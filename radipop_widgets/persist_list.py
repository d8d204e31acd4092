"""The session folders on disk: every one in the workspace, and the ones a study can be
resumed from. A damaged session is listed as damaged (``problem``), never raised."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import measure
from .errors import SessionError
from .journal import JOURNAL_FILE, read_journal, records_after
from .persist_paths import (
    AUTOSAVE_DIR,
    LABELS_FILE,
    PREVIOUS_LABELS_FILE,
    STATE_FILE,
    default_session_dir,
    workspace_dir,
)
from .persist_read import _check_same_series, _locked, load_session, read_session_info
from .study import Study

#: How deep :func:`list_sessions` looks for session folders below the workspace.
LIST_DEPTH = 4


@dataclass(frozen=True)
class SessionEntry:
    """A session folder found on disk.

    ``kind`` is "saved" or "autosaved" (a folder named ``autosave`` or ``autosave-<id>``);
    ``saved_at`` the ISO time of the save; ``volumes_ml`` organ -> mL; ``problem`` None,
    or why the folder cannot be opened (then the other fields may be None).
    """

    kind: str
    folder: Path
    saved_at: str | None = None
    volumes_ml: dict | None = None
    session_id: str | None = None
    save_id: str | None = None
    study_path: str | None = None
    series_uid: str | None = None
    problem: str | None = field(default=None, compare=False)

    @property
    def damaged(self) -> bool:
        return self.problem is not None


def _kind(folder: Path) -> str:
    name = folder.name
    return "autosaved" if name == AUTOSAVE_DIR or name.startswith(AUTOSAVE_DIR + "-") else "saved"


def _journalled(folder: Path, info: dict) -> dict:
    """``info`` with the time and volumes of the last edit journalled after its snapshot
    (an autosave folder), read from the records' headers (no labels inflated)."""
    if "journal" not in info:
        return info
    records = records_after(read_journal(folder / JOURNAL_FILE, tuple(info["shape"])),
                            info["journal"])
    if not records:
        return info
    last = records[-1]
    info = dict(info, saved_at=last.at or info.get("saved_at"))
    if last.volumes_ml is not None:
        info["volumes_ml"] = last.volumes_ml
    elif "volumes_ml" in info:
        del info["volumes_ml"]  # counted from the replayed labels
    return info


def _volumes(folder: Path, info: dict):
    if info.get("volumes_ml") is not None:
        return dict(info["volumes_ml"])
    spacing = info.get("spacing")
    if spacing is None:
        return None
    labels, _ = load_session(folder)
    return measure.volumes_ml(labels, spacing)


def _entry(folder: Path, info: dict | None, problem: str | None, *,
           read_labels: bool = True) -> SessionEntry:
    """``read_labels`` False: only recorded volumes (the caller holds the folder's lock)."""
    if info is None:
        return SessionEntry(_kind(folder), folder, problem=problem or "unreadable")
    info = _journalled(folder, info)
    try:
        volumes = _volumes(folder, info) if read_labels else info.get("volumes_ml")
    except SessionError as exc:
        return SessionEntry(_kind(folder), folder, problem=str(exc))
    return SessionEntry(_kind(folder), folder, info.get("saved_at"), volumes,
                        info.get("session_id"), info.get("save_id"), info.get("study_path"),
                        info.get("series_uid"), problem)


def _read_entry(folder: Path) -> SessionEntry:
    try:
        with _locked(folder, shared=True):  # session.json and the journal of one moment
            info = read_session_info(folder)
            if not (folder / LABELS_FILE).is_file() and \
                    not (folder / PREVIOUS_LABELS_FILE).is_file():
                return SessionEntry(_kind(folder), folder,
                                    problem=f"{folder / LABELS_FILE} is missing")
            return _entry(folder, info, None)
    except SessionError as exc:
        return SessionEntry(_kind(folder), folder, problem=str(exc))


def list_sessions(workspace=None) -> list[SessionEntry]:
    """Every session folder in the workspace (``session.json`` up to :data:`LIST_DEPTH`
    folders deep; symbolic links are not followed), sorted by folder.

    A damaged session is listed with ``problem`` saying why (never raised), so that one
    broken folder cannot stop the others from being offered.
    """
    root = workspace_dir(workspace)
    found = []

    def walk(folder: Path, depth: int):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name == STATE_FILE and entry.is_file(follow_symlinks=False) and depth:
                found.append(_read_entry(folder))
        if depth >= LIST_DEPTH:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                walk(Path(entry.path), depth + 1)

    walk(root, 0)
    return sorted(found, key=lambda e: str(e.folder))


def session_choices(study: Study, workspace=None, *,
                    include_damaged: bool = False) -> list[SessionEntry]:
    """The sessions a user can resume ``study`` from: the saved session and every
    autosave, newest first (a saved session before autosaved work of the same time),
    each with its time and organ volumes.

    ``include_damaged`` adds, at the end, those that cannot be opened (``problem`` set),
    so that a user interface can say so; they are never opened or removed here.
    """
    base = default_session_dir(study, workspace)
    folders = [base]
    with contextlib.suppress(OSError):
        folders += sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink()
                          and _kind(p) == "autosaved")
    choices, damaged = [], []
    for folder in folders:
        if not (folder / STATE_FILE).exists():
            continue
        entry = _read_entry(folder)
        if entry.problem is None:
            try:
                _check_same_series(read_session_info(folder), study, folder)
            except SessionError as exc:
                entry = SessionEntry(entry.kind, folder, problem=str(exc))
        (damaged if entry.damaged else choices).append(entry)
    choices.sort(key=lambda e: (e.saved_at or "", e.kind == "saved"), reverse=True)
    return choices + (damaged if include_damaged else [])


def find_autosave(study: Study, workspace=None) -> Path | None:
    """The newest readable autosave folder of ``study`` (``autosave`` or ``autosave-<id>``),
    else None."""
    autosaves = [c for c in session_choices(study, workspace) if c.kind == "autosaved"]
    return autosaves[0].folder if autosaves else None
