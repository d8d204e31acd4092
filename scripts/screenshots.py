"""Screenshots of the dashboard for the README and docs/USAGE.md (headless Chromium).

    .venv/bin/python scripts/screenshots.py

docs/dashboard.png (1366 x 768): the phantom's liver and spleen labelled on slice 30
through the UI (a click and the label key each), extended to every slice, the liver
selected. docs/dashboard-1920.png (1920 x 1080): the liver labelled on two slices, the
spleen grown with one click, and the preview of Fill between slices on the slice between
them. Saved as palette PNGs. Each page gets its own workspace (no autosave offer from the
one before) and every step waits for what it does to show (no fixed delays).
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser")]

import harness  # noqa: E402

Z = 30                    # the slice the dashboard opens on
KEY_SLICES = (22, 38)     # the liver's key slices of the fill preview
TIMEOUT_MS = 60_000

IDLE_JS = """() => {
  const bar = document.querySelector('.radipop-progress');
  return !!bar && getComputedStyle(bar).visibility === 'hidden';
}"""


def tissue_point(hu, mask):
    """The pixel of ``mask`` farthest from its edge among those of the organ's own level
    (not a vessel inside it)."""
    smooth = ndimage.uniform_filter(hu.astype(float), 5)
    tissue = mask & (np.abs(smooth - np.median(smooth[mask])) < 15)
    distance = ndimage.distance_transform_edt(tissue)
    return tuple(int(v) for v in np.unravel_index(np.argmax(distance), mask.shape))


def message(page, text):
    """Wait until the message panel shows ``text``."""
    page.locator(".radipop-messages").get_by_text(text).first.wait_for(timeout=TIMEOUT_MS)


def wait_idle(page):
    """Wait until no long operation runs and the image has settled."""
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS, polling=100)
    harness.wait_settled(page, TIMEOUT_MS / 1000)


def go_to(page, z):
    box = page.locator(".radipop-slice-text input")
    box.fill(str(z))
    box.press("Enter")
    page.wait_for_function(f"() => document.querySelector('.radipop-slice-text input')"
                           f".value === '{z}'", timeout=TIMEOUT_MS)
    harness.wait_settled(page, TIMEOUT_MS / 1000)


def select_and_label(page, point, key, organ):
    """Click ``point`` with the Select tool and press the organ's key."""
    harness.click_image(page, *point)
    message(page, "selected (")
    page.keyboard.press(key)
    message(page, f"Region labelled {organ}")


def use_tool(page, name):
    page.locator(".radipop-tools button", has_text=name).click()
    page.locator(".radipop-tools button.mod-active", has_text=name).wait_for(timeout=TIMEOUT_MS)


def segmented(page, study, reference):
    """Liver and spleen on slice Z, extended to both ends; the liver selected."""
    liver = tissue_point(study.hu[Z], reference[Z] == 1)
    select_and_label(page, liver, "1", "liver")
    select_and_label(page, tissue_point(study.hu[Z], reference[Z] == 2), "2", "spleen")
    page.locator(".radipop-extend-below").click()
    message(page, f"Extended the labels of slice {Z} below")
    wait_idle(page)
    page.locator(".radipop-extend-above").click()
    message(page, f"Extended the labels of slice {Z} above")
    wait_idle(page)
    harness.click_image(page, *liver)             # show a selection
    message(page, "selected (")
    wait_idle(page)


def fill_preview(page, study, reference):
    """The liver on two key slices, the spleen grown on slice Z, the fill previewed on Z."""
    for z in KEY_SLICES:
        go_to(page, z)
        select_and_label(page, tissue_point(study.hu[z], reference[z] == 1), "1", "liver")
    go_to(page, Z)
    use_tool(page, "Grow")
    page.locator(".radipop-brush-label button", has_text="Spleen").click()
    harness.click_image(page, *tissue_point(study.hu[Z], reference[Z] == 2))
    message(page, "Grew spleen")
    page.locator(".radipop-brush-label button", has_text="Liver").click()
    page.locator(".radipop-fill").click()
    message(page, "Fill between slices adds the liver to slices")
    page.locator(".radipop-fill-apply").wait_for(timeout=TIMEOUT_MS)
    wait_idle(page)


def save(page, path: Path):
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} {image.size[0]}x{image.size[1]} {path.stat().st_size // 1024} KB")


def main():
    from playwright.sync_api import sync_playwright

    from radipop_widgets.io import load_study
    from radipop_widgets.io.phantom import phantom_study_path

    folder = phantom_study_path()
    study = load_study(folder / "dicom")
    reference = np.load(folder / "reference_labels.npz")["labels"]
    docs = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "sessions"
        with harness.voila_server({"RADIPOP_WORKSPACE": str(workspace)}) as url, \
                sync_playwright() as p:
            browser = harness.launch(p)
            for (width, height), name, steps in (((1366, 768), "dashboard.png", segmented),
                                                 ((1920, 1080), "dashboard-1920.png",
                                                  fill_preview)):
                shutil.rmtree(workspace, ignore_errors=True)   # a first visit: no offer
                page = harness.open_app(browser, url, width, height)
                steps(page, study, reference)
                save(page, docs / name)
                page.close()
            browser.close()


if __name__ == "__main__":
    main()
