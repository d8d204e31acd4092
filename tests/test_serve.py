"""The Voilà launcher: safe options and the websocket header guard."""

import json
import time

from radipop_widgets import serve


def v1_frame(header: dict) -> bytes:
    parts = [b"shell", json.dumps(header).encode(), b"{}", b"{}", b"{}"]
    count = len(parts)
    offsets, position = [], 8 * (count + 1)
    for part in parts:
        offsets.append(position)
        position += len(part)
    table = count.to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return table + b"".join(parts)


def test_guard_reads_a_valid_v1_header():
    serve.install_websocket_guard()
    from voila.tornado import kernel_websocket_handler as handler

    frame = v1_frame({"msg_type": "comm_msg"})
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


def test_server_binds_loopback_and_serves_no_files():
    args = serve.voila_arguments(8870, None)
    assert "--Voila.ip=127.0.0.1" in args
    assert "--port=8870" in args
    config = serve.voila_config()
    assert config.VoilaConfiguration.file_allowlist == []
    assert config.MappingKernelManager.cull_idle_timeout > 0
