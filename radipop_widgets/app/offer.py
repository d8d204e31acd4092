"""Saved sessions on disk and which one to offer when a study opens (no widgets).

A study can have a saved session (Save session) and autosaved work (after each edit);
the newer of the two is offered, the saved one on a tie (:func:`newest_offer`, pure).

>>> newest_offer([Candidate("autosaved", "a", "2024-05-02T10:00:00+00:00"),
...               Candidate("saved", "s", "2024-05-01T09:00:00+00:00")]).kind
'autosaved'
>>> newest_offer([]) is None
True
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from .. import persist
from ..errors import RadipopError

KINDS = ("autosaved", "saved")     # tie order: the later kind wins


@dataclass(frozen=True)
class Candidate:
    """A session of the study on disk: ``kind`` "saved" or "autosaved", its folder, and
    ``saved_at`` as written (ISO time stamp; "" when unknown)."""

    kind: str
    folder: Path | str
    saved_at: str = ""

    @property
    def what(self) -> str:
        """What the user is offered, in words."""
        return ("work that was autosaved but not saved" if self.kind == "autosaved"
                else "a saved session")

    @property
    def when(self) -> str:
        """``saved_at`` in local time, ``YYYY-MM-DD HH:MM`` ('?' if unknown)."""
        return local_time(self.saved_at)


def newest_offer(candidates) -> Candidate | None:
    """The newest candidate (a saved session before autosaved work of the same time;
    one without a time stamp is the oldest), or None."""
    candidates = list(candidates)
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.saved_at or "", KINDS.index(c.kind)))


def local_time(iso) -> str:
    """An ISO time stamp (as saved) in local time, ``YYYY-MM-DD HH:MM``; '?' if unknown.

    >>> local_time("not a time")
    '?'
    """
    try:
        return dt.datetime.fromisoformat(str(iso)).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "?"


def find_candidates(study, workspace) -> tuple[list[Candidate], list[str]]:
    """The study's saved session and autosaved work in ``workspace``, and a sentence for
    each one that cannot be read (it is left on disk)."""
    found, problems = [], []
    for kind, folder in (("autosaved", persist.find_autosave(study, workspace)),
                         ("saved", persist.find_saved_session(study, workspace))):
        if folder is None:
            continue
        try:
            found.append(Candidate(kind, folder,
                                   persist.read_session_info(folder).get("saved_at") or ""))
        except RadipopError as exc:
            problems.append(f"The {kind} session of this study cannot be read ({exc}); "
                            "it is left on disk untouched.")
    return found, problems


def saved_sessions(workspace: Path) -> dict[str, str]:
    """Resolved study path -> when its session was saved (local time), for the studies
    saved in ``workspace``; unreadable sessions are left out."""
    found = {}
    for state in sorted(Path(workspace).glob(f"*/{persist.STATE_FILE}")):
        try:
            info = persist.read_session_info(state.parent)
        except RadipopError:
            continue
        if info.get("study_path"):
            found[str(Path(info["study_path"]).resolve())] = local_time(info.get("saved_at"))
    return found
