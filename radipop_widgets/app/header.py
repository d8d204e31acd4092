"""The header: the study's title, the organ volumes, the jobs' progress, Undo and Redo."""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..labels import MEASURED
from .context import Context
from .messages import sentence
from .ui import button, mix, tagged


class Header:
    """What is open, how much is labelled, and the edit history."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.title = widgets.HTML()
        self.volumes = widgets.HTML()
        self.undo_button = button("Undo", "Undo (Ctrl+Z)", icon="undo", width="80px")
        self.redo_button = button("Redo", "Redo (Ctrl+Y)", icon="repeat", width="80px")
        self.widget = widgets.HBox(
            [self.title, widgets.HBox([self.volumes, ctx.jobs.progress, self.undo_button,
                                       self.redo_button],
                                      layout=widgets.Layout(align_items="center"))],
            layout=widgets.Layout(justify_content="space-between", align_items="center",
                                  width="100%", border_bottom="1px solid #ddd"))
        tagged({"undo": self.undo_button, "redo": self.redo_button, "volumes": self.volumes,
                "title": self.title})
        ctx.jobs.hold(self.undo_button, self.redo_button)
        ctx.jobs.on_idle(self.update)
        self.undo_button.on_click(ctx.callback("Undoing")(lambda _: self.undo()))
        self.redo_button.on_click(ctx.callback("Redoing")(lambda _: self.redo()))
        self.show_no_study()

    def show(self, session) -> None:
        study = session.study
        n, rows, cols = study.shape
        self.title.value = (f"<b style='font-size:15px'>RadiPOP</b> &nbsp; "
                            f"{html.escape(study.series_description or study.name)} "
                            f"<small>({n} × {rows} × {cols})</small>")

    def show_no_study(self) -> None:
        self.title.value = ("<b style='font-size:15px'>RadiPOP</b> &nbsp; <i>no study open: "
                            "choose one in the Study tab</i>")
        self.undo_button.disabled = self.redo_button.disabled = True

    def update(self) -> None:
        """Volumes and the Undo / Redo buttons after a change."""
        s = self.ctx.session
        if s is None:
            self.undo_button.disabled = self.redo_button.disabled = True
            return
        volumes = s.volumes_ml()
        self.volumes.value = " &nbsp; ".join(
            f"<span style='color:{mix(o.colour, (0, 0, 0), 0.15)}'><b>{o.title}</b> "
            f"{volumes.get(o.name, 0):.1f} mL</span>" for o in MEASURED) + " &nbsp;"
        self.undo_button.disabled = not s.can_undo
        self.redo_button.disabled = not s.can_redo

    def undo(self) -> bool:
        s = self.ctx.require_session()
        done = s.undo()
        self.ctx.status(sentence(s.last_message))
        return done

    def redo(self) -> bool:
        s = self.ctx.require_session()
        done = s.redo()
        self.ctx.status(sentence(s.last_message))
        return done
