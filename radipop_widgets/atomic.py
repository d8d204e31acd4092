"""Atomic file writes: a temporary file in the same folder, fsynced, renamed over the target.

``os.replace`` is atomic, so a crash during a write leaves either the previous file or
the new one, never a broken one; the folder is fsynced after the rename so that the
rename itself survives a power cut. The new file keeps the permissions of the file it
replaces (a fresh one gets 0666 minus the umask, as ``open`` would give it, not the
0600 of ``mkstemp``).

Examples
--------
>>> import tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> folder = Path(tmp.name)
>>> atomic_write_bytes(folder / "a.txt", b"one").read_bytes()
b'one'
>>> with atomic_writer(folder / "a.txt") as f:
...     _ = f.write(b"two")
...     raise OSError("disk full")
Traceback (most recent call last):
OSError: disk full
>>> (folder / "a.txt").read_bytes(), sorted(p.name for p in folder.iterdir())
(b'one', ['a.txt'])
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_writer", "file_mode", "fsync_dir"]


@contextlib.contextmanager
def atomic_writer(path):
    """Open a temporary file next to ``path``; on success fsync it and rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.

    Yields
    ------
    file object opened for binary writing.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode(path))  # mkstemp makes 0600; open() would not
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def file_mode(path: Path) -> int:
    """Permissions for ``path``: those of the file it replaces, else 0666 minus the umask.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> existing = Path(tmp.name) / "x"
    >>> existing.touch()
    >>> existing.chmod(0o640)
    >>> oct(file_mode(existing))
    '0o640'
    >>> tmp.cleanup()
    """
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = 0o022
    return 0o666 & ~umask


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
