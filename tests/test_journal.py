"""The autosave guarantee: a killed kernel loses at most the edit it was making, without a
whole-volume write per edit (edit journal + snapshots off the event path)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from radipop_widgets import LIVER, SPLEEN, autosave, measure, persist
from radipop_widgets.atomic import clean_stale
from radipop_widgets.journal import JOURNAL_FILE, MAGIC, read_journal
from radipop_widgets.session import Session

from test_session_edits import T, make_study

TESTS = Path(__file__).resolve().parent


def edit_script():
    """Edits of every kind, each one undo step (a list, so a child process and the test
    make the same ones): labels, cuts, thresholds, organ ranges, undo and redo."""
    return [
        lambda s: (s.select(2, 20, 20), s.assign(2, LIVER)),
        lambda s: s.draw(3, [(14, 14), (30, 26)], LIVER, width_mm=4),
        lambda s: (s.select(2, 26, 42), s.assign(2, SPLEEN)),
        lambda s: s.cut(1, [(0, 20), (63, 25)]),
        lambda s: s.set_thresholds(organ=60, slices=[4]),
        lambda s: s.draw(4, [(40, 10), (40, 50)], SPLEEN, width_mm=3),
        lambda s: s.undo(),
        lambda s: s.draw(1, [(10, 40), (50, 40)], 3, width_mm=5),
        lambda s: s.undo(),
        lambda s: s.redo(),
        lambda s: s.set_organ_range(LIVER, 60, 140),
        lambda s: s.draw(2, [(20, 12), (20, 30)], 0, width_mm=4),
    ]


def expected_states():
    """(labels, state) after 0, 1, ... edits of :func:`edit_script`."""
    s = Session(make_study(), thresholds=T)
    states = [(s.labels.copy(), s.state())]
    for edit in edit_script():
        edit(s)
        states.append((s.labels.copy(), s.state()))
    return states


def reopened(s_or_folder, study=None):
    folder = s_or_folder.autosave_folder() if isinstance(s_or_folder, Session) else s_or_folder
    return Session.open(folder, study=study or make_study())


def same(session, labels_state):
    labels, state = labels_state
    return bool((session.labels == labels).all()) and session.state() == state


def wait_snapshot(s, timeout=30.0):
    """Wait until the worker wrote the snapshot of every journalled edit."""
    deadline = time.monotonic() + timeout
    while s._autosaver.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s._autosaver.pending == 0, f"no snapshot in {timeout} s"


@pytest.fixture
def slow_snapshots(monkeypatch):
    """Snapshots only when asked (flush): every edit after the first is in the journal."""
    monkeypatch.setattr(autosave, "SNAPSHOT_DELAY_S", 3600.0)


def test_a_dropped_session_reopens_with_every_edit(tmp_path, slow_snapshots):
    states = expected_states()
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    for i, edit in enumerate(edit_script(), 1):
        edit(s)
        assert s.autosave_error is None
        assert same(reopened(s), states[i]), f"after edit {i}"
    folder = s.autosave_folder()
    info = persist.read_session_info(folder)
    assert info["journal"]["seq"] == 0            # only the first edit's snapshot
    read = read_journal(folder / JOURNAL_FILE, s.labels.shape)
    assert [r.seq for r in read.records] == list(range(1, len(edit_script())))
    assert read.journal_id == info["journal"]["id"] and not read.torn
    assert [r.event for r in read.records][5:9] == ["undo", "draw", "undo", "redo"]


def test_the_event_path_writes_no_labels_volume_after_the_first_edit(tmp_path, slow_snapshots):
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    script = edit_script()
    script[0](s)
    labels_file = s.autosave_folder() / persist.LABELS_FILE
    before = labels_file.stat()
    for edit in script[1:]:
        edit(s)
    after = labels_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert s.flush_autosave() == s.autosave_folder()     # the snapshot, asked for
    assert labels_file.stat().st_ino != before.st_ino
    info = persist.read_session_info(s.autosave_folder())
    assert info["journal"]["seq"] == len(script) - 1
    assert read_journal(s.autosave_folder() / JOURNAL_FILE, s.labels.shape).records == []
    assert same(reopened(s), expected_states()[-1])


def test_a_torn_last_record_is_ignored(tmp_path, slow_snapshots):
    states = expected_states()
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    for edit in edit_script()[:6]:
        edit(s)
    journal = s.autosave_folder() / JOURNAL_FILE
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-7])                      # killed while writing edit 6
    assert same(reopened(s), states[5])
    journal.write_bytes(whole[:-1] + bytes([whole[-1] ^ 1]))   # a flipped bit
    assert same(reopened(s), states[5])
    journal.write_bytes(whole + b"\x10\x00\x00\x00garbage")     # a frame begun, never ended
    assert same(reopened(s), states[6])
    journal.write_bytes(MAGIC)                           # no header: not a journal
    assert same(reopened(s), states[1])


def test_any_damage_to_the_journal_opens_a_prefix_of_the_edits(tmp_path, slow_snapshots):
    """Seeded fuzz: a journal cut anywhere or with any byte changed opens (never raises)
    as the snapshot plus the records before the damage."""
    states = expected_states()
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    for edit in edit_script():
        edit(s)
    journal = s.autosave_folder() / JOURNAL_FILE
    whole = journal.read_bytes()
    rng = np.random.default_rng(7)
    seen = set()
    for _ in range(40):
        at = int(rng.integers(0, len(whole)))
        damaged = whole[:at] if rng.random() < 0.5 else \
            whole[:at] + bytes([whole[at] ^ int(rng.integers(1, 256))]) + whole[at + 1:]
        journal.write_bytes(damaged)
        opened = reopened(s)
        match = [i for i in range(1, len(states)) if same(opened, states[i])]
        assert match, f"damage at byte {at} opened labels of no edit"
        seen.add(match[-1])
    assert len(seen) > 3


def test_snapshot_then_later_records(tmp_path, monkeypatch):
    monkeypatch.setattr(autosave, "SNAPSHOT_DELAY_S", 0.05)
    states = expected_states()
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    script = edit_script()
    for edit in script[:5]:
        edit(s)
    wait_snapshot(s)
    assert s._autosaver.snapshots >= 2
    folder = s.autosave_folder()
    assert persist.read_session_info(folder)["journal"]["seq"] == 4
    monkeypatch.setattr(s._autosaver, "delay_s", 3600.0)
    for edit in script[5:]:
        edit(s)
    records = read_journal(folder / JOURNAL_FILE, s.labels.shape).records
    assert [r.seq for r in records] == list(range(5, len(script)))   # older ones dropped
    assert same(reopened(s), states[-1])


def test_a_snapshot_taken_while_editing_goes_on_loses_nothing(tmp_path, monkeypatch):
    """The worker writes snapshots (every 2 records) while edits keep coming: each
    reopening shows every edit so far."""
    monkeypatch.setattr(autosave, "SNAPSHOT_DELAY_S", 0.0)
    monkeypatch.setattr(autosave, "MAX_RECORDS", 2)
    states = expected_states()
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    for i, edit in enumerate(edit_script(), 1):
        edit(s)
        assert same(reopened(s), states[i]), f"after edit {i}"
    wait_snapshot(s)      # (the reopening readers may hold the folder's lock meanwhile)
    assert s._autosaver.snapshots >= 2
    assert same(reopened(s), states[-1])


def test_the_offer_shows_the_journalled_volumes_and_time(tmp_path, slow_snapshots):
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    for edit in edit_script()[:4]:
        edit(s)
    first_snapshot = persist.read_session_info(s.autosave_folder())
    (choice,) = persist.session_choices(s.study, tmp_path)
    assert choice.kind == "autosaved" and choice.volumes_ml == pytest.approx(
        measure.volumes_ml(s.labels, s.study.spacing))
    assert choice.volumes_ml != first_snapshot["volumes_ml"]
    assert choice.saved_at > first_snapshot["saved_at"]
    assert persist.find_autosave(s.study, tmp_path) == s.autosave_folder()


def test_saves_and_stale_cleaning_keep_the_journal(tmp_path, slow_snapshots):
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    for edit in edit_script()[:3]:
        edit(s)
    folder = s.autosave_folder()
    (folder / ".labels.nii.gz.999999-abc.tmp").write_bytes(b"left by a killed save")
    clean_stale(folder, everything=True)
    assert (folder / JOURNAL_FILE).is_file()
    assert not (folder / ".labels.nii.gz.999999-abc.tmp").exists()
    s.save()                                   # the user's save: the journal stays
    assert same(reopened(s), expected_states()[3])


def test_volumes_follow_every_edit_undo_and_redo(tmp_path, monkeypatch):
    s = Session(make_study(), thresholds=T)
    whole = []
    for edit in edit_script():
        edit(s)
        whole.append(measure.volumes_ml(s.labels, s.study.spacing))
    s = Session(make_study(), thresholds=T)
    monkeypatch.setattr(measure, "volumes_ml", None)    # never the whole volume counted
    for edit, volumes in zip(edit_script(), whole):
        edit(s)
        assert s.volumes_ml() == volumes
    s.set_labels(np.zeros_like(s.labels))
    assert s.volumes_ml() == {"liver": 0.0, "spleen": 0.0}


def test_autosave_off_then_on_starts_over_with_a_snapshot(tmp_path, slow_snapshots):
    states = expected_states()
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    script = edit_script()
    script[0](s)
    s.autosave = False                         # e.g. while the Resume offer is open
    script[1](s)
    script[2](s)
    assert same(reopened(s), states[1])
    s.autosave = True
    script[3](s)                               # a snapshot with edits 2 and 3, then records
    script[4](s)
    assert same(reopened(s), states[5])


def test_a_session_resumed_from_the_autosave_continues_its_journal(tmp_path, slow_snapshots):
    states = expected_states()
    first = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    script = edit_script()
    for edit in script[:4]:
        edit(first)
    folder = first.autosave_folder()
    second = Session.open(folder, study=make_study(), workspace=tmp_path, autosave=True)
    assert same(second, states[4])
    for edit in script[4:7]:
        edit(second)
    assert second.autosave_folder() == folder
    assert same(reopened(folder), states[7])
    first.draw(5, [(5, 5)], LIVER, width_mm=3)   # the first one's journal was taken over
    assert "another session" in first.autosave_error
    assert same(reopened(folder), states[7])


CHILD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{tests!r}]
    from radipop_widgets import autosave
    autosave.SNAPSHOT_DELAY_S = {delay!r}
    from radipop_widgets.session import Session
    from test_journal import edit_script
    from test_session_edits import T, make_study
    s = Session(make_study(), thresholds=T, workspace={workspace!r}, autosave=True)
    for i, edit in enumerate(edit_script(), 1):
        edit(s)
        print(i, s.last_message, flush=True)
        time.sleep({pause!r})
    print("done", flush=True)
    time.sleep(60)
""")


def run_child(tmp_path, delay, pause, kill_after):
    code = CHILD.format(tests=str(TESTS), delay=delay, workspace=str(tmp_path), pause=pause)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(TESTS.parent)})
    try:
        done = 0
        while done < kill_after:
            line = child.stdout.readline()
            assert line, "the child ended early"
            assert "autosave failed" not in line
            done = int(line.split()[0])
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        child.kill()
        child.stdout.close()
    return done


@pytest.mark.parametrize("kill_after,delay", [(7, 3600.0), (12, 3600.0), (9, 0.02)])
def test_a_kernel_killed_right_after_an_edit_keeps_it(tmp_path, kill_after, delay):
    """SIGKILL once the child reported edit ``kill_after`` (it may be in the next one):
    every reported edit is there, the next at most whole."""
    done = run_child(tmp_path, delay, 0.03 if delay < 1 else 0.0, kill_after)
    states = expected_states()
    (choice,) = persist.session_choices(make_study(), tmp_path)
    opened = reopened(choice.folder)
    matches = [i for i in (done, done + 1) if i < len(states) and same(opened, states[i])]
    assert matches, f"reopened labels match none of the states after edit {done} or {done + 1}"
    assert choice.volumes_ml == pytest.approx(
        measure.volumes_ml(opened.labels, opened.study.spacing))


def test_the_dashboard_resumes_journalled_work_of_a_lost_kernel(tmp_path, slow_snapshots):
    """Through the App's handlers: click + Liver, click + Spleen, Undo, Redo, a threshold
    change; the App is dropped unsaved; a new one offers the autosave with the volumes of
    the last edit and resumes every edit."""
    from radipop_widgets.app import App
    from radipop_widgets.io.phantom import phantom_study
    from test_app_controller import GEOMETRY, organ_point

    study, reference = phantom_study(**GEOMETRY)
    lost = App(study=study, workspace=tmp_path)
    for label in (LIVER, SPLEEN):
        x, y, _ = organ_point(lost, reference, label)
        lost.mouse_down(x, y)
        lost.mouse_up(x, y)
        assert lost.assign(label)
    lost.undo()
    lost.redo()
    lost.set_thresholds(organ=lost.session.thresholds(lost.z).organ + 7)
    folder = lost.session.autosave_folder()
    assert persist.read_session_info(folder)["journal"]["seq"] == 0      # 4 edits journalled
    volumes = lost.session.volumes_ml()

    again = App(study=study, workspace=tmp_path)
    (label, _), = again.resume_panel.choice.options
    assert label.startswith("autosaved") and f"spleen {volumes['spleen']:.1f} mL" in label
    again.resume_panel.resume_button.click()
    np.testing.assert_array_equal(again.session.labels, lost.session.labels)
    assert again.session.state() == lost.session.state()
    assert again.header.volumes.value == lost.header.volumes.value
