"""Typed change events that a Session sends to its listeners.

>>> SessionEvent(Change.LABELS, (3, 4)).touches(4)
True
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Change(enum.Enum):
    """What a session change touched."""

    LABELS = "labels"          # label values of some slices (edits, extend, undo, redo)
    THRESHOLDS = "thresholds"  # thresholds of some slices (candidate regions follow)
    CUTS = "cuts"              # cut lines of some slices (candidate regions follow)
    SELECTION = "selection"    # the selected region
    RANGES = "ranges"          # an organ's learned intensity range


@dataclass(frozen=True)
class SessionEvent:
    """One change: what (``changes``) on which ``slices``; ``source`` names the action
    ("assign", "extend", "undo", ...) for messages only, never for dispatch."""

    changes: frozenset | Change
    slices: tuple[int, ...]
    source: str = ""

    def __post_init__(self):
        if isinstance(self.changes, Change):
            object.__setattr__(self, "changes", frozenset({self.changes}))
        object.__setattr__(self, "slices", tuple(int(z) for z in self.slices))

    def touches(self, z: int) -> bool:
        """Whether slice ``z`` changed."""
        return z in self.slices

    @property
    def labels_changed(self) -> bool:
        return Change.LABELS in self.changes

    @property
    def regions_changed(self) -> bool:
        """Whether candidate regions of :attr:`slices` may differ."""
        return bool({Change.THRESHOLDS, Change.CUTS, Change.RANGES} & self.changes)
