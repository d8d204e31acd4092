"""Where each study of a cohort stands: not started, in progress, done (by whom, when).

The status lives in the workspace, never next to the DICOM: one small JSON record per
study in ``<workspace>/.cohort/studies/``. A study is *in progress* when it has a saved
or autosaved session (``persist.list_sessions``), *done* only by the explicit action
:meth:`StatusStore.mark_done`, which :meth:`StatusStore.undo_done` takes back. Every
action is kept in the record's ``events`` (who, when), so the record says who finished a
study and who reopened it. Records are read-modify-written under a file lock, so two
annotators marking studies at the same time lose nothing.

Examples
--------
>>> import tempfile
>>> store = StatusStore(tempfile.mkdtemp())
>>> store.done("uid-1.2.3")
>>> store.mark_done("uid-1.2.3", user="alice")["by"]
'alice'
>>> store.done("uid-1.2.3")["by"]
'alice'
>>> store.undo_done("uid-1.2.3", user="bob")
>>> store.done("uid-1.2.3") is None
True
>>> [e["action"] for e in store.record("uid-1.2.3")["events"]]
['done', 'undone']
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import RadipopError
from ..locks import current_user
from ..persist_paths import workspace_dir

NOT_STARTED, IN_PROGRESS, DONE = "not started", "in progress", "done"
STATES = (NOT_STARTED, IN_PROGRESS, DONE)
COHORT_DIR = ".cohort"


class CohortError(RadipopError):
    """A cohort action that cannot be done as asked (the message says what to do)."""


def cohort_dir(workspace=None) -> Path:
    """``<workspace>/.cohort``: the worklist's status records and scan cache."""
    return workspace_dir(workspace) / COHORT_DIR


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class StatusStore:
    """The per-study records of a workspace (``key`` as :func:`worklist.row_key` makes it)."""

    def __init__(self, workspace=None):
        self.folder = cohort_dir(workspace) / "studies"

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")

    def record(self, key: str) -> dict:
        """The study's record (``key``, ``events``, ``info``); an empty one when none."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("key") == key:
                data.setdefault("events", [])
                data.setdefault("info", {})
                return data
        except (OSError, ValueError):
            pass
        return {"key": key, "events": [], "info": {}}

    @contextlib.contextmanager
    def _change(self, key: str):
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            record = self.record(key)
            yield record
            atomic_write_bytes(self._path(key), json.dumps(record, indent=1).encode())
        finally:
            os.close(fd)

    def done(self, key: str) -> dict | None:
        """The ``done`` event (``by``, ``at``) when the study is done now, else None."""
        events = self.record(key)["events"]
        return dict(events[-1]) if events and events[-1]["action"] == "done" else None

    def mark_done(self, key: str, user: str | None = None, **note) -> dict:
        """Mark the study done (``note``: e.g. the session's save time); returns the event."""
        event = {"action": "done", "by": user or current_user(), "at": _now(), **note}
        with self._change(key) as record:
            record["events"].append(event)
        return event

    def undo_done(self, key: str, user: str | None = None) -> None:
        """Take a "done" back: the study is in progress again (its sessions are kept)."""
        with self._change(key) as record:
            if not record["events"] or record["events"][-1]["action"] != "done":
                raise CohortError(f"{key} is not marked done; nothing to undo.")
            record["events"].append({"action": "undone", "by": user or current_user(),
                                     "at": _now()})

    def set_info(self, key: str, **info) -> None:
        """Remember what was learned of the study (its estimated phase, its flags, ...)."""
        with self._change(key) as record:
            record["info"].update(info)

    def info(self, key: str) -> dict:
        return self.record(key)["info"]
