"""Screenshots of the dashboard for the README and docs/USAGE.md (headless Chromium).

    .venv/bin/python scripts/screenshots.py

Segments the phantom's liver and spleen on slice 30 through the UI, extends them, and
saves docs/dashboard.png (1366 x 768) and docs/dashboard-1920.png (1920 x 1080) as
palette PNGs.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser")]

import harness  # noqa: E402


def inner_point(mask):
    distance = ndimage.distance_transform_edt(mask)
    return tuple(int(v) for v in np.unravel_index(np.argmax(distance), mask.shape))


def segment(page, reference):
    for label, button in ((1, "liver"), (2, "spleen")):
        harness.click_image(page, *inner_point(reference == label))
        page.wait_for_timeout(400)
        page.locator(f".radipop-label-{button}").click()
        page.wait_for_timeout(400)
    page.locator(".radipop-extend-below").click()
    page.locator(".radipop-messages").get_by_text("Extended the labels").first.wait_for(timeout=60_000)
    page.locator(".radipop-extend-above").click()
    page.locator(".radipop-messages").get_by_text("above").first.wait_for(timeout=60_000)
    harness.click_image(page, *inner_point(reference == 1))   # show a selection
    page.wait_for_timeout(800)


def save(page, path: Path):
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} {image.size[0]}x{image.size[1]} {path.stat().st_size // 1024} KB")


def main():
    from playwright.sync_api import sync_playwright

    from radipop_widgets.io.phantom import phantom_study_path

    reference = np.load(phantom_study_path() / "reference_labels.npz")["labels"][30]
    docs = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp, \
            harness.voila_server({"RADIPOP_WORKSPACE": tmp}) as url, sync_playwright() as p:
        browser = harness.launch(p)
        for (width, height), name in (((1366, 768), "dashboard.png"),
                                      ((1920, 1080), "dashboard-1920.png")):
            page = harness.open_app(browser, url, width, height)
            segment(page, reference)
            save(page, docs / name)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
