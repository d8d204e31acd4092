"""Who edits a study: a lock file in its session folder, one writer at a time.

A session that edits a study holds ``<session folder>/.radipop-lock.json``: who (the
JupyterHub user, else the login name), on which host, the process id, since when, and a
heartbeat renewed every :data:`HEARTBEAT_S` seconds. The lock is a kernel's: a session in
another process (another kernel, another user) gets :class:`SessionLockedError` (it names
the holder and says how to take over) and the folder stays read-only for it:
:func:`check_writer`, called by every save, refuses to write into a folder (or its
autosave folders) whose live lock is another process's. Sessions of one process share
it (between them the save conflict rule of :mod:`radipop_widgets.persist` applies).

A lock is **stale**, and is taken over without asking, when it was released, when its
heartbeat is older than :data:`STALE_AFTER_S` seconds, or when it was taken on this host by
a process that no longer runs. ``take_over=True`` takes a live lock (the holder's next save
is refused, with the name of who took it). The lock stays on disk when released
(``released_at`` set): it says who edited the study last.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> lock = SessionLock(folder, "session-a", user="alice").acquire()
>>> holder = read_lock(folder)
>>> holder.user, holder.live, holder.mine
('alice', True, True)
>>> lock.release(); read_lock(folder).live
False
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import fcntl
import getpass
import json
import os
import socket
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_write_bytes
from .errors import SessionError
from .persist_paths import AUTOSAVE_DIR

LOCK_FILE = ".radipop-lock.json"
GUARD_FILE = ".radipop-lock.guard"
#: A lock whose heartbeat is older than this (seconds) is stale.
STALE_AFTER_S = 120.0
#: How often a held lock renews its heartbeat (seconds).
HEARTBEAT_S = 30.0
USER_ENV = "JUPYTERHUB_USER"


def current_user() -> str:
    """The user the server knows: ``$JUPYTERHUB_USER``, else the login name."""
    user = os.environ.get(USER_ENV)
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def _parse(text) -> _dt.datetime | None:
    try:
        t = _dt.datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, TypeError):
        return True  # someone else's process, or nothing we can judge: assume it runs
    return True


@dataclass(frozen=True)
class LockHolder:
    """What a lock file says: who holds (or last held) the folder."""

    user: str
    host: str
    pid: int
    since: str
    heartbeat: str
    session_id: str | None = None
    released_at: str | None = None

    def age_s(self, now: _dt.datetime | None = None) -> float:
        """Seconds since the last heartbeat (infinite when unreadable)."""
        beat = _parse(self.heartbeat)
        return float("inf") if beat is None else ((now or _now()) - beat).total_seconds()

    def stale(self, now: _dt.datetime | None = None) -> bool:
        """Released, silent for :data:`STALE_AFTER_S`, or its process gone on this host."""
        if self.released_at is not None or self.age_s(now) > STALE_AFTER_S:
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)

    @property
    def live(self) -> bool:
        return not self.stale()

    @property
    def mine(self) -> bool:
        """Taken by this process."""
        return (self.host, self.pid) == (socket.gethostname(), os.getpid())

    def blocks(self) -> bool:
        """A live lock of another process: writing is refused."""
        return not self.mine and self.live

    def text(self) -> str:
        """``alice on host-1 since 2026-12-01 09:10 UTC (seen 12 s ago)``."""
        since = _parse(self.since)
        when = since.strftime("%Y-%m-%d %H:%M UTC") if since else "an unknown time"
        age = self.age_s()
        seen = f"seen {age:.0f} s ago" if age != float("inf") else "never seen"
        return f"{self.user} on {self.host} since {when} ({seen})"


class SessionLockedError(SessionError):
    """Another session holds the study's session folder (``holder``: :class:`LockHolder`)."""

    def __init__(self, folder, holder: LockHolder):
        self.folder, self.holder = Path(folder), holder
        super().__init__(
            f"{folder} is being edited by {holder.text()}; here it is read-only (nothing is "
            "saved). Ask them to close it, or take it over (Take over in the worklist, "
            "Session.lock(take_over=True)): their next save is then refused. A lock whose "
            f"holder is silent for {STALE_AFTER_S:.0f} s, or whose process has ended on this "
            "host, is taken over without asking.")


def read_lock(folder) -> LockHolder | None:
    """The lock file of ``folder`` (None when there is none or it cannot be read)."""
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
        return LockHolder(str(data["user"]), str(data["host"]), int(data["pid"]),
                          str(data["since"]), str(data["heartbeat"]), data.get("session_id"),
                          data.get("released_at"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _lock_folder(folder: Path) -> Path:
    """The folder whose lock covers ``folder``: an autosave folder is its parent's."""
    name = folder.name
    return folder.parent if name == AUTOSAVE_DIR or name.startswith(AUTOSAVE_DIR + "-") \
        else folder


def check_writer(folder) -> None:
    """Raise :class:`SessionLockedError` when a live lock of another process covers
    ``folder`` (the session folder itself, or the one an autosave folder belongs to)."""
    lock_folder = _lock_folder(Path(folder))
    holder = read_lock(lock_folder)
    if holder is not None and holder.blocks():
        raise SessionLockedError(lock_folder, holder)


@contextlib.contextmanager
def _guard(folder: Path):
    """Serialise lock changes of ``folder`` between processes (flock on a guard file)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / GUARD_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


_HELD: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD):
        with contextlib.suppress(Exception):
            lock.release()


class SessionLock:
    """The lock of one session folder, held by one session (``session_id``).

    Parameters
    ----------
    folder : path
        The study's session folder (``persist.default_session_dir``).
    session_id : str
        The session that writes (``Session.session_id``).
    user : str, optional
        Who; default :func:`current_user`.
    """

    def __init__(self, folder, session_id: str, user: str | None = None):
        self.folder = Path(folder)
        self.session_id = str(session_id)
        self.user = user or current_user()
        self._since: str | None = None
        self._timer: threading.Timer | None = None
        self._stopped = threading.Event()

    @property
    def held(self) -> bool:
        """True while the lock file names this session and is not released."""
        holder = read_lock(self.folder)
        return (holder is not None and holder.session_id == self.session_id
                and holder.mine and holder.released_at is None)

    def _write(self, released: bool = False) -> None:
        now = _iso(_now())
        data = {"user": self.user, "host": socket.gethostname(), "pid": os.getpid(),
                "since": self._since or now, "heartbeat": now, "session_id": self.session_id,
                "released_at": now if released else None}
        atomic_write_bytes(self.folder / LOCK_FILE, json.dumps(data, indent=1).encode())

    def acquire(self, take_over: bool = False) -> SessionLock:
        """Take the lock; returns self.

        Raises
        ------
        SessionLockedError
            Another session holds a live lock and ``take_over`` is False.
        """
        with _guard(self.folder):
            holder = read_lock(self.folder)
            if holder is not None and holder.blocks() and not take_over:
                raise SessionLockedError(self.folder, holder)
            if holder is None or holder.session_id != self.session_id or holder.released_at:
                self._since = _iso(_now())
            self._write()
        _HELD.add(self)
        return self

    def heartbeat(self) -> None:
        """Renew the heartbeat; raises :class:`SessionLockedError` when another process
        took the lock over meanwhile (then this one must stop writing)."""
        with _guard(self.folder):
            holder = read_lock(self.folder)
            if holder is not None and holder.blocks():
                raise SessionLockedError(self.folder, holder)
            self._write()

    def release(self) -> None:
        """Mark the lock released (kept on disk as the last editor); nothing when another
        session holds it now."""
        self.stop_heartbeat()
        _HELD.discard(self)
        with contextlib.suppress(OSError), _guard(self.folder):
            if self.held:
                self._write(released=True)

    def start_heartbeat(self, interval: float = HEARTBEAT_S) -> None:
        """Renew the heartbeat every ``interval`` seconds in a daemon thread until
        :meth:`release` (or until the lock is taken over)."""
        self.stop_heartbeat()
        self._stopped.clear()

        def beat():
            if self._stopped.is_set():
                return
            try:
                self.heartbeat()
            except (SessionLockedError, OSError):
                return  # taken over or folder gone: the next save says so
            self._timer = threading.Timer(interval, beat)
            self._timer.daemon = True
            self._timer.start()

        self._timer = threading.Timer(interval, beat)
        self._timer.daemon = True
        self._timer.start()

    def stop_heartbeat(self) -> None:
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
