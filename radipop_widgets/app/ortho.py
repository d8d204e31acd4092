"""The coronal and sagittal views beside the axial one: reformats of the CT with the label
overlay, the correct aspect, orientation letters, a scale bar and a crosshair linking the
three views.

Editing stays in the axial view. A click in a reformat moves the axial slice there and
the other reformat's plane through the clicked point. Each view sends its CT only when its
plane or the window changes and its overlay only when the labels on its plane change.
"""

from __future__ import annotations

from typing import Callable

import ipycanvas
import ipywidgets as widgets
import numpy as np

from ..reformat import plane, plane_grid, view_letters
from ..render import overlay_indexed, overlay_palette, window
from .annotate import Annotation
from .context import Context
from .ui import tagged, to_number
from .viewer import _put_png, grey_png, palette_png
from .zoom import ZoomPan

CT, OVERLAY, ANNOTATION = range(3)
BOX = (256, 256)          # canvas pixels of a reformat's box at the base display scale


class OrthoView:
    """One reformat (``coronal`` or ``sagittal``): a three-layer canvas, its grid and zoom."""

    def __init__(self, view: str):
        self.view = view
        self.canvas = ipycanvas.MultiCanvas(3, width=BOX[1], height=BOX[0])
        self.css_class = f"radipop-{view}"
        self.canvas.add_class(self.css_class)
        self.zoom = ZoomPan(BOX[0], BOX[1], self.css_class)
        self.annotation = Annotation(self.canvas[ANNOTATION], self.zoom)
        self.outline = widgets.Checkbox(False, description="Outline", indent=False,
                                        layout=widgets.Layout(width="80px"))
        self.title = widgets.HTML()
        self.grid = None
        self.index = 0                 # the plane: a row (coronal) or a column (sagittal)
        self._ct_key = None
        self._overlay: np.ndarray | None = None
        self._overlay_key = None
        self._labels: np.ndarray | None = None   # the plane's labels the overlay shows
        self._pngs: dict[int, bytes] = {}
        self.ct_sends = self.overlay_sends = 0
        box = widgets.Box([self.canvas, self.annotation.html], layout=widgets.Layout(
            overflow="hidden", width="fit-content", border="1px solid #444"))
        box.add_class("radipop-viewport")
        self.widget = widgets.VBox([widgets.HBox([self.title, self.outline],
                                                 layout=widgets.Layout(align_items="center")),
                                    box, self.zoom.style])
        tagged({f"{view}-view": self.widget})

    def show(self, study) -> None:
        """A new study: its grid, the plane through the middle, the whole plane shown."""
        grid = self.grid = plane_grid(study.shape, study.spacing, study.affine, self.view, BOX)
        self.canvas.width, self.canvas.height = grid.n_horizontal, grid.n_vertical
        self.canvas.layout = widgets.Layout(width=f"{grid.width}px", height=f"{grid.height}px")
        self.zoom.resize(grid.n_vertical, grid.n_horizontal)
        self.annotation.letters = view_letters(study.affine, self.view)
        self.annotation.mm_per_pixel = grid.mm_horizontal
        self.annotation.aspect = (grid.height / grid.n_vertical, grid.width / grid.n_horizontal)
        self.index = study.shape[1 if self.view == "coronal" else 2] // 2
        self._ct_key, self._overlay, self._overlay_key, self._pngs = None, None, None, {}
        self._labels = None

    def render_ct(self, hu: np.ndarray, level: float, width: float) -> None:
        key = (self.index, level, width)
        if self.grid is None or key == self._ct_key:
            return
        self._ct_key = key
        grey = self.grid.orient(window(plane(hu, self.view, self.index), level, width))
        self._send(CT, grey_png(grey))
        self.ct_sends += 1

    def render_overlay(self, labels: np.ndarray, opacity: float, slices=None) -> None:
        """Send the plane's overlay if it differs from what was sent. After an edit of
        ``slices`` only their rows of the plane are compared and, when they changed,
        re-drawn (with one row of context each side for the edges)."""
        if self.grid is None:
            return
        key = (self.index, float(opacity), bool(self.outline.value))
        outline = bool(self.outline.value)
        if slices is not None and self._overlay_key == key and self._labels is not None:
            rows = np.asarray(sorted(slices), dtype=np.intp)
            now = labels[rows, self.index, :] if self.view == "coronal" \
                else labels[rows, :, self.index]
            if np.array_equal(now, self._labels[rows]):
                return
            self._labels[rows] = now
            drawn = self.grid.orient(self._labels)
            canvas_rows = [int(self.grid.to_canvas(int(z), 0)[0]) for z in rows[[0, -1]]]
            lo, hi = max(min(canvas_rows) - 1, 0), min(max(canvas_rows) + 1, len(drawn) - 1)
            top, bottom = max(lo - 1, 0), min(hi + 2, len(drawn))
            band = overlay_indexed(np.ascontiguousarray(drawn[top:bottom]),
                                   np.zeros((bottom - top, drawn.shape[1]), np.uint8),
                                   outline=outline)
            index = self._overlay.copy()
            index[lo:hi + 1] = band[lo - top:hi + 1 - top]
        else:
            self._labels = plane(labels, self.view, self.index).copy()
            index = overlay_indexed(np.ascontiguousarray(self.grid.orient(self._labels)),
                                    np.zeros(self._labels.shape, np.uint8), outline=outline)
        if self._overlay is not None and self._overlay_key == key \
                and np.array_equal(index, self._overlay):
            return
        self._overlay, self._overlay_key = index, key
        self._send(OVERLAY, palette_png(index, overlay_palette(opacity)))
        self.overlay_sends += 1

    def set_cross(self, z: int, across: int) -> None:
        """The crosshair at slice ``z`` and the other plane's row / column ``across``."""
        if self.grid is not None:
            self.annotation.cross = self.grid.to_canvas(z, across)
            self.annotation.draw()

    def to_voxel(self, x, y) -> tuple[int, int] | None:
        """Canvas position -> (slice, column or row) of the plane, or None."""
        x, y = to_number(x), to_number(y)
        if self.grid is None or x is None or y is None:
            return None
        return self.grid.to_voxel(y, x)

    def _send(self, layer: int, png: bytes) -> None:
        self._pngs[layer] = png
        with ipycanvas.hold_canvas():
            _put_png(self.canvas[layer], png)

    def redraw(self) -> None:
        with ipycanvas.hold_canvas():
            for layer, png in self._pngs.items():
                _put_png(self.canvas[layer], png)
        self.annotation.draw()


class OrthoPanel:
    """The coronal and sagittal views; ``window()`` gives the display window (level,
    width), ``opacity()`` the overlay's, ``set_slice(z)`` moves the axial view and
    ``panning()`` says whether the Pan tool is on (a drag then moves a zoomed view)."""

    def __init__(self, ctx: Context, window: Callable[[], tuple[float, float]],
                 opacity: Callable[[], float], set_slice: Callable[[int], None],
                 panning: Callable[[], bool]):
        self.ctx = ctx
        self.window = window
        self.opacity = opacity
        self.set_slice = set_slice
        self.panning = panning
        self._anchor: tuple[str, float, float] | None = None
        self.views = {name: OrthoView(name) for name in ("coronal", "sagittal")}
        self.shown = widgets.Checkbox(True, description="Coronal and sagittal views",
                                      indent=False)
        self.widget = widgets.VBox([v.widget for v in self.views.values()],
                                   layout=widgets.Layout(flex="0 0 auto", margin="0 6px"))
        tagged({"ortho": self.widget, "ortho-shown": self.shown})
        cb = ctx.callback
        for view in self.views.values():
            view.canvas.on_mouse_down(cb("Moving the crosshair")(
                lambda x, y, view=view: self.mouse_down(view.view, x, y)))
            view.canvas.on_mouse_up(cb("Handling a click")(lambda x, y: self.mouse_up()))
            view.outline.observe(cb("Drawing the overlay")(lambda _: self.render_overlay()),
                                 "value")
        self.shown.observe(cb("Showing the views")(lambda c: self.set_shown(c["new"])), "value")

    @property
    def coronal(self) -> OrthoView:
        return self.views["coronal"]

    @property
    def sagittal(self) -> OrthoView:
        return self.views["sagittal"]

    @property
    def visible(self) -> bool:
        return bool(self.shown.value) and self.ctx.session is not None

    def show(self, session) -> None:
        for view in self.views.values():
            view.show(session.study)
            view.title.value = (f"<b style='font-size:12px'>{view.view.capitalize()}</b> "
                                "<small style='color:#555'>(click: go there)</small>")

    def css_views(self) -> list[tuple[str, int, int]]:
        """(CSS class, height, width) of each view shown, for the page's scale rules."""
        if not self.shown.value:
            return []
        return [(v.css_class, v.grid.height, v.grid.width) for v in self.views.values()
                if v.grid is not None]

    def set_shown(self, shown) -> None:
        """Show the reformats beside the axial view, or the axial view alone."""
        self.widget.layout.display = None if shown else "none"
        if shown:
            self.render()

    def mouse_down(self, view: str, x, y) -> None:
        """Press in a reformat: start panning (tool Pan) or :meth:`click`."""
        x, y = to_number(x), to_number(y)
        if x is None or y is None:
            return
        if self.panning():
            self._anchor = (view, y, x)
        else:
            self.click(view, x, y)

    def mouse_move(self, view: str, x, y) -> None:
        """While panning: keep the point pressed under the mouse."""
        x, y = to_number(x), to_number(y)
        if self._anchor is None or self._anchor[0] != view or x is None or y is None:
            return
        self.views[view].zoom.pan_by(self._anchor[1] - y, self._anchor[2] - x)

    def mouse_up(self) -> None:
        self._anchor = None

    def voxel_at(self, view: str, x, y) -> tuple[int, int, int] | None:
        """(slice, row, column) of the study under a canvas position of a reformat."""
        voxel = self.views[view].to_voxel(x, y) if self.ctx.session is not None else None
        if voxel is None:
            return None
        z, across = voxel
        if view == "coronal":
            return z, self.coronal.index, across
        return z, across, self.sagittal.index

    def click(self, view: str, x, y) -> None:
        """A click in a reformat: the axial slice and the other plane go through it."""
        voxel = self.views[view].to_voxel(x, y)
        if voxel is None or self.ctx.session is None:
            return
        z, across = voxel
        other = self.sagittal if view == "coronal" else self.coronal
        other.index = across
        self.render_ct()
        self.render_overlay()
        if z == self.ctx.z:
            self.render_cross()
        else:
            self.set_slice(z)        # the dashboard redraws the crosshairs for a new slice

    def set_planes(self, row=None, col=None) -> None:
        """Put the coronal plane at ``row`` and the sagittal one at ``col`` (image pixels)."""
        if row is not None:
            self.coronal.index = int(row)
        if col is not None:
            self.sagittal.index = int(col)
        self.render()

    def render(self) -> None:
        self.render_ct()
        self.render_overlay()
        self.render_cross()

    def render_ct(self) -> None:
        if self.visible:
            level, width = self.window()
            for view in self.views.values():
                view.render_ct(self.ctx.session.study.hu, level, width)

    def render_overlay(self, slices=None) -> None:
        """The reformats' overlays (after an edit of ``slices``, or of anything)."""
        if self.visible:
            for view in self.views.values():
                view.render_overlay(self.ctx.session.labels, self.opacity(), slices)

    def render_cross(self) -> None:
        """Crosshairs after a slice or plane change (and the axial view's)."""
        if self.ctx.session is None:
            return
        z = self.ctx.z
        if self.visible:
            self.coronal.set_cross(z, self.sagittal.index)
            self.sagittal.set_cross(z, self.coronal.index)
        annotation = self.ctx.viewer.annotation
        annotation.cross = ((self.coronal.index + 0.5, self.sagittal.index + 0.5)
                            if self.visible else None)
        annotation.draw()

    def redraw(self) -> None:
        for view in self.views.values():
            view.redraw()
