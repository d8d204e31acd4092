"""The Statistics tab: the organ statistics a hepatologist reads, and an area-per-slice plot
per organ that shows a jump between neighbouring slices and goes to a slice on a click.

The numbers are :func:`radipop_widgets.measure.organ_measurements` (the same as
``Session.measurements()`` and the exported ``_measurements.csv``). They are computed only
when the labels changed since the last time and the tab is shown: a labels change marks
the panel stale (nothing else on the click path); the tab being shown, or a change while
it is shown, measures again. In the served app (background jobs) that happens on a timer
thread :data:`DELAY` seconds after the last change (a pause in the editing), on a copy of
the labels taken under the jobs' lock, and the table and plots are built outside the lock
too, so that the measuring never holds up a click; without background jobs (tests,
scripts) it happens at once. Only the slices that may hold a label are copied and measured:
those of the organs last measured and those changed since (the App passes the changed
slices to :meth:`StatisticsPanel.update`).
"""

from __future__ import annotations

import html
import io
import math
import threading
from collections.abc import Callable

import ipycanvas
import ipywidgets as widgets
import numpy as np
from PIL import Image

from .. import measure
from ..cohort.flags import AREA_SPIKE, step_allowed
from ..labels import MEASURED
from .context import Context
from .messages import guarded
from .ui import heading, mix, tagged, to_number
from .viewer import _put_png

DELAY = 0.4                  # s: the pause in the label changes after which to measure
PLOT_WIDTH, PLOT_HEIGHT = 420, 56
_BACKGROUND = (250, 250, 250, 255)
_MISSING = (255, 170, 60, 255)   # orange: a slice inside the organ's span without it
_STEP = (200, 0, 0, 255)         # red: the top of a bar after a step
_CURSOR = (40, 40, 40, 255)
BARS, CURSOR = 0, 1              # the plots' layers: the bars (a PNG), the slice shown
_NONE = (1 << 40, -1)            # an empty slice range


def _union(a, b):
    """The slice range holding the ranges ``a`` and ``b`` (None: every slice)."""
    if a is None or b is None:
        return None
    return min(a[0], b[0]), max(a[1], b[1])


def _grow(span, slices):
    """The slice range ``span`` grown to hold ``slices`` (None: every slice).

    >>> _grow((4, 6), [9, 2]), _grow((4, 6), []), _grow(_NONE, [3]), _grow((4, 6), None)
    ((2, 9), (4, 6), (3, 3), None)
    """
    if slices is None:
        return None
    slices = list(slices)
    return _union(span, (min(slices), max(slices))) if slices else span


def _labelled(measurements: dict):
    """The slice range holding the organs of ``measurements``."""
    return _grow(_NONE, [z for m in measurements.values() for z in m["slices"]])


def _fmt(value, digits=1, unit="") -> str:
    if value is None:
        return "&mdash;"
    return f"{value:,.{digits}f}{unit}".replace(",", "&#8239;")


def area_plot(areas: list[tuple[int, float]], n_slices: int, colour, z: int | None,
              missing=(), steps=(), width=PLOT_WIDTH, height=PLOT_HEIGHT) -> np.ndarray:
    """The RGBA image (height, width, 4) of an organ's area per slice.

    Slice z covers the columns ``floor(z * width / n)`` to ``floor((z + 1) * width / n)``
    (at least one), the same mapping as :func:`slice_at` inverts; the bar height is the
    area over the largest one (the largest area of the slices a column covers). Missing
    slices are orange bands, the other bars after a step have a red top, slice ``z`` a dark
    line.

    Examples
    --------
    >>> image = area_plot([(1, 50.0), (2, 100.0)], 4, (230, 30, 30), z=3, width=8, height=5)
    >>> image.shape, (image[:, 4:6, 0] == 230).sum(axis=0).tolist()   # the largest: height - 2
    ((5, 8, 4), [3, 3])
    """
    image = np.empty((height, width, 4), np.uint8)
    image[...] = _BACKGROUND
    left = (np.arange(n_slices) * width) // n_slices
    right = np.maximum(((np.arange(n_slices) + 1) * width) // n_slices, left + 1)
    for zz in missing:
        image[:, left[zz]:right[zz]] = _MISSING
    if areas:
        top = max(a for _, a in areas) or 1.0
        column_area = np.zeros(width)
        for zz, a in areas:
            column_area[left[zz]:right[zz]] = np.maximum(column_area[left[zz]:right[zz]], a)
        bar = np.ceil(column_area / top * (height - 2)).astype(int)
        rows = np.arange(height)[:, None]
        image[rows >= height - bar[None, :]] = (*colour, 255)
        for zz in set(steps) - set(missing):    # a missing slice is orange already
            column = slice(left[zz], right[zz])
            y = height - 1 - int(bar[left[zz]])
            image[max(y - 1, 0):y + 2, column] = _STEP
    if z is not None and 0 <= z < n_slices:
        image[:, left[z]:right[z]] = _CURSOR
    return image


def slice_columns(z: int, n_slices: int, width: int = PLOT_WIDTH) -> tuple[int, int]:
    """The plot columns [left, right) of slice ``z`` (as :func:`area_plot` draws it).

    >>> slice_columns(0, 300), slice_columns(299, 300), slice_columns(3, 4, 8)
    ((0, 1), (418, 420), (6, 8))
    """
    left = z * width // n_slices
    return left, max((z + 1) * width // n_slices, left + 1)


def png(image: np.ndarray) -> bytes:
    """An RGBA image as a PNG (a plot of flat colours: about 1 KB instead of 94 KB raw)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), "RGBA").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def slice_at(x, n_slices: int, width: int = PLOT_WIDTH) -> int | None:
    """The slice under plot column ``x`` (a browser value, clamped); None if not a number.

    >>> slice_at(0, 300), slice_at(419.9, 300), slice_at(210, 300), slice_at("x", 300)
    (0, 299, 150, None)
    """
    x = to_number(x)
    if x is None:
        return None
    x = min(max(x, 0.0), width - 1e-9)
    return min(math.floor(x * n_slices / width), n_slices - 1)


class StatisticsPanel:
    """The Statistics tab: a table per organ and the area plots.

    ``go_to_slice(z)`` shows slice z (the App's slice navigation).
    """

    def __init__(self, ctx: Context, go_to_slice: Callable[[int], None]):
        self.ctx = ctx
        self.go_to_slice = go_to_slice
        self.visible = False
        self.measurements: dict | None = None     # what the table shows
        self.runs = 0                             # measurings done (tests, benchmarks)
        self._version = 0                         # labels changes seen
        self._measured = -1                       # the version the table shows
        self._timer: threading.Timer | None = None
        self._may_hold = None                     # slices that may hold labels (None: all)
        self._changed = _NONE                     # slices changed since the last copy
        self.table = widgets.HTML()
        self.note = widgets.HTML()
        self.captions = {o.value: widgets.HTML() for o in MEASURED}
        self.plots = {o.value: ipycanvas.MultiCanvas(2, width=PLOT_WIDTH, height=PLOT_HEIGHT,
                                                     layout=widgets.Layout(
                                                         width=f"{PLOT_WIDTH}px",
                                                         height=f"{PLOT_HEIGHT}px"))
                      for o in MEASURED}
        self._sent: dict[int, bytes] = {}          # the bars' PNG each plot shows
        self.plot_bytes = 0                        # bytes of bar images sent (tests)
        rows = []
        for o in MEASURED:
            rows += [self.captions[o.value], self.plots[o.value]]
            self.plots[o.value].on_mouse_down(ctx.callback("Changing slice")(self.plot_click))
        self.widget = widgets.VBox([heading("Organ statistics"), self.table, self.note,
                                    heading("Area per slice (click a slice to go there)"),
                                    *rows])
        tagged({"statistics": self.widget, "stats-table": self.table,
                **{f"stats-plot-{o.name}": self.plots[o.value] for o in MEASURED}})
        self._measure_later = guarded(ctx.messages, "Measuring the organs")(self._deferred)

    # ------------------------------------------------------------ binding
    def watch(self, tabs: widgets.Tab, index: int) -> None:
        """Measure while ``tabs`` shows this panel (its child ``index``)."""
        def selected(change):
            self.set_visible(change["new"] == index)
        tabs.observe(self.ctx.callback("Showing the statistics")(selected), "selected_index")

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)
        if self.visible and self.stale:
            self._request(0.0)
        elif self.visible:
            self.render_cursor()

    def show(self, session) -> None:
        """Another session: what the table showed is stale."""
        self._cancel()
        self.measurements = None
        self._version += 1
        self._may_hold = None
        self.table.value = ""
        self.note.value = "<small><i>measuring&hellip;</i></small>"
        self._sent.clear()
        if self.visible:
            self._request(0.0)

    def update(self, slices=None) -> None:
        """The labels of ``slices`` (None: of any slice) changed: measure again when shown
        (see the module's description)."""
        self._version += 1
        self._may_hold = _grow(self._may_hold, slices)
        self._changed = _grow(self._changed, slices)
        if self.visible:
            self._request(DELAY)

    def slice_changed(self) -> None:
        """The slice shown changed: move the plots' slice line (when shown; a few bytes)."""
        if self.visible and self.measurements is not None:
            self.render_cursor()

    @property
    def stale(self) -> bool:
        """Whether the labels changed since the table was measured."""
        return self._measured != self._version

    @property
    def pending(self) -> bool:
        """Whether a measuring is scheduled."""
        return self._timer is not None

    # ------------------------------------------------------------ measuring
    def refresh(self) -> None:
        """Measure now, in this thread, and show the numbers."""
        self._cancel()
        s = self.ctx.session
        if s is None:
            return
        version = self._version
        self._changed = _NONE
        result = self._measure(s, s.labels)
        self._apply(s, result, version, self._view(s, result))

    def flush(self) -> None:
        """Do the scheduled measuring now (if one is scheduled)."""
        if self._timer is not None:
            self.refresh()

    def _request(self, delay: float) -> None:
        """Measure ``delay`` seconds after the last request (at once without background
        jobs): while the labels keep changing, the measuring waits for a pause."""
        if not self.ctx.jobs.background:
            self.refresh()
            return
        self._cancel()
        timer = threading.Timer(delay, lambda: self._measure_later(timer))
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _cancel(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _deferred(self, timer) -> None:
        """On the timer thread: copy the labels under the lock, measure and prepare the
        table and plots outside it, send them under it (unless another request or session
        came meanwhile: then that one's measuring shows its numbers)."""
        with self.ctx.jobs.lock:
            if self._timer is not timer:
                return
            self._timer = None
            s = self.ctx.session
            if s is None or not self.stale or not self.visible:
                return
            version, self._changed = self._version, _NONE
            lo, hi = self._span(s)
            labels = s.labels[lo:hi + 1].copy()
        result = self._measure(s, labels, lo)
        view = self._view(s, result)
        with self.ctx.jobs.lock:
            if s is not self.ctx.session or self._timer is not None:
                return
            self._apply(s, result, version, view)

    def _span(self, session) -> tuple[int, int]:
        """The slices to measure: those that may hold a label (all when unknown)."""
        return self._may_hold or (0, session.study.n_slices - 1)

    def _measure(self, session, labels, lo=None) -> dict:
        """Measure ``labels``: the study's (``lo`` None) or a copy of its slices lo.. ."""
        if lo is None:
            lo, hi = self._span(session)
            labels = labels[lo:hi + 1]
        if labels.shape[0] == 0:
            return {}
        hu = session.study.hu[lo:lo + labels.shape[0]]
        return measure.organ_measurements(labels, hu, session.study.spacing, first_slice=lo)

    # ------------------------------------------------------------ showing
    @staticmethod
    def _view(session, measurements: dict) -> dict:
        """What the panel shows of ``measurements``: the table's HTML, and per organ the
        caption and the bars' PNG (built without touching a widget)."""
        n = session.study.n_slices
        allowed = step_allowed(session.study.spacing[0])
        plots = {}
        for o in MEASURED:
            organ = measurements.get(o.name)
            if organ is None:
                plots[o.value] = (f"<small><b>{o.title}</b>: not labelled</small>",
                                  png(area_plot([], n, o.colour, None)))
                continue
            steps = measure.area_steps(organ, allowed)
            spikes = [z for z in measure.area_spikes(organ, AREA_SPIKE) if z not in steps]
            largest = max(organ["area_mm2"], key=lambda item: item[1])
            flags = []
            if organ["missing_slices"]:
                flags.append(f"<span style='color:#c66a00'>missing slices "
                             f"{_slice_list(organ['missing_slices'])}</span>")
            if steps:
                flags.append(f"<span style='color:#c00000'>steps &gt; "
                             f"{allowed:.0%} of the largest area at slices "
                             f"{_slice_list(steps)}</span>")
            if spikes:
                flags.append(f"<span style='color:#c00000'>slices {_slice_list(spikes)} stand "
                             f"out from their neighbours by &gt; {AREA_SPIKE:.0%} of the "
                             "largest area</span>")
            colour = mix(o.colour, (0, 0, 0), 0.15)
            caption = (f"<small><b style='color:{colour}'>{o.title}</b> (slices "
                       f"0&ndash;{n - 1} left to right): largest {_fmt(largest[1], 0)} mm² "
                       f"on slice {largest[0]}" + ("; " + "; ".join(flags) if flags else "")
                       + "</small>")
            plots[o.value] = (caption, png(area_plot(organ["area_mm2"], n, o.colour, None,
                                                     organ["missing_slices"],
                                                     sorted(steps + spikes))))
        return {"table": statistics_table(measurements, session.study.spacing),
                "plots": plots}

    def _apply(self, session, measurements: dict, version: int, view: dict) -> None:
        """Show a measuring's numbers (under the lock)."""
        self.measurements = measurements
        self._may_hold = _union(_labelled(measurements), self._changed)
        self._measured = version
        self.runs += 1
        self.table.value = view["table"]
        self.note.value = ""
        for value, (caption, data) in view["plots"].items():
            self.captions[value].value = caption
            if self._sent.get(value) != data:
                _put_png(self.plots[value][BARS], data)
                self._sent[value] = data
                self.plot_bytes += len(data)
        self.render_cursor()

    def render_cursor(self) -> None:
        """The line of the slice shown on every plot."""
        s = self.ctx.session
        if s is None or self.measurements is None:
            return
        left, right = slice_columns(self.ctx.z, s.study.n_slices)
        for plot in self.plots.values():
            layer = plot[CURSOR]
            layer.clear()
            layer.fill_style = "#{:02x}{:02x}{:02x}".format(*_CURSOR[:3])
            layer.fill_rect(left, 0, right - left, PLOT_HEIGHT)

    def plot_click(self, x, y=None) -> None:
        """A click on an area plot at column ``x``: go to that slice."""
        s = self.ctx.session
        if s is None:
            return
        z = slice_at(x, s.study.n_slices, PLOT_WIDTH)
        if z is not None:
            self.go_to_slice(z)


def _slice_list(slices, limit=8) -> str:
    shown = ", ".join(str(z) for z in slices[:limit])
    return shown + (f" (+{len(slices) - limit} more)" if len(slices) > limit else "")


def statistics_table(measurements: dict, spacing) -> str:
    """The HTML table: one column per measured organ, one row per number.

    Examples
    --------
    >>> labels = np.zeros((3, 4, 4), np.uint8)
    >>> labels[1:, :2, :2] = 2
    >>> text = statistics_table(measure.organ_measurements(labels, None, (2, 1, 1)), (2, 1, 1))
    >>> "Splenic index" in text and "not labelled" in text
    True
    """
    def cells(fn):
        return "".join(f"<td>{fn(measurements[o.name]) if o.name in measurements else ''}</td>"
                       for o in MEASURED)

    def hu(m):
        if m["mean_hu"] is None:
            return "&mdash;"
        return f"{_fmt(m['mean_hu'])} &plusmn; {_fmt(m['sd_hu'])}"

    def span(m):
        first, last = m["slices"]
        gaps = m["missing_slices"]
        return (f"{first}&ndash;{last}" + (f" <span style='color:#c66a00'>({len(gaps)} "
                                           f"missing)</span>" if gaps else ""))

    rows = [
        ("Volume (mL)", lambda m: f"<b>{_fmt(m['volume_ml'])}</b>"),
        ("HU mean &plusmn; SD", hu),
        ("HU median", lambda m: _fmt(m["median_hu"])),
        ("Slices", span),
        ("Craniocaudal length (mm)", lambda m: _fmt(m["length_cc_mm"])),
        ("Largest axial diameter (mm)", lambda m: f"{_fmt(m['diameter_max_mm'])} "
         f"<small>(slice {m['diameter_slice']})</small>"),
        ("Width across it (mm)", lambda m: _fmt(m["diameter_perp_mm"])),
        ("Thickness (mm)", lambda m: _fmt(m["thickness_mm"])),
        ("Splenic index (cm³)", lambda m: _fmt(m["splenic_index_cm3"], 0)
         if m["splenic_index_cm3"] is not None else ""),
    ]
    head = "".join(
        f"<th style='color:{mix(o.colour, (0, 0, 0), 0.15)}'>{o.title}"
        + ("" if o.name in measurements else " <small>(not labelled)</small>") + "</th>"
        for o in MEASURED)
    body = "".join(f"<tr><td>{title}</td>{cells(fn)}</tr>" for title, fn in rows)
    ratio = measure.liver_spleen_ratio(measurements)
    others = sorted(set(measurements) - {o.name for o in MEASURED})
    foot = (f"<tr><td>Liver / spleen volume</td><td colspan='{len(MEASURED)}'>"
            f"<b>{_fmt(ratio, 2)}</b></td></tr>")
    spacing_text = " &times; ".join(f"{float(s):g}" for s in spacing)
    note = (f"<div style='line-height:1.35;margin-top:4px'><small>Voxels {spacing_text} mm (slice, row, column). Length: slices spanned "
            "&times; slice spacing; diameters: the largest axial Feret diameter and the width "
            "across it on that slice; thickness: the largest circle inside the organ on that "
            "slice; splenic index: length &times; largest diameter &times; thickness in cm.")
    if others:
        note += " Other labels: " + ", ".join(
            f"{html.escape(name)} {_fmt(measurements[name]['volume_ml'])} mL" for name in others)
    return (f"<table class='radipop-stats' style='border-collapse:collapse;font-size:12px'>"
            f"<tr><th></th>{head}</tr>{body}{foot}</table>{note}</small></div>")
