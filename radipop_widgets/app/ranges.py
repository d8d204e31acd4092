"""The organs' intensity ranges beside the threshold sliders: what each measured organ's
range is, two boxes to set it by hand, and Forget."""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..errors import RadipopError
from ..labels import MEASURED, organ
from .context import Context
from .messages import sentence
from .ui import button, heading, range_text, tagged, to_number

ENDS = ("low", "high")


class OrganRangesPanel:
    """Per organ of ``labels.MEASURED``: "Liver 58-135 HU (3 clicks)" or "not learned yet",
    a low and a high box (typing one sets that end by hand, the other is kept; a new range
    takes both boxes), and Forget (the slice thresholds apply again). Follows the
    session's ranges (:meth:`sync`), undo included."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.texts, self.boxes, self.forget_buttons = {}, {}, {}
        rows = [heading("Organ ranges, from the clicks or typed (HU)")]
        for o in MEASURED:
            self.texts[o.value] = widgets.HTML(layout=widgets.Layout(width="150px"))
            self.boxes[o.value] = {end: widgets.Text(
                placeholder=end, continuous_update=False, layout=widgets.Layout(width="52px"),
                tooltip=f"The {end} end of the {o.name}'s range in HU (Enter sets it)")
                for end in ENDS}
            self.forget_buttons[o.value] = button(
                "Forget", f"Forget the {o.name}'s range: the slice thresholds apply",
                width="64px")
            rows.append(widgets.HBox([self.texts[o.value], self.boxes[o.value]["low"],
                                      widgets.Label("to"), self.boxes[o.value]["high"],
                                      self.forget_buttons[o.value]],
                                     layout=widgets.Layout(align_items="center")))
            tagged({f"range-{o.name}-{end}": box for end, box in self.boxes[o.value].items()})
            tagged({f"range-{o.name}-forget": self.forget_buttons[o.value]})
        self.widget = widgets.VBox(rows, layout=widgets.Layout(margin="0 0 0 12px"))
        self.widget.add_class("radipop-ranges")
        ctx.jobs.hold(*self.forget_buttons.values(),
                      *(box for boxes in self.boxes.values() for box in boxes.values()))
        ctx.jobs.on_idle(self.sync)           # Forget stays disabled without a range
        cb = ctx.callback
        for label, boxes in self.boxes.items():
            for end, box in boxes.items():
                box.observe(cb("Setting the organ range")(
                    lambda change, label=label, end=end: self._typed(label, end)), "value")
            self.forget_buttons[label].on_click(cb("Forgetting the organ range")(
                lambda _, label=label: self.forget(label)))

    def _typed(self, label: int, end: str) -> None:
        """A box was typed in: set that end (both ends while the organ has no range, and
        a new range waits until both boxes hold a number)."""
        if self.ctx.syncing:
            return
        s = self.ctx.require_session()
        try:
            values = {e: _hu(box.value, e) for e, box in self.boxes[label].items()}
            if s.organ_range(label) is None:
                if values[end] is not None and None in values.values():
                    other = next(e for e in ENDS if values[e] is None)
                    self.ctx.status(f"Type the {other} end too to set the range by hand.")
                    return                       # the boxes wait as typed
                if None not in values.values():
                    self.set_range(label, **values)
            elif values[end] is not None:
                self.set_range(label, **{end: values[end]})
        except RadipopError:
            self.sync()
            raise
        self.sync()

    def set_range(self, label: int, low=None, high=None) -> None:
        """Set the range of ``label`` by hand (HU; None keeps that end of a range)."""
        s = self.ctx.require_session()
        if low is None and high is None:
            raise RadipopError("Give the range's low and/or high end in HU (Forget removes "
                               "a range).")
        s.set_organ_range(label, *(None if v is None else _hu(v, end)
                                   for end, v in (("low", low), ("high", high))))
        self.ctx.status(sentence(s.last_message))

    def forget(self, label: int) -> None:
        """Forget the range of ``label`` (undoable)."""
        s = self.ctx.require_session()
        if s.organ_range(label) is None:
            self.ctx.status(f"The {organ(label).name} has no range to forget.")
            return
        s.set_organ_range(label, None, None)
        self.ctx.status(sentence(s.last_message))

    def sync(self) -> None:
        """Show the session's ranges (empty boxes for an organ without one)."""
        s = self.ctx.session
        if s is None:
            return
        with self.ctx.quiet():
            for o in MEASURED:
                band = s.organ_range(o.value)
                self.texts[o.value].value = (f"<small><b>{html.escape(o.title)}</b> "
                                             f"{html.escape(range_text(band))}</small>")
                for end in ENDS:
                    self.boxes[o.value][end].value = "" if band is None else \
                        f"{getattr(band, end):.0f}"
                self.forget_buttons[o.value].disabled = band is None


def _hu(text, end: str) -> float | None:
    """A typed HU value (None for an empty box); raises when it is not a number."""
    if isinstance(text, str):
        text = text.strip()
        if not text:
            return None
        try:
            text = float(text)
        except ValueError:
            text = None
    value = to_number(text)
    if value is None:
        raise RadipopError(f"The {end} end of the range must be a number of HU.")
    return value
