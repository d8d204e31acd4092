"""The PACS tab in the served dashboard: search Orthanc, open a series, label, send the SEG."""

from __future__ import annotations

import sys
from pathlib import Path

import harness
import numpy as np
import pytest
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orthanc import Orthanc, require_orthanc  # noqa: E402

from radipop_widgets.dicomweb import DicomWeb  # noqa: E402
from radipop_widgets.io.phantom import write_phantom_series  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.pacs]
GEOMETRY = dict(shape=(10, 160, 160), pixel_mm=2.6, slice_mm=8.0)


@pytest.fixture(scope="module")
def pacs_dashboard(tmp_path_factory):
    """(dashboard URL, Orthanc, phantom folder): a Voilà server whose PACS is an Orthanc
    holding a small phantom series."""
    require_orthanc()
    phantom = write_phantom_series(tmp_path_factory.mktemp("phantom"), **GEOMETRY)
    folder = tmp_path_factory.mktemp("served")
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        server.upload(phantom / "dicom")
        env = {"RADIPOP_WORKSPACE": str(folder / "sessions"),
               "RADIPOP_OUTPUT": str(folder / "exports"),
               "RADIPOP_VOILA_LOG": str(folder / "voila.log"),
               "RADIPOP_DICOMWEB_URL": server.url, "RADIPOP_DICOMWEB_USER": server.auth[0],
               "RADIPOP_DICOMWEB_PASSWORD": server.auth[1],
               "RADIPOP_DICOMWEB_CONFIG": str(folder / "no-config.json")}
        with harness.voila_server(env) as url:
            yield url, server, phantom


def test_search_open_label_and_send_the_seg(browser, pacs_dashboard, tmp_path, monkeypatch):
    url, server, phantom = pacs_dashboard
    page = harness.open_app(browser, url, 1366, 900)
    try:
        page.locator(".radipop-tabs").get_by_text("PACS", exact=True).click()
        assert page.locator(".radipop-pacs-server input").input_value() == server.url
        page.locator(".radipop-pacs-patient input").fill("PHANTOM*")
        page.locator(".radipop-pacs-search").click()
        options = page.locator(".radipop-pacs-series option")
        options.first.wait_for()
        assert options.count() == 1
        assert f"{GEOMETRY['shape'][0]} slices" in options.inner_text().replace("\xa0", " ")
        page.locator(".radipop-pacs-open").click()
        page.locator(".radipop-messages").get_by_text("Opened Abdomen phantom").wait_for(
            timeout=60_000)
        harness.wait_painted(page)
        harness.wait_settled(page)
        z = int(page.locator(".radipop-slice-text input").input_value())
        reference = np.load(phantom / "reference_labels.npz")["labels"][z]
        depth = ndimage.distance_transform_edt(reference == 1)
        row, col = np.unravel_index(np.argmax(depth), depth.shape)
        harness.click_image(page, int(row), int(col))
        page.locator(".radipop-label-liver").click()
        page.locator(".radipop-messages").get_by_text("liver", exact=False).first.wait_for()
        page.locator(".radipop-tabs").get_by_text("PACS", exact=True).click()
        assert "cached" in options.inner_text().replace("\xa0", " ")
        page.locator(".radipop-pacs-send").click()
        page.get_by_text("Sent the DICOM SEG").first.wait_for(timeout=30_000)
        harness.ROOT.joinpath("test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(harness.ROOT / "test-artifacts" / "pacs-tab.png"))
    finally:
        page.close(run_before_unload=True)
    monkeypatch.setenv("RADIPOP_DICOMWEB_USER", server.auth[0])
    monkeypatch.setenv("RADIPOP_DICOMWEB_PASSWORD", server.auth[1])
    web = DicomWeb(server.url, cache=tmp_path)
    modalities = [s.modality for study in web.studies(modality=None) for s in study.series]
    assert sorted(modalities) == ["CT", "SEG"]
