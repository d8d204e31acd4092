"""The Voilà launcher: safe options, the websocket frame guards, the log redaction.

These run in-process, without a server; ``test_hostile_server.py`` runs the served app.
"""

import asyncio
import json
import logging
import random
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from radipop_widgets import serve, serve_guard, serve_pages
from radipop_widgets.serve_guard import V1_PROTOCOL, frame_problem, v1_frame


def legacy_frame(msg: dict, buffers=()) -> bytes:
    """A legacy binary frame as jupyter_server's ``serialize_binary_message`` writes it."""
    parts = [json.dumps(msg).encode(), *buffers]
    offsets = [4 * (len(parts) + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"!{len(parts) + 1}I", len(parts), *offsets) + b"".join(parts)


MESSAGE = {"header": {"msg_type": "comm_msg"}, "parent_header": {}, "metadata": {},
           "content": {}, "channel": "shell"}


# ---------------------------------------------------------------- frames sent to the browser

def test_guard_reads_a_valid_v1_header():
    serve.install_websocket_guard()
    from voila.tornado import kernel_websocket_handler as handler

    frame = v1_frame("iopub", {"msg_type": "comm_msg"})
    assert handler.read_header_from_binary_message(frame) == {"msg_type": "comm_msg"}


def test_guard_rejects_a_legacy_frame_at_once():
    serve.install_websocket_guard()
    from voila.tornado import kernel_websocket_handler as handler

    # A legacy (non-v1) binary frame starts with a small count and large offsets; read as v1
    # its first 8 bytes claim ~10^17 offsets.
    legacy = (2).to_bytes(4, "big") + (12).to_bytes(4, "big") + b"\x00" * 4096
    assert int.from_bytes(legacy[:8], "little") > 10**17
    started = time.perf_counter()
    assert handler.read_header_from_binary_message(legacy) is None
    assert time.perf_counter() - started < 0.5


def test_install_is_idempotent():
    serve.install_websocket_guard()
    serve.install_websocket_guard()
    from voila.tornado import kernel_websocket_handler as handler

    assert handler._unguarded_read_header is not serve.guarded_read_header


# ---------------------------------------------------------------- frames sent by a client

def test_valid_client_frames_pass_in_both_protocols():
    from jupyter_server.services.kernels.connection.base import (
        deserialize_binary_message,
        deserialize_msg_from_ws_v1,
    )

    frame = v1_frame("shell", {"msg_type": "comm_msg"}, buffers=[b"\x01\x02", b""])
    assert frame_problem(frame, V1_PROTOCOL) is None
    channel, parts = deserialize_msg_from_ws_v1(frame)
    assert channel == "shell" and parts[4:] == [b"\x01\x02", b""]
    binary = legacy_frame(MESSAGE, [b"abc"])
    assert frame_problem(binary, None) is None
    assert deserialize_binary_message(binary)["buffers"] == [b"abc"]
    assert frame_problem(json.dumps(MESSAGE), None) is None


@pytest.mark.parametrize("frame, protocol, problem", [
    ((2**62).to_bytes(8, "little") + bytes(16), V1_PROTOCOL, "claims 4611686018427387904"),
    ((2**31 - 1).to_bytes(4, "big") + bytes(12), None, "claims 2147483647 buffers"),
    ((-5).to_bytes(4, "big", signed=True) + bytes(12), None, "claims -5 buffers"),
    ((6).to_bytes(8, "little") + bytes(8), V1_PROTOCOL, "only 16 bytes"),
    (b"", V1_PROTOCOL, "shorter than its offset count"),
    (b"\x00", None, "shorter than its buffer count"),
    (v1_frame("nope", {"msg_type": "x"}), V1_PROTOCOL, "unknown channel"),
    (v1_frame("shell", {"no": "type"}), V1_PROTOCOL, "no msg_type"),
    ("{}", V1_PROTOCOL, "binary frames only"),
    ("[1]", None, "not a JSON object"),
    ("[" * 100_000, None, "RecursionError"),
    ('{"header": {"msg_type": 1}}', None, "no msg_type"),
    (bytes(serve_guard.MAX_MESSAGE_BYTES + 1), V1_PROTOCOL, "at most"),
], ids=lambda v: repr(v)[:24])
def test_bad_client_frames_are_named_without_reading_them(frame, protocol, problem):
    started = time.perf_counter()
    found = frame_problem(frame, protocol)
    assert found is not None and problem in found, found
    assert time.perf_counter() - started < 0.1


def test_offsets_out_of_order_or_past_the_end_are_refused():
    frame = bytearray(v1_frame("shell", {"msg_type": "x"}))
    struct.pack_into("<Q", frame, 8 * 6, 2**40)  # the end offset, far past the end
    assert "past its end" in frame_problem(bytes(frame), V1_PROTOCOL)
    frame = bytearray(v1_frame("shell", {"msg_type": "x"}))
    struct.pack_into("<Q", frame, 8 * 2, 50)  # the header starts before the channel
    assert "not in order" in frame_problem(bytes(frame), V1_PROTOCOL)


def test_random_frames_are_judged_quickly_without_exceptions():
    rng = random.Random(1)
    started = time.perf_counter()
    for _ in range(3000):
        frame = rng.randbytes(rng.randrange(0, 300))
        if rng.random() < 0.5:
            frame = rng.getrandbits(64).to_bytes(8, "little") + frame
        for protocol in (V1_PROTOCOL, None):
            assert isinstance(frame_problem(frame, protocol), (str, type(None)))
        assert isinstance(frame_problem(frame.decode("latin-1"), None), (str, type(None)))
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------- settings

def test_server_binds_loopback_and_serves_no_files():
    args = serve.voila_arguments(8870, None)
    assert "--Voila.ip=127.0.0.1" in args
    assert "--port=8870" in args
    config = serve.voila_config()
    assert config.VoilaConfiguration.file_allowlist == []
    assert config.MappingKernelManager.cull_idle_timeout > 0


def test_kernels_without_a_page_are_culled_within_a_minute_and_capped():
    config = serve.voila_config(cull_after=30, max_kernels=3, token="t0ken")
    kernels = config.MappingKernelManager
    assert kernels.cull_idle_timeout + kernels.cull_interval <= 60
    assert kernels.cull_connected is False and kernels.cull_busy is False
    assert config.DashboardKernelManager.max_kernels == 3
    assert config.DashboardKernelManager.secrets == ["t0ken"]
    assert config.VoilaConfiguration.multi_kernel_manager_class.__name__ == \
        "DashboardKernelManager"
    assert config.Voila.tornado_settings["websocket_max_message_size"] <= 10 * 2**20
    assert serve.voila_config().MappingKernelManager.cull_idle_timeout == serve.CULL_AFTER


def test_the_full_page_says_what_to_do():
    page = serve_pages.full_page(8)
    assert "The dashboard is full" in page and "8 dashboard pages" in page
    assert "Close a dashboard tab" in page


def test_bad_command_line_values_are_refused(capsys):
    with pytest.raises(SystemExit):
        serve.main(["--max-kernels", "0"])
    assert "positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        serve.main(["--standby", "-1"])
    assert "0 or more" in capsys.readouterr().err


def test_standby_kernels_are_voilas_preheated_kernels():
    config = serve.voila_config(standby=2)
    assert config.VoilaConfiguration.preheat_kernel is True
    assert config.VoilaKernelManager.kernel_pools_config == {"default": {"pool_size": 2}}
    assert "preheat_kernel" not in serve.voila_config(standby=0).VoilaConfiguration


# ---------------------------------------------------------------- the token in logs

@pytest.mark.parametrize("line", [
    "403 GET /voila/static/x.js?token=SECRETtoken123 (127.0.0.1) 1.2ms",
    "GET /api/kernels/k/channels?session_id=s&token=SECRETtoken123 (127.0.0.1)",
    "Authorization: token SECRETtoken123",
    "the secret SECRETtoken123 in a sentence",
])
def test_redact_hides_the_token(line):
    assert "SECRETtoken123" not in serve_guard.redact(line, ["SECRETtoken123"])


def test_log_records_are_redacted(caplog):
    previous = logging.getLogRecordFactory()
    try:
        serve_guard.install_log_redaction(["SECRETtoken123"])
        serve_guard.install_log_redaction(["SECRETtoken123"])  # idempotent: one layer
        logger = logging.getLogger("radipop-test-redaction")
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.warning("403 GET %s (%s)", "/x?token=SECRETtoken123", "127.0.0.1")
            try:
                raise ValueError("bad url /?token=SECRETtoken123")
            except ValueError:
                logger.exception("failed")
        text = caplog.text
        assert "SECRETtoken123" not in text
        assert "token=[redacted]" in text and "ValueError" in text
    finally:
        logging.setLogRecordFactory(previous)


def test_lab_only_front_end_extensions_are_kept_out_of_the_page():
    """jupyter-server-proxy (installed for the lab server) threw in every Voila page."""
    from voila.configuration import VoilaConfiguration
    from voila.utils import filter_extension

    config = VoilaConfiguration(config=serve.voila_config())
    installed = [{"name": "@jupyterhub/jupyter-server-proxy"}, {"name": "ipycanvas"}]
    kept = filter_extension(installed, extension_denylist=config.extension_denylist)
    assert [e["name"] for e in kept] == ["ipycanvas"]


def test_a_kernel_still_starting_is_no_orphan_and_no_error():
    """A page refused while another page's kernel starts: that kernel has no
    ``last_activity`` yet (a traitlets error, not None) and is neither reclaimed nor a 500."""
    from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

    manager = serve.server_classes()["kernel_manager"](max_kernels=1)
    manager._kernels["starting"] = ServerKernelManager()
    manager._kernel_connections["starting"] = 0
    assert manager.orphans(min_idle=0) == []
    assert manager.at_capacity()


def test_a_standby_kernel_is_no_page_while_it_starts(monkeypatch):
    """A standby kernel is in the manager's table for seconds before its start returns
    (kernel_info); it must not count as a page meanwhile, or the next page is refused."""
    from jupyter_server.services.kernels.kernelmanager import (
        AsyncMappingKernelManager,
        ServerKernelManager,
    )

    manager = serve.server_classes()["kernel_manager"](max_kernels=1)
    pages_while_starting = []

    async def start(self, *, kernel_id=None, **kwargs):
        kernel_id = kernel_id or "no-id-given"
        self._kernels[kernel_id] = ServerKernelManager()  # as jupyter_client does, early
        pages_while_starting.append(self.page_kernels())
        return kernel_id

    monkeypatch.setattr(AsyncMappingKernelManager, "start_kernel", start)
    with ThreadPoolExecutor(1) as thread:  # its own event loop: other tests may run one here
        kernel_id = thread.submit(asyncio.run, manager.start_kernel(
            env={"VOILA_PREHEAT": "True"})).result()
    assert pages_while_starting == [0]
    assert not manager.at_capacity() and kernel_id in manager._standby
