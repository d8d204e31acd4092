"""The Statistics tab in the browser: the table shows the API's numbers, a click on the
liver's area plot moves the dashboard to that slice (screenshot in test-artifacts/)."""

from __future__ import annotations

import harness
import numpy as np
import pytest
from scipy import ndimage

pytestmark = pytest.mark.browser

Z = 30          # the slice the dashboard opens on (the middle of the 60-slice phantom)
TARGET = 22     # the slice clicked in the area plot


@pytest.fixture(scope="module")
def expected():
    """The liver's candidate region on slice Z, a point deep inside it, and the API's
    measurements after the same click + Liver."""
    from radipop_widgets.io import load_study
    from radipop_widgets.io.phantom import phantom_study_path
    from radipop_widgets.session import Session

    folder = phantom_study_path()
    study = load_study(folder / "dicom")
    reference = np.load(folder / "reference_labels.npz")["labels"]
    session = Session(study)
    regions = session.regions(Z)
    points = {}
    for label in (1, 2):
        ids, counts = np.unique(regions[reference[Z] == label], return_counts=True)
        region = regions == int(ids[np.argmax(np.where(ids > 0, counts, 0))])
        distance = ndimage.distance_transform_edt(region)
        points[label] = tuple(int(v) for v in np.unravel_index(np.argmax(distance),
                                                               region.shape))
        session.select(Z, *points[label])
        session.assign(Z, label)
    m = session.measurements()
    return {"points": points, "n": study.n_slices, "liver": m["liver"], "spleen": m["spleen"]}


def number(value, digits=1):
    return f"{value:,.{digits}f}".replace(",", "\u202f")


def table_text(page):
    return page.locator(".radipop-stats-table").inner_text()


def test_statistics_tab_shows_the_numbers_and_its_plot_moves_the_slice(server, open_page,
                                                                       expected):
    page = open_page(server)
    for label, organ, colour in [(1, "liver", "red"), (2, "spleen", "blue")]:
        before = harness.counts(page)
        harness.click_image(page, *expected["points"][label])
        harness.wait_counts(page, lambda c, b=before: c["hash"] != b["hash"])  # the selection
        page.locator(f".radipop-label-{organ}").click()
        harness.wait_counts(page, lambda c, k=colour: c[k] > 500)
    tabs = page.locator(".radipop-tabs")
    tabs.get_by_text("Statistics", exact=True).click()
    liver = expected["liver"]
    page.wait_for_function(
        "text => document.querySelector('.radipop-stats-table').innerText.includes(text)",
        arg=number(liver["volume_ml"]), timeout=20_000)
    text = table_text(page)
    for organ in ("liver", "spleen"):
        for key in ("median_hu", "length_cc_mm", "diameter_max_mm", "diameter_perp_mm",
                    "thickness_mm"):
            assert number(expected[organ][key]) in text, (organ, key)
    assert number(expected["spleen"]["splenic_index_cm3"], 0) in text
    assert number(liver["volume_ml"] / expected["spleen"]["volume_ml"], 2) in text

    # more slices: extend below, then the tab measures again when shown
    tabs.get_by_text("Segment", exact=True).click()
    page.locator(".radipop-extend-below").click()
    page.locator(".radipop-messages").get_by_text("Extended the labels").wait_for(
        timeout=30_000)
    tabs.get_by_text("Statistics", exact=True).click()
    page.wait_for_function(
        "text => !document.querySelector('.radipop-stats-table').innerText.includes(text)",
        arg=number(liver["volume_ml"]), timeout=20_000)

    plot = page.locator(".radipop-stats-plot-liver")
    box = plot.bounding_box()
    x = box["x"] + (TARGET + 0.5) * box["width"] / expected["n"]
    page.mouse.click(x, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "z => document.querySelector('.radipop-slice-text input').value === String(z)",
        arg=TARGET, timeout=10_000)
    # the plots' slice line moves there (the composite of the plot's two layers)
    column = int((TARGET + 0.5) * 420 / expected["n"])
    page.wait_for_function(
        """x => { const c = document.querySelector('canvas.radipop-stats-plot-liver');
                  const d = c.getContext('2d').getImageData(x, 2, 1, 1).data;
                  return d[0] < 80 && d[1] < 80 && d[2] < 80; }""", arg=column, timeout=10_000)
    harness.wait_counts(page, lambda c: c["red"] > 500)  # slice 22 holds extended liver
    conftest_artifacts = harness.ROOT / "test-artifacts"
    conftest_artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(conftest_artifacts / "statistics_1366x768.png"), full_page=True)
