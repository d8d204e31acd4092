"""The lab server in headless Chromium: a user logs in at /hub/login and the dashboard
served under /user/<name>/ paints its CT slice and overlay (tests/test_hub.py has the rest)."""

from __future__ import annotations

import harness
import pytest
from test_hub import NAMES, LabHub, requirements

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.slow]


def test_a_logged_in_user_sees_the_dashboard_paint(browser):
    reason = requirements()
    if reason:
        pytest.skip(reason)
    name = NAMES[0][:-1] + "w"
    lab = LabHub([name])
    page = None
    try:
        lab.start()
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
        page.goto(lab.url + "/hub/login")
        page.fill("#username_input", name)
        page.fill("#password_input", lab.password)
        page.click("#login_submit")
        page.wait_for_url(f"**/user/{name}/**", timeout=90_000)
        harness.wait_painted(page, timeout=90)
        shown = harness.wait_settled(page, timeout=60)
        assert shown["green"] + shown["red"] + shown["blue"] > 0
        assert page.locator("canvas.radipop-image").count() >= 1
        harness.ROOT.joinpath("test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(harness.ROOT / "test-artifacts" / "hub_dashboard.png"))
    finally:
        if page is not None:
            page.close(run_before_unload=True)
        assert lab.stop() == []
