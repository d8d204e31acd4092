"""The edit journal of an autosave folder: one record per edit, appended, replayed on open.

An autosave folder holds a snapshot (``labels.nii.gz`` + ``session.json``, one atomic
save) and ``edits.journal``: the edits made since. ``session.json`` names the journal it
continues and the last record it includes (``"journal": {"id": ..., "seq": n}``);
opening the folder applies the records after ``n`` to the snapshot's labels.

The file is ``MAGIC`` and then frames, each ``<u32 length><u32 crc32>`` and a payload of
``<u32 json length>``, a JSON object and a binary part. The first frame is the header
(``{"journal": id, "session_id": ..., "shape": [...]}``); each later frame one edit:
``{"seq", "event", "at", "boxes": [[z, r0, r1, c0, c1], ...], "volumes_ml", "state"?}``
and the zlib-compressed uint8 label values of its boxes *after* the edit (absolute
values: applying a record twice, or over a snapshot that already holds it, gives the
same labels). ``state`` (the Session's state, as saved in session.json) is present when
the edit changed it. A frame is one ``write`` to the file, flushed to the operating
system (not fsynced): a killed process loses at most the edit it was writing, whose
frame is then torn (short or with another checksum) and ignored with everything after it.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> labels = np.zeros((2, 3, 4), np.uint8)
>>> writer = JournalWriter.create(folder, "j1", "s1", labels.shape)
>>> labels[1, 0:2, 1:3] = 2
>>> writer.append(encode_record(1, "draw", [(1, 0, 2, 1, 3)], labels, None, {}, "t1"))
>>> writer.close()
>>> read = read_journal(folder / JOURNAL_FILE, labels.shape)
>>> read.journal_id, [r.seq for r in read.records], read.torn
('j1', [1], False)
>>> restored = np.zeros_like(labels)
>>> replay(restored, read, {"id": "j1", "seq": 0}).applied
1
>>> bool((restored == labels).all())
True
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

JOURNAL_FILE = "edits.journal"
MAGIC = b"radipop-widgets journal 1\n"
_FRAME = struct.Struct("<II")
_JSON_LEN = struct.Struct("<I")
#: A frame longer than this is not one of ours (an edit of a whole 1000 x 1024 x 1024
#: volume is snapshotted instead of journalled).
MAX_FRAME_BYTES = 512 * 2 ** 20


class JournalError(OSError):
    """The journal cannot be written (disk full, folder gone, taken over)."""


def _frame(meta: dict, blob: bytes = b"") -> bytes:
    text = json.dumps(meta, separators=(",", ":")).encode()
    payload = _JSON_LEN.pack(len(text)) + text + blob
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def encode_record(seq: int, event: str, boxes, labels: np.ndarray, state: dict | None,
                  volumes_ml: dict, at: str) -> bytes:
    """The frame of one edit: the values of ``labels`` inside ``boxes`` as they are now.

    ``boxes`` are ``(z, row0, row1, col0, col1)`` (half open); ``state`` None when the
    edit left the Session's state as it was.
    """
    boxes = [tuple(int(v) for v in b) for b in boxes]
    values = b"".join(np.ascontiguousarray(labels[z, r0:r1, c0:c1]).tobytes()
                      for z, r0, r1, c0, c1 in boxes)
    meta = {"seq": int(seq), "event": str(event)[:64], "at": at, "boxes": boxes,
            "volumes_ml": volumes_ml}
    if state is not None:
        meta["state"] = state
    return _frame(meta, zlib.compress(values, 1))


@dataclass
class Record:
    """One edit read back: its metadata and (on demand) its label values."""

    seq: int
    event: str
    at: str | None
    boxes: list
    volumes_ml: dict | None
    state: dict | None
    blob: bytes = field(repr=False, default=b"")

    def values(self) -> list[np.ndarray]:
        """The label values of each box (raises ValueError when they do not fit)."""
        sizes = [(r1 - r0) * (c1 - c0) for _, r0, r1, c0, c1 in self.boxes]
        inflate = zlib.decompressobj()
        try:
            raw = inflate.decompress(self.blob, sum(sizes) + 1)
        except zlib.error as exc:
            raise ValueError(f"record {self.seq}: {exc}") from None
        if len(raw) != sum(sizes) or inflate.unconsumed_tail:
            raise ValueError(f"record {self.seq}: {len(raw)} label values for boxes of "
                             f"{sum(sizes)}")
        out, start = [], 0
        for (_, r0, r1, c0, c1), size in zip(self.boxes, sizes):
            out.append(np.frombuffer(raw, np.uint8, size, start).reshape(r1 - r0, c1 - c0))
            start += size
        return out


@dataclass
class JournalRead:
    """What :func:`read_journal` found: the header's ids, the whole records, and whether
    reading stopped at a torn or damaged frame (``torn``; the records before it count)."""

    journal_id: str | None
    session_id: str | None
    records: list[Record]
    torn: bool


def _text(value, limit=256):
    return value if isinstance(value, str) and len(value) <= limit and "\x00" not in value \
        else None


def _record(meta, blob: bytes, shape) -> Record | None:
    """A Record when ``meta`` is one (boxes inside ``shape``), else None."""
    if not isinstance(meta, dict) or type(meta.get("seq")) is not int or meta["seq"] < 1:
        return None
    boxes = meta.get("boxes")
    if not isinstance(boxes, list):
        return None
    n, rows, cols = shape
    for box in boxes:
        if not (isinstance(box, list) and len(box) == 5 and all(type(v) is int for v in box)):
            return None
        z, r0, r1, c0, c1 = box
        if not (0 <= z < n and 0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
            return None
    volumes = meta.get("volumes_ml")
    if not (isinstance(volumes, dict) and all(
            isinstance(k, str) and type(v) in (int, float) and math.isfinite(v) and v >= 0
            for k, v in volumes.items())):
        volumes = None
    state = meta.get("state")
    if state is not None and not isinstance(state, dict):
        return None
    return Record(meta["seq"], _text(meta.get("event"), 64) or "", _text(meta.get("at")),
                  [tuple(b) for b in boxes], volumes, state, blob)


def read_journal(path, shape) -> JournalRead | None:
    """The records of the journal at ``path`` for labels of ``shape``; None when there is
    no journal (or not one of ours). Never raises on damage: reading stops at the first
    frame that is short, fails its checksum or does not parse (``torn``)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data.startswith(MAGIC):
        return None
    frames, offset = [], len(MAGIC)
    torn = False
    while offset < len(data):
        if offset + _FRAME.size > len(data):
            torn = True
            break
        length, crc = _FRAME.unpack_from(data, offset)
        start, end = offset + _FRAME.size, offset + _FRAME.size + length
        if length < _JSON_LEN.size or length > MAX_FRAME_BYTES or end > len(data) \
                or zlib.crc32(data[start:end]) != crc:
            torn = True
            break
        (text_len,) = _JSON_LEN.unpack_from(data, start)
        text_end = start + _JSON_LEN.size + text_len
        try:
            meta = json.loads(data[start + _JSON_LEN.size:text_end].decode()) \
                if text_end <= end else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            meta = None
        if meta is None:
            torn = True
            break
        frames.append((meta, data[text_end:end]))
        offset = end
    if not frames or not isinstance(frames[0][0], dict) or "journal" not in frames[0][0]:
        return None
    header = frames[0][0]
    if header.get("shape") != list(shape):
        return None
    records = []
    for meta, blob in frames[1:]:
        record = _record(meta, blob, shape)
        if record is None:
            torn = True
            break
        records.append(record)
    return JournalRead(_text(header.get("journal")), _text(header.get("session_id")),
                       records, torn)


@dataclass
class Replayed:
    """What :func:`replay` applied: how many records, the newest state among them (None:
    the snapshot's), and the last record applied (its time and volumes)."""

    applied: int = 0
    state: dict | None = None
    last: Record | None = None


def records_after(read: JournalRead | None, position) -> list[Record]:
    """The records of ``read`` that follow the snapshot at ``position`` (``{"id", "seq"}``
    from session.json), consecutive from ``seq + 1``; none when the journal is another's."""
    if read is None or not isinstance(position, dict) or read.journal_id != position.get("id"):
        return []
    expected, out = position.get("seq", 0) + 1, []
    for record in read.records:
        if record.seq < expected:
            continue
        if record.seq != expected:
            break  # a gap: what follows does not continue this snapshot
        out.append(record)
        expected += 1
    return out


def replay(labels: np.ndarray, read: JournalRead | None, position) -> Replayed:
    """Apply the records after the snapshot at ``position`` to ``labels`` (in place)."""
    done = Replayed()
    for record in records_after(read, position):
        try:
            values = record.values()
        except ValueError:
            break  # a damaged record ends the journal like a torn one
        for (z, r0, r1, c0, c1), v in zip(record.boxes, values):
            labels[z, r0:r1, c0:c1] = v
        done.applied += 1
        done.last = record
        if record.state is not None:
            done.state = record.state
    return done


class JournalWriter:
    """The open journal of one autosave folder: frames appended with one ``write`` each.

    :meth:`append` raises :class:`JournalError` when the write fails or the file on disk
    is no longer this one (another session took the autosave folder over).
    """

    def __init__(self, path: Path, header: bytes, fd: int):
        self.path = path
        self.header = header
        self._fd = fd
        self._inode = os.fstat(fd).st_ino
        self.size = os.fstat(fd).st_size

    @classmethod
    def create(cls, folder, journal_id: str, session_id, shape) -> JournalWriter:
        """Start a new journal in ``folder`` (replacing the one there) with no records."""
        path = Path(folder) / JOURNAL_FILE
        header = MAGIC + _frame({"journal": journal_id, "session_id": session_id,
                                 "shape": [int(v) for v in shape]})
        return cls(path, header, _write_new(path, header))

    def append(self, frame: bytes) -> None:
        try:
            if os.stat(self.path).st_ino != self._inode:
                raise JournalError(f"{self.path} was replaced by another session")
            written = os.write(self._fd, frame)
        except JournalError:
            raise
        except OSError as exc:
            self._truncate()
            raise JournalError(f"cannot append to {self.path}: {exc}") from exc
        if written != len(frame):
            self._truncate()
            raise JournalError(f"cannot append to {self.path}: the disk is full")
        self.size += written

    def rewrite(self, frames: list[bytes]) -> None:
        """Replace the file by the header and ``frames`` (the records a snapshot did not
        take); later appends go to the new file."""
        fd = _write_new(self.path, self.header + b"".join(frames))
        os.close(self._fd)
        self._fd, self._inode = fd, os.fstat(fd).st_ino
        self.size = os.fstat(fd).st_size

    def _truncate(self) -> None:
        try:
            os.ftruncate(self._fd, self.size)  # no torn frame before the next one
        except OSError:
            pass

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    __del__ = close  # a dropped Session's journal leaves no descriptor open


def _write_new(path: Path, data: bytes) -> int:
    """Write ``data`` to a new file renamed over ``path``; an append descriptor on it."""
    new = path.with_name(path.name + ".new")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)
    try:
        if os.write(fd, data) != len(data):
            raise JournalError(f"cannot write {new}: the disk is full")
        os.replace(new, path)
    except BaseException:
        os.close(fd)
        raise
    return fd
