"""Undo / redo as bounding-box deltas (memory proportional to what changed)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .events import Change


@dataclass
class LabelPatch:
    """Old and new label values inside the bounding box of the changed pixels of a slice."""

    z: int
    rows: slice
    cols: slice
    old: np.ndarray
    new: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.old.nbytes + self.new.nbytes


def label_patch(z: int, old: np.ndarray, new: np.ndarray) -> LabelPatch | None:
    """Patch turning slice ``old`` into ``new``, or None when they are equal."""
    diff = old != new
    if not diff.any():
        return None
    rows = np.flatnonzero(diff.any(axis=1))
    cols = np.flatnonzero(diff.any(axis=0))
    rs, cs = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    return LabelPatch(z, rs, cs, old[rs, cs].copy(), new[rs, cs].copy())


@dataclass
class Step:
    """One undoable user action: label patches, threshold rows and cut lists it changed.

    ``thresholds`` maps slice -> (old, new) Thresholds; ``cuts`` maps slice -> (old list,
    new list) of cut polylines; ``ranges`` maps label -> (old, new) intensity range.
    """

    name: str
    patches: list[LabelPatch] = field(default_factory=list)
    thresholds: dict = field(default_factory=dict)
    cuts: dict = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.patches or self.thresholds or self.cuts or self.ranges)

    @property
    def changes(self) -> frozenset:
        """The kinds of :class:`~radipop_widgets.events.Change` this step makes."""
        kinds = {Change.LABELS: self.patches, Change.THRESHOLDS: self.thresholds,
                 Change.CUTS: self.cuts, Change.RANGES: self.ranges}
        return frozenset(kind for kind, part in kinds.items() if part)

    @property
    def slices(self) -> tuple[int, ...]:
        zs = {p.z for p in self.patches} | set(self.thresholds) | set(self.cuts)
        return tuple(sorted(zs))

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.patches) + 64 * (len(self.thresholds) + len(self.cuts))


class History:
    """Linear undo / redo stack of :class:`Step` with a depth limit."""

    def __init__(self, depth: int = 200):
        if depth < 1:
            raise ValueError("history depth must be at least 1")
        self._undo: deque[Step] = deque(maxlen=depth)
        self._redo: list[Step] = []

    def push(self, step: Step) -> bool:
        """Record a step (an empty one is ignored); clears the redo stack."""
        if step.empty:
            return False
        self._undo.append(step)
        self._redo.clear()
        return True

    def pop_undo(self) -> Step | None:
        if not self._undo:
            return None
        step = self._undo.pop()
        self._redo.append(step)
        return step

    def pop_redo(self) -> Step | None:
        if not self._redo:
            return None
        step = self._redo.pop()
        self._undo.append(step)
        return step

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def __len__(self) -> int:
        return len(self._undo)

    @property
    def nbytes(self) -> int:
        """Memory held by the deltas."""
        return sum(s.nbytes for s in self._undo) + sum(s.nbytes for s in self._redo)
