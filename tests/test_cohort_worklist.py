"""The worklist: header-only incremental scan, status transitions, who, volumes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_cohort_data import STUDIES, label_study, make_cohort

from radipop_widgets.cohort import DONE, IN_PROGRESS, NOT_STARTED, CohortError, Worklist
from radipop_widgets.cohort.worklist import row_key, study_row_key
from radipop_widgets.io import load_study
from radipop_widgets.io.phantom import write_phantom_series


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    paths = make_cohort(root)
    files = sorted((paths["e_broken"]).iterdir())
    files[len(files) // 2].unlink()                  # the broken study: a missing slice
    return root, paths


def by_name(rows, paths):
    keys = {}
    for name, path in paths.items():
        keys[name] = next(r for r in rows if os.path.samefile(r.entry.path, path))
    return keys


def snapshot(folder):
    return sorted((p.relative_to(folder), p.stat().st_size) for p in folder.rglob("*"))


def test_status_goes_from_not_started_to_in_progress_to_done_and_back(cohort, tmp_path):
    root, paths = cohort
    before = snapshot(root / "data")
    worklist = Worklist(root / "data", tmp_path / "ws")
    rows = by_name(worklist.scan(), paths)
    assert len(worklist.rows) == len(STUDIES)
    assert {r.status for r in rows.values()} == {NOT_STARTED}
    a = rows["a_portal"]
    assert (a.entry.n_slices, a.thickness_mm, a.pixel_mm) == (10, 15.0, (4.0, 4.0))
    assert rows["c_arterial"].thickness_mm == pytest.approx(15.0)
    with pytest.raises(CohortError, match="save the session before marking it done"):
        worklist.mark_done(a.key, user="alice")

    session = label_study(paths["a_portal"], tmp_path / "ws", save=False, autosave=True)
    rows = by_name(worklist.scan(), paths)
    a = rows["a_portal"]
    assert a.status == IN_PROGRESS and a.session.kind == "autosaved"   # autosave counts
    expected = session.volumes_ml()
    assert a.volumes_ml == pytest.approx(expected) and a.last_edit
    session.save()
    a = by_name(worklist.scan(), paths)["a_portal"]
    assert a.session.kind == "saved"                  # the export reads the saved one
    event = worklist.mark_done(a.key, user="alice")
    a = by_name(worklist.scan(), paths)["a_portal"]
    assert (a.status, a.by, a.done_at) == (DONE, "alice", event["at"])
    worklist.undo_done(a.key, user="bob")
    a = by_name(worklist.scan(), paths)["a_portal"]
    assert a.status == IN_PROGRESS and a.by is None
    with pytest.raises(CohortError, match="not marked done"):
        worklist.undo_done(a.key)
    assert snapshot(root / "data") == before          # nothing next to the DICOM
    assert (tmp_path / "ws" / ".cohort" / "studies").is_dir()


def test_a_study_opened_elsewhere_shows_who_edits_it(cohort, tmp_path):
    root, paths = cohort
    worklist = Worklist(root / "data", tmp_path / "ws")
    session = label_study(paths["b_portal_small"], tmp_path / "ws")
    session.lock()
    try:
        row = by_name(worklist.scan(), paths)["b_portal_small"]
        assert row.editor is not None and row.editor.session_id == session.session_id
        assert row.by == row.editor.user and row.status == IN_PROGRESS
    finally:
        session.unlock()
    assert by_name(worklist.scan(), paths)["b_portal_small"].editor is None


def test_the_scan_is_incremental_and_new_studies_appear(tmp_path):
    data = tmp_path / "data"
    for i in range(3):
        write_phantom_series(data / f"s{i}", shape=(4, 32, 32), pixel_mm=10.0, slice_mm=30.0,
                             seed=i)
    worklist = Worklist(data, tmp_path / "ws")
    # folders read: each study's folder (its reference_labels.npz) and its dicom/
    assert len(worklist.scan()) == 3 and worklist.last_scan["read"] == 6
    assert len(worklist.scan()) == 3 and worklist.last_scan["read"] == 0   # all from cache
    write_phantom_series(data / "s3", shape=(4, 32, 32), pixel_mm=10.0, slice_mm=30.0, seed=3)
    rows = worklist.scan()
    assert len(rows) == 4 and worklist.last_scan["read"] == 2              # only the new one
    assert {r.key for r in rows} == {row_key(r.entry) for r in rows}
    again = Worklist(data, tmp_path / "ws")                                # a new process
    assert len(again.scan()) == 4 and again.last_scan["read"] == 0
    # a folder whose files change is read again
    victim = min((data / "s1" / "dicom").iterdir())
    victim.unlink()
    rows = again.scan()
    assert again.last_scan["read"] == 1
    assert sorted(r.entry.n_slices for r in rows) == [3, 4, 4, 4]


def test_row_keys_match_the_loaded_study(cohort):
    root, _ = cohort
    worklist = Worklist(root / "data")
    for row in worklist.scan_entries():
        entry = row[0]
        if "broken" in entry.path:
            continue
        study = load_study(entry.path, series=entry.series_uid)
        assert study_row_key(study) == row_key(entry)


def test_volume_flags_show_in_the_worklist(cohort, tmp_path):
    root, paths = cohort
    study = load_study(paths["d_native"])
    labels = np.zeros(study.shape, np.uint8)
    labels[2:7, 10:70, 10:70] = 2                     # a spleen block of several litres
    label_study(paths["d_native"], tmp_path / "ws", labels=labels)
    row = by_name(Worklist(root / "data", tmp_path / "ws").scan(), paths)["d_native"]
    assert "massive_splenomegaly" in [f.code for f in row.flags]


@pytest.mark.shared_data
def test_the_real_studies_are_listed_from_their_headers(tmp_path):
    from realdata import SHARED_DATA, shared_case

    shared_case("ct-siemens-20slices")
    worklist = Worklist(SHARED_DATA, tmp_path / "ws")
    rows = {Path(r.entry.path).parent.name: r for r in worklist.scan()}
    siemens = rows["ct-siemens-20slices"]
    assert (siemens.entry.n_slices, siemens.thickness_mm) == (20, 3.0)
    assert siemens.pixel_mm == pytest.approx((0.9765625, 0.9765625))
    assert siemens.key.startswith("path-")         # its UIDs are empty
    study = load_study(siemens.entry.path, series=siemens.entry.series_uid)
    assert study_row_key(study) == siemens.key
    abdomen = rows["ct-abdomen-3mm"]
    assert (abdomen.entry.n_slices, abdomen.thickness_mm) == (112, 3.0)
    assert all(r.status == NOT_STARTED for r in rows.values())


def test_series_rows_say_where_a_pacs_series_stands(cohort, tmp_path):
    root, paths = cohort
    workspace = tmp_path / "ws"
    session = label_study(paths["a_portal"], workspace, save=False, autosave=True)
    uid, unknown = session.study.series_uid, "1.2.826.0.1.3680043.99.1"
    pacs = Worklist(None, workspace)                       # no data folder: PACS series only
    rows = pacs.series_rows([uid, unknown])
    assert rows[unknown].status == NOT_STARTED and rows[unknown].volumes_ml is None
    assert rows[uid].status == IN_PROGRESS
    assert rows[uid].volumes_ml == pytest.approx(session.volumes_ml())
    session.save()
    folder = Worklist(root / "data", workspace)
    folder.scan()
    folder.mark_done(f"uid-{uid}", user="alice")
    assert (pacs.series_rows([uid])[uid].status, pacs.series_rows([uid])[uid].by) == (DONE,
                                                                                      "alice")
