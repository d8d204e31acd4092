"""End to end: the dashboard served by Voilà, driven in headless Chromium, on the phantom.

Expected pixels come from the Python API on the same study (the phantom), so every
assertion checks what the radiologist would see on screen.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import harness

pytestmark = pytest.mark.browser

Z = 30  # the slice the dashboard opens on (the middle of the unlabelled 60-slice phantom)


def inner_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of ``mask`` farthest from its edge."""
    distance = ndimage.distance_transform_edt(mask)
    return tuple(int(v) for v in np.unravel_index(np.argmax(distance), mask.shape))


@pytest.fixture(scope="module")
def phantom():
    """The default study, its Session, and the liver's candidate region on slice Z."""
    from radipop_widgets.io import load_study
    from radipop_widgets.io.phantom import phantom_study_path
    from radipop_widgets.session import Session

    folder = phantom_study_path()
    study = load_study(folder / "dicom")
    reference = np.load(folder / "reference_labels.npz")["labels"]
    regions = Session(study).regions(Z)
    ids, counts = np.unique(regions[reference[Z] == 1], return_counts=True)
    liver_id = int(ids[np.argmax(np.where(ids > 0, counts, 0))])
    liver = regions == liver_id
    return {"study": study, "liver": liver, "point": inner_point(liver)}


@pytest.fixture(scope="module")
def cut_line(phantom):
    """A vertical line that splits the liver region in two, and a point on each side."""
    from radipop_widgets.session import Session

    liver = phantom["liver"]
    rows, cols = np.nonzero(liver)
    for col in range(int(cols.mean()), int(cols.max()), 6):
        column = rows[cols == col]
        line = [(int(column.min()) - 6, col), (int(column.max()) + 6, col)]
        session = Session(phantom["study"])
        session.cut(Z, line)
        regions = session.regions(Z)
        left, right = liver.copy(), liver.copy()
        left[:, col - 3:] = False
        right[:, :col + 4] = False
        a, b = inner_point(left), inner_point(right)
        if regions[a] and regions[b] and regions[a] != regions[b]:
            return {"line": line, "left": a, "right": b, "left_mask": regions == regions[a]}
    pytest.fail("no vertical line splits the phantom's liver region")


def is_red(rgba) -> bool:
    r, g, b, _ = rgba
    return r > max(g, b) + 40


def label_liver(page, point):
    """Click a point with the Select tool and press the Liver button; wait for red."""
    before = harness.counts(page)
    harness.click_image(page, *point)
    harness.wait_counts(page, lambda c: c["hash"] != before["hash"])  # the selection is shown
    page.locator(".radipop-label-liver").click()
    harness.wait_counts(page, lambda c: c["red"] > 1000)


def test_default_study_paints(server, open_page):
    page = open_page(server)
    counts = harness.counts(page)
    assert counts["painted"] > 50_000          # the body is drawn in grey
    assert counts["green"] > 5_000             # unlabelled candidate regions are green
    assert counts["red"] == 0 and counts["blue"] == 0
    assert page.locator(".radipop-slice-text input").input_value() == str(Z)
    assert page.locator(".radipop-resume-box").is_hidden()   # a first visit: nothing to resume


PIXEL_OPAQUE = """([col, row]) => { const c = document.querySelector('canvas.radipop-image');
    return !!c && c.getContext('2d').getImageData(col, row, 1, 1).data[3] === 255; }"""


def test_threshold_slider_changes_overlay(server, open_page):
    page = open_page(server)
    before = harness.counts(page)
    # air, no overlay: the CT must not change there (read once the CT covers it: on a loaded
    # machine the page can repaint the CT after the first overlay arrived)
    page.wait_for_function(PIXEL_OPAQUE, arg=[5, 5], timeout=30_000, polling=50)
    outside = harness.pixel(page, 5, 5)
    handle = page.locator(".radipop-threshold-organ .noUi-handle")
    handle.focus()
    for _ in range(30):                        # +30 HU on the organ threshold
        handle.press("ArrowRight")
    # 30 threshold changes, each re-partitioning the slice: allow a loaded machine its time
    after = harness.wait_counts(page, lambda c: c["green"] < before["green"] - 500, timeout=30)
    assert after["hash"] != before["hash"]
    assert harness.pixel(page, 5, 5) == outside


def test_click_liver_and_press_liver_turns_it_red(server, open_page, phantom):
    page = open_page(server)
    label_liver(page, phantom["point"])
    counts = harness.wait_counts(page, lambda c: c["red"] > 0.9 * phantom["liver"].sum())
    assert counts["red"] < 1.1 * phantom["liver"].sum()
    assert is_red(harness.pixel(page, *phantom["point"]))
    # the volumes follow the overlay (the overlay is sent first: the latency users feel)
    page.wait_for_function("() => { const t = document.querySelector('.radipop-volumes')"
                           ".innerText; return t.includes('Liver') && "
                           "!t.includes('Liver 0.0 mL'); }")


def test_grow_labels_an_unlabelled_organ_with_one_click(server, open_page, phantom):
    from radipop_widgets.session import Session

    study, liver = phantom["study"], phantom["liver"]
    smooth = ndimage.uniform_filter(study.hu[Z].astype(float), 5)
    tissue = liver & (np.abs(smooth - np.median(smooth[liver])) < 15)   # not on a vessel
    point = inner_point(tissue)
    expected = Session(study)
    grown = expected.grow(Z, *point, 1)
    assert grown > 0.9 * liver.sum()
    page = open_page(server)
    page.locator(".radipop-tools button", has_text="Grow").click()
    page.locator(".radipop-tools button.mod-active", has_text="Grow").wait_for()
    harness.click_image(page, *point)
    counts = harness.wait_counts(page, lambda c: c["red"] > 0.9 * grown)
    assert counts["red"] < 1.1 * grown
    assert is_red(harness.pixel(page, *point))
    page.locator(".radipop-messages").get_by_text(f"Grew liver: {grown} pixels").wait_for()


def test_cut_separates_two_regions(server, open_page, cut_line):
    page = open_page(server)
    page.locator(".radipop-tools button", has_text="Cut").click()
    before = harness.counts(page)
    top, bottom = cut_line["line"]
    points = [(r, top[1]) for r in range(top[0], bottom[0] + 1, 8)] + [bottom]
    harness.drag_image(page, points)
    harness.wait_counts(page, lambda c: c["hash"] != before["hash"])
    page.locator(".radipop-tools button", has_text="Select").click()
    label_liver(page, cut_line["left"])
    left_pixels = int(cut_line["left_mask"].sum())
    counts = harness.wait_counts(page, lambda c: c["red"] > 0.9 * left_pixels)
    assert counts["red"] < 1.1 * left_pixels
    assert is_red(harness.pixel(page, *cut_line["left"]))
    assert not is_red(harness.pixel(page, *cut_line["right"]))


def test_extend_labels_neighbouring_slices(server, open_page, phantom):
    page = open_page(server)
    label_liver(page, phantom["point"])
    page.locator(".radipop-extend-below").click()
    held = "getComputedStyle(document.querySelector('.radipop-label-liver')).pointerEvents"
    # while it runs the held controls take no clicks (one class on the page's root)
    page.wait_for_function(f"() => document.querySelector('.radipop-busy') && {held} === 'none'")
    messages = page.locator(".radipop-messages")
    messages.get_by_text("Extended the labels").wait_for(timeout=30_000)
    page.wait_for_function(f"() => !document.querySelector('.radipop-busy') && {held} !== 'none'")
    harness.click_image(page, 2, 2)            # focus the image for the keys (air: no region)
    page.keyboard.press("ArrowDown")
    page.wait_for_function(
        "() => document.querySelector('.radipop-slice-text input').value === '29'")
    harness.wait_counts(page, lambda c: c["red"] > 0.8 * phantom["liver"].sum())
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")             # above: not extended
    page.wait_for_function(
        "() => document.querySelector('.radipop-slice-text input').value === '31'")
    harness.wait_counts(page, lambda c: c["red"] == 0)


def test_undo_restores(server, open_page, phantom):
    page = open_page(server)
    before = harness.counts(page)
    label_liver(page, phantom["point"])
    page.locator(".radipop-undo").click()
    after = harness.wait_counts(page, lambda c: c["red"] == 0)
    assert abs(after["green"] - before["green"]) < 0.05 * before["green"]
    page.locator(".radipop-redo").click()
    harness.wait_counts(page, lambda c: c["red"] > 0.9 * phantom["liver"].sum())


def test_save_writes_what_the_api_reads_back(browser, open_page, phantom, tmp_path):
    from radipop_widgets.persist import find_saved_session
    from radipop_widgets.session import Session

    workspace = tmp_path / "sessions"
    env = {"RADIPOP_WORKSPACE": str(workspace), "RADIPOP_VOILA_LOG": str(tmp_path / "voila.log")}
    with harness.voila_server(env) as url:
        page = open_page(url)
        label_liver(page, phantom["point"])
        page.locator(".radipop-tabs").get_by_text("Save & export").click()
        page.locator(".radipop-save").click()
        page.locator(".radipop-messages").get_by_text("Session saved to").wait_for()
    folder = find_saved_session(phantom["study"], workspace)
    assert folder is not None, "no session folder in the workspace"
    labels = Session.open(folder, study=phantom["study"]).labels
    same_through_the_api = Session(phantom["study"])
    same_through_the_api.select(Z, *phantom["point"])
    same_through_the_api.assign(Z, 1)
    np.testing.assert_array_equal(labels, same_through_the_api.labels)
    assert labels[Z][phantom["liver"]].all()


def test_keys_work_without_clicking_the_image(server, open_page):
    page = open_page(server)
    slice_text = page.locator(".radipop-slice-text input")
    page.keyboard.press("ArrowUp")             # nothing focused yet: the image gets the key
    page.wait_for_function("() => document.querySelector('.radipop-slice-text input')"
                           ".value === '31'")
    page.locator(".radipop-label-liver").click()   # after a button, keys still reach it
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => document.querySelector('.radipop-slice-text input')"
                           ".value === '30'")
    slice_text.click()                         # a box being typed into keeps its keys
    page.keyboard.press("End")
    page.keyboard.type("2")
    assert slice_text.input_value() == "302"
    slice_text.fill("30")
    slice_text.press("Enter")                  # Enter hands the keys back: the box lets go
    page.wait_for_function("() => document.activeElement.tagName !== 'INPUT'")
    box = page.locator("canvas.radipop-image").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)   # hovering the image takes the focus
    page.wait_for_function("() => document.activeElement === "
                           "document.querySelector('canvas.radipop-image')")
    page.keyboard.press("d")
    page.locator(".radipop-tools button.mod-active", has_text="Draw").wait_for()


RED_CENTRE_JS = """([row, col, r]) => {
  const c = document.querySelector('canvas.radipop-image');
  const d = c.getContext('2d').getImageData(col - r, row - r, 2 * r + 1, 2 * r + 1).data;
  let n = 0, sr = 0, sc = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i] > Math.max(d[i + 1], d[i + 2]) + 40) {
      const k = i / 4; n++; sr += Math.floor(k / (2 * r + 1)); sc += k % (2 * r + 1);
    }
  }
  return n ? [row - r + sr / n, col - r + sc / n, n] : null;
}"""


def assert_dots_land(page, points, radius):
    """Click each (row, col) with the Draw tool: the red dot drawn is centred on that pixel."""
    for row, col in points:
        page.mouse.click(*harness.screen_xy(page, row, col))
        # Read the centre from the poll that saw red: evaluating again could land between
        # the stroke preview being cleared and the committed overlay arriving (null).
        found = page.wait_for_function(RED_CENTRE_JS, arg=[row, col, radius], polling=50,
                                       timeout=10_000)
        centre_row, centre_col, n = found.json_value()
        assert abs(centre_row - row) <= 0.5 and abs(centre_col - col) <= 0.5, (row, col, n)


def test_large_screen_shows_a_larger_image_with_exact_mapping(server, open_page):
    page = open_page(server, 1920, 1080)
    image = page.locator("canvas.radipop-image")
    box = image.bounding_box()
    scale = box["width"] / 512
    assert scale in (1.25, 1.5, 1.75, 2.0), f"display {box['width']} px wide"
    assert box["height"] + box["y"] < 1080
    strip = page.locator(".radipop-strip").bounding_box()
    assert abs(strip["width"] - box["width"]) < 1
    page.keyboard.press("d")                   # draw liver dots in the air above the body
    page.locator(".radipop-tools button.mod-active", has_text="Draw").wait_for()
    assert_dots_land(page, ((12, 100), (13, 301), (25, 450)), 8)


def test_enter_in_a_slider_box_gives_the_keys_back_to_the_image(server, open_page):
    page = open_page(server)
    readout = page.locator(".radipop-brush-width .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("8")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement === "
                           "document.querySelector('canvas.radipop-image')")
    page.keyboard.press("d")                   # a tool key, not a character of the box
    page.locator(".radipop-tools button.mod-active", has_text="Draw").wait_for()
    page.wait_for_function("() => document.querySelector('.radipop-brush-width "
                           ".widget-readout').textContent.trim() === '8.0'")
