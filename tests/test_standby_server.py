"""The served dashboard's standby kernel (Voilà's preheated kernels): started with the
server, its notebook run, never culled while it waits, handed to the next page, replaced,
and on top of the page cap (``--max-kernels`` counts pages)."""

from __future__ import annotations

import re
import time

import pytest
from test_hostile_server import Served

KERNEL_ID = re.compile(r'"kernelId": "([0-9a-f-]{36})"')


@pytest.fixture(scope="module")
def standby_server(tmp_path_factory):
    served = Served(tmp_path_factory.mktemp("standby"), cull_after=5, max_kernels=2,
                    standby=1)
    yield served
    served.stop()


def wait_standby(served, pages: int, timeout: float = 90) -> set[str]:
    """Wait until the server runs ``pages`` page kernels plus one standby; its ids."""
    served.wait_kernels(lambda n: n == pages + 1, timeout=timeout)
    ids = set(served.live_kernel_ids())
    assert len(ids) == pages + 1, f"{len(ids)} kernels, not {pages} pages + 1 standby"
    return ids


def test_the_standby_kernel_serves_the_next_page_and_is_never_culled_meanwhile(
        standby_server):
    served = standby_server
    standby = wait_standby(served, 0)
    time.sleep(12)   # beyond cull_after (5 s) and a culler pass: an idle page would be gone
    assert set(served.live_kernel_ids()) == standby, "the standby kernel was culled"

    pages, page_ids = [], set()
    for opened in range(2):                                 # the cap: 2 pages
        status, body, _ = served.get("", timeout=120)
        assert status == 200, body[:300]
        kernel_id = KERNEL_ID.search(body).group(1)
        assert {kernel_id} == standby, "the page did not get the standby kernel"
        pages.append(served.connect(kernel_id))             # the page stays open
        page_ids.add(kernel_id)
        standby = wait_standby(served, opened + 1) - page_ids

    status, body, seconds = served.get("", timeout=30)      # a third page: full, at once
    assert status == 503 and "The dashboard is full" in body and seconds < 2
    time.sleep(12)  # the standby is neither handed out, reclaimed nor culled
    assert set(served.live_kernel_ids()) == page_ids | standby
    for socket in pages:
        socket.close()
