"""Session folders on disk: save / load, where sessions live, which ones there are.

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

Damaged folders. ``session.json`` is checked entry by entry (types, sizes, no NUL in
paths, nesting); anything wrong raises :class:`~radipop_widgets.errors.SessionFileError`,
never TypeError / ValueError / RecursionError. :func:`list_sessions` and
:func:`session_choices` list damaged sessions as damaged instead of raising. The labels
file's header is checked against ``session.json`` (shape, type, memory) before anything
is inflated.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import measure
from ._version import __version__
from .atomic import PendingFile, clean_stale, fsync_dir
from .errors import (
    MaskFileError,
    PathNotAllowedError,
    SessionConflictError,
    SessionError,
    SessionFileError,
)
from .io._common import available_memory
from .labelmap import (
    check_labels,
    read_nifti_labels,
    read_nifti_labels_header,
    write_nifti_stream,
)
from .study import Study

LABELS_FILE = "labels.nii.gz"
STATE_FILE = "session.json"
PREVIOUS_LABELS_FILE = ".labels.previous.nii.gz"
FORMAT_NAME = "radipop-widgets session"
FORMAT_VERSION = 1
WORKSPACE_ENV = "RADIPOP_WORKSPACE"
AUTOSAVE_DIR = "autosave"
#: A session.json larger than this is not one of ours (a real one is a few hundred KB).
MAX_STATE_BYTES = 64 * 2 ** 20
#: How long a save or load waits for another process's save into the same folder.
LOCK_TIMEOUT_S = 30.0
#: How deep :func:`list_sessions` looks for session folders below the workspace.
LIST_DEPTH = 4
_AFFINE_TOLERANCE_MM = 0.01
_MAX_TEXT = 4096


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


def workspace_dir(workspace=None) -> Path:
    """The folder holding session folders: ``workspace``, else $RADIPOP_WORKSPACE,
    else ``~/.radipop-widgets/sessions``."""
    if workspace is None:
        workspace = os.environ.get(WORKSPACE_ENV) or Path.home() / ".radipop-widgets" / "sessions"
    return Path(workspace).expanduser()


def study_key(study: Study) -> str:
    """A folder-safe key naming the study's series, stable across reloads.

    ``uid-<SeriesInstanceUID>`` when the series has a UID; otherwise ``hash-<16 hex>``
    from the source file names, instance numbers, the geometry (shape, affine) and a
    sparse sample of the pixels (so two anonymous series with the same geometry differ).

    Examples
    --------
    >>> hu = np.zeros((2, 3, 4), np.int16)
    >>> study_key(Study(hu=hu, spacing=(1, 1, 1), affine=np.eye(4), series_uid="1.2.840.9"))
    'uid-1.2.840.9'
    >>> anonymous = Study(hu=hu, spacing=(1, 1, 1), affine=np.eye(4))
    >>> key = study_key(anonymous)
    >>> key.startswith("hash-"), len(key), key == study_key(anonymous)
    (True, 21, True)
    >>> str(default_session_dir(anonymous, "/data/sessions")) == f"/data/sessions/{key}"
    True
    """
    uid = study.series_uid or ""
    if uid and all(c.isdigit() or c == "." for c in uid):
        return f"uid-{uid}"
    h = hashlib.sha256()
    h.update(uid.encode())
    for source in study.sources:
        name = Path(source.path).name if source.path else ""
        h.update(f"{name}|{source.instance_number}|{source.sop_instance_uid or ''};".encode())
    h.update(repr(tuple(study.shape)).encode())
    h.update(np.round(np.asarray(study.affine, float), 2).tobytes())
    h.update(np.ascontiguousarray(study.hu[:, ::37, ::37]).tobytes())
    return f"hash-{h.hexdigest()[:16]}"


def default_session_dir(study: Study, workspace=None) -> Path:
    """Where the session of ``study`` is saved by default: ``<workspace>/<study_key(study)>``."""
    return workspace_dir(workspace) / study_key(study)


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


def _folder_safe(text: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))[:64]
    return safe or "session"


def _holds_session(folder: Path) -> Path | None:
    return folder if (folder / STATE_FILE).is_file() and (folder / LABELS_FILE).is_file() else None


def find_saved_session(study: Study, workspace=None) -> Path | None:
    """The default session folder of ``study`` if a session was saved there, else None."""
    return _holds_session(default_session_dir(study, workspace))


def find_autosave(study: Study, workspace=None) -> Path | None:
    """The newest readable autosave folder of ``study`` (``autosave`` or ``autosave-<id>``),
    else None."""
    autosaves = [c for c in session_choices(study, workspace) if c.kind == "autosaved"]
    return autosaves[0].folder if autosaves else None


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


# ---------------------------------------------------------------- locking

@contextlib.contextmanager
def _locked(folder: Path, shared: bool):
    """Hold a ``flock`` on ``folder`` (shared for readers, exclusive for a save).

    A no-op where the folder cannot be opened or locked (the writes stay atomic; only
    concurrent writers are no longer serialised).
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SessionError(
                        f"{folder} is being written by another process for over "
                        f"{LOCK_TIMEOUT_S:.0f} s; try again, or close the other "
                        "radipop-widgets session that uses this folder.") from None
                time.sleep(0.02)
            except OSError:
                break  # file system without flock
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------- save

def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


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
                 base=None, replace: bool = False) -> Path:
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


# ---------------------------------------------------------------- read

class _NewerFormatError(SessionFileError):
    """session.json of a format version this software does not know."""


def _fail(path, what) -> SessionFileError:
    return SessionFileError(f"{path}: {what}; the file is damaged. Restore the folder from a "
                            "backup, or start a new session (the folder is left as it is).")


def _is_number(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _check_info(info, path) -> dict:
    """``info`` if every entry radipop-widgets reads has the right type, else SessionFileError."""
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise SessionFileError(f"{path} is not a radipop-widgets session file.")
    version = info.get("format_version")
    if type(version) is not int:
        shown = repr(version)[:40]
        raise _fail(path, f"format_version {shown} is not a whole number")
    if version > FORMAT_VERSION:
        software = info.get("software_version")
        software = software[:40] if isinstance(software, str) else "?"
        raise _NewerFormatError(f"{path} was written by a newer radipop-widgets ({software}); "
                                "update the software to open it.")
    if version < 1:
        raise _fail(path, f"format_version {version} is not a version")
    for key in ("shape", "affine", "state"):
        if key not in info:
            raise SessionFileError(f"{path} lacks the entry {key!r}; the file is damaged.")
    shape = info["shape"]
    if not (isinstance(shape, list) and len(shape) == 3
            and all(type(n) is int and 0 < n < 2 ** 31 for n in shape)):
        raise _fail(path, f"shape {repr(shape)[:60]} is not three positive whole numbers")
    affine = info["affine"]
    if not (isinstance(affine, list) and len(affine) == 4
            and all(isinstance(row, list) and len(row) == 4 and all(_is_number(v) for v in row)
                    for row in affine)):
        raise _fail(path, "affine is not a 4 x 4 matrix of finite numbers")
    spacing = info.get("spacing")
    if spacing is not None and not (isinstance(spacing, list) and len(spacing) == 3 and all(
            _is_number(v) and v > 0 for v in spacing)):
        raise _fail(path, f"spacing {repr(spacing)[:60]} is not three positive numbers")
    if not isinstance(info["state"], dict):
        raise _fail(path, f"state is a {type(info['state']).__name__}, not an object")
    for key in ("series_uid", "study_uid", "frame_of_reference_uid", "study_key",
                "study_path", "saved_at", "software_version", "session_id", "save_id"):
        value = info.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= _MAX_TEXT
                                      and "\x00" not in value):
            raise _fail(path, f"{key} {repr(value)[:60]} is not a text without NUL characters")
    digest = info.get("labels_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64
                                   and all(c in "0123456789abcdef" for c in digest)):
        raise _fail(path, f"labels_sha256 {repr(digest)[:70]} is not a SHA-256 checksum")
    volumes = info.get("volumes_ml")
    if volumes is not None and not (isinstance(volumes, dict) and all(
            isinstance(k, str) and _is_number(v) and v >= 0 for k, v in volumes.items())):
        raise _fail(path, f"volumes_ml {repr(volumes)[:60]} is not organ names and volumes")
    return info


def read_session_info(folder) -> dict:
    """The parsed ``session.json`` of a session folder (UIDs, shape, spacing, affine,
    study_path, software_version, saved_at, save_id, session_id, volumes_ml,
    labels_sha256 and the Session's ``state``), every entry checked for its type. A
    session saved before saves had ids gets ``save_id`` ``"file-<hash of session.json>"``.

    Raises
    ------
    SessionFileError (a SessionError)
        The folder or its session.json is missing, too large, not JSON, nested too
        deeply, of a newer format, or an entry has the wrong type (e.g. a non-text or
        NUL-containing ``study_path``, a ``format_version`` that is not a number).
    """
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise SessionFileError(f"{folder} is not a saved session: {STATE_FILE} is missing. "
                               "Choose the folder that Session.save wrote.")
    try:
        size = path.stat().st_size
        if size > MAX_STATE_BYTES:
            raise _fail(path, f"it is {size / 2 ** 20:.0f} MiB, too large for a session file "
                        f"(at most {MAX_STATE_BYTES / 2 ** 20:.0f} MiB)")
        raw = path.read_bytes()
        info = json.loads(raw.decode("utf-8"))
    except SessionFileError:
        raise
    except RecursionError:
        raise _fail(path, "its JSON is nested too deeply to be read") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise SessionFileError(f"{path} is not valid JSON ({str(exc)[:200]}); the session "
                               "cannot be reopened. Restore it from a backup or start a new "
                               "session.") from None
    info = _check_info(info, path)
    if info.get("save_id") is None:  # saved before saves had ids: one from the file itself
        info["save_id"] = "file-" + hashlib.sha256(raw).hexdigest()[:32]
    return info


def _check_same_series(info: dict, study: Study, folder) -> None:
    if info.get("series_uid") or study.series_uid:
        same = info.get("series_uid") == study.series_uid
        what = f"series {info.get('series_uid')}, this study is series {study.series_uid}"
    else:
        same = info.get("study_key") == study_key(study)
        what = "another series without UID (its files or pixels differ)"
    if not same:
        raise SessionError(f"The session in {folder} was saved for {what}. "
                           "Open it with the study it was made on.")
    if tuple(info["shape"]) != tuple(study.shape):
        raise SessionError(f"The session in {folder} has shape {tuple(info['shape'])}, the "
                           f"study {study.shape}: the series has changed since the save.")
    if not np.allclose(info["affine"], study.affine, atol=_AFFINE_TOLERANCE_MM):
        raise SessionError(f"The session in {folder} was saved with another slice geometry "
                           "than this study has; the labels would not line up.")


class LoadedSession(NamedTuple):
    """What :func:`open_session` read: the labels, the Session's state, the whole
    session.json (``info["save_id"]`` is the ``base`` of the next save)."""

    labels: np.ndarray
    state: dict
    info: dict


def open_session(folder, study: Study | None = None) -> LoadedSession:
    """Read a session folder written by :func:`save_session`: labels, state and info.

    Parameters
    ----------
    folder : path
    study : Study, optional
        When given, the session must belong to it (same series, shape and geometry).

    Raises
    ------
    SessionError
        Missing or malformed session.json (SessionFileError), a session of another series.
    MaskFileError
        labels.nii.gz missing, unreadable, not the file saved with session.json (its
        checksum differs), or not matching session.json (shape, geometry).
    """
    folder = Path(folder)
    with _locked(folder, shared=True):
        info = read_session_info(folder)
        if study is not None:
            _check_same_series(info, study, folder)
        shape = tuple(info["shape"])
        needed = math.prod(shape) * 2
        if needed > available_memory():
            raise SessionFileError(
                f"{folder / STATE_FILE}: the session's labels {shape} would need "
                f"{needed / 2 ** 30:.2f} GiB, more memory than is available; the file is "
                "damaged or belongs to a machine with more memory.")
        labels_path = _committed_labels(folder, info)
        labels, affine = read_nifti_labels(labels_path, shape=shape)
    if not np.allclose(affine, info["affine"], atol=_AFFINE_TOLERANCE_MM):
        raise MaskFileError(f"{labels_path} has another orientation or position than the "
                            "session recorded; it was replaced or resampled by another tool.")
    return LoadedSession(labels, info["state"], info)


def load_session(folder, study: Study | None = None) -> tuple[np.ndarray, dict]:
    """``(labels, state)`` of a session folder (see :func:`open_session`).

    Returns
    -------
    labels : ndarray of uint8 (slices, rows, columns)
    state : dict, the ``state`` given to :func:`save_session` (after a JSON round trip)
    """
    loaded = open_session(folder, study)
    return loaded.labels, loaded.state


def _committed_labels(folder: Path, info: dict) -> Path:
    """The labels file saved with ``info``: labels.nii.gz, or the previous labels a killed
    save kept aside. Raises MaskFileError (from the header alone: nothing is inflated)."""
    main = folder / LABELS_FILE
    digest = info.get("labels_sha256")
    if digest is None:
        return main  # saved before checksums were recorded
    for candidate in (main, folder / PREVIOUS_LABELS_FILE):
        if candidate.is_file() and _sha256(candidate) == digest:
            return candidate
    _img, affine = read_nifti_labels_header(main, tuple(info["shape"]))
    if not np.allclose(affine, info["affine"], atol=_AFFINE_TOLERANCE_MM):
        raise MaskFileError(f"{main} has another orientation or position than the "
                            "session recorded; it was replaced or resampled by another tool.")
    raise MaskFileError(
        f"{main} is not the label file saved with {STATE_FILE} (its checksum differs): it "
        "was edited or replaced after the save, or a save into this folder was interrupted "
        "and its labels lost. Restore the folder from a backup, or open the study and "
        "start a new session.")


# ---------------------------------------------------------------- listing

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
    try:
        volumes = _volumes(folder, info) if read_labels else info.get("volumes_ml")
    except SessionError as exc:
        return SessionEntry(_kind(folder), folder, problem=str(exc))
    return SessionEntry(_kind(folder), folder, info.get("saved_at"), volumes,
                        info.get("session_id"), info.get("save_id"), info.get("study_path"),
                        info.get("series_uid"), problem)


def _read_entry(folder: Path) -> SessionEntry:
    try:
        info = read_session_info(folder)
    except SessionError as exc:
        return SessionEntry(_kind(folder), folder, problem=str(exc))
    if not (folder / LABELS_FILE).is_file() and not (folder / PREVIOUS_LABELS_FILE).is_file():
        return SessionEntry(_kind(folder), folder, problem=f"{folder / LABELS_FILE} is missing")
    return _entry(folder, info, None)


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
