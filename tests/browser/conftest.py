"""Fixtures of the browser tests: a Voilà server, headless Chromium, a page on the dashboard."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402

ARTIFACTS = harness.ROOT / "test-artifacts"


def pytest_collection_modifyitems(items):
    if not harness.CHROMIUM.exists():
        skip = pytest.mark.skip(reason=f"{harness.CHROMIUM} is missing: install Debian's chromium "
                                       "(apt-get install -y chromium) to run the browser tests")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.failed_call = report.failed
    return report


def _server_env(folder: Path) -> dict:
    return {"RADIPOP_WORKSPACE": str(folder / "sessions"), "RADIPOP_OUTPUT": str(folder / "exports"),
            "RADIPOP_VOILA_LOG": str(folder / "voila.log")}


@pytest.fixture(scope="session")
def server_env(tmp_path_factory):
    return _server_env(tmp_path_factory.mktemp("voila"))


@pytest.fixture(scope="session")
def server(server_env):
    """URL of the dashboard served on a free port, shared by the tests (see ``open_page``)."""
    with harness.voila_server(server_env) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = harness.launch(p)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, request, server_env):
    """``open_page(url)`` -> painted page; a screenshot goes to test-artifacts/ on failure.

    Every edit autosaves into the shared server's workspace, and a study with autosaved
    work opens with a Resume / Start new offer: empty the workspace first so each test
    sees a first visit, whatever ran before it.
    """
    pages = []
    shutil.rmtree(server_env["RADIPOP_WORKSPACE"], ignore_errors=True)

    def open_page(url, width=1366, height=768):
        page = harness.open_app(browser, url, width, height)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        if getattr(request.node, "failed_call", False):
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        page.close(run_before_unload=True)   # the page asks the server to free its kernel
