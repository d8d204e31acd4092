"""Opening a session folder: session.json read and checked, the labels file its checksum
names, under a shared ``flock`` (a save holds an exclusive one).

Damaged folders. ``session.json`` is checked entry by entry (types, sizes, no NUL in
paths, nesting); anything wrong raises :class:`~radipop_widgets.errors.SessionFileError`,
never TypeError / ValueError / RecursionError. The labels file's header is checked
against ``session.json`` (shape, type, memory) before anything is inflated.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import MaskFileError, SessionError, SessionFileError
from .io._common import available_memory
from .journal import JOURNAL_FILE, read_journal, replay
from .labelmap import read_nifti_labels, read_nifti_labels_header
from .persist_paths import LABELS_FILE, PREVIOUS_LABELS_FILE, STATE_FILE, study_key
from .study import Study

FORMAT_NAME = "radipop-widgets session"
FORMAT_VERSION = 1
#: A session.json larger than this is not one of ours (a real one is a few hundred KB).
MAX_STATE_BYTES = 64 * 2 ** 20
#: How long a save or load waits for another process's save into the same folder.
LOCK_TIMEOUT_S = 30.0
_AFFINE_TOLERANCE_MM = 0.01
_MAX_TEXT = 4096


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


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


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
    journal = info.get("journal")
    if journal is not None and not (
            isinstance(journal, dict) and isinstance(journal.get("id"), str)
            and 0 < len(journal["id"]) <= 64 and type(journal.get("seq")) is int
            and journal["seq"] >= 0):
        raise _fail(path, f"journal {repr(journal)[:60]} is not a journal id and record number")
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
    session.json (``info["save_id"]`` is the ``base`` of the next save). In an autosave
    folder the journalled edits are applied: ``info["journal_records"]`` says how many,
    ``info["saved_at"]`` and ``info["volumes_ml"]`` are then those of the last one."""

    labels: np.ndarray
    state: dict
    info: dict


def open_session(folder, study: Study | None = None) -> LoadedSession:
    """Read a session folder written by :func:`save_session`: labels, state and info;
    in an autosave folder with the edits of its journal applied (a torn last record is
    ignored; see :mod:`radipop_widgets.journal`).

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
        journal = read_journal(folder / JOURNAL_FILE, shape) if "journal" in info else None
    if not np.allclose(affine, info["affine"], atol=_AFFINE_TOLERANCE_MM):
        raise MaskFileError(f"{labels_path} has another orientation or position than the "
                            "session recorded; it was replaced or resampled by another tool.")
    replayed = replay(labels, journal, info.get("journal"))
    state = info["state"] if replayed.state is None else replayed.state
    info = dict(info, journal_records=replayed.applied)
    if replayed.last is not None:
        info["saved_at"] = replayed.last.at or info.get("saved_at")
        if replayed.last.volumes_ml is not None:
            info["volumes_ml"] = replayed.last.volumes_ml
    return LoadedSession(labels, state, info)


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
