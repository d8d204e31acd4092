"""The thresholds of the Segment panel: one slider per threshold, the organs' ranges beside
them, the scope, the suggestion and the study's contrast phase."""

from __future__ import annotations

import ipywidgets as widgets

from ..errors import RadipopError
from .context import Context
from .ranges import OrganRangesPanel
from .ui import button, clamp_int, heading, tagged

THRESHOLD_RANGES = {"bone": (100, 1500), "vessel": (50, 600), "organ": (-100, 300)}


class ThresholdsPanel:
    """The (bone, vessel, organ) HU sliders show the thresholds of the slice shown; moving
    one sends only its own value, to this slice or to every slice (``scope``)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.sliders = {
            name: widgets.IntSlider(0, lo, hi, description=name.capitalize(),
                                    continuous_update=False, style={"description_width": "52px"},
                                    layout=widgets.Layout(width="360px"))
            for name, (lo, hi) in THRESHOLD_RANGES.items()}
        self.scope = widgets.ToggleButtons(
            options=[("This slice", "slice"), ("All slices", "all")], value="all",
            style={"button_width": "80px"},
            tooltips=["New thresholds apply to this slice only",
                      "New thresholds apply to every slice"])
        self.suggested_button = button("Use suggested", "Set the study's suggested thresholds")
        self.suggested_text = widgets.HTML(layout=widgets.Layout(flex="1 1 180px"))
        for control in (self.scope, self.suggested_button):   # kept whole ("Use sugges…")
            control.layout.flex = "0 0 auto"
        self.ranges = OrganRangesPanel(ctx)
        self.rows = [heading("Thresholds (HU): bone and vessels are removed, organ is kept above"),
                     widgets.HBox([widgets.VBox(list(self.sliders.values())), self.ranges.widget],
                                  layout=widgets.Layout(flex_flow="row wrap")),
                     widgets.HBox([self.scope, self.suggested_button, self.suggested_text],
                                  layout=widgets.Layout(align_items="center"))]
        tagged({"scope": self.scope, "suggested": self.suggested_text,
                **{f"threshold-{n}": s for n, s in self.sliders.items()}})
        ctx.jobs.hold(*self.sliders.values(), self.suggested_button)
        cb = ctx.callback
        for name, slider in self.sliders.items():
            slider.observe(cb("Changing the thresholds")(
                lambda change, name=name: self._slider_moved(name, change["new"])), "value")
        self.suggested_button.on_click(cb("Setting the suggested thresholds")(
            lambda _: self.apply_suggested()))

    def _slider_moved(self, name: str, value) -> None:
        if self.ctx.syncing:
            return
        try:
            self.set_thresholds(**{name: value})
        except RadipopError:
            if self.ctx.session is not None:   # the sliders show what applies
                self.sync()
            raise

    def set_thresholds(self, bone=None, vessel=None, organ=None) -> None:
        """Apply the thresholds given (HU, clamped to the sliders' ranges; None keeps one)
        to this slice or all slices, as the scope says."""
        values = {}
        for name, value in (("bone", bone), ("vessel", vessel), ("organ", organ)):
            if value is not None:
                clamped = clamp_int(value, *THRESHOLD_RANGES[name])
                if clamped is None:
                    raise RadipopError(f"The {name} threshold must be a number of HU.")
                values[name] = clamped
        self._apply(**values)

    def apply_suggested(self) -> None:
        """Set the study's suggested thresholds (exactly, not rounded to the sliders)."""
        t = self.ctx.require_session().suggested_thresholds
        self._apply(bone=t.bone, vessel=t.vessel, organ=t.organ)

    def _apply(self, **values) -> None:
        s = self.ctx.require_session()
        s.set_thresholds(**values, slices=[self.ctx.z] if self.scope.value == "slice" else None)

    def sync(self) -> None:
        """Show the thresholds of the slice shown."""
        t = self.ctx.session.thresholds(self.ctx.z)
        with self.ctx.quiet():
            for name, slider in self.sliders.items():
                slider.value = int(min(max(round(getattr(t, name)), slider.min), slider.max))

    def show(self, session) -> None:
        t, phase = session.suggested_thresholds, session.phase
        seen = (f"{phase.name} (aorta {phase.aorta_hu:.0f} HU)" if phase else
                "not estimated (no aorta found)")
        self.suggested_text.value = (f"<div style='font-size:11px;line-height:1.3'>suggested: "
                                     f"bone {t.bone:g}, vessel {t.vessel:g}, organ {t.organ:g}"
                                     f"<br>phase: {seen}</div>")
        self.ranges.sync()
