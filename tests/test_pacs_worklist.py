"""A PACS query's series as rows of the Study tab's worklist, against a real Orthanc
(tests/orthanc.py): Add to worklist (no duplicates, nothing secret stored), the rows next
to the data folder's, open (download through the PACS tab's client, then the cache),
next / previous, done / undo done, the cohort export (mask on the source grid) and the
skip of a done series that is not downloaded; a series in the data folder too is one row."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from orthanc import Orthanc, free_port, require_orthanc

from radipop_widgets.app import App
from radipop_widgets.app.app import TABS
from radipop_widgets.cohort import PacsSeriesStore, pacs_record
from radipop_widgets.dicomweb import (
    CONFIG_ENV,
    PASSWORD_ENV,
    URL_ENV,
    USER_ENV,
    DicomWeb,
)
from radipop_widgets.errors import PacsUnreachableError
from radipop_widgets.io import load_study
from radipop_widgets.io.phantom import phantom_study, write_phantom_series
from radipop_widgets.labelmap import write_nifti_labels

pytestmark = pytest.mark.pacs
GEOMETRY = {"shape": (8, 64, 64), "pixel_mm": 5.0, "slice_mm": 20.0}


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """Orthanc holding two phantom CT series (``server.folders``: their files)."""
    require_orthanc()
    root = tmp_path_factory.mktemp("pacs-series")
    folders = [write_phantom_series(root / f"s{i}", **GEOMETRY, seed=20 + i) / "dicom"
               for i in range(2)]
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    try:
        for folder in folders:
            server.upload(folder)
        server.folders = folders
        server.uids = [load_study(f).series_uid for f in folders]
        yield server
    finally:
        server.stop()


@pytest.fixture
def logged_in(monkeypatch, tmp_path, pacs):
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "no-config.json"))
    monkeypatch.setenv(URL_ENV, pacs.url)
    monkeypatch.setenv(USER_ENV, pacs.auth[0])
    monkeypatch.setenv(PASSWORD_ENV, pacs.auth[1])


def make_app(tmp_path, data=None, study=None):
    """The dashboard on a data folder of one local series (or ``data``), its first study
    open; or on ``study`` with no data folder."""
    if data is None and study is None:
        data = write_phantom_series(tmp_path / "data" / "local", **GEOMETRY, seed=1).parent
    app = App(study=study, data_root=data, workspace=tmp_path / "ws",
              output_root=tmp_path / "exports")
    app.wait()
    return app


def add_found(app):
    app.pacs.patient_text.value = "PHANTOM*"
    app.search_pacs()
    app.wait()
    app.pacs.add_button.click()
    app.tabs.selected_index = TABS.index("Study")          # the table is scanned again


def table(app):
    """The Study tab's lines, in the table's order: (text, row index)."""
    return list(app.studies.study_list.options)


def pacs_rows(app):
    return [i for text, i in table(app) if app.studies.worklist.rows[i].pacs is not None]


def requests_seen(app):
    seen = []
    app.pacs.server().http.hooks["response"].append(lambda r, *a, **k: seen.append(r.url))
    return seen


def last(app, level=None):
    return next(text for lv, text in app.messages.messages if level in (None, lv))


def test_add_to_worklist_open_then_from_the_cache(logged_in, pacs, tmp_path):
    app = make_app(tmp_path)
    assert app.pacs.add_button.disabled                        # nothing found yet
    add_found(app)
    assert "2 series added to the worklist" in " ".join(t for _, t in app.messages.messages)
    app.pacs.add_button.click()                                # again: no duplicates
    assert "0 series added" in last(app) and "2 were in it already" in last(app)
    store = PacsSeriesStore(tmp_path / "ws")
    assert [r.series_uid for r in store.records()] == pacs.uids
    text = store.path.read_text()
    assert pacs.url in text and "PHANTOM-001" in text
    for secret in (*pacs.auth, "Phantom^Abdomen"):
        assert secret not in text
    lines = [text for text, _ in table(app)]
    assert len(lines) == 3 and sum("PACS 127.0.0.1 · 2026-01-01 · PHANTOM-001" in t
                                   for t in lines) == 2
    assert not any("cached" in t for t in lines)
    first = pacs_rows(app)[0]
    row = app.studies.worklist.rows[first]
    uid = row.entry.series_uid
    assert row.status == "not started" and row.key == f"uid-{uid}" and uid in pacs.uids
    seen, steps = requests_seen(app), []
    app.jobs.progress.observe(lambda change: steps.append(change["new"]), "value")
    app.open_study(first)                                      # a job: download, then read
    app.wait()
    assert any("/series/" + uid in url for url in seen)
    assert any(0 < v <= 0.5 for v in steps) and max(steps) == 1.0   # the download's half
    files = load_study(pacs.folders[pacs.uids.index(uid)])
    assert app.session.study.series_uid == uid
    np.testing.assert_array_equal(app.session.study.hu, files.hu)
    assert app.tabs.selected_index == TABS.index("Segment")
    assert app.studies.study_list.value == first
    label = {i: t for t, i in table(app)}[first]
    assert "PHANTOM-001, cached" in label
    assert app.pacs.series_list.options[0][0].count("cached") == 1    # the PACS tab agrees
    seen.clear()
    app.open_study(first)
    app.wait()
    assert seen == [] and app.session.study.series_uid == uid
    assert not [t for lv, t in app.messages.messages if lv == "error"]


def test_next_previous_done_and_the_cohort_export(logged_in, pacs, tmp_path):
    app = make_app(tmp_path)
    add_found(app)
    first, second = pacs_rows(app)
    uids = [app.studies.worklist.rows[i].entry.series_uid for i in (first, second)]
    folders = [pacs.folders[pacs.uids.index(uid)] for uid in uids]
    app.next_study()                                           # folder row -> PACS row
    app.wait()
    assert app.session.study.series_uid == uids[0]
    app.next_study()
    app.wait()
    assert app.session.study.series_uid == uids[1]
    assert app.next_study() is None and "last study" in last(app)
    app.previous_study()
    app.wait()
    assert app.session.study.series_uid == uids[0]
    labels = np.load(folders[0].parent / "reference_labels.npz")["labels"]
    app.session.set_labels(labels)
    panel = app.studies.worklist
    panel.done_button.click()
    assert panel.rows[first].status == "done" and panel.rows[first].by
    assert {i: t for t, i in table(app)}[first].split(" | ")[1].startswith("done")
    panel.undo_done_button.click()
    assert panel.rows[first].status == "in progress"
    panel.done_button.click()
    app.next_study()                                           # the second: done, then freed
    app.wait()
    app.session.set_labels(np.load(folders[1].parent / "reference_labels.npz")["labels"])
    panel.done_button.click()
    assert panel.rows[second].status == "done"
    shutil.rmtree(app.pacs.server().cache_folder(uids[1]))
    panel.export()
    app.wait()
    said = last(app)
    assert "1 done studies exported" in said and "skipped" in said
    assert "not downloaded" in said and "open it in the Study tab" in said
    mask = next((tmp_path / "exports" / "cohort").rglob("mask_liver_and_spleen.nii.gz"))
    expected = nib.load(write_nifti_labels(tmp_path / "expected.nii.gz", labels,
                                           load_study(folders[0])))
    got = nib.load(mask)
    np.testing.assert_allclose(got.affine, expected.affine)
    assert np.array_equal(np.asarray(got.dataobj), np.asarray(expected.dataobj))
    app.session.unlock()


def test_a_series_in_the_data_folder_too_is_one_row(logged_in, pacs, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(pacs.folders[0], data / "copy")
    app = make_app(tmp_path, data=data)
    add_found(app)
    rows = [app.studies.worklist.rows[i] for _, i in table(app)]
    assert sorted(r.key for r in rows) == sorted(f"uid-{u}" for u in pacs.uids)
    assert [r.pacs is None for r in rows] == [True, False]


def test_without_a_data_folder_and_with_the_server_down(logged_in, monkeypatch, pacs,
                                                         tmp_path):
    app = make_app(tmp_path, study=phantom_study(**GEOMETRY)[0])
    down = DicomWeb(f"http://127.0.0.1:{free_port()}/dicom-web", workspace=tmp_path / "ws")
    found = app.pacs
    found.patient_text.value = "PHANTOM*"
    app.search_pacs()
    app.wait()
    _, study, series = found.found[0]
    PacsSeriesStore(tmp_path / "ws").add([pacs_record(down, study, series)])
    app.studies.refresh()
    assert "No data folder" in app.studies.data_root_text.value
    assert "1 PACS series" in app.studies.data_root_text.value
    (only,) = pacs_rows(app)
    shown = app.session
    app.open_study(only)
    with pytest.raises(PacsUnreachableError):
        app.wait()
    assert "cannot be reached" in last(app, "error") and app.session is shown
