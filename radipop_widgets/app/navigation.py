"""Moving through the slices: the slider and number box under the image, the overview
strip (which slices carry which organ), the mouse wheel."""

from __future__ import annotations

import math
from typing import Callable

import ipywidgets as widgets
import numpy as np

from ..labels import MEASURED
from .context import Context
from .ui import clamp_int, tagged, to_number
from .viewer import overview_strip

WHEEL_STEP = 50  # wheel delta (pixels) per slice: one mouse-wheel notch, several trackpad events


class Navigation:
    """Owns the slice shown (``ctx.z``); calls ``on_change()`` after it changed."""

    def __init__(self, ctx: Context, on_change: Callable[[], None]):
        self.ctx = ctx
        self.on_change = on_change
        self._wheel = 0.0
        self.slider = widgets.IntSlider(0, 0, 0, description="Slice", readout=False,
                                        continuous_update=True,
                                        layout=widgets.Layout(width="100%"),
                                        style={"description_width": "40px"})
        self.text = widgets.BoundedIntText(0, min=0, max=0, layout=widgets.Layout(width="70px"))
        self.total = widgets.HTML(layout=widgets.Layout(width="44px", margin="0 0 0 4px"))
        self.row = widgets.HBox([self.slider, self.text, self.total],
                                layout=widgets.Layout(width=ctx.viewer.canvas.layout.width,
                                                      align_items="center"))
        tagged({"slice-row": self.row, "slice": self.slider, "slice-text": self.text})
        for control in (self.slider, self.text):
            control.observe(ctx.callback("Changing slice")(lambda c: self.set_slice(c["new"])),
                            "value")

    def show(self, session) -> None:
        n = session.study.n_slices
        self.row.layout.width = self.ctx.viewer.canvas.layout.width
        with self.ctx.quiet():
            for control in (self.slider, self.text):
                control.max = n - 1
        self.total.value = f"/ {n - 1}"

    def set_slice(self, z, force: bool = False) -> None:
        """Show slice ``z`` (clamped to the study)."""
        if self.ctx.syncing or self.ctx.session is None:
            return
        z = clamp_int(z, 0, self.ctx.session.study.n_slices - 1)
        if z is None or (z == self.ctx.z and not force):
            return
        self.ctx.z = z
        with self.ctx.quiet():
            self.slider.value = z
            self.text.value = z
        self.on_change()

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.ctx.z + delta)

    def strip_click(self, x, y) -> None:
        x = to_number(x)
        if x is None or self.ctx.session is None:
            return
        width = int(self.ctx.viewer.strip.width)
        self.set_slice(math.floor(min(max(x, 0), width - 1) * self.ctx.session.study.n_slices
                                  / width))

    def wheel(self, dx, dy) -> None:
        """Mouse wheel over the image: up = next slice (towards the head), down = previous."""
        dy = to_number(dy)
        if not dy:
            return
        self._wheel = min(max(self._wheel + dy, -WHEEL_STEP), WHEEL_STEP)
        if abs(self._wheel) >= WHEEL_STEP:
            self.step_slice(-1 if self._wheel > 0 else 1)
            self._wheel = 0.0

    @property
    def present(self) -> np.ndarray:
        """bool (slices, organs): which slices carry each measured organ (from the
        Session's per-slice label counts, kept current by every edit)."""
        return self.ctx.session.label_counts.counts[:, [o.value for o in MEASURED]] > 0

    def start_slice(self) -> int:
        """The middle of the labelled slices, else the middle of the study."""
        labelled = np.flatnonzero(self.present.any(axis=1))
        if labelled.size:
            return int(labelled[labelled.size // 2])
        return self.ctx.session.study.n_slices // 2

    def render_strip(self) -> None:
        if self.ctx.session is not None:
            self.ctx.viewer.show_strip(overview_strip(self.present, self.ctx.z,
                                                      int(self.ctx.viewer.strip.width)))
