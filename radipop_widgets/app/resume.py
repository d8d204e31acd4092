"""The offer above the tabs: resume one of the study's saved and autosaved sessions, or
start new."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

import ipywidgets as widgets

from .. import persist
from ..errors import RadipopError
from ..persist import SessionEntry
from ..session import Session
from .context import Context
from .offer import choice_label
from .ui import button, tagged


class ResumePanel:
    """Shown when the opened study has sessions on disk (:func:`persist.session_choices`):
    each one with its time and volumes, newest first and preselected; those that cannot be
    opened are named under them (and in the messages), not offered. While the offer is
    open the new session does not autosave, so the work on disk cannot be overwritten
    before the user chose. ``show_session(session)`` binds the dashboard to the resumed
    session. ``replaces_saved`` says whether Save session may replace the study's saved
    session without asking: the user chose Start new while it was offered (they were told
    so)."""

    def __init__(self, ctx: Context, workspace: Path, show_session: Callable[[Session], None]):
        self.ctx = ctx
        self.workspace = workspace
        self.show_session = show_session
        self.choices: list[SessionEntry] = []
        self.replaces_saved = False
        self.text = widgets.HTML()
        self.choice = widgets.RadioButtons(options=[], layout=widgets.Layout(width="auto"))
        self.damaged_text = widgets.HTML()
        self.resume_button = button("Resume", "Load the chosen session's labels and "
                                    "thresholds", "#c8e6c9", icon="history")
        self.start_new_button = button("Start new", "Keep the fresh session; the saved files "
                                       "stay until you save over them")
        self.widget = widgets.VBox(
            [self.text, self.choice, self.damaged_text,
             widgets.HBox([self.resume_button, self.start_new_button])],
            layout=widgets.Layout(display="none", border="2px solid #8a5a00", padding="4px 8px",
                                  margin="0 0 4px 0"))
        tagged({"resume": self.resume_button, "start-new": self.start_new_button,
                "resume-choice": self.choice, "resume-box": self.widget})
        ctx.jobs.hold(self.resume_button, self.start_new_button)
        self.resume_button.on_click(ctx.callback("Resuming the session")(
            lambda _: self.resume()))
        self.start_new_button.on_click(ctx.callback("Starting a new session")(
            lambda _: self.start_new()))

    @property
    def pending(self) -> bool:
        """Whether the offer waits for a choice."""
        return bool(self.choices)

    @property
    def chosen(self) -> SessionEntry | None:
        """The session chosen in the offer (None when nothing is offered)."""
        index = self.choice.value
        return self.choices[index] if self.choices and index is not None else None

    def offer(self, study) -> None:
        """Offer every session of the study that can be opened, the newest preselected;
        name those that cannot."""
        self._close()
        self.replaces_saved = False
        entries = persist.session_choices(study, self.workspace, include_damaged=True)
        damaged = [entry for entry in entries if entry.damaged]
        for entry in damaged:
            self.ctx.messages.warning(f"A session of this study is left on disk untouched: "
                                      f"{choice_label(entry)}")
        self.choices = [entry for entry in entries if not entry.damaged]
        if not self.choices:
            return
        self.ctx.session.autosave = False
        labels = [choice_label(entry) for entry in self.choices]
        self.choice.options = [(label, i) for i, label in enumerate(labels)]
        self.choice.value = 0
        self.text.value = ("<b>This study has work on disk</b>: choose what to resume "
                           "(newest first), or start new.<br><small>The files on disk stay "
                           "until you choose.</small>")
        self.damaged_text.value = "".join(
            f"<div><small style='color:#b00020'>{html.escape(choice_label(entry))}</small></div>"
            for entry in damaged)
        self.widget.layout.display = "flex"
        self.ctx.messages.warning(f"This study has work on disk ({'; '.join(labels)}): "
                                  "Resume one or Start new (above the tabs).")

    def resume(self) -> None:
        """Replace the new session by the chosen saved or autosaved session."""
        chosen = self.chosen
        if chosen is None or self.ctx.session is None:
            raise RadipopError("There is no saved session to resume for this study.")
        current = self.ctx.require_session()
        discarded = current.can_undo
        session = Session.open(chosen.folder, study=current.study, workspace=self.workspace,
                               autosave=True)
        self._close()
        self.show_session(session)
        self.ctx.status(f"Resumed the {chosen.kind} session from {chosen.folder}"
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
        self.choices = []
        self.choice.options = []
        self.damaged_text.value = ""
        self.widget.layout.display = "none"
