"""PACS series in the worklist, the core (no server needed: a series is "downloaded" by
writing its files into the client's cache folder as ``DicomWeb.load`` leaves them): the
store (no duplicates, nothing secret), the rows and their status transitions, one row for
a series in the data folder too, the cohort export of cached rows and the skip of the
others (the command line too)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from radipop_widgets.cohort import (
    DONE,
    IN_PROGRESS,
    NOT_STARTED,
    CohortError,
    PacsSeriesStore,
    Worklist,
    export_cohort,
    pacs_record,
)
from radipop_widgets.dicomweb import (
    CONFIG_ENV,
    PASSWORD_ENV,
    USER_ENV,
    DicomWeb,
    PacsSeries,
    PacsStudy,
)
from radipop_widgets.io import load_study
from radipop_widgets.io.phantom import write_phantom_series
from radipop_widgets.labelmap import write_nifti_labels
from radipop_widgets.session import Session

ROOT = Path(__file__).resolve().parents[1]
GEOMETRY = {"shape": (8, 64, 64), "pixel_mm": 5.0, "slice_mm": 20.0}
PASSWORD = "Pa55-not-in-any-file"
PATIENT_NAME = "Phantom^Abdomen"        # the phantom's PatientName


def found(folder: Path) -> tuple[PacsStudy, PacsSeries]:
    """What a QIDO search says of the series in ``folder``."""
    ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    series = PacsSeries(ds.StudyInstanceUID, ds.SeriesInstanceUID, "CT", ds.SeriesDescription,
                        len(list(folder.iterdir())), 1)
    return PacsStudy(ds.StudyInstanceUID, ds.PatientID, ds.StudyDate, ds.StudyDescription, "",
                     (series,), str(ds.PatientName)), series


def download(web: DicomWeb, folder: Path, uid: str) -> None:
    """Put the files into the cache as ``DicomWeb.load`` does."""
    cache = web.cache_folder(uid)
    shutil.copytree(folder, cache)
    (cache / ".series.json").write_text(json.dumps({"server": web.url, "series_uid": uid}))


@pytest.fixture
def pacs(tmp_path, monkeypatch):
    """A client (never asked anything), two phantom series as a search finds them."""
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "no-config.json"))
    monkeypatch.setenv(USER_ENV, "radiologist")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    web = DicomWeb("http://127.0.0.1:9/dicom-web", workspace=tmp_path / "ws")
    folders = [write_phantom_series(tmp_path / "pacs" / f"s{i}", **GEOMETRY, seed=10 + i)
               / "dicom" for i in range(2)]
    return web, folders, [found(f) for f in folders]


def test_adding_twice_keeps_one_record_with_nothing_secret(pacs, tmp_path):
    web, _, series = pacs
    store = PacsSeriesStore(tmp_path / "ws")
    records = [pacs_record(web, study, s) for study, s in series]
    assert store.add(records) == 2
    assert store.add(records) == 0 and store.add(records[:1]) == 0
    assert [r.series_uid for r in store.records()] == [s.series_uid for _, s in series]
    text = store.path.read_text()
    record = json.loads(text)["series"][0]
    assert record["server"] == web.url and record["patient_id"] == "PHANTOM-001"
    assert record["study_date"] == "20260101" and record["n_slices"] == 8
    assert record["study_uid"] == series[0][1].study_uid
    assert record["series_description"] and record["study_description"]
    for secret in (PASSWORD, "radiologist", PATIENT_NAME, "password"):
        assert secret not in text
    assert store.find(series[1][1].series_uid).n_slices == 8 and store.find("1.2.3") is None


def test_a_damaged_store_says_what_to_do(tmp_path):
    store = PacsSeriesStore(tmp_path / "ws")
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(CohortError, match="add the series again"):
        store.records()
    data = write_phantom_series(tmp_path / "data" / "local", **GEOMETRY, seed=1).parent
    worklist = Worklist(data, tmp_path / "ws")
    assert len(worklist.scan()) == 1 and "is damaged" in worklist.pacs_problem
    report = export_cohort(worklist, tmp_path / "out")        # said, not silently dropped
    assert report.failed[0][0] == "the PACS series of the worklist"


def test_pacs_rows_and_their_status(pacs, tmp_path):
    web, folders, series = pacs
    data = write_phantom_series(tmp_path / "data" / "local", **GEOMETRY, seed=1).parent
    PacsSeriesStore(tmp_path / "ws").add([pacs_record(web, st, s) for st, s in series])
    worklist = Worklist(data, tmp_path / "ws")
    rows = worklist.scan()
    assert [r.pacs is not None for r in rows] == [False, True, True]
    pacs_rows = rows[1:]
    assert [r.key for r in pacs_rows] == [f"uid-{s.series_uid}" for _, s in series]
    assert all(r.status == NOT_STARTED and not r.pacs.cached for r in pacs_rows)
    assert pacs_rows[0].entry.n_slices == 8 and "PACS" in pacs_rows[0].where
    assert "PHANTOM-001" in pacs_rows[0].where and "cached" not in pacs_rows[0].where
    uid = series[0][1].series_uid
    download(web, folders[0], uid)
    session = Session(load_study(web.cache_folder(uid)), workspace=tmp_path / "ws")
    labels = np.load(folders[0].parent / "reference_labels.npz")["labels"]
    session.set_labels(labels)
    session.save()
    row = worklist.scan()[1]
    assert row.status == IN_PROGRESS and row.pacs.cached and "cached" in row.where
    assert row.volumes_ml["liver"] == pytest.approx(session.volumes_ml()["liver"])
    worklist.mark_done(row.key, user="alice")
    assert [(r.status, r.by) for r in worklist.scan()[1:]] == [(DONE, "alice"),
                                                              (NOT_STARTED, None)]
    assert worklist.series_rows([uid])[uid].status == DONE    # the PACS tab sees the same
    worklist.undo_done(row.key, user="bob")
    assert worklist.scan()[1].status == IN_PROGRESS


def test_a_series_in_the_data_folder_and_added_from_the_pacs_is_one_row(pacs, tmp_path):
    web, folders, series = pacs
    data = tmp_path / "data"
    shutil.copytree(folders[0], data / "copy")
    PacsSeriesStore(tmp_path / "ws").add([pacs_record(web, st, s) for st, s in series])
    rows = Worklist(data, tmp_path / "ws").scan()
    assert sorted(r.key for r in rows) == sorted(f"uid-{s.series_uid}" for _, s in series)
    assert [r.pacs is None for r in rows] == [True, False]    # the folder's row is kept


def _done_pacs_cohort(pacs, tmp_path):
    """Both PACS series segmented and done (no data folder); returns the worklist."""
    web, folders, series = pacs
    PacsSeriesStore(tmp_path / "ws").add([pacs_record(web, st, s) for st, s in series])
    for folder, (_, s) in zip(folders, series):
        download(web, folder, s.series_uid)
        session = Session(load_study(web.cache_folder(s.series_uid)), workspace=tmp_path / "ws")
        session.set_labels(np.load(folder.parent / "reference_labels.npz")["labels"])
        session.save()
    worklist = Worklist(None, tmp_path / "ws")
    for row in worklist.scan():
        worklist.mark_done(row.key, user="alice")
    return worklist


def test_the_export_reads_cached_rows_and_names_the_others_skipped(pacs, tmp_path):
    web, folders, series = pacs
    worklist = _done_pacs_cohort(pacs, tmp_path)
    shutil.rmtree(web.cache_folder(series[1][1].series_uid))        # the cache was freed
    report = export_cohort(worklist, tmp_path / "out")
    assert len(report.rows) == 1 and report.failed == []
    assert report.rows[0]["series_uid"] == series[0][1].series_uid
    ((what, why),) = report.skipped
    assert "PHANTOM-001" in what and "not downloaded" in why and "Study tab" in why
    mask = nib.load(tmp_path / "out" / report.rows[0]["mask"])
    source = load_study(folders[0])                 # the files the PACS holds
    labels = np.load(folders[0].parent / "reference_labels.npz")["labels"]
    expected = nib.load(write_nifti_labels(tmp_path / "expected.nii.gz", labels, source))
    np.testing.assert_allclose(mask.affine, expected.affine)
    assert np.array_equal(np.asarray(mask.dataobj), np.asarray(expected.dataobj))


def test_the_command_line_says_what_it_skipped(pacs, tmp_path):
    web, _, series = pacs
    _done_pacs_cohort(pacs, tmp_path)
    shutil.rmtree(web.cache_folder(series[0][1].series_uid))
    cli = [sys.executable, "-m", "radipop_widgets", "cohort"]
    status = subprocess.run([*cli, "status", "--workspace", str(tmp_path / "ws")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("PACS") == 2 and "PACS cached" in status.stdout
    done = subprocess.run([*cli, "export", "--workspace", str(tmp_path / "ws"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)
    assert done.returncode == 1
    assert "1 done studies exported" in done.stdout
    assert "skipped: " in done.stderr and "not downloaded" in done.stderr
    assert PATIENT_NAME not in done.stdout + done.stderr + status.stdout


def test_a_workspace_moved_with_its_cache_still_finds_its_downloads(pacs, tmp_path):
    """The default cache (``<workspace>/../pacs-cache``) is stored relative to the
    workspace's folder: a project folder moved or copied elsewhere keeps its downloads."""
    web, folders, series = pacs
    PacsSeriesStore(tmp_path / "ws").add([pacs_record(web, st, s) for st, s in series])
    download(web, folders[0], series[0][1].series_uid)
    assert str(tmp_path) not in PacsSeriesStore(tmp_path / "ws").path.read_text()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("ws", "pacs-cache"):
        shutil.move(tmp_path / name, moved / name)
    records = PacsSeriesStore(moved / "ws").records()
    assert [r.cached for r in records] == [True, False]
    assert Path(records[0].cache).is_relative_to(moved)
    rows = Worklist(None, moved / "ws").scan()
    assert len(rows) == 2 and load_study(rows[0].entry.path).n_slices == GEOMETRY["shape"][0]


def test_a_downloaded_row_shows_its_thickness_and_pixel_size_read_once(pacs, tmp_path):
    web, folders, series = pacs
    PacsSeriesStore(tmp_path / "ws").add([pacs_record(web, st, s) for st, s in series])
    worklist = Worklist(None, tmp_path / "ws")
    assert [r.thickness_mm for r in worklist.scan()] == [None, None]   # not downloaded
    uid = series[0][1].series_uid
    download(web, folders[0], uid)
    row = worklist.scan()[0]
    assert row.thickness_mm == GEOMETRY["slice_mm"]
    assert row.pixel_mm == (GEOMETRY["pixel_mm"], GEOMETRY["pixel_mm"])
    recorded = json.loads((web.cache_folder(uid) / ".series.json").read_text())
    assert recorded["server"] == web.url and recorded["thickness_mm"] == GEOMETRY["slice_mm"]
    for f in web.cache_folder(uid).glob("*.dcm"):     # read from the record from now on
        f.write_bytes(b"not read again")
    assert worklist.scan()[0].thickness_mm == GEOMETRY["slice_mm"]


def test_removing_a_pacs_series_keeps_its_sessions_and_status(pacs, tmp_path):
    web, folders, series = pacs
    store = PacsSeriesStore(tmp_path / "ws")
    store.add([pacs_record(web, st, s) for st, s in series])
    worklist = Worklist(None, tmp_path / "ws")
    first, second = (s.series_uid for _, s in series)
    download(web, folders[0], first)
    session = Session(load_study(web.cache_folder(first)), workspace=tmp_path / "ws")
    session.set_labels(np.load(folders[0].parent / "reference_labels.npz")["labels"])
    session.save()
    worklist.scan()
    worklist.mark_done(f"uid-{first}", user="alice")
    assert store.remove([first, "1.2.3.not-added"]) == 1
    assert [r.series_uid for r in store.records()] == [second]
    assert [r.key for r in worklist.scan()] == [f"uid-{second}"]
    store.add([pacs_record(web, *series[0])])          # added again: where it stood
    rows = worklist.scan()
    assert [(r.status, r.by) for r in rows] == [(NOT_STARTED, None), (DONE, "alice")]
    assert rows[1].volumes_ml["liver"] == pytest.approx(session.volumes_ml()["liver"])
