"""Session folders on disk: save / load, where sessions live.

A session folder holds two files:

- ``labels.nii.gz``: the label volume (0 none, 1 liver, 2 spleen, 3.. other) as
  NIfTI with the study's geometry (:func:`radipop_widgets.labelmap.write_nifti_stream`);
- ``session.json``: the Session's state (per-slice thresholds, ...), the series,
  study and frame-of-reference UIDs, shape, spacing, affine, software version
  and save time. No patient metadata.

Every file is written to a temporary file in the same folder, fsynced and then
renamed over the old one (:mod:`radipop_widgets.atomic`), so a crash during a save
leaves either the previous file or the new one, never a broken one. Both
temporary files are complete before the first rename, so the window in which
the two files can come from different saves is two renames wide.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ._version import __version__
from .atomic import atomic_writer
from .errors import MaskFileError, PathNotAllowedError, SessionError
from .labelmap import read_nifti_labels, write_nifti_stream
from .study import Study

LABELS_FILE = "labels.nii.gz"
STATE_FILE = "session.json"
FORMAT_NAME = "radipop-widgets session"
FORMAT_VERSION = 1
WORKSPACE_ENV = "RADIPOP_WORKSPACE"
AUTOSAVE_DIR = "autosave"
_AFFINE_TOLERANCE_MM = 0.01


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


def autosave_dir(study: Study, workspace=None) -> Path:
    """Where autosave writes: ``<default session folder>/autosave``, so that autosaving
    never overwrites the session the user saved."""
    return default_session_dir(study, workspace) / AUTOSAVE_DIR


def _holds_session(folder: Path) -> Path | None:
    return folder if (folder / STATE_FILE).is_file() and (folder / LABELS_FILE).is_file() else None


def find_saved_session(study: Study, workspace=None) -> Path | None:
    """The default session folder of ``study`` if a session was saved there, else None."""
    return _holds_session(default_session_dir(study, workspace))


def find_autosave(study: Study, workspace=None) -> Path | None:
    """The autosave folder of ``study`` if autosave wrote one, else None."""
    return _holds_session(autosave_dir(study, workspace))


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


def save_session(folder, labels: np.ndarray, state: dict, study: Study) -> Path:
    """Save the label volume and the session state into ``folder`` atomically.

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

    Returns
    -------
    Path of the session folder.
    """
    folder = default_session_dir(study) if folder is None else Path(folder)
    _check_not_in_source(folder, study)
    if tuple(labels.shape) != tuple(study.shape):
        raise SessionError(f"labels have shape {labels.shape}, the study {study.shape}")
    info = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "software_version": __version__,
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "series_uid": study.series_uid,
        "study_uid": study.study_uid,
        "frame_of_reference_uid": study.frame_of_reference_uid,
        "study_key": study_key(study),
        "study_path": str(study.path) if study.path is not None else None,
        "shape": list(study.shape),
        "spacing": [float(s) for s in study.spacing],
        "affine": np.asarray(study.affine, float).tolist(),
        "state": state,
    }
    text = json.dumps(info, indent=1, default=_json_default).encode()
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # Both temporary files complete (and fsynced) before the first rename.
        f_json = stack.enter_context(atomic_writer(folder / STATE_FILE))
        f_labels = stack.enter_context(atomic_writer(folder / LABELS_FILE))
        write_nifti_stream(f_labels, labels, study)
        f_json.write(text)
    return folder


def read_session_info(folder) -> dict:
    """The parsed ``session.json`` of a session folder (UIDs, shape, spacing, affine,
    study_path, software_version, saved_at, and the Session's ``state``).

    Raises
    ------
    SessionError
        If the folder or its session.json is missing or malformed.
    """
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise SessionError(f"{folder} is not a saved session: {STATE_FILE} is missing. "
                           "Choose the folder that Session.save wrote.")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionError(f"{path} is not valid JSON ({exc}); the session cannot be "
                           "reopened. Restore it from a backup or start a new session.") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise SessionError(f"{path} is not a radipop-widgets session file.")
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise SessionError(f"{path} was written by a newer radipop-widgets "
                           f"({info.get('software_version')}); update the software to open it.")
    for key in ("shape", "affine", "state"):
        if key not in info:
            raise SessionError(f"{path} lacks the entry {key!r}; the file is damaged.")
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


def load_session(folder, study: Study | None = None) -> tuple[np.ndarray, dict]:
    """Read a session folder written by :func:`save_session`.

    Parameters
    ----------
    folder : path
    study : Study, optional
        When given, the session must belong to it (same series, shape and geometry).

    Returns
    -------
    labels : ndarray of uint8 (slices, rows, columns)
    state : dict, the ``state`` given to :func:`save_session` (after a JSON round trip)

    Raises
    ------
    SessionError
        Missing or malformed session.json, or a session of another series.
    MaskFileError
        labels.nii.gz missing, unreadable, or not matching session.json.
    """
    info = read_session_info(folder)
    if study is not None:
        _check_same_series(info, study, folder)
    labels_path = Path(folder) / LABELS_FILE
    labels, affine = read_nifti_labels(labels_path)
    if labels.shape != tuple(info["shape"]):
        raise MaskFileError(f"{labels_path} has shape {labels.shape} but the session "
                            f"{tuple(info['shape'])}; the label file does not belong here.")
    if not np.allclose(affine, info["affine"], atol=_AFFINE_TOLERANCE_MM):
        raise MaskFileError(f"{labels_path} has another orientation or position than the "
                            "session recorded; it was replaced or resampled by another tool.")
    return labels, info["state"]
