"""The Segment panel's tools and labels: the tool buttons, the brush, the label buttons,
and the mouse on the image."""

from __future__ import annotations

import ipywidgets as widgets

from ..labels import BACKGROUND, ORGANS, organ
from .context import Context
from .tools import Tool, make_tools
from .ui import button, clamp_int, heading, mix, tagged

REMOVE_COLOUR = "#e0e0e0"


class SegmentPanel:
    """Tool choice, the tool's options (``tool_rows``), labelling the selected region
    (``label_rows``); mouse events go to the current tool."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.tools: dict[str, Tool] = make_tools(ctx)
        self.tool: Tool = self.tools["select"]
        self.brush = self.tools["draw"].brush
        self.tool_buttons = widgets.ToggleButtons(
            options=[(t.name.capitalize(), t.name) for t in self.tools.values()],
            tooltips=[f"{t.help} (key {t.key.upper()})" for t in self.tools.values()],
            style={"button_width": "70px"})
        self.label_buttons = {
            o.value: button(o.title, f"Label the selected region {o.name} (key {o.key})",
                            mix(o.colour, (255, 255, 255), 0.4), "112px") for o in ORGANS}
        self.label_buttons[BACKGROUND] = button(
            "Remove label", "Remove the label of the selected region (key 0 or Delete)",
            REMOVE_COLOUR, "112px")
        self.tool_rows = [heading("Tool"), widgets.HBox([self.tool_buttons]), self.brush.row]
        self.label_rows = [heading("Label the selected region"),
                           widgets.HBox(list(self.label_buttons.values()))]
        tagged({"tools": self.tool_buttons, "label-remove": self.label_buttons[BACKGROUND],
                **{f"label-{o.name}": self.label_buttons[o.value] for o in ORGANS}})
        ctx.jobs.hold(*self.label_buttons.values())
        cb = ctx.callback
        self.tool_buttons.observe(cb("Choosing a tool")(lambda c: self.set_tool(c["new"])),
                                  "value")
        for label, control in self.label_buttons.items():
            control.on_click(cb("Labelling the region")(lambda _, label=label: self.assign(label)))

    def set_tool(self, name) -> None:
        if name not in self.tools or self.tools[name] is self.tool:
            return
        self.tool.cancel()
        self.tool = self.tools[name]
        if self.tool_buttons.value != name:
            self.tool_buttons.value = name
        self.ctx.status(self.tool.help)

    def cancel(self) -> None:
        """Abandon the stroke in progress."""
        self.tool.cancel()

    def assign(self, label) -> int:
        """Give the selected region of this slice ``label`` (0 removes the label)."""
        s, z = self.ctx.require_session(), self.ctx.z
        label = clamp_int(label, 0, 255)
        if label is None:
            return 0
        selection = s.selection
        if not selection or selection[0] != z:
            self.ctx.status("Select a region on this slice first (tool Select, click the region).")
            return 0
        changed = s.assign(z, label)
        name = organ(label).name if label != BACKGROUND else "unlabelled"
        self.ctx.status(f"Region labelled {name} ({changed} pixels changed).")
        return changed

    # Mouse events on the image (positions as the browser sends them).
    def mouse_down(self, x, y) -> None:
        if self.ctx.session is None:
            return
        pixel = self.ctx.viewer.to_pixel(x, y)
        if pixel is not None:
            busy = self.ctx.jobs.busy
            if busy is not None:
                self.ctx.status(f"{busy} is still running: the image can be browsed, "
                                "edits wait until it ends.")
                return
            if self.tool.edits:
                self.ctx.require_session()       # says why when the study is read-only
            self.tool.press(*pixel)

    def mouse_move(self, x, y) -> None:
        if self.ctx.session is None:
            return
        pixel = self.ctx.viewer.to_pixel(x, y)
        if pixel is not None and self.tool.name != "select":
            self.tool.move(*pixel)

    def mouse_up(self, x, y) -> None:
        if self.ctx.session is None:
            return
        pixel = self.ctx.viewer.to_pixel(x, y)
        self.tool.release(*(pixel or (None, None)))

    def mouse_out(self, x, y) -> None:
        """Leaving the image ends a stroke where it left."""
        if self.ctx.session is None:
            return
        self.tool.release(None, None)
        self.ctx.viewer.clear_interaction()
