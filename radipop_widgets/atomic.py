"""Atomic file and folder writes, and the cleaning of what a killed write leaves behind.

A file is written to a temporary file in the same folder, fsynced and renamed over the
target (``os.replace`` is atomic), so a crash during a write leaves either the previous
file or the new one, never a broken one; the folder is fsynced after the rename so that
the rename itself survives a power cut. The new file keeps the permissions of the file it
replaces (a fresh one gets 0666 minus the umask, as ``open`` would give it, not the 0600
of ``mkstemp``).

A folder of files that belong together (the legacy per-slice masks, the organ masks) is
written into a temporary sibling folder and swapped in whole (:func:`atomic_folder`):
readers see the previous export or the new one, never a mix of the two.

Temporary files and folders are named ``.<name>.<pid>-<random>.tmp``. A process killed
while writing (kill -9, power cut) leaves them behind; :func:`clean_stale` removes those
whose process no longer runs (or that are older than :data:`STALE_AFTER_S`), and every
write calls it for its own target first.

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
>>> with atomic_folder(folder / "masks") as staging:
...     _ = (staging / "0.p").write_bytes(b"slice 0")
>>> sorted(p.name for p in folder.iterdir()), (folder / "masks" / "0.p").read_bytes()
(['a.txt', 'masks'], b'slice 0')
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["STALE_AFTER_S", "PendingFile", "atomic_folder", "atomic_write_bytes",
           "atomic_writer", "clean_stale", "file_mode", "fsync_dir", "is_temporary",
           "replace_folder"]

#: A temporary file of a process that still runs is removed only when it is older than this.
STALE_AFTER_S = 3600.0
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def is_temporary(name: str) -> bool:
    """True for the name of a temporary file or folder written here (any process).

    >>> is_temporary(".labels.nii.gz.4242-k2j3h4ab.tmp"), is_temporary("labels.nii.gz")
    (True, False)
    """
    return _TEMP.fullmatch(name) is not None


class PendingFile:
    """A file being written next to ``path``: complete and fsynced after :meth:`finish`,
    visible at ``path`` only after :meth:`commit`; :meth:`discard` removes it.

    Use it where several files must all be complete before the first one is renamed
    (the session folder); :func:`atomic_writer` does all three steps for one file.
    """

    def __init__(self, path):
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(self.path), suffix=".tmp",
                                   dir=self.path.parent)
        self.tmp = Path(tmp)
        try:
            self.file = os.fdopen(fd, "wb")
            os.fchmod(self.file.fileno(), file_mode(self.path))  # mkstemp makes 0600
        except BaseException:
            os.close(fd)
            self.discard()
            raise

    def finish(self) -> None:
        """Flush, fsync and close the temporary file."""
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()

    def commit(self) -> Path:
        """Rename the finished temporary file over ``path``."""
        self.finish()
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Close and remove the temporary file (nothing happens after a commit)."""
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


@contextlib.contextmanager
def atomic_writer(path):
    """Open a temporary file next to ``path``; on success fsync it and rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is untouched. Stale
    temporary files of earlier writes to ``path`` are removed first.

    Yields
    ------
    file object opened for binary writing.
    """
    path = Path(path)
    clean_stale(path.parent, path.name)
    pending = PendingFile(path)
    try:
        yield pending.file
        pending.commit()
    except BaseException:
        pending.discard()
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_folder(target):
    """Yield an empty temporary folder next to ``target``; on success its files are fsynced
    and it replaces ``target`` whole (:func:`replace_folder`).

    On any exception the temporary folder is removed and ``target`` is untouched. What
    ``target`` held before is deleted after the swap: the caller decides beforehand
    whether it may be (see :func:`radipop_widgets.export.export_legacy`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent, target.name)
    staging = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp",
                                    dir=target.parent))
    try:
        os.chmod(staging, _folder_mode(target))  # mkdtemp makes 0700; mkdir would not
        yield staging
        for entry in os.scandir(staging):
            if entry.is_file(follow_symlinks=False):
                fd = os.open(entry.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(staging)
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(new, target) -> None:
    """Put the folder ``new`` at ``target``, which may exist: the old folder is swapped out
    in one step (``renameat2(RENAME_EXCHANGE)`` on Linux) and then deleted.

    Where the exchange is not available the old folder is renamed aside first; a crash
    between the two renames then leaves no ``target`` (both folders survive under their
    temporary names until :func:`clean_stale` removes them), never a mix.
    """
    new, target = Path(new), Path(target)
    if not os.path.lexists(target):
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old folder
    else:
        aside = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp",
                                      dir=target.parent))
        os.rename(target, aside / "old")
        os.rename(new, target)
        shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(target.parent)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system or file system cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _running(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def clean_stale(folder, name=None, *, everything=False) -> list[Path]:
    """Remove the temporary files and folders that killed writes left in ``folder``.

    Parameters
    ----------
    folder : path
    name : str, optional
        Only temporaries of writes to ``folder / name``; None: of any name.
    everything : bool
        Remove every temporary whatever its process (for a caller that holds the lock
        every writer of the folder takes); also those named by older versions
        (``.<name>.<random>.tmp``).

    Returns
    -------
    The paths removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP.fullmatch(entry.name)
        if match is None:
            old_style = everything and entry.name.startswith(".") and entry.name.endswith(".tmp")
            if not old_style or (name is not None and not entry.name.startswith(f".{name}.")):
                continue
        elif name is not None and match["name"] != name:
            continue
        if not everything and match is not None and _running(int(match["pid"])):
            with contextlib.suppress(OSError):
                if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                    continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


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
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would, for all threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        return 0o022


def _folder_mode(path: Path) -> int:
    """Permissions for a folder replacing ``path``: those of ``path``, else 0777 minus the
    umask (as ``mkdir`` gives)."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    return 0o777 & ~_umask()


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
