"""The cursor readout under the image: the HU value of the voxel under the mouse, its
(row, column, slice) and its patient position in mm, in whichever view the mouse is."""

from __future__ import annotations

import ipywidgets as widgets

from ..labels import BACKGROUND, organ
from ..reformat import patient_position
from .context import Context
from .ui import tagged


class Readout:
    """One line of text; :meth:`show` a voxel, :meth:`clear` when the mouse leaves."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        # two lines' height, as wide as the image (page rule): the line never moves the page
        self.widget = widgets.HTML(layout=widgets.Layout(height="34px", margin="2px 0 0 4px"))
        self.voxel: tuple[int, int, int] | None = None
        tagged({"readout": self.widget})
        self.clear()

    def show(self, z: int, row: int, col: int) -> None:
        """The readout of voxel (slice ``z``, ``row``, ``col``)."""
        s = self.ctx.session
        if s is None or (z, row, col) == self.voxel:
            return
        self.voxel = (z, row, col)
        hu = int(s.study.hu[z, row, col])
        label = int(s.labels[z, row, col])
        x, y, zz = patient_position(s.study.affine, z, row, col)
        name = f" · {organ(label).title}" if label != BACKGROUND else ""
        self.widget.value = (f"<span style='font:11px monospace;white-space:normal;display:block;"
                             f"line-height:1.35' data-hu='{hu}'>"
                             f"<b>{hu} HU</b>{name} · row {row}, col {col}, slice {z} · "
                             f"x {x:.1f}, y {y:.1f}, z {zz:.1f} mm (LPS)</span>")

    def clear(self) -> None:
        self.voxel = None
        self.widget.value = ("<span style='font:12px monospace;color:#777'>Move the mouse over "
                             "an image for its HU value and position.</span>")
