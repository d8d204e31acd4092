"""The View panel: display window and overlay, and drawing the slice shown with them."""

from __future__ import annotations

import ipywidgets as widgets

from ..render import WINDOW_PRESETS, overlay_indexed, overlay_palette, window
from .context import Context
from .ui import heading

DEFAULT_PRESET = "abdomen"


def _slider(cls, value, low, high, description, **kw):
    return cls(value=value, min=low, max=high, description=description,
               style={"description_width": "52px"}, layout=widgets.Layout(width="360px"), **kw)


class ViewPanel:
    """Window level and width (with presets), overlay opacity and outline; sends the CT
    only when the slice or the window changes, the overlay when labels or regions do.

    ``on_window()`` and ``on_overlay()`` run after the window or the overlay's look
    changed (the coronal and sagittal views follow them)."""

    def __init__(self, ctx: Context, on_window=lambda: None, on_overlay=lambda: None):
        self.ctx = ctx
        self.on_window = on_window
        self.on_overlay = on_overlay
        self.preset = widgets.Dropdown(
            options=[(n.capitalize(), n) for n in WINDOW_PRESETS] + [("Custom", "")],
            value=DEFAULT_PRESET, description="Window", style={"description_width": "52px"},
            layout=widgets.Layout(width="220px"))
        level, width = WINDOW_PRESETS[DEFAULT_PRESET]
        self.level_slider = _slider(widgets.IntSlider, int(level), -1000, 2000, "Level")
        self.width_slider = _slider(widgets.IntSlider, int(width), 1, 4000, "Width")
        self.opacity_slider = _slider(widgets.FloatSlider, 0.5, 0, 1, "Opacity", step=0.05)
        self.outline_box = widgets.Checkbox(False, description="Outline only", indent=False)
        self.widget = widgets.VBox([heading("Display window"), self.preset, self.level_slider,
                                    self.width_slider, heading("Overlay"), self.opacity_slider,
                                    self.outline_box])
        cb = ctx.callback
        self.preset.observe(cb("Choosing a window")(self._preset_changed), "value")
        for slider in (self.level_slider, self.width_slider):
            slider.observe(cb("Changing the window")(self._window_changed), "value")
        for control in (self.opacity_slider, self.outline_box):
            control.observe(cb("Drawing the overlay")(lambda _: self._overlay_changed()),
                            "value")

    def reset(self) -> None:
        """The default window (another study is opened; the caller draws the slice)."""
        level, width = WINDOW_PRESETS[DEFAULT_PRESET]
        with self.ctx.quiet():
            self.preset.value = DEFAULT_PRESET
            self.level_slider.value, self.width_slider.value = int(level), int(width)

    def _preset_changed(self, change) -> None:
        if not self.ctx.syncing:
            self.set_preset(change["new"])

    def set_preset(self, name) -> None:
        if name not in WINDOW_PRESETS:
            return
        level, width = WINDOW_PRESETS[name]
        with self.ctx.quiet():
            self.level_slider.value, self.width_slider.value = int(level), int(width)
        self.render_ct()
        self.on_window()

    def _window_changed(self, change) -> None:
        if self.ctx.syncing:
            return
        with self.ctx.quiet():
            self.preset.value = ""
        self.render_ct()
        self.on_window()

    def _overlay_changed(self) -> None:
        self.render_overlay()
        self.on_overlay()

    def window(self) -> tuple[int, int]:
        """The display window (level, width) in HU."""
        return int(self.level_slider.value), max(1, int(self.width_slider.value))

    @property
    def opacity(self) -> float:
        return float(self.opacity_slider.value)

    def render_ct(self) -> None:
        """Window the slice shown and send it."""
        if self.ctx.session is None:
            return
        self.ctx.viewer.show_ct(window(self.ctx.session.study.hu[self.ctx.z], *self.window()))

    def render_overlay(self) -> None:
        """Send the label overlay of the slice shown (never the CT)."""
        s, z = self.ctx.session, self.ctx.z
        if s is None:
            return
        index = overlay_indexed(s.labels[z], s.regions(z), s.selected_mask(z),
                                outline=bool(self.outline_box.value))
        self.ctx.viewer.show_overlay(index, overlay_palette(self.opacity_slider.value))
