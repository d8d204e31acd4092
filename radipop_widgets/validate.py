"""Checks of values that reach the Session from the API or the browser.

Each raises :class:`~radipop_widgets.errors.SessionError` with what a valid value is.

>>> check_slice(3, 10)
3
>>> check_label(2.0)
2
"""

from __future__ import annotations

import math

import numpy as np

from .errors import SessionError
from .segmentation.thresholds import Thresholds

#: thresholds and organ ranges must lie in this HU range
HU_RANGE = (-2000.0, 5000.0)
MAX_WIDTH_MM = 100.0


def check_slice(z, n_slices: int) -> int:
    """A slice index in 0..n_slices-1."""
    try:
        zi = int(z)
    except (TypeError, ValueError, OverflowError):
        raise SessionError(f"slice index must be an integer, got {z!r}") from None
    if zi != z or not 0 <= zi < n_slices:
        raise SessionError(f"slice {z!r} does not exist: the study has slices 0..{n_slices - 1}")
    return zi


def check_label(label) -> int:
    """A label value in 0..255."""
    try:
        li = int(label)
    except (TypeError, ValueError, OverflowError):
        raise SessionError(f"label must be an integer 0..255, got {label!r}") from None
    if li != label or not 0 <= li <= 255:
        raise SessionError(f"label must be an integer 0..255 (0 removes, 1 liver, "
                           f"2 spleen, 3.. other), got {label!r}")
    return li


def _hu(name: str, value) -> float:
    # the range test also rejects NaN and inf (and, unlike math.isfinite, does not raise
    # OverflowError on an int too large for a float)
    if not isinstance(value, (int, float, np.number)) or not HU_RANGE[0] <= value <= HU_RANGE[1]:
        raise SessionError(f"{name} must be a number of HU in {HU_RANGE[0]:g}..{HU_RANGE[1]:g}, "
                           f"got {value!r}")
    return float(value)


def check_thresholds(t: Thresholds) -> Thresholds:
    """Thresholds of three HU numbers."""
    return Thresholds(*(_hu(f"threshold {name}", v) for name, v in zip(Thresholds._fields, t)))


def check_range(low, high) -> tuple[float, float]:
    """An organ's (low, high) HU range with low < high."""
    low, high = _hu("the range's low end", low), _hu("the range's high end", high)
    if not low < high:
        raise SessionError(f"an organ range needs low < high, got {low:g}..{high:g} HU")
    return low, high


def check_width(width_mm) -> float:
    """A brush width in mm, at most ``MAX_WIDTH_MM``."""
    try:
        width = float(width_mm)
    except (TypeError, ValueError, OverflowError):
        raise SessionError(f"width_mm must be a number, got {width_mm!r}") from None
    if not math.isfinite(width) or width <= 0:
        raise SessionError(f"width_mm must be a positive number of mm, got {width_mm!r}")
    return min(width, MAX_WIDTH_MM)


def check_count(value, name: str) -> int | None:
    """A slice count >= 0, or None (as far as it goes)."""
    if value is None:
        return None
    try:
        ok = int(value) == value and int(value) >= 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise SessionError(f"{name} must be a slice count >= 0 or None, got {value!r}")
    return int(value)
