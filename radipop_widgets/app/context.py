"""What a panel may use: the session, the viewer, the messages, the jobs, the current slice."""

from __future__ import annotations

import contextlib

from ..errors import RadipopError
from .jobs import JobRunner
from .messages import MessagePanel, guarded
from .viewer import Viewer


class Context:
    """The narrow interface between the panels and the rest of the dashboard.

    ``session`` is the open Session (None before a study is open) and ``z`` the slice
    shown. Panels read and edit through it; the App sets both. ``read_only`` says why the
    study may not be edited here (another kernel edits it), else None.
    """

    def __init__(self, viewer: Viewer, messages: MessagePanel, jobs: JobRunner):
        self.viewer = viewer
        self.messages = messages
        self.jobs = jobs
        self.session = None
        self.z = 0
        self.read_only: str | None = None
        self._syncing = False

    def status(self, text: str) -> None:
        """Tell the user something in the message panel."""
        self.messages.info(text)

    def require_session(self):
        """The open Session, for an edit: raises while a job runs, without a study, or
        while the study is read-only here."""
        self.jobs.check_idle()
        if self.session is None:
            raise RadipopError("No study is open: choose one in the Study tab and press Open.")
        if self.read_only is not None:
            raise RadipopError(f"This study is read-only here: {self.read_only}. Press Take "
                               "over in the Study tab to edit it.")
        return self.session

    @property
    def syncing(self) -> bool:
        """True while widget values are set by the code (observers then do nothing)."""
        return self._syncing

    @contextlib.contextmanager
    def quiet(self):
        """Set widget values without their observers acting on the change."""
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def callback(self, action: str):
        """Decorator for widget callbacks: one at a time (the jobs' lock), errors to the
        message panel as "<action> failed: ..."."""
        def decorate(handler):
            guarded_handler = guarded(self.messages, action)(handler)

            def locked(*args, **kwargs):
                with self.jobs.lock:
                    return guarded_handler(*args, **kwargs)
            return locked
        return decorate
