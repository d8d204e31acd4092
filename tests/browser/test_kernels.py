"""Kernels of pages that go (issue 9), in the browser: leaving or reloading a page frees its
kernel at once. Uses the session's browser (one Playwright per process) and the server
helper of tests/test_hostile_server.py."""

import pytest

import harness
from test_hostile_server import Served


@pytest.fixture
def tabs_server(tmp_path):
    served = Served(tmp_path, cull_after=120, max_kernels=2)
    yield served
    served.stop()


@pytest.mark.browser
def test_leaving_or_reloading_a_page_frees_its_kernel_at_once(tabs_server, browser):
    served = tabs_server
    served.wait_kernels(lambda n: n == 0, timeout=30)
    page = harness.open_app(browser, served.url())
    try:
        assert len(served.kernels()) == 1
        page.goto("about:blank")  # navigating away
        left, _ = served.wait_kernels(lambda n: n == 0, timeout=10)
        assert left == 0, "navigating away left the page's kernel running"
        page.goto(served.url())
        harness.wait_painted(page)
        assert len(served.kernels()) == 1
        first = {k.pid for k in served.kernels()}
        page.reload()
        harness.wait_painted(page)
        n, _ = served.wait_kernels(lambda n: n == 1 and {k.pid for k in served.kernels()}
                                   != first, timeout=10)
        assert n == 1 and {k.pid for k in served.kernels()} != first, \
            "reloading left the old kernel running"
    finally:
        # Closing the tab sends the same beacons in a browser, but Chromium's automation
        # may tear the page down before they leave: that case is the culler's
        # (test_a_connected_page_keeps_its_kernel_and_frees_it_on_disconnect).
        page.close(run_before_unload=True)
