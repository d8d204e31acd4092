"""The editing session: labels of one study, candidate regions, edits, undo, save."""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .errors import SessionError
from .events import Change, SessionEvent
from .history import History, Step, label_patch
from .labels import label_name
from .segmentation.edit import clean_points, line_mask, stroke_mask
from .segmentation.partition import DEFAULT_PARAMS, PartitionParams, partition
from .segmentation.propagate import (DEFAULT_EXTEND, ExtendParams, ExtendReport, ExtendRow,
                                     extend_label)
from .segmentation.rim import DEFAULT_RIM, RimParams, partial_volume_rim
from .segmentation.thresholds import (DEFAULT_THRESHOLDS, Thresholds, noise_sd,
                                      suggest_thresholds)
from .study import Study

log = logging.getLogger(__name__)

#: candidate regions of this many slices are kept in memory (least recently used out)
REGION_CACHE_SLICES = 48
#: thresholds must lie in this HU range
HU_RANGE = (-2000.0, 5000.0)
MAX_WIDTH_MM = 100.0


class Session:
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
        Save after every edit into the ``autosave`` sub-folder of the default session
        folder (never over the session the user saved), so a killed kernel loses at most
        the last edit.
    history_depth : int
        Undo steps kept (at least 100).
    rim_params : RimParams or None
        The partial-volume rim that :meth:`assign` and :meth:`extend` add around what
        they label (:func:`~radipop_widgets.segmentation.rim.partial_volume_rim`: outline
        pixels that are mostly organ, taken only from the background between candidate
        regions, never from other labels or cut lines); None turns it off.

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
                 rim_params: RimParams | None = DEFAULT_RIM):
        if not isinstance(study, Study):
            raise SessionError(f"Session needs a Study (from load_study), got {type(study).__name__}")
        self.study = study
        self.labels = np.zeros(study.shape, np.uint8)
        try:
            self.suggested_thresholds = suggest_thresholds(study.hu)
        except ValueError as exc:
            log.info("no threshold suggestion: %s", exc)
            self.suggested_thresholds = DEFAULT_THRESHOLDS
        start = self.suggested_thresholds if thresholds is None else self._check_thresholds(
            Thresholds(*thresholds))
        self._thresholds = np.tile(np.asarray(start, float), (study.n_slices, 1))
        self._cuts: dict[int, list[np.ndarray]] = {}
        self._barriers: dict[int, np.ndarray] = {}   # rasterised cuts of a slice
        self._regions: OrderedDict[int, np.ndarray] = OrderedDict()
        self._regions_lock = threading.Lock()  # the dashboard browses while a worker extends
        self._selection: tuple[int, int] | None = None
        self._history = History(max(100, int(history_depth)))
        self._listeners: list[Callable] = []
        self.partition_params = partition_params
        self.extend_params = extend_params
        self.rim_params = rim_params
        self._noise_sd: float | None = None
        self.workspace = workspace
        self.autosave = bool(autosave)
        self.last_message = ""
        self.last_report: ExtendReport | None = None
        self.pixel_mm = float(math.sqrt(study.spacing[1] * study.spacing[2]))

    # ----------------------------------------------------------------- validation
    def _z(self, z) -> int:
        try:
            zi = int(z)
        except (TypeError, ValueError, OverflowError):
            raise SessionError(f"slice index must be an integer, got {z!r}") from None
        if zi != z or not 0 <= zi < self.study.n_slices:
            raise SessionError(f"slice {z!r} does not exist: the study has slices "
                               f"0..{self.study.n_slices - 1}")
        return zi

    @staticmethod
    def _label(label) -> int:
        try:
            li = int(label)
        except (TypeError, ValueError, OverflowError):
            raise SessionError(f"label must be an integer 0..255, got {label!r}") from None
        if li != label or not 0 <= li <= 255:
            raise SessionError(f"label must be an integer 0..255 (0 removes, 1 liver, "
                               f"2 spleen, 3.. other), got {label!r}")
        return li

    @staticmethod
    def _check_thresholds(t: Thresholds) -> Thresholds:
        for name, value in zip(Thresholds._fields, t):
            # the range test also rejects NaN and inf (and, unlike math.isfinite, does not
            # raise OverflowError on an int too large for a float)
            if not isinstance(value, (int, float, np.number)) \
                    or not HU_RANGE[0] <= value <= HU_RANGE[1]:
                raise SessionError(f"threshold {name} must be a number of HU in "
                                   f"{HU_RANGE[0]:g}..{HU_RANGE[1]:g}, got {value!r}")
        return Thresholds(*(float(v) for v in t))

    def _message(self, text: str) -> None:
        self.last_message = text

    # ----------------------------------------------------------------- thresholds
    def thresholds(self, z) -> Thresholds:
        """(bone, vessel, organ) HU thresholds of slice ``z``."""
        return Thresholds(*self._thresholds[self._z(z)].tolist())

    def set_thresholds(self, bone=None, vessel=None, organ=None, slices=None) -> int:
        """Change thresholds (None keeps a value) on ``slices`` (None = all; int or list).

        Labels are never changed; only the unlabelled candidate regions follow.
        Undoable as one step. Returns the number of slices whose thresholds changed.
        """
        if slices is None:
            zs = range(self.study.n_slices)
        elif isinstance(slices, (int, np.integer)):
            zs = [self._z(slices)]
        else:
            zs = sorted({self._z(z) for z in slices})
        step = Step("thresholds")
        for z in zs:
            old = Thresholds(*self._thresholds[z].tolist())
            new = self._check_thresholds(Thresholds(
                old.bone if bone is None else bone, old.vessel if vessel is None else vessel,
                old.organ if organ is None else organ))
            if new != old:
                step.thresholds[z] = (old, new)
        for z, (_, new) in step.thresholds.items():
            self._thresholds[z] = new
        self._regions_changed(step.thresholds)
        n = len(step.thresholds)
        self._commit(step, f"thresholds changed on {n} slice(s)" if n else
                     "thresholds unchanged")
        return n

    # ----------------------------------------------------------------- regions
    def regions(self, z) -> np.ndarray:
        """Candidate regions of slice ``z`` (int32, 0 = background), cached."""
        z = self._z(z)
        with self._regions_lock:
            cached = self._regions.get(z)
            if cached is not None:
                self._regions.move_to_end(z)
                return cached
        regions = partition(self.study.hu[z], self.thresholds(z), pixel_mm=self.pixel_mm,
                            barrier=self._barrier(z), noise_sd=self.noise_sd,
                            params=self.partition_params)
        regions.setflags(write=False)
        with self._regions_lock:
            self._regions[z] = regions
            while len(self._regions) > REGION_CACHE_SLICES:
                self._regions.popitem(last=False)
        return regions

    def _barrier(self, z: int) -> np.ndarray | None:
        """The cut lines of slice ``z`` as one mask (cached; None without cuts)."""
        if not self._cuts.get(z):
            return None
        barrier = self._barriers.get(z)
        if barrier is None:
            barrier = np.zeros(self.study.shape[1:], bool)
            for line in self._cuts[z]:
                barrier |= line_mask(line, barrier.shape)
            self._barriers[z] = barrier
        return barrier

    def _set_cuts(self, z: int, lines: list, added: np.ndarray | None = None) -> None:
        """Replace the cuts of slice ``z``; ``added`` (the mask of one new line) updates
        the cached mask instead of redrawing every line."""
        cached = self._barriers.pop(z, None)
        self._cuts[z] = list(lines)
        if added is not None and cached is not None:
            self._barriers[z] = cached | added
        self._regions_changed([z])

    def compute_regions(self, slices=None, progress: Callable[[int, int], None] | None = None):
        """Compute (warm) the candidate regions of ``slices`` (None = all), with progress."""
        zs = range(self.study.n_slices) if slices is None else [self._z(z) for z in slices]
        for i, z in enumerate(zs):
            self.regions(z)
            if progress is not None:
                progress(i + 1, len(zs))

    def _regions_changed(self, slices: Iterable[int]) -> None:
        for z in slices:
            with self._regions_lock:
                self._regions.pop(z, None)
            if self._selection is not None and self._selection[0] == z:
                self._selection = None

    # ----------------------------------------------------------------- selection
    @property
    def selection(self) -> tuple[int, int] | None:
        """(slice, region id) of the current selection, or None."""
        return self._selection

    def select(self, z, row, col) -> int:
        """Select the region under (row, col) of slice ``z``; 0 (nothing) on background
        or outside the image, with the reason in :attr:`last_message`."""
        z = self._z(z)
        self._selection = None
        try:
            r, c = float(row), float(col)
        except (TypeError, ValueError, OverflowError):
            r = c = float("nan")
        rows, cols = self.study.shape[1:]
        if not (math.isfinite(r) and math.isfinite(c)):
            self._message("nothing selected: the point has no valid coordinates")
        elif not (0 <= round(r) < rows and 0 <= round(c) < cols):
            self._message(f"nothing selected: ({row}, {col}) is outside the {rows} x {cols} image")
        else:
            region = int(self.regions(z)[round(r), round(c)])
            if region == 0:
                self._message("nothing selected: background here (no candidate region at "
                              "these thresholds); lower the organ threshold or draw")
            else:
                self._selection = (z, region)
                self._message(f"region {region} selected on slice {z}")
        self._notify(SessionEvent(Change.SELECTION, (z,), "select"))
        return 0 if self._selection is None else self._selection[1]

    def selected_mask(self, z) -> np.ndarray | None:
        """Mask of the selected region if it belongs to slice ``z``, else None."""
        z = self._z(z)
        if self._selection is None or self._selection[0] != z:
            return None
        return self.regions(z) == self._selection[1]

    def clear_selection(self) -> None:
        self._selection = None

    # ----------------------------------------------------------------- edits
    def assign(self, z, label) -> int:
        """Give the selected region of slice ``z`` the label (0 removes), with its
        partial-volume rim (see ``rim_params``). Returns pixels changed."""
        z, label = self._z(z), self._label(label)
        mask = self.selected_mask(z)
        if mask is None:
            where = ("nothing is selected" if self._selection is None else
                     f"the selection belongs to slice {self._selection[0]}")
            self._message(f"nothing labelled on slice {z}: {where}; click a region first")
            return 0
        new = self.labels[z].copy()
        new[mask] = label
        self._add_rim(z, new, label, mask)
        return self._edit_slice("assign", z, new,
                                f"{label_name(label) if label else 'label removed'}")

    def draw(self, z, points, label, width_mm: float = 3.0) -> int:
        """Paint a stroke along ``points`` [(row, col), ...] with ``label`` (0 erases).
        Returns pixels changed."""
        z, label = self._z(z), self._label(label)
        try:
            width = float(width_mm)
        except (TypeError, ValueError, OverflowError):
            raise SessionError(f"width_mm must be a number, got {width_mm!r}") from None
        if not math.isfinite(width) or width <= 0:
            raise SessionError(f"width_mm must be a positive number of mm, got {width_mm!r}")
        width = min(width, MAX_WIDTH_MM)
        try:
            mask = stroke_mask(points, self.study.shape[1:], width / self.pixel_mm)
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        if not mask.any():
            self._message("nothing drawn: the stroke lies outside the image")
            return 0
        new = self.labels[z].copy()
        new[mask] = label
        return self._edit_slice("erase" if label == 0 else "draw", z, new,
                                "erased" if label == 0 else f"drew {label_name(label)}")

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
            self._message("no cut: draw a line of at least two points across the image")
            return False
        old = list(self._cuts.get(z, []))
        step = Step("cut")
        step.cuts[z] = (old, old + [pts])
        self._set_cuts(z, old + [pts], added=mask)
        self._commit(step, f"cut on slice {z}")
        return True

    def cuts(self, z) -> list[np.ndarray]:
        """The cut polylines of slice ``z`` ((n, 2) arrays of (row, col))."""
        return [c.copy() for c in self._cuts.get(self._z(z), [])]

    def clear_cuts(self, z) -> bool:
        """Remove the cuts of slice ``z`` (undoable)."""
        z = self._z(z)
        old = self._cuts.get(z, [])
        if not old:
            self._message(f"slice {z} has no cuts")
            return False
        step = Step("cut")
        step.cuts[z] = (list(old), [])
        self._set_cuts(z, [])
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
        step = Step(name)
        changed = 0
        for z in range(self.study.n_slices):
            patch = label_patch(z, self.labels[z], labels[z].astype(np.uint8))
            if patch is not None:
                changed += int((patch.old != patch.new).sum())
                self.labels[z, patch.rows, patch.cols] = patch.new
                step.patches.append(patch)
        self._commit(step, f"{changed} pixels replaced")
        return changed

    def extend(self, z, below=None, above=None, progress=None, label=None) -> ExtendReport:
        """Carry the labels of slice ``z`` to neighbouring slices.

        Parameters
        ----------
        z : int
        below, above : int or None
            How many slices to go towards lower / higher indices; None = as far as the
            organ goes (the stopping rule), 0 = not in that direction. Slices that
            already have the label end the extend; up to as many of them gain the parts
            of the label they lack (a lobe joining between two labelled slices).
        progress : callable(done, total), optional
        label : int, optional
            Only this label (default: every label on slice ``z``).

        Returns
        -------
        ExtendReport
            Per slice what was done and why it stopped (also in :attr:`last_report`).
            The whole extend is one undo step.
        """
        z = self._z(z)
        labels = ([self._label(label)] if label is not None else
                  [int(v) for v in np.unique(self.labels[z]) if v])
        counts = {}
        for name, value in (("below", below), ("above", above)):
            if value is not None:
                try:
                    ok = int(value) == value and int(value) >= 0
                except (TypeError, ValueError, OverflowError):
                    ok = False
                if not ok:
                    raise SessionError(f"{name} must be a slice count >= 0 or None, got {value!r}")
                value = int(value)
            counts[name] = value
        report = ExtendReport()
        step = Step("extend")
        total = sum(self.study.n_slices if c is None else c for c in counts.values()) * len(labels)
        done = 0
        for lab in labels:
            for direction, count in ((-1, counts["below"]), (+1, counts["above"])):
                if count == 0:
                    continue
                for tz, mask, row in extend_label(lambda i: self.labels[i], self.regions, z, lab,
                                                  direction, count, self.study.n_slices,
                                                  pixel_mm=self.pixel_mm,
                                                  params=self.extend_params):
                    report.rows.append(row)
                    if mask is not None:
                        new = self.labels[tz].copy()
                        new[mask] = lab
                        self._add_rim(tz, new, lab, mask)
                        patch = label_patch(tz, self.labels[tz], new)
                        if patch is not None:
                            self.labels[tz, patch.rows, patch.cols] = patch.new
                            step.patches.append(patch)
                    done += 1
                    if progress is not None:
                        progress(min(done, total), total)
        if not labels:
            report.rows.append(ExtendRow(z, 0, 0, "ended", "the slice has no label to extend"))
        self.last_report = report
        n = len(step.patches)
        self._commit(step, f"extended to {n} slice(s)" if n else "nothing extended: "
                     + (report.rows[-1].reason if report.rows else "no slices"))
        return report

    @property
    def noise_sd(self) -> float:
        """Noise SD of one pixel in HU (:func:`noise_sd` of up to 8 slices, computed once)."""
        if self._noise_sd is None:
            hu = self.study.hu
            zs = np.unique(np.linspace(0, hu.shape[0] - 1, min(8, hu.shape[0])).round())
            try:
                self._noise_sd = noise_sd(hu[zs.astype(int)])
            except ValueError:          # no soft tissue: no partial-volume rim
                self._noise_sd = math.inf
        return self._noise_sd

    def _add_rim(self, z: int, new: np.ndarray, label: int, added: np.ndarray) -> None:
        """Give ``label`` the partial-volume rim of the pixels ``added`` to it in ``new``
        (slice ``z``): outline pixels that are mostly organ, from the background only (a
        pixel of another candidate region is another structure: the diaphragm or wall
        next to the liver), never other labels or cuts."""
        if label == 0 or self.rim_params is None:
            return
        free = self.regions(z) == 0
        barrier = self._barrier(z)
        if barrier is not None:
            free &= ~barrier
        rim = partial_volume_rim(self.study.hu[z], new, label, noise_sd=self.noise_sd,
                                 near=added, free=free, params=self.rim_params)
        new[rim] = label

    def _edit_slice(self, name: str, z: int, new: np.ndarray, what: str) -> int:
        patch = label_patch(z, self.labels[z], new)
        step = Step(name)
        changed = 0
        if patch is not None:
            changed = int((patch.old != patch.new).sum())
            self.labels[z, patch.rows, patch.cols] = patch.new
            step.patches.append(patch)
        self._commit(step, f"{what}: {changed} pixels on slice {z}" if changed else
                     f"nothing changed on slice {z}")
        return changed

    # ----------------------------------------------------------------- history
    def _commit(self, step: Step, message: str) -> None:
        self._message(message)
        if self._history.push(step):
            self._after_edit(step.name, step)

    def _apply(self, step: Step, undo: bool) -> None:
        for patch in (reversed(step.patches) if undo else step.patches):
            self.labels[patch.z, patch.rows, patch.cols] = patch.old if undo else patch.new
        for z, (old, new) in step.thresholds.items():
            self._thresholds[z] = old if undo else new
        for z, (old, new) in step.cuts.items():
            self._set_cuts(z, old if undo else new)
        self._regions_changed(list(step.thresholds))

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
            self._message(f"nothing to {event}")
            return False
        self._apply(step, undo=undo)
        self._message(f"{'undid' if undo else 'redid'} {step.name}")
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
        if self.autosave:
            from .persist import autosave_dir
            try:
                self.save(autosave_dir(self.study, self.workspace))
            except Exception as exc:  # keep editing; say why the autosave failed
                log.exception("autosave failed")
                self._message(f"{self.last_message} (autosave failed: {exc})")
        self._notify(SessionEvent(step.changes, step.slices, source))

    # ----------------------------------------------------------------- state, save, export
    def state(self) -> dict:
        """JSON-able state saved next to the labels."""
        return {
            "thresholds": self._thresholds.tolist(),
            "suggested_thresholds": list(self.suggested_thresholds),
            "cuts": {str(z): [c.tolist() for c in lines] for z, lines in self._cuts.items()
                     if lines},
        }

    def _restore_state(self, state: dict) -> None:
        try:
            thr = np.asarray(state.get("thresholds"), float)
            if thr.shape == self._thresholds.shape and np.isfinite(thr).all():
                self._thresholds = thr
            cuts = {int(z): [np.asarray(c, float).reshape(-1, 2) for c in lines]
                    for z, lines in (state.get("cuts") or {}).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise SessionError(f"the saved session state is damaged ({exc})") from None
        self._cuts = {z: v for z, v in cuts.items() if 0 <= z < self.study.n_slices}
        self._barriers.clear()
        with self._regions_lock:
            self._regions.clear()

    def save(self, folder=None) -> Path:
        """Save labels and state (atomically) to ``folder`` or the default session folder."""
        from .persist import default_session_dir, save_session
        if folder is None:
            folder = default_session_dir(self.study, self.workspace)
        return save_session(folder, self.labels, self.state(), self.study)

    @classmethod
    def open(cls, folder, study: Study | None = None, **kwargs) -> "Session":
        """Reopen a saved session; ``study`` None loads the study from the saved path."""
        from .persist import load_session, read_session_info
        if study is None:
            from .io import load_study
            path = read_session_info(folder).get("study_path")
            if not path:
                raise SessionError(f"the session in {folder} does not record its study; "
                                   "pass study=load_study(...)")
            study = load_study(path)
        labels, state = load_session(folder, study)
        session = cls(study, **kwargs)
        session.labels[...] = labels
        session._restore_state(state)
        return session

    def volumes_ml(self) -> dict:
        """{"liver": mL, "spleen": mL} from the voxel spacing."""
        from .measure import volumes_ml
        return volumes_ml(self.labels, self.study.spacing)

    def measurements(self) -> dict:
        """Per organ: volume_ml, slices, mean_hu, sd_hu, area per slice."""
        from .measure import organ_measurements
        return organ_measurements(self.labels, self.study.hu, self.study.spacing)

    def export_nifti(self, path) -> Path:
        """One NIfTI label map (1 liver, 2 spleen) with the study geometry."""
        from .export import write_nifti_labels
        return write_nifti_labels(path, self.labels, self.study)

    def export_organ_masks(self, folder):
        """One binary NIfTI mask per organ."""
        from .export import export_organ_masks
        return export_organ_masks(folder, self.labels, self.study)

    def export_legacy(self, folder):
        """The original tool's per-slice ``<i>.p`` files."""
        from .export import export_legacy
        return export_legacy(folder, self.labels, self.study)

    def export_dicom_seg(self, path):
        """DICOM SEG referencing the source series."""
        from .export import export_dicom_seg
        return export_dicom_seg(path, self.labels, self.study)
