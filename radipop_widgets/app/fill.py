"""Fill between slices: interpolate the brush label on the unlabelled slices between its
labelled ones, previewed on the image before it is applied."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from ..errors import RadipopError
from ..labels import organ
from ..render import preview_indexed, preview_palette
from .context import Context
from .messages import sentence
from .tools import Brush
from .ui import button, tagged


def slice_runs(slices) -> str:
    """Slice numbers as runs, for the user.

    >>> slice_runs([12, 13, 14, 20, 22, 23])
    '12-14, 20, 22-23'
    """
    runs: list[list[int]] = []
    for z in sorted(slices):
        if runs and z == runs[-1][1] + 1:
            runs[-1][1] = z
        else:
            runs.append([z, z])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


class FillPanel:
    """Fill between slices (key F) previews ``fill_between(label, apply=False)`` for the
    brush label: its mask on the slice shown, on the viewer's preview layer, and the
    slices it fills; Apply fills them (one undo step), Cancel (or Esc) drops the preview.
    The preview follows the slice shown (:meth:`render`) and every label change
    (:meth:`refresh`)."""

    def __init__(self, ctx: Context, brush: Brush):
        self.ctx = ctx
        self.brush = brush
        self.label: int | None = None          # the label previewed, None without a preview
        self.masks: dict[int, np.ndarray] = {}  # slice -> what the fill adds there
        self.fill_button = button(
            "Fill between slices", "Interpolate the brush label on the unlabelled slices "
            "between two labelled ones; shown first, then Apply or Cancel (key F)",
            icon="arrows-v", width="150px")
        self.apply_button = button("Apply", "Fill the slices of the preview (one undo step)",
                                   "#c8e6c9", "72px")
        self.cancel_button = button("Cancel", "Drop the preview (Esc)", width="72px")
        self.text = widgets.HTML()
        self.actions = widgets.HBox([self.apply_button, self.cancel_button],
                                    layout=widgets.Layout(display="none"))
        self.rows = [widgets.HBox([self.fill_button, self.text, self.actions],
                                  layout=widgets.Layout(align_items="center"))]
        tagged({"fill": self.fill_button, "fill-apply": self.apply_button,
                "fill-cancel": self.cancel_button, "fill-text": self.text})
        ctx.jobs.hold(self.fill_button, self.apply_button, self.cancel_button)
        cb = ctx.callback
        self.fill_button.on_click(cb("Previewing the fill")(lambda _: self.preview()))
        self.apply_button.on_click(cb("Filling between slices")(lambda _: self.apply()))
        self.cancel_button.on_click(cb("Cancelling the fill")(lambda _: self.cancel()))

    @property
    def pending(self) -> bool:
        """Whether a preview waits for Apply or Cancel."""
        return self.label is not None

    def preview(self) -> dict[int, np.ndarray]:
        """Show what filling the brush label would add; returns slice -> mask."""
        s = self.ctx.require_session()
        self.label = self.brush.label
        self._compute(s)
        if self.pending:
            self.ctx.status(f"Fill between slices adds the {organ(self.label).name} to "
                            f"{self._slices()} (dashed on the image): Apply, or Cancel (Esc).")
        return self.masks

    def refresh(self) -> None:
        """Compute the preview again after the labels changed (it closes when nothing is
        left to fill)."""
        if self.pending:
            self._compute(self.ctx.session)

    def _compute(self, s) -> None:
        name = organ(self.label).name
        self.masks = s.fill_between(self.label, apply=False)
        if not self.masks:
            self.cancel()
            self.ctx.status(f"Nothing to fill: the {name} has no unlabelled slice between two "
                            f"slices that carry it. Label two slices first, a few apart.")
            return
        self.text.value = (f"<small>&nbsp;{html.escape(organ(self.label).title)}: fills "
                           f"{self._slices()}: <b>Apply</b> or <b>Cancel</b>&nbsp;</small>")
        self.actions.layout.display = "flex"
        self.render()

    def _slices(self) -> str:
        return f"slice{'s' if len(self.masks) > 1 else ''} {slice_runs(self.masks)}"

    def render(self) -> None:
        """Show the preview of the slice shown (nothing there when it fills other slices)."""
        mask = self.masks.get(self.ctx.z)
        if mask is None:
            self.ctx.viewer.clear_preview()
        else:
            self.ctx.viewer.show_preview(preview_indexed(mask),
                                         preview_palette(organ(self.label).colour))

    def apply(self) -> int:
        """Fill the previewed label between its slices (one undo step); returns the number
        of slices filled."""
        s = self.ctx.require_session()
        if not self.pending:
            raise RadipopError("There is no fill to apply: press Fill between slices (key F) "
                               "first.")
        label = self.label
        self.cancel()
        filled = s.fill_between(label)
        self.ctx.status(sentence(s.last_message) + (" Undo with Ctrl+Z." if filled else ""))
        return len(filled)

    def cancel(self) -> None:
        """Drop the preview."""
        self.label, self.masks = None, {}
        self.text.value = ""
        self.actions.layout.display = "none"
        self.ctx.viewer.clear_preview()
