"""The session-folder lock: one writer per study, stale locks taken over, read-only saves."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket

import numpy as np
import pytest
from synthetic import synthetic_study

from radipop_widgets import locks, persist
from radipop_widgets.locks import LOCK_FILE, SessionLock, SessionLockedError, read_lock
from radipop_widgets.session import Session


def _hold(folder, ready, stop):
    """Child process: hold the lock of ``folder`` until told to stop."""
    lock = SessionLock(folder, "child-session", user="alice").acquire()
    ready.set()
    stop.wait(60)
    lock.release()


@pytest.fixture
def child_lock(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    process = ctx.Process(target=_hold, args=(tmp_path / "study", ready, stop))
    process.start()
    assert ready.wait(60), "the child process never took the lock"
    yield process, stop
    if process.is_alive():         # (a killed waiter would make Event.set wait forever)
        stop.set()
        process.join(10)
    if process.is_alive():
        process.kill()


def test_a_second_writer_in_another_process_is_refused_with_who_and_how(tmp_path, child_lock):
    with pytest.raises(SessionLockedError) as info:
        SessionLock(tmp_path / "study", "mine", user="bob").acquire()
    message = str(info.value)
    assert "being edited by alice on " + socket.gethostname() in message
    assert "take it over" in message and "read-only" in message
    assert info.value.holder.pid == child_lock[0].pid


def test_the_lock_of_a_killed_process_is_stale_and_taken_over(tmp_path, child_lock):
    process, _ = child_lock
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    lock = SessionLock(tmp_path / "study", "mine", user="bob").acquire()
    assert read_lock(tmp_path / "study").user == "bob" and lock.held


def test_a_silent_lock_on_another_host_is_stale_after_the_heartbeat_limit(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()

    write_foreign_lock(folder, age_s=locks.STALE_AFTER_S / 2)
    with pytest.raises(SessionLockedError, match="carol on elsewhere"):
        SessionLock(folder, "mine").acquire()
    write_foreign_lock(folder, age_s=locks.STALE_AFTER_S + 5)
    assert SessionLock(folder, "mine", user="bob").acquire().held


def write_foreign_lock(folder, user="carol", age_s=0.0):
    """A lock file as another host's kernel writes it."""
    beat = locks._iso(locks._now() - locks._dt.timedelta(seconds=age_s))
    (folder / LOCK_FILE).write_text(json.dumps(
        {"user": user, "host": "elsewhere", "pid": 1, "since": beat, "heartbeat": beat,
         "session_id": "theirs"}))


def test_take_over_makes_the_first_holder_read_only(tmp_path):
    mine = SessionLock(tmp_path, "a", user="alice").acquire()
    write_foreign_lock(tmp_path, "bob")                  # bob's kernel takes it over
    assert not mine.held
    with pytest.raises(SessionLockedError, match="bob on elsewhere"):
        mine.heartbeat()
    with pytest.raises(SessionLockedError):
        locks.check_writer(tmp_path / "autosave")        # its autosave folders too
    mine.release()                                       # does not release bob's lock
    assert read_lock(tmp_path).user == "bob" and read_lock(tmp_path).live
    mine.acquire(take_over=True)                         # and alice takes it back
    assert mine.held
    mine.release()
    holder = read_lock(tmp_path)
    assert holder.user == "alice" and holder.released_at and not holder.live


def _edit_elsewhere(study_folder, ready, stop):
    SessionLock(study_folder, "kernel-2", user="alice").acquire()
    ready.set()
    stop.wait(60)


def test_a_study_edited_in_another_kernel_is_read_only_here(tmp_path):
    study = synthetic_study()
    workspace = tmp_path / "ws"
    folder = persist.default_session_dir(study, workspace)
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_edit_elsewhere, args=(folder, ready, stop))
    other.start()
    try:
        assert ready.wait(60)
        bob = Session(study, workspace=workspace, autosave=True)
        assert bob.editor is not None and bob.editor.user == "alice"
        with pytest.raises(SessionLockedError, match="being edited by alice"):
            bob.lock()
        labels = np.zeros(study.shape, np.uint8)
        labels[2, 5:9, 5:9] = 1
        bob.set_labels(labels)                           # bob's autosave is refused
        assert persist.list_sessions(workspace) == []
        with pytest.raises(SessionLockedError):
            bob.save()
        with pytest.raises(SessionLockedError):          # the API alone cannot either
            persist.save_session(folder, labels, {}, study)
        bob.lock(take_over=True)
        assert bob.editor is None and bob.save().is_dir()
        bob.unlock()
        assert not read_lock(folder).live
    finally:
        stop.set()
        other.join(10)


def test_sessions_without_locks_keep_their_behaviour(tmp_path):
    """Sessions of one kernel share its lock: between them the conflict rule applies."""
    study = synthetic_study()
    a = Session(study, workspace=tmp_path)
    b = Session(study, workspace=tmp_path)
    a.lock()
    b.lock()
    a.save()
    with pytest.raises(persist.SessionConflictError):
        b.save()
