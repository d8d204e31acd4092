"""The PACS tab's handlers against a real Orthanc (tests/orthanc.py): search, open (then
from the cache), send the DICOM SEG back; refused, down and unconfigured servers."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from orthanc import Orthanc, free_port, require_orthanc
from synthetic import synthetic_study

from radipop_widgets.app import App
from radipop_widgets.app.app import TABS
from radipop_widgets.dicomweb import (
    CONFIG_ENV,
    PASSWORD_ENV,
    URL_ENV,
    USER_ENV,
    DicomWeb,
)
from radipop_widgets.errors import PacsAuthError, PacsUnreachableError, RadipopError
from radipop_widgets.io import load_study
from radipop_widgets.io.phantom import phantom_study, write_phantom_series
from radipop_widgets.labels import LIVER, SPLEEN

pytestmark = pytest.mark.pacs
GEOMETRY = dict(shape=(8, 96, 96), pixel_mm=4.0, slice_mm=10.0)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    require_orthanc()
    folder = write_phantom_series(tmp_path_factory.mktemp("phantom"), **GEOMETRY) / "dicom"
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    try:
        server.upload(folder)
        server.dicom = folder
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "no-config.json"))
    for name in (URL_ENV, USER_ENV, PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def logged_in(env, pacs):
    env.setenv(URL_ENV, pacs.url)
    env.setenv(USER_ENV, pacs.auth[0])
    env.setenv(PASSWORD_ENV, pacs.auth[1])


def make_app(tmp_path, study=None):
    study = study if study is not None else phantom_study(**GEOMETRY)[0]
    return App(study=study, workspace=tmp_path / "sessions", output_root=tmp_path / "exports")


def messages(app, level=None):
    return [text for lv, text in app.messages.messages if level in (None, lv)]


def test_without_a_pacs_the_dashboard_is_unchanged(env, tmp_path):
    app = make_app(tmp_path)
    assert TABS.index("PACS") == TABS.index("Study") + 1
    assert app.pacs.server_text.value == ""
    assert "No PACS configured" in app.pacs.found_text.value
    assert app.pacs.open_button.disabled
    app.pacs.search_button.click()
    assert any("No PACS configured: type the DICOMweb address" in m
               for m in messages(app, "error"))
    assert app.session is not None and app.pacs.servers == {}


def test_search_open_and_reopen_from_the_cache(logged_in, pacs, tmp_path):
    app = make_app(tmp_path)
    assert app.pacs.server_text.value == pacs.url
    app.pacs.patient_text.value = "PHANTOM*"
    app.search_pacs()
    app.wait()
    (label,) = [text for text, _ in app.pacs.series_list.options]
    assert f"({GEOMETRY['shape'][0]} slices) · " in label and "cached" not in label
    assert "1 CT series in 1 studies" in app.pacs.found_text.value
    app.tabs.selected_index = TABS.index("PACS")
    app.pacs.open_button.click()
    app.wait()
    files = load_study(pacs.dicom)
    assert app.session.study.series_uid == files.series_uid
    np.testing.assert_array_equal(app.session.study.hu, files.hu)
    assert app.tabs.selected_index == TABS.index("Segment")
    assert f"({GEOMETRY['shape'][0]} slices, cached)" in app.pacs.series_list.options[0][0]
    seen = []
    app.pacs.server().http.hooks["response"].append(lambda r, *a, **k: seen.append(r.url))
    app.open_pacs(0)
    app.wait()
    assert seen == [] and app.session.study.series_uid == files.series_uid
    assert not messages(app, "error")


def test_the_series_found_show_where_they_stand_in_the_worklist(logged_in, pacs, tmp_path):
    app = make_app(tmp_path)
    app.pacs.patient_text.value = "PHANTOM*"
    app.search_pacs()
    app.wait()
    assert app.pacs.series_list.options[0][0].endswith(" · not started")
    app.open_pacs(0)
    app.wait()
    labels = app.session.labels.copy()
    labels[2, 10:20, 10:20] = 1                          # one edit: autosaved, in progress
    app.session.set_labels(labels)
    app.search_pacs()
    app.wait()
    liver = app.session.volumes_ml()["liver"]
    label = app.pacs.series_list.options[0][0]
    assert " · in progress" in label and f"(liver {liver:.0f} mL)" in label


def test_search_by_date(logged_in, pacs, tmp_path):
    app = make_app(tmp_path)
    app.pacs.date_text.value = "20990101-"
    app.search_pacs()
    app.wait()
    assert app.pacs.series_list.options == () and app.pacs.open_button.disabled
    assert "No CT series" in app.pacs.found_text.value
    app.pacs.date_text.value = "yesterday"
    app.pacs.search_button.click()
    assert any("is not a date: give YYYYMMDD" in m for m in messages(app, "error"))


def test_send_the_dicom_seg_to_the_pacs(logged_in, pacs, tmp_path):
    app = make_app(tmp_path)
    app.search_pacs()
    app.wait()
    app.open_pacs(0)
    app.wait()
    study = app.session.study
    assert not app.pacs.send_button.disabled
    z = study.n_slices // 2
    app.session.draw(z, [(30, 30), (40, 40)], LIVER, width_mm=12)
    app.session.draw(z, [(60, 60), (66, 70)], SPLEEN, width_mm=12)
    app.pacs.send_button.click()
    app.wait()
    assert "Sent the DICOM SEG" in app.pacs.sent_text.value
    web = DicomWeb(pacs.url, cache=tmp_path / "other-cache")
    (seg,) = [s for s in web.series(study.study_uid) if s.modality == "SEG"]
    path = tmp_path / "exports" / "pacs" / "segmentation.dcm"
    sent = pydicom.dcmread(path)
    back = web.client.retrieve_instance(study.study_uid, seg.series_uid, sent.SOPInstanceUID)
    assert back.ReferencedSeriesSequence[0].SeriesInstanceUID == study.series_uid
    assert [s.SegmentLabel for s in back.SegmentSequence] == [s.SegmentLabel for s in
                                                              sent.SegmentSequence]
    assert np.array_equal(back.pixel_array, sent.pixel_array)


def test_send_needs_labels_and_dicom_identifiers(logged_in, tmp_path):
    app = make_app(tmp_path, synthetic_study(series_uid=None))
    assert app.pacs.send_button.disabled
    with pytest.raises(RadipopError, match="DICOM SEG needs"):
        app.pacs.send_seg()
    app = make_app(tmp_path / "b", load_study(write_phantom_series(tmp_path / "p", **GEOMETRY)
                                              / "dicom"))
    with pytest.raises(RadipopError, match="No labels to send yet"):
        app.pacs.send_seg()


def test_wrong_password_in_the_tab(logged_in, env, tmp_path):
    env.setenv(PASSWORD_ENV, "not-the-password-77")
    app = make_app(tmp_path)
    app.pacs.search_button.click()
    with pytest.raises(PacsAuthError):
        app.wait()
    text = " ".join(messages(app))
    assert "refused the credentials (HTTP 401)" in text and "RADIPOP_DICOMWEB_USER" in text
    assert "not-the-password-77" not in text


def test_server_down_in_the_tab(env, tmp_path):
    env.setenv(URL_ENV, f"http://127.0.0.1:{free_port()}/dicom-web")
    app = make_app(tmp_path)
    app.pacs.search_button.click()
    with pytest.raises(PacsUnreachableError):
        app.wait()
    assert any("the server cannot be reached" in m for m in messages(app, "error"))
    assert app.session is not None


def test_a_public_config_file_is_named_in_the_tab(env, tmp_path):
    config = tmp_path / "dicomweb.json"
    config.write_text('{"https://pacs.example.org/dicom-web": {"user": "u", "password": "p"}}')
    config.chmod(0o644)
    env.setenv(CONFIG_ENV, str(config))
    app = make_app(tmp_path)
    assert "chmod 600" in app.pacs.found_text.value
    config.chmod(0o600)
    assert make_app(tmp_path / "b").pacs.server_text.value == "https://pacs.example.org/dicom-web"
