"""Dashboard latency in headless Chromium against the app served by Voilà (512 x 512 phantom).

    python benchmarks/bench_ui.py [--repeats 15] [--opens 3]

Measures, in the page (``performance.now()``), from the input event to the first frame
whose canvas pixels differ:

- threshold slider moved (keyboard on the organ slider) -> new overlay pixels on screen
  (goal: median <= 100 ms);
- click on the image -> highlighted region (goal: median <= 100 ms);
- page open -> first painted slice, a new kernel each time (goal: <= 5 s);
- during "extend to the organ's end" (which runs in the background): a slice key pressed
  right after the click -> the new slice number shown, against the extend's own duration
  (click -> report): the page must answer before the extend ends.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser")]

import harness  # noqa: E402

# Dispatch an input event, then poll the canvas until its pixels change.
MEASURE_JS = """async ([kind, target, arg]) => {
  const c = document.querySelector('canvas.radipop-image');
  const ctx = c.getContext('2d', {willReadFrequently: true});
  const sig = () => { const d = ctx.getImageData(0, 0, c.width, c.height).data;
                      let h = 0; for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) | 0;
                      return h; };
  const before = sig();
  const t0 = performance.now();
  if (kind === 'key') {
    const el = document.querySelector(target); el.focus();
    el.dispatchEvent(new KeyboardEvent('keydown', {key: arg, bubbles: true}));
  } else {
    const r = c.getBoundingClientRect();
    const init = {clientX: r.left + arg[1] + 0.5, clientY: r.top + arg[0] + 0.5, bubbles: true};
    c.dispatchEvent(new MouseEvent('mousedown', init));
    c.dispatchEvent(new MouseEvent('mouseup', init));
  }
  return await new Promise(resolve => {
    const poll = () => {
      const t = performance.now() - t0;
      if (sig() !== before) resolve(t);
      else if (t > 5000) resolve(null);
      else requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  });
}"""


def inner_point(mask):
    distance = ndimage.distance_transform_edt(mask)
    return [int(v) for v in np.unravel_index(np.argmax(distance), mask.shape)]


def summary(name, values, goal_ms):
    done = [v for v in values if v is not None]
    if not done:
        print(f"{name:40s} no change on screen within 5 s ({len(values)} tries)")
        return
    median = statistics.median(done)
    goal = "" if goal_ms is None else \
        f"  goal <= {goal_ms} ms: {'met' if median <= goal_ms else 'MISSED'}"
    print(f"{name:40s} median {median:7.1f} ms  min {min(done):6.1f}  max {max(done):7.1f}  "
          f"n={len(done)}/{len(values)}{goal}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--opens", type=int, default=3)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from radipop_widgets.io.phantom import phantom_study_path

    folder = phantom_study_path()
    reference = np.load(folder / "reference_labels.npz")["labels"][30]
    points = [inner_point(reference == 1), inner_point(reference == 2)]

    with tempfile.TemporaryDirectory() as tmp, \
            harness.voila_server({"RADIPOP_WORKSPACE": tmp}) as url, sync_playwright() as p:
        browser = harness.launch(p)
        opens = []
        for _ in range(args.opens):
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
            start = time.perf_counter()
            page.goto(url)
            harness.wait_painted(page)
            opens.append((time.perf_counter() - start) * 1000)
            page.close()

        page = harness.open_app(browser, url)
        time.sleep(1.0)
        handle = ".radipop-threshold-organ .noUi-handle"
        slider = [page.evaluate(MEASURE_JS, ["key", handle, "ArrowRight" if i % 2 else "ArrowLeft"])
                  for i in range(args.repeats)]
        time.sleep(0.5)
        clicks = [page.evaluate(MEASURE_JS, ["click", None, points[i % 2]])
                  for i in range(args.repeats)]
        page.close()

        during, extends = [], []
        for _ in range(max(1, args.opens)):
            page = harness.open_app(browser, url)
            harness.click_image(page, *points[0])
            page.wait_for_timeout(300)
            page.locator(".radipop-label-liver").click()
            page.locator(".radipop-messages").get_by_text("Region labelled liver").wait_for()
            start = time.perf_counter()
            page.locator(".radipop-extend-below").click()
            page.keyboard.press("ArrowUp")
            page.wait_for_function("() => document.querySelector("
                                   "'.radipop-slice-text input').value === '31'", polling=10)
            during.append((time.perf_counter() - start) * 1000)
            page.locator(".radipop-messages").get_by_text("Extended the labels").wait_for(
                timeout=120_000)
            extends.append((time.perf_counter() - start) * 1000)
            page.close()
        browser.close()

    print("Dashboard latency, phantom 512 x 512, headless Chromium, Voila on localhost")
    summary("threshold slider -> new overlay pixels", slider, 100)
    summary("click -> highlighted region", clicks, 100)
    summary("page open -> first painted slice", opens, 5000)
    summary("extend to the end: click -> report", extends, None)
    summary("slice key during that extend -> shown", during, 100)


if __name__ == "__main__":
    main()
