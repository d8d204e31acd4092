"""The extend part of the Segment panel: carry this slice's labels to its neighbours."""

from __future__ import annotations

import html
from concurrent.futures import Future

import ipywidgets as widgets

from .context import Context
from .ui import button, clamp_int, heading, tagged

DEFAULT_N = 5          # slices to extend by, unless "to the organ's end"


class ExtendPanel:
    """How far to extend (n slices or to the organ's end), the two buttons, the report."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.n = widgets.BoundedIntText(DEFAULT_N, min=1, max=10000, description="Slices",
                                        style={"description_width": "42px"},
                                        layout=widgets.Layout(width="110px"))
        self.to_end = widgets.Checkbox(True, description="or to the organ's end", indent=False,
                                       layout=widgets.Layout(width="170px"))
        self.below_button = button("Extend below", "Carry the labels of this slice downwards")
        self.above_button = button("Extend above", "Carry the labels of this slice upwards")
        self.report = widgets.HTML(layout=widgets.Layout(max_height="72px", overflow="auto"))
        self.rows = [heading("Extend the labels of this slice"),
                     widgets.HBox([self.n, self.to_end, self.below_button, self.above_button],
                                  layout=widgets.Layout(align_items="center")),
                     self.report]
        tagged({"extend-below": self.below_button, "extend-above": self.above_button,
                "extend-n": self.n, "extend-to-end": self.to_end})
        ctx.jobs.hold(self.below_button, self.above_button)
        cb = ctx.callback("Extending the labels")
        self.below_button.on_click(cb(lambda _: self.extend(below=True)))
        self.above_button.on_click(cb(lambda _: self.extend(above=True)))

    def show(self, session) -> None:
        self.n.max = max(1, session.study.n_slices - 1)
        self.report.value = ""

    def reset(self) -> None:
        """How far to extend back to its defaults (another study is opened)."""
        with self.ctx.quiet():
            self.n.value = min(DEFAULT_N, self.n.max)
            self.to_end.value = True

    def extend(self, below: bool = False, above: bool = False) -> Future:
        """Carry this slice's labels below and/or above (n slices, or to the organ's end)
        as a job; returns a Future of the ExtendReport."""
        s = self.ctx.require_session()
        n = None if self.to_end.value else clamp_int(self.n.value, 1, s.study.n_slices)
        z = self.ctx.z
        where = " and ".join(w for w, on in (("below", below), ("above", above)) if on)
        self.report.value = ""

        def work(progress):
            return s.extend(z, below=n if below else 0, above=n if above else 0,
                            progress=progress)

        def done(report):
            self.report.value = ("<pre style='font-size:11px;line-height:1.3;margin:0'>"
                                 f"{html.escape(report.text())}</pre>")
            labelled = report.slices
            reach = f"slices {labelled[0]}-{labelled[-1]}" if labelled else "no slice"
            self.ctx.status(f"Extended the labels of slice {z} {where} to {len(labelled)} "
                            f"slice(s) ({reach}); the report is under the Extend buttons.")
        return self.ctx.jobs.run("Extending", work, done, "Extending the labels")
