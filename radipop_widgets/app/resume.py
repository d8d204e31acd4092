"""The offer above the tabs: resume the study's saved (or autosaved) session, or start new."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

import ipywidgets as widgets

from ..errors import RadipopError
from ..session import Session
from .context import Context
from .offer import find_candidates, newest_offer
from .ui import button, tagged


class ResumePanel:
    """Shown when the opened study has a session on disk. While the offer is open the
    new session does not autosave, so the work on disk cannot be overwritten before the
    user chose. ``show_session(session)`` binds the dashboard to the resumed session.
    ``replaces_saved`` says whether Save session may replace the study's saved session
    without asking: the user chose Start new while it was offered (they were told so)."""

    def __init__(self, ctx: Context, workspace: Path, show_session: Callable[[Session], None]):
        self.ctx = ctx
        self.workspace = workspace
        self.show_session = show_session
        self.offered: Path | None = None
        self.replaces_saved = False
        self.text = widgets.HTML()
        self.resume_button = button("Resume saved session", "Load the saved labels and "
                                    "thresholds", "#c8e6c9", icon="history")
        self.start_new_button = button("Start new", "Keep the fresh session; the saved files "
                                       "stay until you save over them")
        self.widget = widgets.VBox(
            [self.text, widgets.HBox([self.resume_button, self.start_new_button])],
            layout=widgets.Layout(display="none", border="2px solid #8a5a00", padding="4px 8px",
                                  margin="0 0 4px 0"))
        tagged({"resume": self.resume_button, "start-new": self.start_new_button,
                "resume-box": self.widget})
        ctx.jobs.hold(self.resume_button, self.start_new_button)
        self.resume_button.on_click(ctx.callback("Resuming the saved session")(
            lambda _: self.resume()))
        self.start_new_button.on_click(ctx.callback("Starting a new session")(
            lambda _: self.start_new()))

    @property
    def pending(self) -> bool:
        """Whether the offer waits for a choice."""
        return self.offered is not None

    def offer(self, study) -> None:
        """Offer the newest of the study's saved session and autosaved work, if any."""
        self._close()
        self.replaces_saved = False
        candidates, problems = find_candidates(study, self.workspace)
        for problem in problems:
            self.ctx.messages.warning(problem)
        chosen = newest_offer(candidates)
        if chosen is None:
            return
        self.offered = Path(chosen.folder)
        self.ctx.session.autosave = False
        self.text.value = (
            f"<b>This study has {chosen.what}</b> ({chosen.kind} {html.escape(chosen.when)})."
            "<br><small>Resume it, or start new: the files on disk stay until you "
            "choose.</small>")
        self.widget.layout.display = "flex"
        self.ctx.messages.warning(f"This study has {chosen.what} ({chosen.kind} "
                                  f"{chosen.when}): Resume it or Start new (above the tabs).")

    def resume(self) -> None:
        """Replace the new session by the offered saved or autosaved session."""
        offered = self.offered
        if offered is None or self.ctx.session is None:
            raise RadipopError("There is no saved session to resume for this study.")
        current = self.ctx.require_session()
        discarded = current.can_undo
        session = Session.open(offered, study=current.study, workspace=self.workspace,
                               autosave=True)
        self._close()
        self.show_session(session)
        self.ctx.status(f"Resumed the session from {offered}"
                        + (" (the edits made before were discarded)." if discarded else "."))

    def start_new(self) -> None:
        """Keep the new session and start autosaving it; a saved session stays on disk
        until Save session replaces it."""
        self.replaces_saved = self.replaces_saved or self.pending
        self._close()
        if self.ctx.session is not None:
            self.ctx.session.autosave = True
        self.ctx.status("New session, autosaved after each edit. The saved session stays on "
                        "disk until you press Save session, which replaces it.")

    def _close(self) -> None:
        self.offered = None
        self.widget.layout.display = "none"
