"""Autosave and the organ volumes of a Session, kept up to date per edit.

:class:`SessionAutosave` is a part of :class:`~radipop_widgets.session.Session` (mixed
in). After every edit, undo and redo the Session calls :meth:`_edited`: the per-slice
label counts take the step's patches (:class:`~radipop_widgets.label_counts.LabelCounts`,
so :meth:`volumes_ml` never counts the whole volume), and with ``autosave`` on the edit
is journalled in the autosave folder (:class:`~radipop_widgets.autosave.Autosaver`: a
record per edit, snapshots off the event path). A killed kernel loses at most the edit
it was making.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import persist
from .autosave import Autosaver
from .history import Step
from .label_counts import LabelCounts

log = logging.getLogger(__name__)


class SessionAutosave:
    """Autosave journal and incremental volumes (mixed into Session)."""

    _autosave = False
    _autosaver: Autosaver | None = None
    _counts: LabelCounts | None = None
    _autosave_failed: str | None = None

    @property
    def autosave(self) -> bool:
        """Whether every edit is kept in the autosave folder (see :meth:`autosave_folder`)."""
        return self._autosave

    @autosave.setter
    def autosave(self, on) -> None:
        on = bool(on)
        if on != self._autosave and self._autosaver is not None:
            self._autosaver.invalidate()  # edits made meanwhile are not in the journal
        self._autosave = on

    @property
    def autosave_error(self) -> str | None:
        """Why the last autosave (of an edit, or a snapshot in the background) failed;
        None when it worked."""
        if self._autosave_failed is not None:
            return self._autosave_failed
        return None if self._autosaver is None else self._autosaver.last_error

    @property
    def label_counts(self) -> LabelCounts:
        """Voxels of each label per slice (counted once, then per edit)."""
        if self._counts is None or self._counts.labels is not self.labels:
            self._counts = LabelCounts(self.labels)
        return self._counts

    def volumes_ml(self) -> dict:
        """{"liver": mL, "spleen": mL} from the voxel spacing (kept per edit)."""
        return self.label_counts.volumes_ml(self.study.spacing)

    def flush_autosave(self) -> Path | None:
        """Write the autosave snapshot of the journalled edits now (they are safe from a
        killed kernel already; this folds them into labels.nii.gz). Returns the folder,
        None when this session has not autosaved."""
        if self._autosaver is None:
            return None
        self._autosaver.flush()
        return self._autosaver.folder

    def _edited(self, source: str, step: Step) -> None:
        """Count the step's patches; journal it when autosaving (a failure is told in
        ``last_message``, editing goes on)."""
        self.label_counts.update(step.patches, undo=source == "undo")
        if not self.autosave:
            return
        try:
            if self._autosaver is None:
                self._autosaver = Autosaver(self.autosave_folder(), self._snapshot_to,
                                            self.session_id)
            changed = step.thresholds or step.cuts or step.ranges
            self._autosaver.record(source, step.patches, self.labels,
                                   self.state() if changed else None, self.state,
                                   self.volumes_ml())
            self._autosave_failed = None
        except Exception as exc:  # keep editing; say why the autosave failed
            log.exception("autosave failed")
            self._autosave_failed = str(exc)
            self.last_message = f"{self.last_message} (autosave failed: {exc})"

    def _snapshot_to(self, folder, labels, state, journal) -> Path:
        """One autosave snapshot (the Autosaver calls it, also from its worker thread)."""
        return persist.save_session(folder, labels, state, self.study,
                                    session_id=self.session_id, base=self._base,
                                    journal=journal)
