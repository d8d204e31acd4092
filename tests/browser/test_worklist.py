"""The worklist in the browser: open the Study tab's worklist, open the second study from
its row, go to the next one (screenshot in test-artifacts/worklist.png)."""

from __future__ import annotations

import harness
import pytest

pytestmark = pytest.mark.browser

#: three studies of different sizes, so the title tells which one is open
STUDIES = (("s1", (10, 96, 96)), ("s2", (12, 96, 96)), ("s3", (8, 96, 96)))


@pytest.fixture(scope="module")
def worklist_server(tmp_path_factory):
    from radipop_widgets.io.phantom import write_phantom_series

    root = tmp_path_factory.mktemp("worklist")
    for i, (name, shape) in enumerate(STUDIES):
        write_phantom_series(root / "data" / name, shape=shape, pixel_mm=4.0, slice_mm=15.0,
                             seed=i)
    env = {"RADIPOP_DATA": str(root / "data"), "RADIPOP_WORKSPACE": str(root / "sessions"),
           "RADIPOP_OUTPUT": str(root / "exports"), "RADIPOP_VOILA_LOG": str(root / "voila.log")}
    with harness.voila_server(env) as url:
        yield url


def title_has(page, text, timeout=60_000):
    page.wait_for_function(
        "t => document.querySelector('.radipop-title').innerText.includes(t)", arg=text,
        timeout=timeout)


def selected_text(page) -> str:
    return page.locator(".radipop-study-list select").evaluate(
        "s => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : ''"
    ).replace("\xa0", " ")


def test_open_the_second_study_from_the_worklist_then_go_next(worklist_server, open_page):
    page = open_page(worklist_server)
    title_has(page, "(10 × 96 × 96)")                       # the first study opens
    page.locator(".radipop-tabs").get_by_text("Study", exact=True).click()
    table = page.locator(".radipop-study-list select")
    table.wait_for()
    texts = [t.replace("\xa0", " ") for t in
             table.evaluate("s => Array.from(s.options, o => o.text)")]
    assert len(texts) == 3 and all(t.split(" | ")[1].startswith("not started") for t in texts)
    assert [t.split(" | ")[0].strip() for t in texts] == ["s1/dicom", "s2/dicom", "s3/dicom"]
    table.select_option(index=1)
    page.locator(".radipop-open").click()
    title_has(page, "(12 × 96 × 96)")
    harness.wait_settled(page)
    page.locator(".radipop-tabs").get_by_text("Study", exact=True).click()
    page.wait_for_function("() => document.querySelector('.radipop-study-list select')"
                           ".selectedIndex === 1")
    page.locator(".radipop-next-study").click()
    title_has(page, "(8 × 96 × 96)")
    page.wait_for_function("() => document.querySelector('.radipop-study-list select')"
                           ".selectedIndex === 2")
    assert selected_text(page).startswith("s3/dicom | ")
    harness.wait_settled(page)
    page.locator(".radipop-tabs").get_by_text("Study", exact=True).click()
    page.locator(".radipop-next-study").wait_for()
    artifacts = harness.ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "worklist.png"), full_page=True)
