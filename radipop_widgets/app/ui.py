"""Small helpers the panels share: buttons, headings, and validating browser values."""

from __future__ import annotations

import html
import math
import numbers

import ipywidgets as widgets
import numpy as np


def button(description, tooltip="", colour=None, width="auto", icon="") -> widgets.Button:
    """A button of the dashboard (``colour`` as CSS)."""
    control = widgets.Button(description=description, tooltip=tooltip, icon=icon,
                             layout=widgets.Layout(width=width))
    if colour:
        control.style.button_color = colour
    return control


def heading(text: str) -> widgets.HTML:
    """A section heading of a panel."""
    return widgets.HTML(f"<b style='font-size:12px;color:#333'>{html.escape(text)}</b>",
                        layout=widgets.Layout(margin="6px 0 0 0"))


def tagged(named: dict[str, widgets.Widget]) -> None:
    """Give each widget the CSS class ``radipop-<name>`` (the browser tests find them so)."""
    for name, widget in named.items():
        widget.add_class(f"radipop-{name}")


def mix(rgb, other, amount: float) -> str:
    """``#rrggbb`` of ``rgb`` moved ``amount`` (0..1) of the way to ``other``.

    >>> mix((230, 30, 30), (255, 255, 255), 0.4), mix((230, 30, 30), (0, 0, 0), 0.15)
    ('#f07878', '#c41a1a')
    """
    return "#" + "".join(f"{round(a + (b - a) * amount):02x}" for a, b in zip(rgb, other))


def range_text(band) -> str:
    """An organ's intensity range (an ``IntensityRange`` or None) in words.

    >>> from radipop_widgets.segmentation.intensity import IntensityRange
    >>> range_text(IntensityRange(57.6, 135.2, 96, 12, 3)), range_text(IntensityRange(40, 90))
    ('58-135 HU (3 clicks)', '40-90 HU (set by hand)')
    >>> range_text(None)
    'not learned yet'
    """
    if band is None:
        return "not learned yet"
    how = "set by hand" if band.clicks == 0 else \
        f"{band.clicks} click{'s' if band.clicks > 1 else ''}"
    return f"{band.low:.0f}-{band.high:.0f} HU ({how})"


def send_states(root: widgets.Widget) -> int:
    """Send the state of ``root`` and of every widget it holds (children, layout, style,
    ...) to the browser again; returns how many widgets."""
    seen, stack = set(), [root]
    while stack:
        widget = stack.pop()
        if not isinstance(widget, widgets.Widget) or widget.model_id in seen:
            continue
        seen.add(widget.model_id)
        widget.send_state()
        for key in widget.keys:
            value = getattr(widget, key, None)
            stack.extend(value if isinstance(value, (list, tuple)) else [value])
    return len(seen)


def to_number(value) -> float | None:
    """A finite float from a browser value, or None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def clamp_int(value, low: int, high: int) -> int | None:
    """An int in [low, high] from a browser value, or None if it is not a number."""
    value = to_number(value)
    if value is None:
        return None
    return int(min(max(math.floor(value), low), high))
