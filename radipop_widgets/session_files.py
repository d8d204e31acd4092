"""The files of a Session: save, reopen, autosave folder, measurements and exports.

:class:`SessionFiles` is a part of :class:`~radipop_widgets.session.Session` (mixed in);
it uses the Session's study, labels, state and ids and holds no state of its own.
"""

from __future__ import annotations

from pathlib import Path

from . import export, labelmap, locks, measure, measure_files, persist
from .errors import SessionError, StudyError
from .io import load_study
from .study import Study


class SessionFiles:
    """Save, open and export (mixed into Session)."""

    #: the study's session-folder lock while this session holds it (:meth:`lock`)
    _lock: locks.SessionLock | None = None

    def lock(self, take_over: bool = False) -> locks.SessionLock:
        """Hold the lock of the study's session folder (one writer per study), with a
        heartbeat; raises :class:`~radipop_widgets.locks.SessionLockedError` (who holds
        it, since when) unless ``take_over``. While another kernel holds it, every save
        into the study's folders is refused."""
        lock = self._lock or locks.SessionLock(
            persist.default_session_dir(self.study, self.workspace), self.session_id)
        lock.acquire(take_over=take_over)
        lock.start_heartbeat()
        self._lock = lock
        return lock

    def unlock(self) -> None:
        """Release the lock (it stays on disk naming the last editor)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def editor(self) -> locks.LockHolder | None:
        """Who else edits this study now (a live lock of another kernel), else None."""
        holder = locks.read_lock(persist.default_session_dir(self.study, self.workspace))
        return holder if holder is not None and holder.blocks() else None

    def autosave_folder(self) -> Path:
        """Where this session autosaves (chosen once: the study's autosave folder, or one
        of its own when another session's autosave is there)."""
        if self._autosave_folder is None:
            self._autosave_folder = persist.autosave_dir(
                self.study, self.workspace, session_id=self.session_id, base=self._base)
        return self._autosave_folder

    def save(self, folder=None, replace: bool = False) -> Path:
        """Save labels and state (atomically) to ``folder`` or the default session folder.

        A folder holding another session's saved work is never replaced silently: that
        raises :class:`~radipop_widgets.errors.SessionConflictError` (saying when that
        work was saved and its volumes) unless ``replace=True``.
        """
        if folder is None:
            folder = persist.default_session_dir(self.study, self.workspace)
        return self._save_to(folder, replace=replace)

    def _save_to(self, folder, replace: bool) -> Path:
        if self._lock is not None:
            self._lock.heartbeat()  # raises when another session took the study over
        path = persist.save_session(folder, self.labels, self.state(), self.study,
                                    session_id=self.session_id, base=self._base,
                                    replace=replace)
        return path

    @classmethod
    def open(cls, folder, study: Study | None = None, **kwargs):
        """Reopen a saved session; ``study`` None loads the study from the saved path.
        Saving it again replaces what it was opened from (and nothing newer)."""
        if study is None:
            path = persist.read_session_info(folder).get("study_path")
            if not path:
                raise SessionError(f"the session in {folder} does not record its study; "
                                   "pass study=load_study(...)")
            try:
                study = load_study(path)
            except StudyError as exc:
                raise SessionError(f"the study of the session in {folder} cannot be loaded "
                                   f"({exc}); pass study=load_study(...)") from exc
        loaded = persist.open_session(folder, study)
        session = cls(study, **kwargs)
        session.labels[...] = loaded.labels
        session.candidates.restore(loaded.state)
        session._base = loaded.info.get("save_id")
        return session

    def volumes_ml(self) -> dict:
        """{"liver": mL, "spleen": mL} from the voxel spacing."""
        return measure.volumes_ml(self.labels, self.study.spacing)

    def measurements(self) -> dict:
        """Per organ (:func:`radipop_widgets.measure.organ_measurements`): volume, HU mean,
        SD and median, slice range, craniocaudal length, axial diameters, the spleen's
        splenic index, area per slice; the liver / spleen volume ratio is
        ``measure.liver_spleen_ratio(s.measurements())``."""
        return measure.organ_measurements(self.labels, self.study.hu, self.study.spacing)

    def export_nifti(self, path) -> Path:
        """One NIfTI label map (1 liver, 2 spleen) with the study geometry, and beside it
        the organ statistics as ``<name>_measurements.json`` and ``.csv``
        (:mod:`radipop_widgets.measure_files`); returns the NIfTI's path."""
        measurements = self.measurements()
        written = labelmap.write_nifti_labels(path, self.labels, self.study)
        measure_files.write_measurements(written, measurements, self.study.spacing,
                                         self.labels.shape)
        return written

    def export_organ_masks(self, folder):
        """One binary NIfTI mask per organ."""
        return export.export_organ_masks(folder, self.labels, self.study)

    def export_legacy(self, folder):
        """The original tool's per-slice ``<i>.p`` files."""
        return export.export_legacy(folder, self.labels, self.study)

    def export_dicom_seg(self, path):
        """DICOM SEG referencing the source series."""
        return export.export_dicom_seg(path, self.labels, self.study)

