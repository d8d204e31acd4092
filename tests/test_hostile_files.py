"""Hostile and careless use of the files: damaged session folders, two sessions on one study,
bombs, kill -9 during saves and exports, stale temporary files, the saved session after
"Start new" (issue 9, Files)."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from synthetic import array_pickle_bomb, gzip_bomb_nifti, synthetic_study

from radipop_widgets import atomic, persist_read
from radipop_widgets.errors import (
    MaskFileError,
    SessionConflictError,
    SessionError,
    SessionFileError,
)
from radipop_widgets.export import (
    export_legacy,
    export_organ_masks,
    import_legacy_masks,
)
from radipop_widgets.persist import (
    LABELS_FILE,
    STATE_FILE,
    autosave_dir,
    default_session_dir,
    find_autosave,
    list_sessions,
    load_session,
    open_session,
    read_session_info,
    save_conflict,
    save_session,
    session_choices,
)

SHAPE = (6, 20, 24)
TESTS = Path(__file__).resolve().parent


def _study(**kw):
    return synthetic_study(shape=SHAPE, **kw)


def _liver(value=1, slices=slice(1, 4)):
    labels = np.zeros(SHAPE, np.uint8)
    labels[slices, 5:15, 5:15] = value
    return labels


def _write_info(folder, change):
    """Rewrite ``folder``'s session.json after ``change(info)`` (which may return new text)."""
    path = Path(folder) / STATE_FILE
    info = json.loads(path.read_text())
    text = change(info)
    path.write_text(text if isinstance(text, str) else json.dumps(info))


def _set(key, value):
    def change(info):
        info[key] = value
    return change


def _set_in(key, index, value):
    def change(info):
        info[key][index] = value
    return change


DAMAGE = {
    "format_version text": _set("format_version", "2"),
    "format_version null": _set("format_version", None),
    "format_version list": _set("format_version", [1]),
    "format_version bool": _set("format_version", True),
    "format number": _set("format", 7),
    "shape text": _set("shape", "6x20x24"),
    "shape two values": _set("shape", [6, 20]),
    "shape negative": _set("shape", [6, -20, 24]),
    "shape float": _set("shape", [6, 20.5, 24]),
    "shape huge": _set("shape", [2 ** 62, 2 ** 62, 2 ** 62]),
    "affine text": _set("affine", "eye"),
    "affine 3x3": _set("affine", np.eye(3).tolist()),
    "affine ragged": _set_in("affine", 1, [0, 1]),
    "affine with text": _set_in("affine", 0, ["1", 0, 0, 0]),
    "affine NaN": lambda info: info["affine"][0].__setitem__(0, float("nan")),
    "spacing zero": _set("spacing", [0, 0, 0]),
    "state list": _set("state", [1, 2]),
    "state null": _set("state", None),
    "study_path number": _set("study_path", 5),
    "study_path list": _set("study_path", ["a"]),
    "study_path NUL": _set("study_path", "/data/ct\u0000.nii"),
    "series_uid number": _set("series_uid", 1.5),
    "study_key dict": _set("study_key", {"a": 1}),
    "saved_at number": _set("saved_at", 20240101),
    "labels_sha256 number": _set("labels_sha256", 12),
    "volumes_ml text": _set("volumes_ml", "a lot"),
    "session_id list": _set("session_id", []),
    "deeply nested": lambda info: json.dumps(info)[:-1] + ', "deep": ' + "[" * 100_000
    + "]" * 100_000 + "}",
    "nested state": lambda info: json.dumps(dict(info, state=None)).replace(
        '"state": null', '"state": {"a": ' + "[" * 50_000 + "]" * 50_000 + "}"),
    "not utf-8": None,  # written as bytes by _write_damaged
    "empty": lambda info: "",
    "NUL bytes": lambda info: "\x00" * 100,
}


def _write_damaged(folder, name):
    change = DAMAGE[name]
    if name == "not utf-8":
        (Path(folder) / STATE_FILE).write_bytes(b'{"format": "\xff"}')
    else:
        _write_info(folder, change)


# ---------------------------------------------------------------- damaged session.json

@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_session_json_raises_session_error(tmp_path, damage):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {"v": 1}, study)
    _write_damaged(folder, damage)
    with pytest.raises(SessionFileError, match=r"session\.json"):
        read_session_info(folder)
    for study_arg in (None, study):
        with pytest.raises(SessionError):
            load_session(folder, study_arg)


def test_issue_example_format_version_two_as_text(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / STATE_FILE).write_text('{"format":"radipop-widgets session","format_version":"2"}')
    with pytest.raises(SessionFileError, match=r"format_version '2' is not a whole number"):
        read_session_info(folder)


def test_a_session_json_too_large_to_be_ours_is_refused_unread(tmp_path, monkeypatch):
    folder = save_session(tmp_path / "s", _liver(), {"v": 1}, _study())
    monkeypatch.setattr(persist_read, "MAX_STATE_BYTES", 100)
    with pytest.raises(SessionFileError, match="too large"):
        read_session_info(folder)


def test_damaged_sessions_anywhere_in_the_workspace_are_listed_as_damaged(tmp_path):
    study, other = _study(), _study(series_uid="5.6.7")
    good = save_session(default_session_dir(study, tmp_path), _liver(), {"v": 1}, study)
    auto = save_session(autosave_dir(study, tmp_path), _liver(slices=slice(1, 5)), {}, study)
    damaged = []
    for i, name in enumerate(["format_version text", "study_path NUL", "deeply nested",
                              "affine with text"]):
        folder = save_session(tmp_path / f"broken-{i}", _liver(), {}, other)
        _write_damaged(folder, name)
        damaged.append(folder)
    nested = save_session(tmp_path / "projects" / "b" / "deep", _liver(), {}, other)
    _write_damaged(nested, "format_version text")
    damaged.append(nested)
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / STATE_FILE).write_text("[")  # session.json without labels

    entries = {e.folder: e for e in list_sessions(tmp_path)}
    assert set(entries) == {good, auto, *damaged, tmp_path / "stray"}
    assert entries[good].problem is None and entries[good].kind == "saved"
    assert entries[auto].kind == "autosaved"
    assert entries[good].volumes_ml["liver"] == pytest.approx(300 * study.voxel_volume_ml)
    for folder in [*damaged, tmp_path / "stray"]:
        assert entries[folder].damaged and "session.json" in entries[folder].problem
        assert entries[folder].saved_at is None and entries[folder].volumes_ml is None


def test_listing_an_empty_or_missing_workspace(tmp_path):
    assert list_sessions(tmp_path / "nowhere") == []
    assert list_sessions(tmp_path) == []


# ---------------------------------------------------------------- two sessions, one study

def test_second_session_on_the_same_study_cannot_destroy_the_first_ones_save(tmp_path):
    study = _study()
    folder = default_session_dir(study, tmp_path)
    save_session(folder, _liver(1), {"who": "a"}, study, session_id="a")
    with pytest.raises(SessionConflictError,
                       match=r"(?s)holds a session saved at .* by another session \(liver "
                             r"[0-9.]+ mL, spleen 0(\.0)? mL\).*another folder.*replace=True") \
            as info:
        save_session(folder, _liver(2), {"who": "b"}, study, session_id="b")
    assert info.value.folder == folder and info.value.volumes_ml["liver"] > 0
    labels, state = load_session(folder, study)
    assert state == {"who": "a"} and (labels == 1).sum() == 300  # a's liver is still there
    # a keeps saving its own work; b saves elsewhere or replaces on purpose
    save_session(folder, _liver(1, slice(0, 2)), {"who": "a", "n": 2}, study, session_id="a")
    save_session(tmp_path / "b-elsewhere", _liver(2), {"who": "b"}, study, session_id="b")
    save_session(folder, _liver(2), {"who": "b"}, study, session_id="b", replace=True)
    assert load_session(folder, study)[1] == {"who": "b"}


def test_two_sessions_opened_from_one_save_cannot_overwrite_each_other(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {"n": 1}, study, session_id="first")
    a, b = open_session(folder, study), open_session(folder, study)
    assert a.info["save_id"] == b.info["save_id"]
    assert save_conflict(folder, session_id="a", base=a.info["save_id"]) is None
    save_session(folder, _liver(1, slice(0, 6)), {"n": "a"}, study, session_id="a",
                 base=a.info["save_id"])
    conflict = save_conflict(folder, session_id="b", base=b.info["save_id"])
    assert conflict is not None and conflict.session_id == "a"
    with pytest.raises(SessionConflictError):
        save_session(folder, _liver(), {"n": "b"}, study, session_id="b", base=b.info["save_id"])
    assert load_session(folder, study)[1] == {"n": "a"}


def test_saves_without_a_session_id_keep_todays_behaviour(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {"n": 1}, study)
    save_session(folder, _liver(2), {"n": 2}, study)
    assert load_session(folder, study)[1] == {"n": 2}


def test_a_second_session_autosaves_beside_the_first_ones_autosave(tmp_path):
    study = _study()
    first = autosave_dir(study, tmp_path, session_id="a")
    assert first == default_session_dir(study, tmp_path) / "autosave"
    save_session(first, _liver(1), {"who": "a"}, study, session_id="a")
    assert autosave_dir(study, tmp_path, session_id="a") == first
    second = autosave_dir(study, tmp_path, session_id="b")
    assert second != first and second.parent == first.parent
    save_session(second, _liver(2), {"who": "b"}, study, session_id="b")
    assert load_session(first, study)[1] == {"who": "a"}
    assert find_autosave(study, tmp_path) == second  # the newest
    # reopening a's autosave continues it in place
    opened = open_session(first, study)
    assert autosave_dir(study, tmp_path, session_id="c", base=opened.info["save_id"]) == first


def test_a_newer_format_is_never_overwritten(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {}, study)
    _write_info(folder, _set("format_version", 99))
    with pytest.raises(SessionError, match="newer radipop-widgets"):
        save_session(folder, _liver(2), {}, study)
    assert json.loads((folder / STATE_FILE).read_text())["format_version"] == 99


# ---------------------------------------------------------------- "Start new" + one edit

def test_saved_session_stays_reachable_after_start_new_and_one_edit(tmp_path):
    study = _study()
    saved = save_session(default_session_dir(study, tmp_path), _liver(1), {"n": 1}, study,
                         session_id="a")
    time.sleep(0.01)  # saved_at has a resolution of a millisecond
    # "Start new": a fresh session that autosaves after its first edit
    auto = autosave_dir(study, tmp_path, session_id="b")
    save_session(auto, _liver(2, slice(0, 1)), {"n": 2}, study, session_id="b")
    choices = session_choices(study, tmp_path)
    assert [(c.kind, c.folder) for c in choices] == [("autosaved", auto), ("saved", saved)]
    autosaved, explicitly = choices
    assert autosaved.saved_at > explicitly.saved_at
    assert explicitly.volumes_ml == {"liver": pytest.approx(300 * study.voxel_volume_ml),
                                     "spleen": 0.0}
    assert autosaved.volumes_ml["spleen"] == pytest.approx(100 * study.voxel_volume_ml)
    assert np.array_equal(load_session(explicitly.folder, study)[0], _liver(1))


def test_session_choices_name_the_damaged_ones_only_when_asked(tmp_path):
    study = _study()
    saved = save_session(default_session_dir(study, tmp_path), _liver(), {}, study)
    auto = save_session(autosave_dir(study, tmp_path), _liver(), {}, study)
    _write_damaged(auto, "format_version text")
    assert [c.folder for c in session_choices(study, tmp_path)] == [saved]
    both = session_choices(study, tmp_path, include_damaged=True)
    assert [c.folder for c in both] == [saved, auto] and both[1].damaged


def test_volumes_of_a_session_saved_before_they_were_recorded(tmp_path):
    study = _study()
    folder = save_session(default_session_dir(study, tmp_path), _liver(), {}, study)
    _write_info(folder, lambda info: json.dumps({k: v for k, v in info.items()
                                                 if k not in ("volumes_ml", "labels_sha256")}))
    (choice,) = session_choices(study, tmp_path)
    assert choice.volumes_ml["liver"] == pytest.approx(300 * study.voxel_volume_ml)


# ---------------------------------------------------------------- bombs

def _peak_mib(call):
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2 ** 20


def test_gzip_bomb_labels_are_refused_before_inflating(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {}, study)
    bomb = gzip_bomb_nifti(folder / LABELS_FILE, (1024, 1024, 512))  # 512 MiB inflated
    assert bomb.stat().st_size < 2_000_000

    def load():
        with pytest.raises(MaskFileError, match=r"declares \(512, 1024, 1024\) voxels"):
            load_session(folder, study)
    assert _peak_mib(load) < 32


def test_gzip_bomb_labels_without_a_study_are_refused_before_inflating(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {}, study)
    gzip_bomb_nifti(folder / LABELS_FILE, (1024, 1024, 512))
    _write_info(folder, _set("shape", [512, 1024, 1024]))

    def load():
        with pytest.raises(SessionError):
            load_session(folder)
    assert _peak_mib(load) < 32


@pytest.mark.parametrize("dtype", ["O", "f8", "u1"])
def test_legacy_pickle_of_a_huge_array_is_refused_before_allocating(tmp_path, dtype):
    study = synthetic_study(shape=(2, 12, 10))
    export_legacy(tmp_path, np.zeros(study.shape, np.uint8), study)
    bomb = array_pickle_bomb((6000, 6000), dtype)  # 288 MB of objects from 73 bytes
    assert len(bomb) < 100
    (tmp_path / "1.p").write_bytes(bomb)

    def load():
        with pytest.raises(MaskFileError, match=r"1\.p"):
            import_legacy_masks(tmp_path, study)
    assert _peak_mib(load) < 16


def test_legacy_pickle_of_objects_is_refused_even_when_small(tmp_path):
    study = synthetic_study(shape=(1, 2, 2))
    export_legacy(tmp_path, np.zeros(study.shape, np.uint8), study)
    (tmp_path / "0.p").write_bytes(pickle.dumps(np.array([[1, 2], [3, None]], object)))
    with pytest.raises(MaskFileError, match="only numeric arrays"):
        import_legacy_masks(tmp_path, study)
    (tmp_path / "0.p").write_bytes(array_pickle_bomb((2, 2), "c16"))
    with pytest.raises(MaskFileError, match="only numeric arrays"):
        import_legacy_masks(tmp_path, study)


# ---------------------------------------------------------------- crashes during a save

class Crash(BaseException):
    """Stands in for kill -9: raised at the n-th rename, nothing after it runs."""


def _crash_at(monkeypatch, n):
    calls = {"n": 0}
    real_replace, real_rename = os.replace, os.rename

    def counting(real):
        def rename(src, dst, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                raise Crash(f"killed at rename {n}")
            return real(src, dst, *args, **kwargs)
        return rename
    monkeypatch.setattr(os, "replace", counting(real_replace))
    monkeypatch.setattr(os, "rename", counting(real_rename))
    return calls


def _marker(labels):
    return int(labels[0, 0, 0])


def test_a_save_interrupted_at_any_rename_opens_as_one_whole_save(tmp_path, monkeypatch):
    study = _study()
    n = 1
    while True:
        folder = tmp_path / f"s{n}"
        save_session(folder, np.full(SHAPE, 1, np.uint8), {"save": 1}, study)
        save_session(folder, np.full(SHAPE, 2, np.uint8), {"save": 2}, study)
        calls = _crash_at(monkeypatch, n)
        try:
            save_session(folder, np.full(SHAPE, 3, np.uint8), {"save": 3}, study)
            crashed = False
        except Crash:
            crashed = True
        monkeypatch.undo()
        labels, state = load_session(folder, study)
        assert _marker(labels) == state["save"] in ((2, 3) if crashed else (3,)), n
        assert (labels == state["save"]).all()
        save_session(folder, np.full(SHAPE, 4, np.uint8), {"save": 4}, study)  # cleans up
        assert sorted(p.name for p in folder.iterdir()) == [LABELS_FILE, STATE_FILE]
        assert load_session(folder, study)[1] == {"save": 4}
        if not crashed:
            break
        n += 1
    assert calls["n"] >= 2  # the save renames at least two files


def test_labels_of_one_save_never_open_beside_the_state_of_another(tmp_path):
    """The issue's kill -9 outcome, made by hand: new labels, the previous session.json."""
    study = _study()
    folder = save_session(tmp_path / "s", np.full(SHAPE, 1, np.uint8), {"save": 1}, study)
    old_state = (folder / STATE_FILE).read_bytes()
    save_session(folder, np.full(SHAPE, 2, np.uint8), {"save": 2}, study)
    (folder / STATE_FILE).write_bytes(old_state)
    with pytest.raises(MaskFileError, match="not the label file saved with"):
        load_session(folder, study)


def test_an_edited_labels_file_is_not_taken_for_the_saved_one(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {}, study)
    from radipop_widgets.labelmap import write_nifti_labels
    write_nifti_labels(folder / LABELS_FILE, _liver(2), study)
    with pytest.raises(MaskFileError, match="checksum"):
        load_session(folder, study)


def test_an_interrupted_legacy_export_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    study = synthetic_study(shape=SHAPE)
    folder = tmp_path / "legacy"
    export_legacy(folder, np.full(SHAPE, 1, np.uint8), study)
    real = pickle.dumps
    calls = {"n": 0}

    def failing(obj, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(obj, *args, **kwargs)
    monkeypatch.setattr(pickle, "dumps", failing)
    with pytest.raises(OSError, match="disk full"):
        export_legacy(folder, np.full(SHAPE, 2, np.uint8), study)
    monkeypatch.undo()
    assert np.unique(import_legacy_masks(folder, study)).tolist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy"]


def test_legacy_export_refuses_a_folder_holding_other_files(tmp_path):
    study = synthetic_study(shape=SHAPE)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SessionError, match=r"holds other files \(notes\.txt\)"):
        export_legacy(tmp_path, np.zeros(SHAPE, np.uint8), study)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_organ_masks_are_replaced_as_one_folder(tmp_path):
    study = synthetic_study(shape=SHAPE)
    folder = tmp_path / "masks"
    export_organ_masks(folder, _liver(1), study)
    export_organ_masks(folder, _liver(2), study)
    assert sorted(p.name for p in folder.iterdir()) == ["liver.nii.gz", "spleen.nii.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"]


def test_stale_temporary_files_are_cleaned(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {}, study)
    dead = _dead_pid()
    stale = [folder / f".{LABELS_FILE}.{dead}-abcd1234.tmp",
             folder / f".{STATE_FILE}.{dead}-abcd1234.tmp",
             folder / f".{LABELS_FILE}.k2j3h4.tmp"]  # the format before pids were in names
    for path in stale:
        path.write_bytes(b"\x1f\x8b half a file")
    save_session(folder, _liver(), {}, study)
    assert sorted(p.name for p in folder.iterdir()) == [LABELS_FILE, STATE_FILE]

    legacy = tmp_path / "exports" / "legacy"
    export_legacy(legacy, _liver(), study)
    leftovers = [legacy / f".0.p.{dead}-aaaa.tmp", tmp_path / "exports" / f".legacy.{dead}-bb.tmp"]
    leftovers[0].write_bytes(b"x")
    leftovers[1].mkdir()
    (leftovers[1] / "0.p").write_bytes(b"x")
    live = tmp_path / "exports" / f".legacy.{os.getpid()}-cc.tmp"  # a write under way
    live.mkdir()
    export_legacy(legacy, _liver(), study)
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == sorted(["legacy",
                                                                                live.name])
    assert not any(p.name.endswith(".tmp") for p in legacy.iterdir())
    old = time.time() - 2 * atomic.STALE_AFTER_S
    os.utime(live, (old, old))
    export_legacy(legacy, _liver(), study)
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["legacy"]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- kill -9 for real

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from synthetic import synthetic_study
    from radipop_widgets.persist import save_session
    from radipop_widgets.export import export_legacy
    study = synthetic_study(shape=(6, 20, 24))
    folder, legacy, i = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    while True:
        i += 1
        labels = np.zeros(study.shape, np.uint8)
        labels[0, 0, :3] = (i % 256, i // 256 % 256, 1)
        labels[2:4, 5:15, 5:15] = 1
        save_session(folder, labels, {"i": i}, study, session_id="child")
        export_legacy(legacy, np.full(study.shape, i % 250 + 1, np.uint8), study)
""")


def test_kill_9_during_saves_and_exports_never_leaves_a_mix(tmp_path):
    study = synthetic_study(shape=SHAPE)
    folder, legacy = tmp_path / "session", tmp_path / "exports" / "legacy"
    env = dict(os.environ, PYTHONPATH=str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rng = random.Random(9)
    last = 0
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(legacy),
                                  str(last)], env=env, stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.15 + rng.random() * 0.4)
        child.kill()
        child.wait()
        child.stdout.close()
        if not (folder / STATE_FILE).exists():
            continue
        labels, state = load_session(folder, study)
        assert int(labels[0, 0, 0]) + 256 * int(labels[0, 0, 1]) == state["i"] % 65536
        assert labels[0, 0, 2] == 1 and (labels[2:4, 5:15, 5:15] == 1).all()
        last = state["i"]
        if legacy.exists():
            values = np.unique(import_legacy_masks(legacy, study, keep_other=True))
            assert len(values) == 1, values  # every slice from one export
    # the next save and export clean up whatever the kills left
    save_session(folder, _liver(), {}, study, session_id="child")
    export_legacy(legacy, _liver(), study)
    assert sorted(p.name for p in folder.iterdir()) == [LABELS_FILE, STATE_FILE]
    assert sorted(p.name for p in legacy.parent.iterdir()) == ["legacy"]


def test_a_session_saved_before_ids_can_be_continued_but_not_overwritten(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", _liver(), {"n": 1}, study)  # no session id
    _write_info(folder, lambda info: json.dumps({k: v for k, v in info.items()
                                                 if k not in ("save_id", "session_id")}))
    opened = open_session(folder, study)
    assert opened.info["save_id"].startswith("file-")
    assert opened.info["save_id"] == read_session_info(folder)["save_id"]
    with pytest.raises(SessionConflictError):
        save_session(folder, _liver(2), {"n": 2}, study, session_id="new")
    save_session(folder, _liver(2), {"n": 2}, study, session_id="reopened",
                 base=opened.info["save_id"])
    assert load_session(folder, study)[1] == {"n": 2}
