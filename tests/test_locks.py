"""The session-folder lock: one writer per study, stale locks taken over, read-only saves."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket

import numpy as np
import pytest

from radipop_widgets import locks, persist
from radipop_widgets.locks import LOCK_FILE, SessionLock, SessionLockedError, read_lock
from radipop_widgets.session import Session
from synthetic import synthetic_study


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

    def write(age_s):
        now = locks._now()
        beat = locks._iso(now - locks._dt.timedelta(seconds=age_s))
        (folder / LOCK_FILE).write_text(json.dumps(
            {"user": "carol", "host": "elsewhere", "pid": 1, "since": beat, "heartbeat": beat,
             "session_id": "theirs"}))

    write(locks.STALE_AFTER_S / 2)
    with pytest.raises(SessionLockedError, match="carol on elsewhere"):
        SessionLock(folder, "mine").acquire()
    write(locks.STALE_AFTER_S + 5)
    assert SessionLock(folder, "mine", user="bob").acquire().held


def test_take_over_makes_the_first_holder_read_only(tmp_path):
    first = SessionLock(tmp_path, "a", user="alice").acquire()
    second = SessionLock(tmp_path, "b", user="bob").acquire(take_over=True)
    assert second.held and not first.held
    with pytest.raises(SessionLockedError, match="bob"):
        first.heartbeat()
    first.release()                              # does not release bob's lock
    assert read_lock(tmp_path).user == "bob" and read_lock(tmp_path).live
    second.release()
    holder = read_lock(tmp_path)
    assert holder.user == "bob" and holder.released_at and not holder.live


def test_sessions_on_one_study_one_writes_the_other_is_read_only(tmp_path):
    study = synthetic_study()
    workspace = tmp_path / "ws"
    alice = Session(study, workspace=workspace, autosave=True)
    bob = Session(study, workspace=workspace, autosave=True)
    alice.lock()
    assert alice.editor is None and bob.editor is not None
    labels = np.zeros(study.shape, np.uint8)
    labels[2, 5:9, 5:9] = 1
    bob.set_labels(labels)                                   # bob's autosave is refused
    assert persist.list_sessions(workspace) == []
    with pytest.raises(SessionLockedError):
        bob.save()
    with pytest.raises(SessionLockedError):                  # the API alone cannot either
        persist.save_session(persist.default_session_dir(study, workspace),
                             labels, {}, study)
    alice.set_labels(labels)
    assert alice.save().is_dir()
    bob.lock(take_over=True)
    with pytest.raises(SessionLockedError, match="being edited by"):
        alice.save()
    assert bob.save(replace=True).is_dir()
    bob.unlock()
    assert alice.editor is None and not read_lock(persist.default_session_dir(study, workspace)).live


def test_sessions_without_locks_keep_their_behaviour(tmp_path):
    """No lock taken: two sessions save as before (the conflict rule applies)."""
    study = synthetic_study()
    a = Session(study, workspace=tmp_path)
    b = Session(study, workspace=tmp_path)
    a.save()
    with pytest.raises(persist.SessionConflictError):
        b.save()
