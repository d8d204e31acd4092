"""Where session folders live: the workspace, a study's folder and key, the file names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .study import Study

LABELS_FILE = "labels.nii.gz"
STATE_FILE = "session.json"
PREVIOUS_LABELS_FILE = ".labels.previous.nii.gz"
WORKSPACE_ENV = "RADIPOP_WORKSPACE"
AUTOSAVE_DIR = "autosave"


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


def _folder_safe(text: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))[:64]
    return safe or "session"


def _holds_session(folder: Path) -> Path | None:
    return folder if (folder / STATE_FILE).is_file() and (folder / LABELS_FILE).is_file() else None


def find_saved_session(study: Study, workspace=None) -> Path | None:
    """The default session folder of ``study`` if a session was saved there, else None."""
    return _holds_session(default_session_dir(study, workspace))
