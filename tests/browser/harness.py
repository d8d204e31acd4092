"""Serve the dashboard with Voilà and drive it in headless Chromium (tests and benchmarks).

Uses Debian's /usr/bin/chromium through Playwright (``playwright install`` cannot download
a browser on these machines).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("RADIPOP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

# Counts pixel colours of the image canvas in the browser (the composite of all layers).
COUNT_JS = """([x0, y0, x1, y1]) => {
  const c = document.querySelector('canvas.radipop-image');
  if (!c || !c.width) return null;
  x1 = Math.min(x1 ?? c.width, c.width); y1 = Math.min(y1 ?? c.height, c.height);
  const d = c.getContext('2d').getImageData(x0, y0, x1 - x0, y1 - y0).data;
  let red = 0, blue = 0, green = 0, painted = 0, hash = 0;
  for (let i = 0; i < d.length; i += 4) {
    const r = d[i], g = d[i + 1], b = d[i + 2];
    if (r || g || b) painted++;
    if (r > Math.max(g, b) + 40) red++;
    else if (b > Math.max(r, g) + 40) blue++;
    else if (g > Math.max(r, b) + 15) green++;
    hash = (hash * 31 + r + 7 * g + 13 * b) | 0;
  }
  return {red, blue, green, painted, hash, n: d.length / 4};
}"""

PIXEL_JS = """([x, y]) => {
  const c = document.querySelector('canvas.radipop-image');
  return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def voila_server(env_extra: dict | None = None, timeout: float = 60.0):
    """Serve notebooks/radipop.ipynb on a free port; yield its URL; stop it afterwards."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    log_path = Path(env.get("RADIPOP_VOILA_LOG", os.devnull))
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "radipop_widgets.serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"voila exited with code {process.returncode}")
                try:
                    with urllib.request.urlopen(url + "voila/static/voila.js", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"voila did not answer on {url} within {timeout} s")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def launch(playwright):
    """Headless Debian Chromium."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)


def open_app(browser, url: str, width: int = 1366, height: int = 768, timeout: float = 60.0):
    """A new page on the dashboard, returned once the CT slice and its overlay are painted
    and the image has settled."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
    response = page.goto(url)
    if response is not None and response.status != 200:   # e.g. 503: the server is full
        raise AssertionError(f"the dashboard page answered {response.status}: "
                             f"{page.inner_text('body')[:300]}")
    wait_painted(page, timeout)
    wait_settled(page, timeout)
    # The keyboard helper installs itself from an image error handler, asynchronously:
    # tests that press keys before touching the image need it in place.
    page.wait_for_function("() => window.radipopKeys === true", timeout=timeout * 1000)
    return page


def time_opens(browser, url: str, n: int, wait, gap: float = 0.0) -> list[float]:
    """ms from ``goto`` to ``wait(page)`` returning, for ``n`` new pages (a new kernel
    each; each page closed with its beforeunload, so its kernel is shut down), ``gap``
    seconds after the last (time for the server's standby kernel to get ready)."""
    times = []
    for _ in range(n):
        time.sleep(gap)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
        start = time.perf_counter()
        page.goto(url)
        wait(page)
        times.append((time.perf_counter() - start) * 1000)
        page.close(run_before_unload=True)
    return times


def wait_painted(page, timeout: float = 60.0):
    page.wait_for_function(
        """() => { const c = document.querySelector('canvas.radipop-image');
                   if (!c || !c.width) return false;
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   for (let i = 0; i < d.length; i += 4 * 97) if (d[i] > 20) return true;
                   return false; }""", timeout=timeout * 1000, polling=50)


def wait_settled(page, timeout: float = 60.0, quiet: float = 0.3):
    """Wait until the image shows an overlay (the studies of the tests always have candidate
    regions or labels) and has not changed for ``quiet`` seconds: the CT and the overlay
    arrive as separate messages, and a loaded machine can paint one well before the other."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        c = counts(page)
        now = time.monotonic()
        if c != last:
            last, since = c, now
        elif c["green"] + c["red"] + c["blue"] > 0 and now - since >= quiet:
            return c
        if now > deadline:
            raise AssertionError(f"the image never settled; last counts {c}")
        time.sleep(0.05)


def counts(page, box=(0, 0, None, None)) -> dict:
    return page.evaluate(COUNT_JS, list(box))


def pixel(page, row: int, col: int) -> list[int]:
    return page.evaluate(PIXEL_JS, [col, row])


def wait_counts(page, predicate, timeout: float = 10.0) -> dict:
    """Poll the canvas colour counts until ``predicate(counts)`` holds; return them."""
    deadline = time.monotonic() + timeout
    while True:
        c = counts(page)
        if predicate(c):
            return c
        if time.monotonic() > deadline:
            raise AssertionError(f"canvas never reached the expected state; last counts {c}")
        time.sleep(0.03)


def screen_xy(page, row: int, col: int) -> tuple[float, float]:
    """Page position of the centre of image pixel (row, col), at any display scale."""
    image = page.locator("canvas.radipop-image")
    box = image.bounding_box()
    scale = box["width"] / image.evaluate("c => c.width")
    return box["x"] + (col + 0.5) * scale, box["y"] + (row + 0.5) * scale


def click_image(page, row: int, col: int) -> None:
    """Click image pixel (row, col)."""
    page.mouse.click(*screen_xy(page, row, col))


def drag_image(page, points) -> None:
    """Press at the first (row, col), move through the others, release at the last."""
    xy = [screen_xy(page, r, c) for r, c in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()
