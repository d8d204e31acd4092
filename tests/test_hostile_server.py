"""The served app under hostile and careless use: frames, closed tabs, a full server, the token.

Every test starts the real server (``python -m radipop_widgets.serve`` on 127.0.0.1 and a
free port) and talks to it over HTTP and websockets, as a browser or an attacker would.
The settings come from the environment (``RADIPOP_CULL_AFTER``, ``RADIPOP_MAX_KERNELS``,
``RADIPOP_TOKEN``) so that the same tests run against any version of the launcher.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
import websocket

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hostile-7f3a9c51e2d8b640"
V1 = "v1.kernel.websocket.jupyter.org"
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """One running dashboard server, its kernels and its output."""

    def __init__(self, tmp: Path, *, cull_after: int = 60, max_kernels: int = 4,
                 token: str | None = TOKEN, standby: int = 0):
        self.port = free_port()
        self.token = token
        self.base = f"http://127.0.0.1:{self.port}/"
        self.log_path = tmp / f"server-{self.port}.log"
        env = dict(os.environ, PYTHONPATH=str(ROOT), RADIPOP_WORKSPACE=str(tmp / "sessions"),
                   RADIPOP_OUTPUT=str(tmp / "exports"), RADIPOP_CULL_AFTER=str(cull_after),
                   RADIPOP_MAX_KERNELS=str(max_kernels), RADIPOP_STANDBY=str(standby))
        env.pop("RADIPOP_TOKEN", None)
        if token:
            env["RADIPOP_TOKEN"] = token
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed by stop())
        self.process = subprocess.Popen([sys.executable, "-m", "radipop_widgets.serve",
                                         "--port", str(self.port)],
                                        cwd=ROOT, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self.psutil = psutil.Process(self.process.pid)
        self.kernel_pids: set[int] = set()
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()[-2000:]}")
            try:
                if self.get("voila/static/voila.js", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 90 s")
            time.sleep(0.2)

    # ------------------------------------------------------------------ HTTP
    def url(self, path: str = "", token: bool = True) -> str:
        if not (token and self.token):
            return self.base + path
        return self.base + path + ("&" if "?" in path else "?") + "token=" + self.token

    def get(self, path: str = "", timeout: float = 5.0, opener=None, token: bool = True):
        """(status, body, seconds) of a GET."""
        started = time.perf_counter()
        try:
            with (opener or urllib.request.build_opener()).open(self.url(path, token),
                                                                timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace"), \
                    time.perf_counter() - started
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace"), \
                time.perf_counter() - started

    def latency(self, kernel_id: str | None = None) -> float:
        """Seconds the server takes to answer a small API request (5 s at most)."""
        path = f"api/kernels/{kernel_id}" if kernel_id else "voila/static/voila.js"
        started = time.perf_counter()
        try:
            status, _body, seconds = self.get(path, timeout=5)
        except OSError:  # timed out
            return time.perf_counter() - started
        assert status in (200, 404)
        return seconds

    def open_page(self, opener=None, timeout: float = 120) -> str:
        """GET the dashboard page (which starts and runs a kernel); its kernel id."""
        status, body, _ = self.get("", timeout=timeout, opener=opener)
        assert status == 200, body[:500]
        kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', body).group(1)
        self.kernels()  # remember its process, to kill it should the server hang
        return kernel_id

    # ------------------------------------------------------------------ websockets
    def connect(self, kernel_id: str, v1: bool = True, timeout: float = 10):
        query = f"session_id={uuid.uuid4().hex}" + (f"&token={self.token}" if self.token else "")
        return websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?{query}",
            subprotocols=[V1] if v1 else None, timeout=timeout)

    # ------------------------------------------------------------------ processes
    def kernels(self) -> list[psutil.Process]:
        found = []
        for child in self.psutil.children(recursive=True):
            try:
                if (child.status() != psutil.STATUS_ZOMBIE
                        and "ipykernel_launcher" in " ".join(child.cmdline())):
                    found.append(child)
                    self.kernel_pids.add(child.pid)
            except psutil.Error:
                pass
        return found

    def wait_kernels(self, predicate, timeout: float) -> tuple[int, float]:
        """Poll the number of kernels until ``predicate(n)``; (n, seconds waited)."""
        started = time.monotonic()
        while True:
            n = len(self.kernels())
            if predicate(n) or time.monotonic() - started > timeout:
                return n, time.monotonic() - started
            time.sleep(0.25)

    def live_kernel_ids(self) -> list[str]:
        """Ids of the running kernels (from their connection files' names)."""
        ids = []
        for kernel in self.kernels():
            match = re.search(r"kernel-([0-9a-f-]{36})\.json", " ".join(kernel.cmdline()))
            if match:
                ids.append(match.group(1))
        return ids

    def delete_kernel(self, kernel_id: str) -> None:
        request = urllib.request.Request(self.url(f"api/kernels/{kernel_id}"), method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError:
            pass

    def rss(self) -> int:
        return self.psutil.memory_info().rss

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.kernels()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:  # a frozen server does not handle SIGTERM
            self.process.kill()
            self.process.wait(10)
        for pid in self.kernel_pids:  # kernels of a killed server are orphans: end them
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        self._log.close()


@pytest.fixture(scope="module")
def frames_server(tmp_path_factory):
    served = Served(tmp_path_factory.mktemp("frames"), cull_after=120, max_kernels=4)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def frames_kernel(frames_server):
    return frames_server.open_page()


def read_until_closed(ws, timeout: float = 5.0):
    """Read frames until the server closes the socket; the close code, or None if it did not."""
    deadline = time.monotonic() + timeout
    ws.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, OSError):
            return 1006
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else 1005
    return None


def send_quietly(ws, frame) -> bool:
    try:
        if isinstance(frame, str):
            ws.send(frame)
        else:
            ws.send(frame, opcode=websocket.ABNF.OPCODE_BINARY)
        return True
    except (websocket.WebSocketException, OSError):
        return False


# ---------------------------------------------------------------- 1. hostile frames

@pytest.mark.parametrize("v1, frame", [
    (True, (2**62).to_bytes(8, "little") + bytes(16)),
    (False, (2**31 - 1).to_bytes(4, "big") + bytes(12)),
], ids=["v1-2**62-offsets", "legacy-2**31-buffers"])
def test_a_hostile_frame_is_dropped_and_the_server_keeps_answering(frames_server,
                                                                   frames_kernel, v1, frame):
    served = frames_server
    ws = served.connect(frames_kernel, v1=v1)
    assert ws.getsubprotocol() == (V1 if v1 else None)
    rss_before = served.rss()
    assert send_quietly(ws, frame)
    time.sleep(0.3)
    latency = served.latency(frames_kernel)
    assert latency < 1.0, f"HTTP answered after {latency:.1f} s"
    assert read_until_closed(ws) is not None, "the socket of a bad frame stays open"
    ws.close()
    grown = (served.rss() - rss_before) / MB
    assert grown < 50, f"server memory grew by {grown:.0f} MB"
    assert "Dropped a websocket frame" in served.output()


def random_frames(rng: random.Random, n: int):
    """Seeded hostile frames: random bytes, lying v1 and legacy tables, bad JSON."""
    counts_v1 = [0, 1, 2, 5, 6, 7, 1030, 1031, 2**31 - 1, 2**62, 2**64 - 1]
    counts_legacy = [-1, 0, 1, 2, 1024, 1025, 2**31 - 1, -2**31]
    texts = ["", "[1]", "null", "{}", '{"header": 1}', '{"header": {}}', "[" * 100_000,
             '{"a": ' * 50_000, '{"header": {"msg_type": "x"}, "channel": 5}', "\x00" * 64]
    for _ in range(n):
        kind = rng.randrange(4)
        tail = rng.randbytes(rng.randrange(0, 200))
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 257))
        elif kind == 1:
            count = rng.choice(counts_v1 + [rng.getrandbits(64)])
            offsets = [rng.choice([0, 8, 64, 2**40, rng.getrandbits(64)])
                       for _ in range(rng.randrange(0, 8))]
            yield (count.to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in
                                                          offsets) + tail)
        elif kind == 2:
            count = rng.choice(counts_legacy + [rng.getrandbits(31)])
            offsets = [rng.choice([0, 4, 12, 2**31, rng.getrandbits(32)])
                       for _ in range(rng.randrange(0, 8))]
            yield (struct.pack("!i", count) + b"".join(struct.pack("!I", o) for o in offsets)
                   + tail)
        else:
            yield rng.choice(texts + [tail.decode("latin-1")])


def test_random_frames_leave_the_server_responsive_and_its_memory_bounded(frames_server,
                                                                          frames_kernel):
    served = frames_server
    rng = random.Random(9)
    frames = list(random_frames(rng, 300))
    rss_before = served.rss()
    worst = 0.0
    for start in range(0, len(frames), 10):
        ws = served.connect(frames_kernel, v1=bool(start // 10 % 2))
        for frame in frames[start:start + 10]:
            if not send_quietly(ws, frame):
                break
        read_until_closed(ws, timeout=3)
        ws.close()
        worst = max(worst, served.latency(frames_kernel))
        assert worst < 1.0, f"HTTP answered after {worst:.1f} s (frames {start}-{start + 9})"
    grown = (served.rss() - rss_before) / MB
    assert grown < 100, f"server memory grew by {grown:.0f} MB"
    assert served.process.poll() is None


def test_an_oversized_frame_closes_the_socket(frames_server, frames_kernel):
    ws = frames_server.connect(frames_kernel, v1=True)
    send_quietly(ws, bytes(3 * MB))
    assert read_until_closed(ws) in (1009, 1006)
    assert frames_server.latency(frames_kernel) < 1.0


def kernel_info_request(session: str) -> dict:
    return {"msg_id": uuid.uuid4().hex, "msg_type": "kernel_info_request", "username": "",
            "session": session, "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"}


def test_a_valid_message_still_reaches_the_kernel(frames_server, frames_kernel):
    from radipop_widgets.serve_guard import split_v1_frame, v1_frame

    for v1 in (True, False):
        ws = frames_server.connect(frames_kernel, v1=v1)
        header = kernel_info_request(uuid.uuid4().hex)
        if v1:
            ws.send(v1_frame("shell", header), opcode=websocket.ABNF.OPCODE_BINARY)
        else:
            ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                                "content": {}, "channel": "shell", "buffers": []}))
        deadline = time.monotonic() + 15
        reply = None
        while reply is None and time.monotonic() < deadline:
            data = ws.recv()
            if isinstance(data, bytes) and v1:
                message = json.loads(split_v1_frame(data)[1][1])  # the parent header
            elif isinstance(data, str):
                message = json.loads(data).get("parent_header", {})
            else:
                continue
            if message.get("msg_id") == header["msg_id"]:
                reply = message
        ws.close()
        assert reply is not None, f"no kernel_info_reply ({'v1' if v1 else 'legacy'})"


# ---------------------------------------------------------------- 2. kernels of closed pages

@pytest.fixture(scope="module")
def cull_server(tmp_path_factory):
    served = Served(tmp_path_factory.mktemp("cull"), cull_after=6, max_kernels=4)
    yield served
    served.stop()


def test_kernels_of_closed_pages_are_freed(cull_server):
    """Pages fetched and dropped (no websocket ever) leave no kernel behind."""
    served = cull_server
    served.kernel_pids.clear()
    threads = [threading.Thread(target=served.open_page) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(served.kernel_pids) == 3  # each seen running when its page was served
    left, waited = served.wait_kernels(lambda n: n == 0, timeout=40)
    assert left == 0, f"{left} kernels still running {waited:.0f} s after their pages went"


def test_a_connected_page_keeps_its_kernel_and_frees_it_on_disconnect(cull_server):
    served = cull_server
    served.wait_kernels(lambda n: n == 0, timeout=40)
    kernel_id = served.open_page()
    ws = served.connect(kernel_id)
    time.sleep(10)  # beyond cull_after + one culler pass
    assert len(served.kernels()) == 1, "the kernel of an open page was culled"
    ws.close()
    left, waited = served.wait_kernels(lambda n: n == 0, timeout=30)
    assert left == 0, f"kernel still running {waited:.0f} s after its page disconnected"
    assert waited > 3, "the kernel went before its grace period"


# ---------------------------------------------------------------- 2. closing a tab, a full server

@pytest.fixture(scope="module")
def tabs_server(tmp_path_factory):
    served = Served(tmp_path_factory.mktemp("tabs"), cull_after=120, max_kernels=2)
    yield served
    served.stop()


def test_the_shutdown_beacon_of_a_closed_tab_is_accepted(tabs_server):
    """What the page sends on ``beforeunload``: a form with the ``_xsrf`` cookie's value."""
    served = tabs_server
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    kernel_id = served.open_page(opener=opener)
    cookies = {c.name: c.value for c in jar}
    assert "_xsrf" in cookies, f"the page sets no _xsrf cookie (cookies: {sorted(cookies)})"
    request = urllib.request.Request(
        served.url(f"voila/api/shutdown/{kernel_id}", token=False),  # the login cookie only
        data=urllib.parse.urlencode({"_xsrf": cookies["_xsrf"]}).encode(),
        headers={"Origin": served.base.rstrip("/")}, method="POST")
    try:
        status = opener.open(request, timeout=10).status
    except urllib.error.HTTPError as error:
        status = f"{error.code} {error.read()[:200]!r}"
    assert status == 204
    left, _ = served.wait_kernels(lambda n: n == 0, timeout=10)
    assert left == 0


def test_a_full_server_shows_a_clear_page_and_reclaims_kernels_without_page(tabs_server):
    served = tabs_server
    served.wait_kernels(lambda n: n == 0, timeout=20)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(served.get("", timeout=120)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a[0] for a in answers) == [200, 200, 503, 503], \
        served.output()[-3000:]  # 4 at once, room for 2
    assert all("The dashboard is full" in a[1] for a in answers if a[0] == 503)
    kernel_ids = [re.search(r'"kernelId": "([0-9a-f-]{36})"', a[1]).group(1)
                  for a in answers if a[0] == 200]
    assert len(served.kernels()) == 2
    sockets = [served.connect(kernel_id) for kernel_id in kernel_ids]
    status, body, seconds = served.get("", timeout=30)
    assert status == 503
    assert "The dashboard is full" in body and "--max-kernels" in body
    assert seconds < 2
    assert len(served.kernels()) == 2
    sockets[0].close()  # that tab is closed without its beacon (a crash)
    # Its kernel is reclaimed once it has been quiet for 10 s (it may still be finishing
    # the study's loading); the page then opens, with no more than 2 kernels.
    started = time.monotonic()
    while True:
        status, body, _ = served.get("", timeout=120)
        if status == 200 or time.monotonic() - started > 60:
            break
        time.sleep(2)
    assert status == 200, f"no page {time.monotonic() - started:.0f} s after a tab closed"
    assert time.monotonic() - started > 5, "a kernel was reclaimed before its grace period"
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', body).group(1)
    assert len(served.kernels()) == 2
    sockets[1].close()
    for kid in [kernel_id, *served.live_kernel_ids()]:
        served.delete_kernel(kid)
    assert served.wait_kernels(lambda n: n == 0, timeout=10)[0] == 0


# ---------------------------------------------------------------- 3. the token

def test_the_token_is_printed_once_and_never_logged(tmp_path):
    served = Served(tmp_path, cull_after=120, max_kernels=2)
    try:
        kernel_id = served.open_page()
        for kernel in served.kernels():  # the kernel has no use for the token
            assert not [k for k, v in kernel.environ().items() if TOKEN in v]
        for path in ["voila/static/nope.js", "voila/files/x.png", "nope", "api/kernels",
                     f"api/kernels/{kernel_id}", "voila/static/voila.js"]:
            served.get(path)
        ws = served.connect(kernel_id)
        send_quietly(ws, b"\x00" * 24)
        read_until_closed(ws)
        ws.close()
        try:
            served.connect(str(uuid.uuid4()))
        except websocket.WebSocketException:
            pass
        request = urllib.request.Request(served.url(f"voila/api/shutdown/{kernel_id}"),
                                         data=b"", method="POST")
        urllib.request.urlopen(request, timeout=10)
        served.wait_kernels(lambda n: n == 0, timeout=10)
    finally:
        served.stop()
    output = served.output()
    assert output.count(TOKEN) == 1, "\n".join(line for line in output.splitlines()
                                               if TOKEN in line)
    assert f"/?token={TOKEN}" in output.splitlines()[0]
