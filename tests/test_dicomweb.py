"""The DICOMweb client against a real Orthanc on 127.0.0.1 (see tests/orthanc.py).

Query, load (equal to the same files loaded by ``load_study``), every ``StudyError`` of
the file loader for a broken series on the PACS, the cache, storing a DICOM SEG and
reading it back, refused credentials, a server that is down, the configuration rules.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import requests
from orthanc import PASSWORD, USER, Orthanc, free_port, require_orthanc
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, generate_uid
from realdata import shared_case
from synthetic import blob_labels, ct_slice, save, stored_values, write_ct_series

import radipop_widgets as rw
from radipop_widgets.dicomweb import PASSWORD_ENV, USER_ENV, DicomWeb
from radipop_widgets.errors import (
    DecodeError,
    DuplicateSliceError,
    HURangeError,
    InconsistentSlicesError,
    MissingSliceError,
    NotCTError,
    NotHUError,
    PacsAuthError,
    PacsConfigError,
    PacsNotFoundError,
    PacsUnreachableError,
    SeriesNotFoundError,
    SpacingError,
    StudyTooLargeError,
)
from radipop_widgets.export import export_dicom_seg
from radipop_widgets.io import MEMORY_LIMIT_ENV, load_study

pytestmark = pytest.mark.pacs
STUDY_A, STUDY_B = generate_uid(), generate_uid()


def _broken_series(root: Path) -> dict[str, tuple[str, list]]:
    """name -> (series UID, files) of series that ``load_study`` refuses, one per case."""
    cases = {}

    def series(name, **kw):
        uid = generate_uid()
        paths, _ = write_ct_series(root / name, series_uid=uid, study_uid=STUDY_B, **kw)
        cases[name] = (uid, paths)
        return uid, paths

    uid, paths = series("sizes", n=3)
    paths.append(save(ct_slice(stored_values(1, 9, 10)[0], (-100, -120, -50 + 7.5),
                               series_uid=uid, study_uid=STUDY_B, instance_number=9),
                      root / "sizes" / "odd_size"))
    uid, paths = series("spacing", n=3)
    paths.append(save(ct_slice(stored_values(1, 8, 10)[0], (-100, -120, -50 + 7.5),
                               series_uid=uid, study_uid=STUDY_B, pixel_mm=(0.9, 0.9)),
                      root / "spacing" / "odd_spacing"))
    uid, paths = series("missing", n=6)
    Path(paths.pop(3)).unlink()
    uid, paths = series("duplicate", n=3)
    paths += write_ct_series(root / "duplicate2", n=3, seed=1, series_uid=uid,
                             study_uid=STUDY_B)[0]
    series("hu_range", n=2, slope=100.0, intercept=0.0)
    uid, paths = series("corrupt_jpeg_ls", n=3, rows=32, cols=40,
                        transfer_syntax=JPEGLSLossless)
    ds = pydicom.dcmread(paths[1])
    ds.PixelData = encapsulate([b"\xff\xd8" + bytes(range(200))])
    ds.save_as(paths[1])
    uid, paths = series("mpeg2", n=2, rows=32, cols=40, transfer_syntax=JPEG2000Lossless)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
        ds.save_as(p)
    series("mr", n=3, modality="MR", description="T2")
    series("spacing_zero", n=3, pixel_mm=(0.0, 0.0))
    uid, paths = series("no_rescale", n=3)
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType
        ds.save_as(p)
    series("large", n=4)
    return cases


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """Orthanc loaded with a plain and a JPEG 2000 CT series (study A, patient P-007 on
    2024-01-02) and the broken series (study B, patient P-008 on 2023-06-30)."""
    require_orthanc()
    root = tmp_path_factory.mktemp("series")
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    try:
        plain_uid, jp2_uid = generate_uid(), generate_uid()
        write_ct_series(root / "plain", n=7, rows=16, cols=20, series_uid=plain_uid,
                        study_uid=STUDY_A, description="venous")
        write_ct_series(root / "jp2", n=4, rows=32, cols=40, series_uid=jp2_uid,
                        study_uid=STUDY_A, description="arterial", series_number=2,
                        transfer_syntax=JPEG2000Lossless)
        for p in [*(root / "plain").iterdir(), *(root / "jp2").iterdir()]:
            ds = pydicom.dcmread(p)
            ds.StudyDate = "20240102"
            ds.save_as(p)
        server.upload([root / "plain", root / "jp2"])
        broken = _broken_series(root / "broken")
        for uid, paths in broken.values():
            for p in paths:
                ds = pydicom.dcmread(p)
                ds.PatientID, ds.StudyDate = "P-008", "20230630"
                ds.save_as(p)
            server.upload(paths)
        server.files = {"plain": (plain_uid, root / "plain"), "jp2": (jp2_uid, root / "jp2")}
        server.broken = broken
        server.root = root
        yield server
    finally:
        server.stop()


@pytest.fixture
def login(monkeypatch):
    """The registered user's credentials in the environment (no server needed)."""
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv("RADIPOP_DICOMWEB_CONFIG", "/nonexistent/dicomweb.json")


@pytest.fixture
def web(pacs, login, tmp_path):
    return DicomWeb(pacs.url, cache=tmp_path / "cache")


def _requests(web) -> list:
    """Every response the client receives from now on."""
    seen = []
    web.http.hooks["response"].append(lambda r, *a, **k: seen.append(r.url))
    return seen


# ------------------------------------------------------------------ query
def test_studies_by_patient_date_and_modality(web, pacs):
    (study,) = web.studies(patient="P-007")
    assert [s.study_uid for s in web.studies(patient="P-00*")] == [STUDY_A, STUDY_B] or \
        [s.study_uid for s in web.studies(patient="P-00*")] == [STUDY_B, STUDY_A]
    assert study.study_uid == STUDY_A and study.date == "20240102"
    assert [(s.description, s.n_slices, s.modality) for s in study.series] == [
        ("arterial", 4, "CT"), ("venous", 7, "CT")]
    assert "Doe" not in repr(study)                      # the name is never in a repr
    assert [s.study_uid for s in web.studies(date="2024-01-01-")] == [STUDY_A]
    assert [s.study_uid for s in web.studies(date=("20230101", "20231231"))] == [STUDY_B]
    assert web.studies(date="20250101-") == []
    (broken,) = web.studies(patient="P-008")
    assert "T2" not in [s.description for s in broken.series]   # CT only by default
    (mr,) = [s for s in web.studies(patient="P-008", modality="MR")[0].series]
    assert (mr.description, mr.modality, mr.n_slices) == ("T2", "MR", 3)
    with pytest.raises(rw.errors.PacsError, match="unknown filter name: use patient"):
        web.studies(name="x")


def test_series_of_a_study(web):
    assert [s.description for s in web.series(STUDY_A)] == ["arterial", "venous"]


# ------------------------------------------------------------------ load
@pytest.mark.parametrize("name", ["plain", "jp2"])
def test_load_equals_the_files_loaded(web, pacs, name):
    uid, folder = pacs.files[name]
    calls = []
    study = web.load(uid, progress=lambda done, total: calls.append((done, total)))
    files = load_study(folder)
    np.testing.assert_array_equal(study.hu, files.hu)
    assert study.spacing == files.spacing
    np.testing.assert_allclose(study.affine, files.affine)
    assert (study.series_uid, study.study_uid) == (uid, STUDY_A)
    assert [s.sop_instance_uid for s in study.sources] == \
        [s.sop_instance_uid for s in files.sources]             # the same slice order
    assert study.metadata["PatientID"] == "P-007" and study.warnings == files.warnings
    n = files.n_slices
    assert calls[-1] == (2 * n, 2 * n) and calls == sorted(calls)


@pytest.mark.shared_data
def test_load_real_ge_slices_from_the_pacs(pacs, web):
    folder = shared_case("ge-ct-3slices") / "dicom"
    pacs.upload(folder)
    files = load_study(folder)
    study = web.load(files.series_uid)
    np.testing.assert_array_equal(study.hu, files.hu)
    np.testing.assert_allclose(study.affine, files.affine)
    assert study.spacing == files.spacing and study.shape == (3, 512, 512)


@pytest.mark.parametrize("name, error, message", [
    ("sizes", InconsistentSlicesError, r"slices of different sizes in one series \(8x10: 3"),
    ("spacing", InconsistentSlicesError, "different PixelSpacing"),
    ("missing", MissingSliceError, (r"a slice is missing between -45\.00 and -40\.00 mm.*"
                                    "Send the complete series to the PACS again")),
    ("duplicate", DuplicateSliceError, r"lie at the same position \(-50\.00 mm"),
    ("hu_range", HURangeError, r"do not fit in int16"),
    ("corrupt_jpeg_ls", DecodeError, r"(?s)JPEG-LS Lossless .* cannot be decoded"),
    ("mpeg2", DecodeError, r"MPEG2 .*which pydicom cannot decode"),
    ("mr", NotCTError, r"is MR, not CT; only CT in Hounsfield units.*Choose a CT series"),
    ("spacing_zero", SpacingError, r"PixelSpacing .*0.*positive"),
    ("no_rescale", NotHUError, r"has no RescaleSlope/RescaleIntercept"),
])
def test_every_study_error_holds_for_a_pacs_series(web, pacs, name, error, message):
    uid, _ = pacs.broken[name]
    with pytest.raises(error, match=message) as info:
        web.load(uid)
    assert f"PACS series {uid} on {pacs.url}" in str(info.value)
    assert str(web.cache) not in str(info.value)       # not the cache folder's path
    assert not web.is_cached(uid)                       # a broken series is not kept


def test_too_large_is_checked_before_the_pixels(web, pacs, monkeypatch):
    uid, _ = pacs.broken["large"]
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(4 * 8 * 10 * 2 - 1))
    with pytest.raises(StudyTooLargeError, match=r"volume \(4, 8, 10\) needs"):
        web.load(uid)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(4 * 8 * 10 * 2))
    assert web.load(uid).shape == (4, 8, 10)


def test_series_not_on_the_server(web):
    with pytest.raises(PacsNotFoundError, match=r"series 1\.2\.3\.999 is not on .*search "
                                                "again") as info:
        web.load("1.2.3.999")
    assert isinstance(info.value, SeriesNotFoundError)


def test_truncated_files_never_reach_the_pacs(pacs, tmp_path):
    """The file loader's UnreadableFileError cases: Orthanc refuses such files on upload."""
    paths, _ = write_ct_series(tmp_path, n=2, series_uid=generate_uid())
    Path(paths[0]).write_bytes(Path(paths[0]).read_bytes()[:-40])
    Path(paths[1]).write_bytes(Path(paths[1]).read_bytes()[:400])
    for path in paths:
        with pytest.raises(requests.HTTPError, match="Bad file format"):
            pacs.upload(path)


# ------------------------------------------------------------------ cache
def test_reopening_reads_the_cache(web, pacs, tmp_path):
    uid, _ = pacs.files["plain"]
    first = web.load(uid)
    seen, calls = _requests(web), []
    again = web.load(uid, progress=lambda done, total: calls.append((done, total)))
    assert seen == [] and web.is_cached(uid)
    assert calls[0] == (0, first.n_slices) and calls[-1] == (first.n_slices, first.n_slices)
    np.testing.assert_array_equal(again.hu, first.hu)
    other = DicomWeb(pacs.url, cache=tmp_path / "cache")    # another process, same cache
    assert _requests(other) == [] and other.load(uid).series_uid == uid
    web.load(uid, refresh=True)
    assert len(seen) == 2                                 # the lookup and the download
    assert oct(web.cache.stat().st_mode & 0o777) == "0o700"


# ------------------------------------------------------------------ store
def test_store_a_seg_and_read_it_back(web, pacs, tmp_path):
    uid, _ = pacs.files["plain"]
    study = web.load(uid)
    labels = blob_labels(study.shape)
    labels[labels == 3] = 0
    path = export_dicom_seg(tmp_path / "seg.dcm", labels, study)
    sent = pydicom.dcmread(path)
    assert web.store(path) == [sent.SOPInstanceUID]
    (seg,) = [s for s in web.series(STUDY_A) if s.modality == "SEG"]
    back = web.client.retrieve_instance(STUDY_A, seg.series_uid, sent.SOPInstanceUID)
    assert back.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
    back.save_as(tmp_path / "back.dcm", enforce_file_format=True)
    read = hd.seg.segread(tmp_path / "back.dcm")
    uids = [s.sop_instance_uid for s in study.sources]
    for label in (1, 2):
        pixels = read.get_pixels_by_source_instance(uids, segment_numbers=[label])[..., 0]
        np.testing.assert_array_equal(pixels, labels == label)


def test_store_refuses_what_is_not_dicom(web, tmp_path):
    (tmp_path / "x.dcm").write_text("not dicom")
    with pytest.raises(rw.errors.PacsStoreError, match="not a DICOM file to send"):
        web.store(tmp_path / "x.dcm")


# ------------------------------------------------------------------ refused, down
def test_wrong_password_is_refused_with_the_fix(pacs, monkeypatch, tmp_path):
    monkeypatch.setenv(USER_ENV, pacs.auth[0])
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password-42")
    web = DicomWeb(pacs.url, cache=tmp_path)
    with pytest.raises(PacsAuthError, match=r"refused the credentials \(HTTP 401\): set "
                                            "RADIPOP_DICOMWEB_USER and RADIPOP_DICOMWEB_PASS"):
        web.studies()
    with pytest.raises(PacsAuthError) as info:
        web.load(pacs.files["plain"][0])
    assert "wrong-password-42" not in str(info.value) + repr(web)
    monkeypatch.delenv(USER_ENV)
    monkeypatch.delenv(PASSWORD_ENV)
    monkeypatch.setenv("RADIPOP_DICOMWEB_CONFIG", str(tmp_path / "none.json"))
    with pytest.raises(PacsAuthError, match="asks for credentials and none are configured"):
        DicomWeb(pacs.url, cache=tmp_path).studies()


def test_server_down_says_so(login, tmp_path):
    port = free_port()
    web = DicomWeb(f"http://127.0.0.1:{port}/dicom-web", cache=tmp_path, retries=1)
    with pytest.raises(PacsUnreachableError, match=r"cannot be reached \(connection refused "
                                                   r"or host unknown\)\. Check the address"):
        web.studies()
    with pytest.raises(PacsUnreachableError):
        web.load("1.2.3")


def test_timeout_says_so(login, tmp_path):
    with socket.socket() as listener:          # accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/dicom-web"
        web = DicomWeb(url, cache=tmp_path, timeout=(1, 0.3), retries=0)
        with pytest.raises(PacsUnreachableError, match=r"\(timed out\)"):
            web.studies()


def test_wrong_root_is_not_found(pacs, login, tmp_path):
    with pytest.raises(PacsNotFoundError, match=r"HTTP 404.*the DICOMweb root"):
        DicomWeb(pacs.rest + "/not-dicom-web", cache=tmp_path).studies()


# ------------------------------------------------------------------ configuration
def test_credentials_from_a_private_config_file(pacs, monkeypatch, tmp_path):
    config = tmp_path / "dicomweb.json"
    config.write_text(json.dumps({pacs.url + "/": {"user": pacs.auth[0],
                                                   "password": pacs.auth[1]}}))
    monkeypatch.delenv(USER_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    config.chmod(0o644)
    with pytest.raises(PacsConfigError, match=r"others may read it: run chmod 600"):
        DicomWeb(pacs.url, config=config)
    config.chmod(0o600)
    web = DicomWeb(pacs.url, config=config, cache=tmp_path / "cache")
    assert web.studies(patient="P-007")[0].study_uid == STUDY_A
    assert pacs.auth[1] not in repr(web)


@pytest.mark.parametrize("url, message", [
    ("https://user:pw@pacs.example.org/dicom-web", "holds credentials: remove them"),
    ("http://pacs.example.org/dicom-web", "plain HTTP to another machine"),
    ("pacs.example.org", "is not a server address"),
])
def test_refused_addresses(url, message, tmp_path):
    with pytest.raises(PacsConfigError, match=message) as info:
        DicomWeb(url, cache=tmp_path)
    assert "pw@" not in str(info.value)


def test_plain_http_to_another_machine_only_when_the_config_allows_it(tmp_path, monkeypatch):
    config = tmp_path / "dicomweb.json"
    config.write_text('{"http://orthanc.lab:8042/dicom-web": {"allow_http": true}}')
    config.chmod(0o600)
    assert DicomWeb("http://orthanc.lab:8042/dicom-web", config=config, cache=tmp_path).url
    with pytest.raises(PacsConfigError, match='"allow_http": true for this server'):
        DicomWeb("http://other.lab:8042/dicom-web", config=config, cache=tmp_path)


def test_https_certificates_are_checked(login, tmp_path):
    with pytest.raises(PacsConfigError, match="CA bundle .* not found"):
        DicomWeb("https://127.0.0.1:1/dicom-web", ca_bundle=tmp_path / "none.pem")
    web = DicomWeb("https://127.0.0.1:1/dicom-web", cache=tmp_path)
    assert web.http.verify is True
    shutil.copy(requests.certs.where(), tmp_path / "ca.pem")
    assert DicomWeb("https://127.0.0.1:1/dicom-web", ca_bundle=tmp_path / "ca.pem",
                    cache=tmp_path).http.verify == str(tmp_path / "ca.pem")


@pytest.fixture
def https_server(tmp_path):
    """A small HTTPS server with a self-signed certificate for 127.0.0.1 that answers every
    GET with an empty QIDO result (Debian's Orthanc 1.10.1 crashes on its first HTTPS
    connection, so TLS is checked against this one)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not found: it makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    class Empty(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Empty)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/dicom-web", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_https_certificates_are_verified(login, https_server, tmp_path):
    url, cert = https_server
    with pytest.raises(PacsUnreachableError, match=r"HTTPS certificate could not be "
                                                   r"verified\. Pass ca_bundle="):
        DicomWeb(url, cache=tmp_path, retries=0).studies()
    assert DicomWeb(url, ca_bundle=cert, cache=tmp_path).studies() == []


def test_the_package_exports_the_client():
    assert rw.DicomWeb is DicomWeb


def test_no_password_or_patient_name_in_the_logs(pacs, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(USER_ENV, pacs.auth[0])
    monkeypatch.setenv(PASSWORD_ENV, pacs.auth[1])
    web = DicomWeb(pacs.url, cache=tmp_path)
    web.load(web.studies(patient="P-007")[0].series[0].series_uid)
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password-42")
    with pytest.raises(PacsAuthError):
        DicomWeb(pacs.url, cache=tmp_path / "b").studies()
    assert caplog.records                       # urllib3 and dicomweb-client did log
    for secret in (pacs.auth[1], "wrong-password-42", "Doe", "Jane"):
        assert secret not in caplog.text
