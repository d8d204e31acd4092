"""Autosave without a whole-volume write per edit: an edit journal plus snapshots off the
event path.

The guarantee: a killed kernel (SIGKILL, a crash; not a power cut) loses at most the
edit it was making. :class:`Autosaver` keeps it so:

- The first edit a session autosaves writes a snapshot (the atomic
  :func:`~radipop_widgets.persist.save_session`, on the event path: it claims the
  folder for this session) and starts a new journal (:mod:`.journal`) that the snapshot
  names (``session.json`` ``"journal": {"id", "seq": 0}``).
- Every later edit appends one record (the new values of its bounding boxes, the state
  when it changed): one ``write`` of a few KB, no fsync.
- A worker thread writes the next snapshot when the edits pause (``delay_s`` after the
  last one) or when ``max_records`` / ``max_bytes`` are pending, then drops the records
  it took from the journal. It never reads the live labels: it keeps its own copy
  (``shadow``, the labels of the last snapshot) and applies the records to it, so the
  snapshot holds exactly the labels after its last record, whatever the next edit is
  doing meanwhile.
- An edit too large for a record (over ``large_bytes`` of boxes) and an edit after an
  append failed write a snapshot on the event path instead.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .journal import JournalError, JournalWriter, encode_record
from .persist_read import _locked

log = logging.getLogger(__name__)

#: seconds after the last edit before the worker writes a snapshot
SNAPSHOT_DELAY_S = 2.0
#: records (or journalled bytes) after which a snapshot is written without waiting
MAX_RECORDS = 200
MAX_BYTES = 32 * 2 ** 20
#: an edit whose boxes hold more label values than this is snapshotted, not journalled
LARGE_BYTES = 16 * 2 ** 20
#: wait before trying again after a snapshot failed
RETRY_S = 10.0


def now_iso() -> str:
    """The time of an edit as session.json writes ``saved_at``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class _Pending:
    seq: int
    boxes: list
    values: list
    state: dict | None
    frame: bytes = field(repr=False)


#: save(folder, labels, state, journal_position) -> Path, e.g. persist.save_session bound
#: to the study and the session's ids
SaveFunction = Callable[[Path, np.ndarray, dict, dict], Path]


class Autosaver:
    """The journal and snapshots of one session's autosave folder.

    Parameters
    ----------
    folder : Path
        The autosave folder.
    save : callable
        ``save(folder, labels, state, journal)`` writes a snapshot (atomically) and
        records the journal position ``journal`` in it.
    session_id : str
    delay_s, max_records, max_bytes, large_bytes : see the module constants.
    """

    def __init__(self, folder: Path, save: SaveFunction, session_id: str, *,
                 delay_s: float | None = None, max_records: int | None = None,
                 max_bytes: int | None = None, large_bytes: int | None = None):
        self.folder = Path(folder)
        self._save = save
        self.session_id = session_id
        self.delay_s = SNAPSHOT_DELAY_S if delay_s is None else delay_s
        self.max_records = MAX_RECORDS if max_records is None else max_records
        self.max_bytes = MAX_BYTES if max_bytes is None else max_bytes
        self.large_bytes = LARGE_BYTES if large_bytes is None else large_bytes
        self._lock = threading.Lock()               # journal, pending, seq
        self._wake = threading.Condition(self._lock)
        self._snapshot_lock = threading.Lock()      # one snapshot at a time; owns shadow
        self._journal: JournalWriter | None = None
        self._journal_id: str | None = None
        self._seq = 0
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._due = 0.0
        self._thread: threading.Thread | None = None
        self._shadow: np.ndarray | None = None
        self._shadow_state: dict | None = None
        self.snapshots = 0          # written, for tests and benchmarks
        self.last_error: str | None = None

    # --------------------------------------------------------------- the event path
    def record(self, event: str, patches, labels: np.ndarray, state: dict | None,
               full_state: Callable[[], dict], volumes_ml: dict) -> None:
        """Journal one edit (``patches``: its label patches; the values are read from
        ``labels`` now); ``state`` is the new state when the edit changed it, else None.
        Raises (SessionError, OSError) when nothing could be written."""
        boxes = sorted({(p.z, p.rows.start, p.rows.stop, p.cols.start, p.cols.stop)
                        for p in patches})
        size = sum((r1 - r0) * (c1 - c0) for _, r0, r1, c0, c1 in boxes)
        with self._lock:
            journal = self._journal if size <= self.large_bytes else None
            if journal is not None:
                seq = self._seq + 1
                frame = encode_record(seq, event, boxes, labels, state, volumes_ml, now_iso())
                try:
                    journal.append(frame)
                except JournalError as exc:
                    log.warning("journal append failed (%s): writing a snapshot", exc)
                    self._journal = None
                else:
                    values = [labels[z, r0:r1, c0:c1].copy() for z, r0, r1, c0, c1 in boxes]
                    self._seq = seq
                    self._pending.append(_Pending(seq, boxes, values, state, frame))
                    self._pending_bytes += len(frame)
                    self._due = time.monotonic() + self.delay_s
                    self._start_worker()
                    return
        self.restart(labels, full_state())

    def restart(self, labels: np.ndarray, state: dict) -> Path:
        """Write a snapshot of ``labels`` and ``state`` now and start a new journal after it."""
        with self._snapshot_lock:
            journal_id = uuid.uuid4().hex
            path = self._save(self.folder, labels, state, {"id": journal_id, "seq": 0})
            shadow = labels.copy()
            with _locked(self.folder, shared=False), self._lock:
                if self._journal is not None:
                    self._journal.close()
                self._journal = None
                self._journal = JournalWriter.create(self.folder, journal_id, self.session_id,
                                                     labels.shape)
                self._journal_id, self._seq = journal_id, 0
                self._pending, self._pending_bytes = [], 0
                self._shadow, self._shadow_state = shadow, state
            self.snapshots += 1
            self.last_error = None
            return path

    def invalidate(self) -> None:
        """The next edit starts over with a snapshot (edits were made unjournalled)."""
        with self._lock:
            if self._journal is not None:
                self._journal.close()
            self._journal = None

    # ------------------------------------------------------------------ snapshots
    @property
    def pending(self) -> int:
        """Records not in a snapshot yet."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> None:
        """Write the snapshot of the pending records now (in this thread)."""
        self._snapshot()

    def _start_worker(self) -> None:
        """(under ``_lock``) Start the worker, or wake it when a snapshot is due now; it
        wakes by itself when the edits paused (waking it per edit costs the event thread
        a switch of the interpreter lock, ~2 ms)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="radipop-autosave",
                                            daemon=True)
            self._thread.start()
        elif len(self._pending) >= self.max_records or self._pending_bytes >= self.max_bytes:
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._lock:
                while True:
                    if not self._pending:
                        self._thread = None
                        return
                    wait = self._due - time.monotonic()
                    if (wait <= 0 or len(self._pending) >= self.max_records
                            or self._pending_bytes >= self.max_bytes):
                        break
                    self._wake.wait(wait)
            try:
                self._snapshot()
            except Exception as exc:  # keep the journal; try again later
                log.exception("autosave snapshot failed")
                self.last_error = str(exc)
                with self._lock:
                    self._due = time.monotonic() + RETRY_S

    def _snapshot(self) -> None:
        with self._snapshot_lock:
            with self._lock:
                take, journal, journal_id = list(self._pending), self._journal, self._journal_id
            if not take or self._shadow is None:
                return
            shadow, state = self._shadow, self._shadow_state
            for p in take:
                for (z, r0, r1, c0, c1), values in zip(p.boxes, p.values):
                    shadow[z, r0:r1, c0:c1] = values
                if p.state is not None:
                    state = p.state
            self._shadow_state = state
            last = take[-1].seq
            self._save(self.folder, shadow, state, {"id": journal_id, "seq": last})
            self.snapshots += 1
            self.last_error = None
            with _locked(self.folder, shared=False), self._lock:
                self._pending = [p for p in self._pending if p.seq > last]
                self._pending_bytes = sum(len(p.frame) for p in self._pending)
                if journal is not None and journal is self._journal:
                    try:
                        journal.rewrite([p.frame for p in self._pending])
                    except OSError as exc:  # the old records stay: replay skips them
                        log.warning("journal not compacted: %s", exc)
