"""Session folders: atomic writes, save / load round trip, interrupted saves, validation."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from synthetic import blob_labels, dicom_study, study_from_files, synthetic_study

import radipop_widgets
from radipop_widgets import persist
from radipop_widgets.atomic import atomic_write_bytes
from radipop_widgets.errors import MaskFileError, PathNotAllowedError, SessionError
from radipop_widgets.labelmap import read_nifti_labels, write_nifti_labels
from radipop_widgets.persist import (
    LABELS_FILE,
    STATE_FILE,
    autosave_dir,
    default_session_dir,
    find_autosave,
    find_saved_session,
    load_session,
    read_session_info,
    resolve_inside,
    save_session,
)

SHAPE = (6, 20, 24)
STATE = {"thresholds": [[300, 180, 60]] * SHAPE[0], "cuts": 2, "note": "täst"}


def _study(**kw):
    return synthetic_study(shape=SHAPE, metadata={"PatientName": "Doe^Jane", "PatientID": "P-0001",
                                                  "PatientBirthDate": "19600101"}, **kw)


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- atomic writes

def test_atomic_write_bytes_replaces_content(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert _listing(tmp_path) == ["f.bin"]


def test_atomic_write_keeps_permissions(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"one")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    path.chmod(0o640)
    atomic_write_bytes(path, b"two")
    assert path.stat().st_mode & 0o777 == 0o640


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old content")

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new content that never lands")
    assert path.read_bytes() == b"old content"
    assert _listing(tmp_path) == ["f.bin"]


# ---------------------------------------------------------------- save / load

def test_save_and_load_round_trip(tmp_path):
    study = _study()
    labels = blob_labels(SHAPE)
    state = dict(STATE, organ=np.int64(3), per_slice=np.arange(3))
    folder = save_session(tmp_path / "s", labels, state, study)
    assert _listing(folder) == [LABELS_FILE, STATE_FILE]

    back, state_back = load_session(folder, study)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)
    assert state_back == dict(STATE, organ=3, per_slice=[0, 1, 2])

    info = read_session_info(folder)
    assert info["series_uid"] == "1.2.3.4" and info["study_uid"] == "1.2.3"
    assert info["frame_of_reference_uid"] == "1.2.3.5"
    assert info["shape"] == list(SHAPE) and info["spacing"] == list(study.spacing)
    np.testing.assert_allclose(info["affine"], study.affine)
    assert info["software_version"] == radipop_widgets.__version__
    assert info["saved_at"].startswith("20")
    text = (folder / STATE_FILE).read_text(encoding="utf-8")
    for secret in ("Doe", "P-0001", "19600101"):
        assert secret not in text

    # the labels file is the NIfTI export with the study's geometry
    labels_nifti, affine = read_nifti_labels(folder / LABELS_FILE)
    np.testing.assert_array_equal(labels_nifti, labels)
    np.testing.assert_allclose(affine, study.affine, atol=1e-4)


def test_load_without_study_and_resave_overwrites(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, study)
    save_session(folder, np.zeros(SHAPE, np.uint8), {"v": 2}, study)
    labels, state = load_session(folder)
    assert not labels.any() and state == {"v": 2}
    assert _listing(folder) == [LABELS_FILE, STATE_FILE]


def test_state_that_json_cannot_hold_is_refused_and_nothing_written(tmp_path):
    study = _study()
    with pytest.raises(TypeError, match="object"):
        save_session(tmp_path / "s", blob_labels(SHAPE), {"bad": object()}, study)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("fail_at", ["nifti_midway", "first_rename", "json_fsync"])
def test_interrupted_save_keeps_the_previous_save(tmp_path, monkeypatch, fail_at):
    study = _study()
    old_labels = blob_labels(SHAPE)
    folder = save_session(tmp_path / "s", old_labels, {"version": 1}, study)
    before = {name: (folder / name).read_bytes() for name in _listing(folder)}

    if fail_at == "nifti_midway":
        def crash_midway(f, labels, study_):
            f.write(b"\x1f\x8b half a labels file")
            raise KeyboardInterrupt("killed while writing")

        monkeypatch.setattr(persist, "write_nifti_stream", crash_midway)
        expected = KeyboardInterrupt
    elif fail_at == "first_rename":
        def failing_replace(src, dst):
            raise OSError("rename failed")

        monkeypatch.setattr(os, "replace", failing_replace)
        expected = OSError
    else:
        calls = []
        real_fsync = os.fsync

        def fsync_fails_second_file(fd):
            calls.append(fd)
            if len(calls) == 2:  # the labels file, then the JSON file
                raise OSError("I/O error")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync_fails_second_file)
        expected = OSError

    with pytest.raises(expected):
        save_session(folder, np.zeros(SHAPE, np.uint8), {"version": 2}, study)
    monkeypatch.undo()

    assert _listing(folder) == [LABELS_FILE, STATE_FILE]  # no temporary files left
    # Every failure comes before the first rename (both files are complete first), or the
    # previous labels are kept aside: the previous save opens whole.
    labels, state = load_session(folder, study)
    assert {n: (folder / n).read_bytes() for n in _listing(folder)} == before
    np.testing.assert_array_equal(labels, old_labels)
    assert state == {"version": 1}


def test_killed_process_leaves_only_ignored_temp_files(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, study)
    (folder / f".{LABELS_FILE}.abc123.tmp").write_bytes(b"\x1f\x8b half a file")
    labels, _ = load_session(folder, study)
    np.testing.assert_array_equal(labels, blob_labels(SHAPE))


# ---------------------------------------------------------------- validation

def test_load_missing_folder_or_json(tmp_path):
    with pytest.raises(SessionError, match="not a saved session"):
        load_session(tmp_path / "nothing")
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, _study())
    (folder / STATE_FILE).unlink()
    with pytest.raises(SessionError, match="session.json is missing"):
        load_session(folder)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "something else"}', "not a radipop-widgets session"),
    ('["a list"]', "not a radipop-widgets session"),
    ('{"format": "radipop-widgets session", "format_version": 99}', "newer"),
    ('{"format": "radipop-widgets session", "format_version": 1}', "lacks the entry"),
])
def test_load_malformed_json(tmp_path, text, message):
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, _study())
    (folder / STATE_FILE).write_text(text)
    with pytest.raises(SessionError, match=message):
        load_session(folder)


def test_load_session_of_another_series(tmp_path):
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, _study())
    with pytest.raises(SessionError, match="series 1.2.3.4, this study is series 9.9"):
        load_session(folder, _study(series_uid="9.9"))
    # JSON edited to name another series
    info = json.loads((folder / STATE_FILE).read_text())
    info["series_uid"] = "7.7.7"
    (folder / STATE_FILE).write_text(json.dumps(info))
    with pytest.raises(SessionError, match="saved for series 7.7.7"):
        load_session(folder, _study())


def test_load_session_of_another_uid_less_series(tmp_path):
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, _study(series_uid=None))
    load_session(folder, _study(series_uid=None))  # same pixels and geometry: accepted
    with pytest.raises(SessionError, match="another series without UID"):
        load_session(folder, _study(series_uid=None, seed=5))


def test_load_wrong_shape_or_geometry_for_study(tmp_path):
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, _study())
    other_shape = synthetic_study(shape=(7, 20, 24))
    with pytest.raises(SessionError, match="shape"):
        load_session(folder, other_shape)
    moved = _study()
    moved.affine = moved.affine.copy()
    moved.affine[2, 3] += 5.0
    with pytest.raises(SessionError, match="geometry"):
        load_session(folder, moved)


@pytest.mark.parametrize("damage, message", [
    ("missing", "missing"),
    ("truncated", "checksum differs"),
    ("garbage", "not a readable NIfTI"),
    ("other_shape", r"declares \(5, 20, 24\) voxels"),
])
def test_load_damaged_labels(tmp_path, damage, message):
    study = _study()
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, study)
    path = folder / LABELS_FILE
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 400)
    else:
        small = synthetic_study(shape=(5, 20, 24))
        write_nifti_labels(path, np.zeros(small.shape, np.uint8), small)
    with pytest.raises(MaskFileError, match=message):
        load_session(folder, study)


def test_labels_file_with_another_orientation_is_refused(tmp_path):
    study = _study()
    folder = save_session(tmp_path / "s", blob_labels(SHAPE), STATE, study)
    flipped = _study()
    flipped.affine = flipped.affine @ np.diag([-1.0, 1, 1, 1])
    write_nifti_labels(folder / LABELS_FILE, blob_labels(SHAPE), flipped)
    with pytest.raises(MaskFileError, match="orientation or position"):
        load_session(folder)


# ---------------------------------------------------------------- where sessions live

def test_default_session_dir_from_series_uid_and_workspace(tmp_path, monkeypatch):
    study = _study()
    assert default_session_dir(study, tmp_path) == tmp_path / "uid-1.2.3.4"
    monkeypatch.setenv("RADIPOP_WORKSPACE", str(tmp_path / "ws"))
    assert default_session_dir(study) == tmp_path / "ws" / "uid-1.2.3.4"
    monkeypatch.delenv("RADIPOP_WORKSPACE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_session_dir(study) == \
        tmp_path / "home" / ".radipop-widgets" / "sessions" / "uid-1.2.3.4"


def test_default_session_dir_without_uid_is_stable_and_distinct(tmp_path):
    first = dicom_study(tmp_path / "dicom", shape=(3, 8, 8), empty_uids=True)
    reloaded = study_from_files([source.path for source in first.sources])
    assert first.series_uid is None
    key = default_session_dir(first, tmp_path).name
    assert key.startswith("hash-") and len(key) == 21
    assert default_session_dir(reloaded, tmp_path).name == key
    other = dicom_study(tmp_path / "other", shape=(3, 8, 8), empty_uids=True, seed=1)
    assert default_session_dir(other, tmp_path).name != key


def test_find_saved_session_and_save_to_default(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIPOP_WORKSPACE", str(tmp_path / "ws"))
    study = _study()
    assert find_saved_session(study) is None
    folder = save_session(None, blob_labels(SHAPE), STATE, study)
    assert folder == tmp_path / "ws" / "uid-1.2.3.4"
    assert find_saved_session(study) == folder
    assert find_saved_session(study, tmp_path / "elsewhere") is None
    assert find_saved_session(_study(series_uid="5.5")) is None


def test_autosave_lives_apart_from_the_saved_session(tmp_path):
    study = _study()
    saved_labels = blob_labels(SHAPE)
    saved = save_session(default_session_dir(study, tmp_path), saved_labels, STATE, study)
    assert find_autosave(study, tmp_path) is None
    auto = save_session(autosave_dir(study, tmp_path), np.zeros(SHAPE, np.uint8), STATE, study)
    assert find_autosave(study, tmp_path) == auto != saved
    assert find_saved_session(study, tmp_path) == saved
    np.testing.assert_array_equal(load_session(saved, study)[0], saved_labels)


def test_never_writes_next_to_the_dicom_files(tmp_path):
    study = dicom_study(tmp_path / "dicom", shape=(3, 8, 8))
    before = _listing(tmp_path / "dicom")
    for folder in (tmp_path / "dicom", tmp_path / "dicom" / "session"):
        with pytest.raises(SessionError, match="inside the study's folder"):
            save_session(folder, np.zeros(study.shape, np.uint8), {}, study)
    assert _listing(tmp_path / "dicom") == before
    save_session(tmp_path / "session", np.zeros(study.shape, np.uint8), {}, study)


def test_resolve_inside(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert resolve_inside(root, "a/b.nii.gz") == (root / "a" / "b.nii.gz").resolve()
    assert resolve_inside(root, root / "a") == (root / "a").resolve()
    for outside in ("../x", "a/../../x", str(tmp_path / "x"), "/etc/passwd"):
        with pytest.raises(PathNotAllowedError, match="outside the allowed folder"):
            resolve_inside(root, outside)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(PathNotAllowedError):
        resolve_inside(root, "link/x")

