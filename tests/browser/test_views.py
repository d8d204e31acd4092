"""End to end: the coronal and sagittal views, zoom, and the cursor readout in headless
Chromium on the phantom (expected values from the Python API on the same study)."""

from __future__ import annotations

import numpy as np
import pytest

import harness
from test_dashboard import Z, assert_dots_land

pytestmark = pytest.mark.browser

PAINTED_JS = """(cls) => {
  const c = document.querySelector('canvas.' + cls);
  if (!c || !c.width) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) n++;
  return n / (c.width * c.height);
}"""


@pytest.fixture(scope="module")
def study():
    from radipop_widgets.io import load_study
    from radipop_widgets.io.phantom import phantom_study_path
    return load_study(phantom_study_path() / "dicom")


def grid(study, view):
    from radipop_widgets.app.ortho import BOX
    from radipop_widgets.reformat import plane_grid
    return plane_grid(study.shape, study.spacing, study.affine, view, BOX)


def view_xy(page, view, y, x):
    """Page position of canvas position (y, x) of a reformat (one canvas pixel per voxel,
    shown in the plane's physical aspect), at any display scale."""
    canvas = page.locator(f"canvas.radipop-{view}")
    box = canvas.bounding_box()
    height, width = canvas.evaluate("c => [c.height, c.width]")
    return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height


def slice_shown(page) -> int:
    return int(page.locator(".radipop-slice-text input").input_value())


def test_three_views_paint_with_their_letters(server, open_page):
    page = open_page(server)
    for view in ("coronal", "sagittal"):
        page.wait_for_function(PAINTED_JS, arg=f"radipop-{view}", polling=50, timeout=20_000)
        assert page.evaluate(PAINTED_JS, f"radipop-{view}") > 0.2, view
    box = page.locator("canvas.radipop-image").bounding_box()
    coronal = page.locator("canvas.radipop-coronal").bounding_box()
    assert coronal["x"] >= box["x"] + box["width"] and coronal["x"] + coronal["width"] < 1366
    page.screenshot(path=str(harness.ROOT / "test-artifacts" / "views-1366.png"))


def test_a_click_in_the_coronal_view_moves_the_axial_slice(server, open_page, study):
    page = open_page(server)
    page.wait_for_function(PAINTED_JS, arg="radipop-coronal", polling=50, timeout=20_000)
    coronal = grid(study, "coronal")
    for target in (12, 47):
        y, x = coronal.to_canvas(target, 300)
        page.mouse.click(*view_xy(page, "coronal", y, x))
        page.wait_for_function("(z) => document.querySelector('.radipop-slice-text input')"
                               ".value == String(z)", arg=target, polling=50, timeout=10_000)
        assert slice_shown(page) == target


def test_the_readout_shows_the_hu_under_the_mouse(server, open_page, study):
    page = open_page(server)
    for row, col in ((256, 140), (300, 380), (40, 40)):
        page.mouse.move(*harness.screen_xy(page, row, col))
        expected = int(study.hu[Z, row, col])
        page.wait_for_function(
            "([r, c]) => { const t = document.querySelector('.radipop-readout').innerText;"
            " return t.includes(`row ${r}, col ${c},`); }", arg=[row, col], polling=50,
            timeout=10_000)
        hu = page.locator(".radipop-readout span").get_attribute("data-hu")
        assert int(hu) == expected, (row, col)


def test_zoomed_clicks_land_on_the_exact_pixel(server, open_page):
    page = open_page(server)
    centre = (20, 256)                                # air above the body: nothing to select
    page.mouse.move(*harness.screen_xy(page, *centre))
    page.wait_for_function("() => document.querySelector('.radipop-readout').innerText"
                           ".includes('row 20, col 256,')", polling=50, timeout=10_000)
    for _ in range(3):                                # 1 -> 1.5 -> 2 -> 3
        page.keyboard.press("+")
    page.wait_for_function("() => { const c = document.querySelector('canvas.radipop-image');"
                           " return getComputedStyle(c).transform.startsWith('matrix(3'); }",
                           polling=50, timeout=10_000)
    box = page.locator("canvas.radipop-image").bounding_box()
    assert box["width"] > 3 * 500                      # the canvas is shown 3x larger
    page.keyboard.press("d")
    page.locator(".radipop-tools button.mod-active", has_text="Draw").wait_for()
    assert_dots_land(page, ((14, 236), (26, 256), (14, 278)), 6)
    page.screenshot(path=str(harness.ROOT / "test-artifacts" / "zoomed-1366.png"))
    page.keyboard.press("r")
    page.wait_for_function("() => getComputedStyle(document.querySelector("
                           "'canvas.radipop-image')).transform === 'none'", polling=50,
                           timeout=10_000)
    assert np.isclose(page.locator("canvas.radipop-image").bounding_box()["width"], 512, atol=1)
