"""Session folders on disk: the save, one atomic unit (open, list and paths re-exported).

A session folder holds two files:

- ``labels.nii.gz``: the label volume (0 none, 1 liver, 2 spleen, 3.. other) as
  NIfTI with the study's geometry (:func:`radipop_widgets.labelmap.write_nifti_stream`);
- ``session.json``: the Session's state (per-slice thresholds, ...), the series,
  study and frame-of-reference UIDs, shape, spacing, affine, software version, save
  time, the organ volumes, the SHA-256 of the labels file, an id of the save
  (``save_id``) and of the session that wrote it (``session_id``). No patient metadata.

One save is one atomic unit. Both files are first written in full to temporary files
(fsynced); then the labels file that ``session.json`` names is kept aside as
``.labels.previous.nii.gz``, the new labels file and last the new ``session.json`` are
renamed into place: the rename of ``session.json`` commits the save. On open, the labels
file must have the checksum ``session.json`` recorded; if the process was killed between
the renames, the kept labels of the previous save do, and the previous save opens whole.
Labels of one save never open beside the state of another. A writer holds an exclusive
``flock`` on the folder, a reader a shared one; temporary files a killed save left
behind are removed by the next save.

Two sessions on one study. A save names its session (``session_id``) and the save it
continues (``base``, the ``save_id`` it opened). It may replace the folder's save only if
that save is its own, is the one it started from, or ``replace=True`` says so; otherwise
it raises :class:`~radipop_widgets.errors.SessionConflictError` and writes nothing
(:func:`save_conflict` asks first). Autosave never conflicts: a second session gets its
own autosave folder (:func:`autosave_dir`).

Opening and checking a folder is :mod:`.persist_read`, listing the sessions
:mod:`.persist_list`, where they live :mod:`.persist_paths`; the names the README, the app
and the tests use are importable from here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from . import locks, measure
from ._version import __version__
from .atomic import PendingFile, clean_stale, fsync_dir
from .errors import PathNotAllowedError, SessionConflictError, SessionError, SessionFileError
from .labelmap import check_labels, write_nifti_stream
from .persist_list import SessionEntry, _entry, find_autosave, list_sessions, session_choices
from .persist_paths import (
    AUTOSAVE_DIR,
    LABELS_FILE,
    PREVIOUS_LABELS_FILE,
    STATE_FILE,
    _folder_safe,
    default_session_dir,
    find_saved_session,
    study_key,
    workspace_dir,
)
from .persist_read import (
    FORMAT_NAME,
    FORMAT_VERSION,
    _locked,
    _NewerFormatError,
    _sha256,
    load_session,
    open_session,
    read_session_info,
)
from .study import Study

__all__ = ["LABELS_FILE", "PREVIOUS_LABELS_FILE", "STATE_FILE", "SessionEntry", "autosave_dir",
           "default_session_dir", "find_autosave", "find_saved_session", "list_sessions",
           "load_session", "open_session", "read_session_info", "resolve_inside",
           "save_conflict", "save_session", "session_choices", "workspace_dir"]


def resolve_inside(root, path) -> Path:
    """Resolve ``path`` (relative paths are taken relative to ``root``) and check it lies in ``root``.

    Symbolic links and ``..`` are resolved before the check.

    Raises
    ------
    PathNotAllowedError
        If the resolved path is outside ``root``.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = Path(tmp.name).resolve()
    >>> resolve_inside(root, "exports/a/../liver.nii.gz") == root / "exports" / "liver.nii.gz"
    True
    >>> resolve_inside(root, "../elsewhere")
    Traceback (most recent call last):
    radipop_widgets.errors.PathNotAllowedError: ../elsewhere lies outside the allowed folder ...
    >>> resolve_inside(root, "/etc/passwd")
    Traceback (most recent call last):
    radipop_widgets.errors.PathNotAllowedError: /etc/passwd lies outside the allowed folder ...
    >>> tmp.cleanup()
    """
    root = Path(root).expanduser().resolve()
    resolved = (root / Path(path).expanduser()).resolve()
    if not resolved.is_relative_to(root):
        raise PathNotAllowedError(
            f"{path} lies outside the allowed folder {root}; choose a path inside {root}.")
    return resolved


def autosave_dir(study: Study, workspace=None, session_id=None, base=None) -> Path:
    """Where a session autosaves: ``<default session folder>/autosave``, so that autosaving
    never overwrites the session the user saved.

    With ``session_id`` (and ``base``, the ``save_id`` the session was opened from, if
    any): that folder when it is free or holds this session's own autosave (or the one it
    was opened from); else ``autosave-<session_id>``, so a second session on the same
    study never overwrites the first one's unsaved work.
    """
    shared = default_session_dir(study, workspace) / AUTOSAVE_DIR
    if session_id is None or _may_replace(_current_info(shared), session_id, base):
        return shared
    return shared.with_name(f"{AUTOSAVE_DIR}-{_folder_safe(session_id)}")


def _source_folders(study: Study) -> set[Path]:
    folders = {Path(s.path).resolve().parent for s in study.sources if s.path}
    if study.path is not None:
        p = Path(study.path).resolve()
        folders.add(p if p.is_dir() else p.parent)
    return folders


def _check_not_in_source(folder: Path, study: Study) -> None:
    resolved = folder.resolve()
    for source in _source_folders(study):
        if resolved == source or resolved.is_relative_to(source):
            raise SessionError(
                f"Not saving the session into {folder}: it is inside the study's folder "
                f"{source}, and nothing is written next to the source images. Save into the "
                "workspace (the default) or another folder.")


def _json_default(obj):
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"session state holds {type(obj).__name__}, which JSON cannot store")


class _HashingWriter:
    """A binary file wrapper that hashes what is written (gzip writes sequentially)."""

    def __init__(self, f):
        self._f = f
        self.hash = hashlib.sha256()

    def write(self, data):
        self.hash.update(data)
        return self._f.write(data)

    def flush(self):
        self._f.flush()

    def tell(self):
        return self._f.tell()


def _current_info(folder: Path) -> dict | None:
    """The committed session.json of ``folder``, or None when there is none or it is damaged."""
    try:
        return read_session_info(folder)
    except SessionError:
        return None


def _may_replace(info: dict | None, session_id, base) -> bool:
    if info is None:
        return True
    if session_id is None:
        return True  # a caller that names no session keeps the behaviour before ids
    return info.get("session_id") == session_id or (
        base is not None and info.get("save_id") == base)


def save_conflict(folder, session_id=None, base=None) -> SessionEntry | None:
    """The saved work a save by ``session_id`` (opened from ``base``) into ``folder`` would
    replace without ``replace=True``, or None when the save may go ahead.

    For a user interface to ask before saving ("Replace the session saved at ...?").
    """
    folder = Path(folder)
    info = _current_info(folder)
    if _may_replace(info, session_id, base):
        return None
    return _entry(folder, info, None)


def save_session(folder, labels: np.ndarray, state: dict, study: Study, *, session_id=None,
                 base=None, replace: bool = False, journal: dict | None = None) -> Path:
    """Save the label volume and the session state into ``folder`` as one atomic unit.

    Parameters
    ----------
    folder : path or None
        Session folder, created if needed; None = ``default_session_dir(study)``.
        Must not be inside the study's source folder.
    labels : ndarray of uint8, shape ``study.shape``
    state : dict
        JSON-able state of the Session (thresholds per slice, ...); numpy scalars and
        arrays become numbers and lists. :func:`load_session` returns it as JSON reads
        it back (tuples become lists, dict keys strings).
    study : Study
    session_id : str, optional
        Names the session that saves (recorded in session.json). With it, the save
        refuses to replace another session's save (see ``base`` and ``replace``).
    base : str, optional
        The ``save_id`` this session was opened from (``open_session(...).info``): that
        save may be replaced.
    replace : bool
        Replace whatever the folder holds (the user said so).
    journal : dict, optional
        ``{"id": ..., "seq": n}``: the edit journal of an autosave folder this save
        continues and its last record included (:mod:`radipop_widgets.journal`).

    Returns
    -------
    Path of the session folder.

    Raises
    ------
    SessionConflictError
        The folder holds another session's save (nothing is written).
    SessionError
        Labels of another shape, a folder inside the study's source folder, a folder
        holding a session of a newer format, a folder another process keeps locked.
    """
    folder = default_session_dir(study) if folder is None else Path(folder)
    _check_not_in_source(folder, study)
    if tuple(np.shape(labels)) != tuple(study.shape):
        raise SessionError(f"labels have shape {np.shape(labels)}, the study {study.shape}")
    labels = check_labels(labels, study)
    volumes = measure.volumes_ml(labels, study.spacing)
    save_id = uuid.uuid4().hex
    info = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "software_version": __version__,
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
        "save_id": save_id,
        "session_id": None if session_id is None else str(session_id),
        "series_uid": study.series_uid,
        "study_uid": study.study_uid,
        "frame_of_reference_uid": study.frame_of_reference_uid,
        "study_key": study_key(study),
        "study_path": str(study.path) if study.path is not None else None,
        "shape": list(study.shape),
        "spacing": [float(s) for s in study.spacing],
        "affine": np.asarray(study.affine, float).tolist(),
        "volumes_ml": volumes,
        "labels_sha256": None,
        "state": state,
    }
    if journal is not None:
        info["journal"] = journal
    json.dumps(info, default=_json_default)  # a state JSON cannot hold fails before any write
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder, shared=False):
        clean_stale(folder, everything=True)  # under the lock: every temporary is stale
        _check_may_write(folder, session_id, base, replace)
        pending = []
        try:
            new_labels = PendingFile(folder / LABELS_FILE)
            pending.append(new_labels)
            writer = _HashingWriter(new_labels.file)
            write_nifti_stream(writer, labels, study)
            new_labels.finish()
            info["labels_sha256"] = writer.hash.hexdigest()
            new_state = PendingFile(folder / STATE_FILE)
            pending.append(new_state)
            new_state.file.write(json.dumps(info, indent=1, default=_json_default).encode())
            new_state.finish()
            _keep_committed_labels(folder)
            new_labels.commit()
            new_state.commit()  # the commit point
            fsync_dir(folder)
        finally:
            for p in pending:
                p.discard()
        with contextlib.suppress(OSError):
            os.unlink(folder / PREVIOUS_LABELS_FILE)
    return folder


def _check_may_write(folder: Path, session_id, base, replace: bool) -> None:
    locks.check_writer(folder)  # another kernel edits the study: read-only here
    try:
        info = read_session_info(folder)
    except _NewerFormatError as exc:
        raise SessionError(f"{folder} holds a session of a newer radipop-widgets; saving "
                           "here would destroy it. Save into another folder, or update "
                           "the software.") from exc
    except SessionFileError:
        return  # damaged or absent: nothing readable to protect
    if replace or _may_replace(info, session_id, base):
        return
    entry = _entry(folder, info, None, read_labels=False)
    volumes = entry.volumes_ml or {}
    said = ", ".join(f"{organ} {ml:.1f} mL" for organ, ml in volumes.items()) or "no volumes"
    raise SessionConflictError(
        f"{folder} holds a session saved at {entry.saved_at} by another session ({said}); "
        "saving here would destroy it. Open that session to continue it (Session.open / "
        "Resume), save this one into another folder, or pass replace=True to replace it.",
        folder=folder, saved_at=entry.saved_at, volumes_ml=entry.volumes_ml)


def _keep_committed_labels(folder: Path) -> None:
    """Move the labels file that session.json names aside, so that a save killed between
    its renames still opens the previous save whole."""
    main = folder / LABELS_FILE
    info = _current_info(folder)
    if info is None or not main.is_file():
        return
    digest = info.get("labels_sha256")
    if digest is not None and _sha256(main) != digest:
        return  # an interrupted save's labels; the committed ones are already aside
    os.replace(main, folder / PREVIOUS_LABELS_FILE)
