"""The editing session: labels of one study, selection, edits, undo, save."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import SessionError
from .events import Change, SessionEvent
from .history import History, Step, label_patch
from .labels import label_name
from .organ_tools import OrganTools
from .regions import MAX_CUTS, CandidateRegions
from .segmentation.edit import clean_points, line_mask
from .segmentation.grow import leftover_rim
from .segmentation.intensity import (DEFAULT_RANGE, IntensityRange, RangeParams, band_thresholds,
                                     learn_range)
from .segmentation.partition import DEFAULT_PARAMS, PartitionParams
from .segmentation.phase import Phase, estimate_phase
from .segmentation.propagate import DEFAULT_EXTEND, ExtendParams, ExtendReport
from .segmentation.rim import DEFAULT_RIM, RimParams, partial_volume_rim
from .segmentation.thresholds import DEFAULT_THRESHOLDS, Thresholds, suggest_thresholds
from .session_autosave import SessionAutosave
from .session_files import SessionFiles
from .study import Study
from .validate import check_label, check_slice, check_thresholds

log = logging.getLogger(__name__)


class Session(OrganTools, SessionAutosave, SessionFiles):
    """Labels of one study and the edits that make them.

    Parameters
    ----------
    study : Study
    thresholds : Thresholds or (bone, vessel, organ), optional
        Starting thresholds of every slice; None = the study's suggestion
        (:func:`~radipop_widgets.segmentation.thresholds.suggest_thresholds`), or the
        defaults when the study has too little soft tissue to suggest any.
    workspace : path, optional
        Where :meth:`save` without a folder writes the session (and autosave its copy).
    autosave : bool
        Keep every edit in the ``autosave`` sub-folder of the default session folder
        (never over the session the user saved): a snapshot at the first edit, then an
        edit journal with snapshots when the edits pause (:mod:`.session_autosave`).
    history_depth : int
        Undo steps kept (at least 100).
    rim_params : RimParams or None
        The partial-volume rim that :meth:`assign`, :meth:`grow` and :meth:`extend` add
        around what they label; None turns it off.
    range_params : RangeParams
        How a click learns the intensity range of the tissue under it.

    Notes
    -----
    Coordinates are (row, col) in ``pixel_array`` orientation; ``z`` is the slice index.
    Invalid requests from the user interface (points outside the image, on background,
    NaN) select or change nothing and leave the reason in :attr:`last_message`; calls that
    cannot be meant (unknown slice, label out of range) raise :class:`SessionError`.
    """

    def __init__(self, study: Study, thresholds=None, workspace=None, autosave: bool = False,
                 *, history_depth: int = 200, partition_params: PartitionParams = DEFAULT_PARAMS,
                 extend_params: ExtendParams = DEFAULT_EXTEND,
                 rim_params: RimParams | None = DEFAULT_RIM,
                 range_params: RangeParams = DEFAULT_RANGE):
        if not isinstance(study, Study):
            raise SessionError(f"Session needs a Study (from load_study), got {type(study).__name__}")
        self.study = study
        self.labels = np.zeros(study.shape, np.uint8)
        try:
            self.suggested_thresholds = suggest_thresholds(study.hu)
        except ValueError as exc:
            log.info("no threshold suggestion: %s", exc)
            self.suggested_thresholds = DEFAULT_THRESHOLDS
        start = self.suggested_thresholds if thresholds is None else check_thresholds(
            Thresholds(*thresholds))
        #: in-plane pixel size in mm (geometric mean of row and column spacing): the one
        #: definition brushes, margins and sizes use
        self.pixel_mm = float(math.sqrt(study.spacing[1] * study.spacing[2]))
        self.candidates = CandidateRegions(study.hu, start, self.suggested_thresholds,
                                           pixel_mm=self.pixel_mm, params=partition_params,
                                           range_params=range_params)
        self._selection: tuple[int, int, Thresholds] | None = None
        self._selected: np.ndarray | None = None    # the selection's mask, once computed
        self.click_range: IntensityRange | None = None
        self._history = History(max(100, int(history_depth)))
        self._listeners: list[Callable] = []
        self.extend_params = extend_params
        self.rim_params = rim_params
        self.range_params = range_params
        self.workspace = workspace
        self.autosave = bool(autosave)
        self.last_message = ""
        self.last_report: ExtendReport | None = None
        #: names this session's saves; ``_base`` is the save it was opened from
        self.session_id = uuid.uuid4().hex
        self._base: str | None = None
        self._autosave_folder: Path | None = None

    def _z(self, z) -> int:
        return check_slice(z, self.study.n_slices)

    # ----------------------------------------------------------------- thresholds
    def thresholds(self, z) -> Thresholds:
        """(bone, vessel, organ) HU thresholds of slice ``z``."""
        return self.candidates.thresholds(self._z(z))

    def set_thresholds(self, bone=None, vessel=None, organ=None, slices=None) -> int:
        """Change thresholds (None keeps a value) on ``slices`` (None = all; int or list).

        Labels are never changed; only the unlabelled candidate regions follow. A slice
        whose thresholds differ from the suggestion uses them for every organ (they win
        over the organs' learned ranges). Undoable as one step. Returns the number of
        slices whose thresholds changed.
        """
        if slices is None:
            zs = range(self.study.n_slices)
        elif isinstance(slices, (int, float, np.number)):
            zs = [self._z(slices)]
        elif isinstance(slices, (list, tuple, range, np.ndarray)):
            zs = sorted({self._z(z) for z in slices})
        else:
            raise SessionError(f"slices must be None (all), a slice index or a list of them, "
                               f"got {type(slices).__name__}")
        step = Step("thresholds")
        for z in zs:
            old = self.candidates.thresholds(z)
            new = check_thresholds(Thresholds(
                old.bone if bone is None else bone, old.vessel if vessel is None else vessel,
                old.organ if organ is None else organ))
            if new != old:
                step.thresholds[z] = (old, new)
        self._apply(step, undo=False)
        n = len(step.thresholds)
        self._commit(step, f"thresholds changed on {n} slice(s)" if n else "thresholds unchanged")
        return n

    # ----------------------------------------------------------------- regions
    def regions(self, z) -> np.ndarray:
        """Candidate regions of slice ``z`` at its thresholds (int32, 0 = background)."""
        return self.candidates.regions(self._z(z))

    def compute_regions(self, slices=None, progress: Callable[[int, int], None] | None = None):
        """Compute (warm) the candidate regions of ``slices`` (None = all), with progress."""
        zs = range(self.study.n_slices) if slices is None else [self._z(z) for z in slices]
        self.candidates.compute(zs, progress)

    def _smooth(self, z: int, near: tuple[int, int] | None = None) -> np.ndarray:
        """The smoothed slice ``z`` (:meth:`CandidateRegions.smoothed`)."""
        return self.candidates.smoothed(z, near)

    def _point(self, z: int, row, col, nothing: str) -> tuple[int, int] | None:
        """(row, col) as ints inside the image, or None with the reason in last_message."""
        try:
            r, c = float(row), float(col)
        except (TypeError, ValueError, OverflowError):
            r = c = float("nan")
        rows, cols = self.study.shape[1:]
        if not (math.isfinite(r) and math.isfinite(c)):
            self.last_message = f"{nothing}: the point has no valid coordinates"
        elif not (0 <= round(r) < rows and 0 <= round(c) < cols):
            self.last_message = f"{nothing}: ({row}, {col}) is outside the {rows} x {cols} image"
        else:
            return round(r), round(c)
        return None

    # ----------------------------------------------------------------- selection
    @property
    def selection(self) -> tuple[int, int] | None:
        """(slice, region id) of the current selection, or None."""
        return None if self._selection is None else self._selection[:2]

    def select(self, z, row, col) -> int:
        """Select the region under (row, col) of slice ``z``; 0 (nothing) on background
        or outside the image, with the reason in :attr:`last_message`.

        On a slice at the suggested thresholds the region is found with the intensity
        range of the tissue under the click (:attr:`click_range`), so a bright spleen
        or a dark liver is offered whole whatever the study's thresholds; on a slice
        whose thresholds were set by hand, with those thresholds.
        """
        z = self._z(z)
        self._selection = self.click_range = self._selected = None
        point = self._point(z, row, col, "nothing selected")
        if point is not None:
            r, c = point
            tried = [self.candidates.thresholds(z)]
            if not self.candidates.set_by_hand(z) or self.regions(z)[r, c] == 0:
                self.click_range = learn_range(self._smooth(z, (r, c)), r, c,
                                               pixel_mm=self.pixel_mm,
                                               params=self.range_params)
                tried.insert(0, band_thresholds(tried[0], self.click_range, self.range_params))
            for t in tried:
                region = int(self.candidates.regions(z, t)[r, c])
                if region:
                    self._selection = (z, region, t)
                    self.last_message = f"region {region} selected on slice {z}"
                    break
            else:
                self.last_message = ("nothing selected: background here (no candidate region "
                                     "at these thresholds); lower the organ threshold or draw")
        self._notify(SessionEvent(Change.SELECTION, (z,), "select"))
        return 0 if self._selection is None else self._selection[1]

    def selected_mask(self, z) -> np.ndarray | None:
        """Mask of the selected region (read-only, computed once per selection) if it
        belongs to slice ``z``, else None."""
        z = self._z(z)
        if self._selection is None or self._selection[0] != z:
            return None
        if self._selected is None:
            _, region, t = self._selection
            self._selected = self.candidates.regions(z, t) == region
            self._selected.setflags(write=False)
        return self._selected

    def clear_selection(self) -> None:
        self._selection = self._selected = None

    # ----------------------------------------------------------------- edits
    def assign(self, z, label) -> int:
        """Give the selected region of slice ``z`` the label with its partial-volume rim;
        label 0 removes the region's labels and the rim they brought. The click's
        intensity range becomes the organ's (the first time). Returns pixels changed."""
        z, label = self._z(z), check_label(label)
        mask = self.selected_mask(z)
        if mask is None:
            where = ("nothing is selected" if self._selection is None else
                     f"the selection belongs to slice {self._selection[0]}")
            self.last_message = f"nothing labelled on slice {z}: {where}; click a region first"
            return 0
        new = self.labels[z].copy()
        regions = self.candidates.regions(z, self._selection[2])
        if label == 0:
            new[leftover_rim(self.labels[z], mask, regions)] = 0
        new[mask] = label
        self._add_rim(z, new, label, mask, regions)
        with self._one_step("assign") as step:
            self._learn(step, label)
            changed = self._patch(step, z, new)
        self.last_message = (f"{label_name(label) if label else 'label removed'}: {changed} "
                             f"pixels on slice {z}" if changed else f"nothing changed on slice {z}")
        return changed

    def cut(self, z, points) -> bool:
        """Separate the candidate regions of slice ``z`` along the polyline ``points``.

        The cut is a 4-connected line, so no region stays connected across it; labels
        are not changed. Cuts stay with the slice (also after threshold changes).
        """
        z = self._z(z)
        try:
            pts = clean_points(points, self.study.shape[1:])
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        mask = line_mask(pts, self.study.shape[1:]) if len(pts) >= 2 else None
        if mask is None or not mask.any():
            self.last_message = "no cut: draw a line of at least two points across the image"
            return False
        old = self.candidates.cuts(z)
        if len(old) >= MAX_CUTS:
            raise SessionError(f"slice {z} already has {MAX_CUTS} cuts: clear them (clear_cuts) "
                               "or draw instead")
        step = Step("cut")
        step.cuts[z] = (old, old + [pts])
        self.candidates.set_cuts(z, old + [pts], added=mask)
        self._forget_selection([z])
        self._commit(step, f"cut on slice {z}")
        return True

    def cuts(self, z) -> list[np.ndarray]:
        """The cut polylines of slice ``z`` ((n, 2) arrays of (row, col))."""
        return [c.copy() for c in self.candidates.cuts(self._z(z))]

    def clear_cuts(self, z) -> bool:
        """Remove the cuts of slice ``z`` (undoable)."""
        z = self._z(z)
        old = self.candidates.cuts(z)
        if not old:
            self.last_message = f"slice {z} has no cuts"
            return False
        step = Step("cut")
        step.cuts[z] = (old, [])
        self._apply(step, undo=False)
        self._commit(step, f"cuts removed on slice {z}")
        return True

    def set_labels(self, labels: np.ndarray, name: str = "import") -> int:
        """Replace the whole label volume (e.g. imported masks) as one undoable step."""
        labels = np.asarray(labels)
        if labels.shape != self.labels.shape:
            raise SessionError(f"labels of shape {labels.shape} do not fit the study "
                               f"{self.labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise SessionError("labels must lie in 0..255")
        with self._one_step(name) as step:
            changed = sum(self._patch(step, z, labels[z].astype(np.uint8))
                          for z in range(self.study.n_slices))
        self.last_message = f"{changed} pixels replaced"
        return changed

    @functools.cached_property
    def phase(self) -> Phase | None:
        """The contrast phase estimated from the aorta (None without one), computed once."""
        return estimate_phase(self.study.hu, self.pixel_mm)

    @property
    def noise_sd(self) -> float:
        """Noise SD of one pixel in HU (measured once on up to 8 slices)."""
        return self.candidates.noise_sd

    def _barrier(self, z: int) -> np.ndarray:
        barrier = self.candidates.barrier(z)
        return np.zeros(self.study.shape[1:], bool) if barrier is None else barrier

    def _add_rim(self, z: int, new: np.ndarray, label: int, added: np.ndarray,
                 regions: np.ndarray) -> None:
        """Give ``label`` the partial-volume rim of the pixels ``added`` to it in ``new``:
        outline pixels that are mostly organ, from the background of ``regions`` only,
        never other labels or cuts."""
        if label == 0 or self.rim_params is None:
            return
        free = (regions == 0) & ~self._barrier(z)
        rim = partial_volume_rim(self.study.hu[z], new, label, noise_sd=self.noise_sd,
                                 near=added, free=free, params=self.rim_params)
        new[rim] = label

    # ----------------------------------------------------------------- history
    def _patch(self, step: Step, z: int, new: np.ndarray) -> int:
        """Write slice ``z``'s new labels and record the patch in ``step``; pixels changed
        (the one place that writes labels of an edit, like napari's block_history)."""
        patch = label_patch(z, self.labels[z], new)
        if patch is None:
            return 0
        self.labels[z, patch.rows, patch.cols] = patch.new
        step.patches.append(patch)
        return int((patch.old != patch.new).sum())

    @contextlib.contextmanager
    def _one_step(self, name: str):
        """Collect the changes made inside the block into one undo step, committed at
        the end (also when it fails half way, so what was written can be undone)."""
        step = Step(name)
        try:
            yield step
        finally:
            self._commit(step, "")

    def _commit(self, step: Step, message: str) -> None:
        if message:
            self.last_message = message
        if self._history.push(step):
            self._after_edit(step.name, step)

    def _apply(self, step: Step, undo: bool) -> None:
        for patch in (reversed(step.patches) if undo else step.patches):
            self.labels[patch.z, patch.rows, patch.cols] = patch.old if undo else patch.new
        self.candidates.set_thresholds({z: (old if undo else new)
                                        for z, (old, new) in step.thresholds.items()})
        for z, (old, new) in step.cuts.items():
            self.candidates.set_cuts(z, old if undo else new)
        for label, (old, new) in step.ranges.items():
            self.candidates.set_range(label, old if undo else new)
        self._forget_selection(list(step.thresholds) + list(step.cuts))

    def _forget_selection(self, slices) -> None:
        if self._selection is not None and self._selection[0] in slices:
            self._selection = self._selected = None

    def undo(self) -> bool:
        """Undo the last edit; False when there is nothing to undo."""
        return self._undo_redo(undo=True)

    def redo(self) -> bool:
        """Redo the last undone edit; False when there is nothing to redo."""
        return self._undo_redo(undo=False)

    def _undo_redo(self, undo: bool) -> bool:
        event = "undo" if undo else "redo"
        step = self._history.pop_undo() if undo else self._history.pop_redo()
        if step is None:
            self.last_message = f"nothing to {event}"
            return False
        self._apply(step, undo=undo)
        self.last_message = f"{'undid' if undo else 'redid'} {step.name}"
        self._after_edit(event, step)
        return True

    @property
    def can_undo(self) -> bool:
        return self._history.can_undo

    @property
    def can_redo(self) -> bool:
        return self._history.can_redo

    # ----------------------------------------------------------------- listeners
    def add_listener(self, callback: Callable[[SessionEvent], None]) -> None:
        """Call ``callback(event)`` with a :class:`~radipop_widgets.events.SessionEvent`
        after every change (edits, undo, redo, selection)."""
        if callback not in self._listeners:
            self._listeners.append(callback)

    def remove_listener(self, callback) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self, event: SessionEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # a broken listener must not break editing
                log.exception("session listener %r failed on %s", callback, event.source)

    def _after_edit(self, source: str, step: Step) -> None:
        self._edited(source, step)  # volumes, autosave journal (SessionAutosave)
        self._notify(SessionEvent(step.changes, step.slices, source))

    # ----------------------------------------------------------------- state, save, export
    def state(self) -> dict:
        """JSON-able state saved next to the labels."""
        return self.candidates.state()
