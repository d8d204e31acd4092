"""Review views in headless Chromium on a 300 x 512 x 512 phantom served by Voila.

    python benchmarks/bench_views.py [--repeats 15] [--slices 300]

Measured in the page (``performance.now()``), from the input event to the first frame in
which every canvas concerned has changed (issue 10's goals, medians):

- slice step (key ArrowUp / ArrowDown) -> axial, coronal and sagittal updated (<= 60 ms);
- an edit (a Draw dot at the crosshair, then Ctrl+Z) -> all three views updated (<= 120 ms),
  and the websocket bytes the browser received for it (< 50 KB);
- zoom step (keys + / -) -> the axial view's transform applied (<= 40 ms);
- page open -> all three views painted, a new kernel each time (<= 4 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser")]

import harness  # noqa: E402

STANDBY_READY = 25.0
"""Seconds between two timed page opens for the server's standby kernel to be ready again
(started, notebook run, the 300-slice study loaded)."""
CANVASES = ["canvas.radipop-image", "canvas.radipop-coronal", "canvas.radipop-sagittal"]

# Dispatch an input, then poll until every watched canvas box differs from before (or, for
# kind 'zoom', until the image's transform differs). A watch is [selector, [x0, y0, x1, y1]
# or null for the whole canvas, stride]: hashing only where the update must show keeps the
# polling from stealing the page's main thread (three whole canvases cost ~15 ms a poll and
# delayed the very messages being timed).
MEASURE_JS = """async ([kind, arg, watch]) => {
  const sig = ([sel, box, stride]) => { const c = document.querySelector(sel);
    const [x0, y0, x1, y1] = box ?? [0, 0, c.width, c.height];
    const d = c.getContext('2d', {willReadFrequently: true})
               .getImageData(x0, y0, x1 - x0, y1 - y0).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 4 * stride) h = (h * 31 + d[i] + 7 * d[i + 2]) | 0;
    return h; };
  const image = document.querySelector('canvas.radipop-image');
  const transform = () => getComputedStyle(image).transform;
  const before = kind === 'zoom' ? transform() : watch.map(sig);
  const changed = () => kind === 'zoom' ? transform() !== before
                                        : watch.every((w, i) => sig(w) !== before[i]);
  const t0 = performance.now();
  if (kind === 'click') {
    const r = image.getBoundingClientRect(), f = r.width / image.width;
    const init = {clientX: r.left + (arg[1] + 0.5) * f, clientY: r.top + (arg[0] + 0.5) * f,
                  bubbles: true};
    image.dispatchEvent(new MouseEvent('mousedown', init));
    image.dispatchEvent(new MouseEvent('mouseup', init));
  } else {
    image.dispatchEvent(new KeyboardEvent('keydown', {key: arg[0], ctrlKey: !!arg[1],
                                                      bubbles: true}));
  }
  return await new Promise(resolve => {
    const poll = () => { const t = performance.now() - t0;
      if (changed()) resolve(t); else if (t > 5000) resolve(null);
      else requestAnimationFrame(poll); };
    requestAnimationFrame(poll);
  });
}"""


def step_watch(z, delta, n):
    """Boxes a slice step from ``z`` by ``delta`` must change: the axial image (sampled),
    the reformats' crosshair rows (canvas row n - 1 - slice: the head at the top)."""
    lo, hi = sorted((n - 1 - z, n - 1 - (z + delta)))
    band = [0, max(lo - 2, 0), 512, min(hi + 3, n)]
    return [[CANVASES[0], None, 11], [CANVASES[1], band, 1], [CANVASES[2], band, 1]]


def edit_watch(z, row, col, n):
    """Boxes an edit at (z, row, col) must change in the three views."""
    axial = [col - 8, row - 8, col + 9, row + 9]
    plane = [col - 8, max(n - 1 - z - 2, 0), col + 9, min(n - 1 - z + 3, n)]
    across = [row - 8, plane[1], row + 9, plane[3]]
    return [[CANVASES[0], axial, 1], [CANVASES[1], plane, 1], [CANVASES[2], across, 1]]


PAINTED_JS = """(sels) => sels.every(sel => { const c = document.querySelector(sel);
  if (!c || !c.width) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4 * 53) if (d[i] > 20) return true;
  return false; })"""


def summary(name, values, goal, unit="ms"):
    done = [v for v in values if v is not None]
    if not done:
        print(f"{name:44s} no change on screen within 5 s ({len(values)} tries)")
        return
    median = statistics.median(done)
    verdict = "met" if median <= goal else "MISSED"
    print(f"{name:44s} median {median:8.1f} {unit:2s} min {min(done):8.1f}  max {max(done):8.1f}"
          f"  n={len(done)}/{len(values)}  goal <= {goal:g} {unit}: {verdict}")


def make_study(folder: Path, slices: int) -> Path:
    from radipop_widgets.io.phantom import write_phantom_series
    write_phantom_series(folder / "phantom300", shape=(slices, 512, 512),
                         slice_mm=150.0 / slices)
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--opens", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = make_study(Path(tmp) / "data", args.slices)
        print(f"(wrote a {args.slices} x 512 x 512 phantom series in "
              f"{time.perf_counter() - t0:.0f} s)")
        env = {"RADIPOP_WORKSPACE": f"{tmp}/sessions", "RADIPOP_DATA": str(data)}
        with harness.voila_server(env) as url, sync_playwright() as p:
            browser = harness.launch(p)
            def painted(page):
                page.wait_for_function(PAINTED_JS, arg=CANVASES, polling=20, timeout=120_000)
            ready = harness.time_opens(browser, url, args.opens, painted, gap=STANDBY_READY)
            back_to_back = harness.time_opens(browser, url, args.opens, painted)

            page = harness.open_app(browser, url, timeout=120)
            page.wait_for_function(PAINTED_JS, arg=CANVASES, polling=50, timeout=60_000)
            received = []
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda payload: received.append(len(payload))))
            page.reload()          # reconnect, now with the byte counter on the socket
            page.wait_for_function(PAINTED_JS, arg=CANVASES, polling=50, timeout=120_000)
            harness.wait_settled(page)
            time.sleep(1.0)
            n = args.slices
            z = int(page.locator(".radipop-slice-text input").input_value())
            steps = []
            for i in range(args.repeats):
                delta = 1 if i % 2 else -1
                steps.append(page.evaluate(MEASURE_JS, [
                    "key", ["ArrowUp" if delta > 0 else "ArrowDown"], step_watch(z, delta, n)]))
                z += delta
            page.keyboard.press("d")
            page.locator(".radipop-tools button.mod-active", has_text="Draw").wait_for()
            time.sleep(0.5)
            centre = [256, 256]                       # the crosshair: on all three planes
            edits, undos, edit_bytes = [], [], []
            for _ in range(args.repeats):
                mark = len(received)
                watch = edit_watch(z, *centre, n)
                edits.append(page.evaluate(MEASURE_JS, ["click", centre, watch]))
                time.sleep(0.3)                       # the rest of the edit's messages
                edit_bytes.append(sum(received[mark:]) / 1024)
                undos.append(page.evaluate(MEASURE_JS, ["key", ["z", True], watch]))
                time.sleep(0.3)
            zooms = [page.evaluate(MEASURE_JS, ["zoom", ["+" if i % 2 == 0 else "-"], []])
                     for i in range(args.repeats)]
            browser.close()

    print(f"Review views, phantom {args.slices} x 512 x 512, headless Chromium, Voila on "
          "localhost")
    summary("slice step -> all three views updated", steps, 60)
    summary("edit (Draw dot) -> all three views updated", edits, 120)
    summary("undo (Ctrl+Z) -> all three views updated", undos, 120)
    summary("websocket received per edit", edit_bytes, 50, "KB")
    summary("zoom step -> transform applied", zooms, 40)
    summary("page open -> three views painted (standby kernel ready)", ready, 4000)
    summary("page open -> three views painted (back to back)", back_to_back, 4000)


if __name__ == "__main__":
    main()
