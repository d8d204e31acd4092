"""The PACS tab in the served dashboard: search Orthanc, add the series to the worklist and
open it from the Study tab; open a series, label, send the SEG."""

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


def study_rows(page) -> list[str]:
    return [t.replace("\xa0", " ") for t in page.locator(".radipop-study-list select").evaluate(
        "s => Array.from(s.options, o => o.text)")]


def test_add_to_worklist_then_open_the_pacs_row_from_the_study_tab(browser, pacs_dashboard):
    url = pacs_dashboard[0]
    page = harness.open_app(browser, url, 1366, 900)
    try:
        page.locator(".radipop-tabs").get_by_text("PACS", exact=True).click()
        page.locator(".radipop-pacs-patient input").fill("PHANTOM*")
        page.locator(".radipop-pacs-search").click()
        page.locator(".radipop-pacs-series option").first.wait_for()
        page.locator(".radipop-pacs-add").click()
        page.locator(".radipop-messages").get_by_text("to the worklist").first.wait_for()
        page.locator(".radipop-tabs").get_by_text("Study", exact=True).click()
        page.wait_for_function("() => Array.from(document.querySelectorAll("
                               "'.radipop-study-list select option'), o => o.text)"
                               ".some(t => t.includes('PACS'))")
        (row,) = [i for i, text in enumerate(study_rows(page)) if "PACS" in text]
        assert "not started" in study_rows(page)[row]
        page.locator(".radipop-study-list select").select_option(index=row)
        page.locator(".radipop-open").click()
        page.wait_for_function(
            "t => document.querySelector('.radipop-title').innerText.includes(t)",
            arg=f"({' × '.join(map(str, GEOMETRY['shape']))})", timeout=60_000)
        harness.wait_painted(page)
        harness.wait_settled(page)
        page.locator(".radipop-tabs").get_by_text("Study", exact=True).click()
        page.wait_for_function(
            "r => { const s = document.querySelector('.radipop-study-list select');"
            "       return s.options[r] && s.options[r].text.includes('cached'); }", arg=row)
        assert f"{GEOMETRY['slice_mm']:g} mm" in study_rows(page)[row]   # read once cached
        assert page.locator(".radipop-remove-pacs").is_enabled()    # a PACS row is chosen
        harness.ROOT.joinpath("test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(harness.ROOT / "test-artifacts" / "pacs-worklist.png"),
                        full_page=True)
    finally:
        page.close(run_before_unload=True)


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
