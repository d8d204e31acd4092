"""Checks the server applies before it trusts a client: websocket frames and log lines.

Pure functions on bytes and strings (standard library only), so they are cheap to import
and to test; :mod:`radipop_widgets.serve` wires them into Voilà.

jupyter_server's readers of kernel websocket frames (``deserialize_msg_from_ws_v1``,
``deserialize_binary_message``) and Voilà's ``read_header_from_binary_message`` allocate
whatever the first bytes of a frame claim: a 24-byte frame that claims 2**62 offsets
freezes the server and eats its memory. :func:`frame_problem` reads a frame's table of
offsets with size and count checks first, in time and memory bounded by the frame's
length, and names what is wrong; the server then drops the frame and closes the socket.

Examples
--------
>>> frame = v1_frame("shell", {"msg_type": "comm_msg"})
>>> frame_problem(frame, V1_PROTOCOL) is None
True
>>> frame_problem((2**62).to_bytes(8, "little") + bytes(16), V1_PROTOCOL)
'v1 frame claims 4611686018427387904 offsets: at most 1030 are allowed'
>>> frame_problem((2**31 - 1).to_bytes(4, "big") + bytes(12), None)
'binary frame claims 2147483647 buffers: 1 to 1024 are allowed'
>>> redact("GET /?token=abc123&x=1", ["abc123"])
'GET /?token=[redacted]&x=1'
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import struct

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
"""The kernel websocket subprotocol in which binary frames start with a 64-bit offset count."""

MAX_MESSAGE_BYTES = 2 * 1024 * 1024
"""Largest websocket message a client may send (widget messages are a few kB)."""

MAX_BUFFERS = 1024
"""Most binary buffers one client message may carry."""

CHANNELS = ("shell", "control", "stdin", "iopub")

# v1 frame: channel, header, parent header, metadata, content, buffers..., end.
_V1_MIN_OFFSETS = 6
_V1_MAX_OFFSETS = _V1_MIN_OFFSETS + MAX_BUFFERS


class FrameError(ValueError):
    """A client frame that the server must not read."""


def _json_object(data: bytes | str, what: str) -> dict:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise FrameError(f"{what} is not JSON ({type(error).__name__})") from None
    if not isinstance(value, dict):
        raise FrameError(f"{what} is not a JSON object")
    return value


def _check_header(header, what: str = "header") -> None:
    if not isinstance(header, dict):
        raise FrameError(f"{what} is not a JSON object")
    if not isinstance(header.get("msg_type"), str):
        raise FrameError(f"{what} has no msg_type")


def _check_offsets(offsets: list[int], start: int, length: int, kind: str) -> None:
    if offsets[0] < start:
        raise FrameError(f"{kind} frame's first part starts inside its offset table")
    if any(b < a for a, b in itertools.pairwise(offsets)):
        raise FrameError(f"{kind} frame's offsets are not in order")
    if offsets[-1] > length:
        raise FrameError(f"{kind} frame's offsets point past its end ({offsets[-1]} > {length})")


def split_v1_frame(frame: bytes) -> tuple[str, list[bytes]]:
    """``(channel, [header, parent_header, metadata, content, *buffers])`` of a v1 frame.

    Raises :class:`FrameError` before allocating anything the frame's length does not
    pay for.

    >>> split_v1_frame(v1_frame("control", {"msg_type": "x"}))[0]
    'control'
    >>> split_v1_frame(b"\\x01")
    Traceback (most recent call last):
    ...
    radipop_widgets.serve_guard.FrameError: v1 frame of 1 bytes is shorter than its offset count
    """
    frame = bytes(frame)
    length = len(frame)
    if length > MAX_MESSAGE_BYTES:
        raise FrameError(f"frame of {length} bytes: at most {MAX_MESSAGE_BYTES} are allowed")
    if length < 8:
        raise FrameError(f"v1 frame of {length} bytes is shorter than its offset count")
    count = int.from_bytes(frame[:8], "little")
    if not _V1_MIN_OFFSETS <= count <= _V1_MAX_OFFSETS:
        if count > _V1_MAX_OFFSETS:
            raise FrameError(f"v1 frame claims {count} offsets: at most {_V1_MAX_OFFSETS} are "
                             "allowed")
        raise FrameError(f"v1 frame claims {count} offsets: a message has at least "
                         f"{_V1_MIN_OFFSETS}")
    table = 8 * (count + 1)
    if table > length:
        raise FrameError(f"v1 frame claims {count} offsets but has only {length} bytes")
    offsets = list(struct.unpack_from(f"<{count}Q", frame, 8))
    _check_offsets(offsets, table, length, "v1")
    try:
        channel = frame[offsets[0]:offsets[1]].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("v1 frame's channel is not UTF-8") from None
    parts = [frame[offsets[i]:offsets[i + 1]] for i in range(1, count - 1)]
    return channel, parts


def check_v1_frame(frame: bytes) -> None:
    """Raise :class:`FrameError` unless ``frame`` is a readable v1 client message."""
    channel, parts = split_v1_frame(frame)
    if channel not in CHANNELS:
        raise FrameError(f"unknown channel {channel[:20]!r}")
    _check_header(_json_object(parts[0], "header"))


def check_legacy_binary_frame(frame: bytes) -> None:
    """Raise :class:`FrameError` unless ``frame`` is a readable legacy binary message.

    Legacy layout: a big-endian 32-bit buffer count ``n``, ``n`` 32-bit offsets, the
    message JSON, then the buffers.
    """
    frame = bytes(frame)
    length = len(frame)
    if length > MAX_MESSAGE_BYTES:
        raise FrameError(f"frame of {length} bytes: at most {MAX_MESSAGE_BYTES} are allowed")
    if length < 4:
        raise FrameError(f"binary frame of {length} bytes is shorter than its buffer count")
    count = struct.unpack_from("!i", frame)[0]
    if not 1 <= count <= MAX_BUFFERS:
        raise FrameError(f"binary frame claims {count} buffers: 1 to {MAX_BUFFERS} are allowed")
    table = 4 * (count + 1)
    if table > length:
        raise FrameError(f"binary frame claims {count} buffers but has only {length} bytes")
    offsets = list(struct.unpack_from(f"!{count}I", frame, 4))
    _check_offsets(offsets, table, length, "binary")
    end = offsets[1] if count > 1 else length
    _check_message(_json_object(frame[offsets[0]:end], "binary frame's message"))


def _check_message(msg: dict) -> None:
    _check_header(msg.get("header"))
    if not isinstance(msg.get("parent_header", {}), dict):
        raise FrameError("parent_header is not a JSON object")
    channel = msg.get("channel")
    if channel is not None and channel not in CHANNELS:
        raise FrameError(f"unknown channel {str(channel)[:20]!r}")


def check_text_frame(frame: str | bytes) -> None:
    """Raise :class:`FrameError` unless ``frame`` is a readable JSON (legacy text) message."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise FrameError(f"frame of {len(frame)} bytes: at most {MAX_MESSAGE_BYTES} are allowed")
    _check_message(_json_object(frame, "text frame"))


def frame_problem(frame: str | bytes, subprotocol: str | None) -> str | None:
    """What makes a client's kernel websocket frame unreadable, or None when it is fine.

    ``subprotocol`` is the one the server selected for the socket (``V1_PROTOCOL`` or None
    for the legacy protocol, where binary frames have a 32-bit buffer table and text frames
    are JSON).

    >>> frame_problem("[1]", None)
    'text frame is not a JSON object'
    >>> frame_problem("x", V1_PROTOCOL)
    'v1 protocol takes binary frames only'
    """
    try:
        if subprotocol == V1_PROTOCOL:
            if isinstance(frame, str):
                raise FrameError("v1 protocol takes binary frames only")
            check_v1_frame(frame)
        elif isinstance(frame, str):
            check_text_frame(frame)
        else:
            check_legacy_binary_frame(frame)
    except FrameError as error:
        return str(error)
    return None


def outgoing_v1_header(frame: bytes) -> dict | None:
    """The header of a v1 frame the kernel sends, or None when it is no readable v1 frame.

    Voilà reads it to drop ``execute_input`` messages; on a legacy socket the frames are
    not v1 at all, and read as v1 they claim ~10**17 offsets.

    >>> outgoing_v1_header(v1_frame("iopub", {"msg_type": "status"}))
    {'msg_type': 'status'}
    >>> outgoing_v1_header((2).to_bytes(4, "big") + (12).to_bytes(4, "big") + bytes(64)) is None
    True
    """
    try:
        _channel, parts = split_v1_frame(frame)
        header = json.loads(parts[0])
    except (FrameError, ValueError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def v1_frame(channel: str, header: dict, parent_header: dict | None = None,
             metadata: dict | None = None, content: dict | None = None,
             buffers: list[bytes] = ()) -> bytes:
    """A v1 kernel websocket frame (as JupyterLab's client serialises one)."""
    parts = [channel.encode(), *(json.dumps(p if p is not None else {}).encode() for p in
                                 (header, parent_header, metadata, content)), *buffers]
    count = len(parts) + 1
    offsets = [8 * (count + 1)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"<{count + 1}Q", count, *offsets) + b"".join(parts)


# ---------------------------------------------------------------- secrets in log lines

_TOKEN_IN_URL = re.compile(r"((?:^|[?&;\s\"'])(?:token|_xsrf)=)[^&\s\"';]+", re.IGNORECASE)
_TOKEN_IN_HEADER = re.compile(r"((?:authorization|token)['\"]?\s*[:=]\s*['\"]?(?:token\s+)?)"
                              r"[A-Za-z0-9_\-.~+/=]{8,}", re.IGNORECASE)


def redact(text: str, secrets=()) -> str:
    """``text`` with every secret, ``token=...`` query value and token header hidden.

    >>> redact("http://127.0.0.1:8866/?token=s3cret", [])
    'http://127.0.0.1:8866/?token=[redacted]'
    >>> redact("key s3cretvalue in a message", ["s3cretvalue"])
    'key [redacted] in a message'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _TOKEN_IN_URL.sub(r"\1[redacted]", text)
    return _TOKEN_IN_HEADER.sub(r"\1[redacted]", text)


def install_log_redaction(secrets=()) -> None:
    """Hide ``secrets`` and any ``token=...`` in every log record of this process."""
    secrets = [s for s in secrets if s]
    previous = logging.getLogRecordFactory()
    if getattr(previous, "radipop_redacting", False):
        previous = previous.radipop_previous

    def make_record(*args, **kwargs):
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a bad format string: the handler reports it)
            return record
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), secrets)
        return record

    make_record.radipop_redacting = True
    make_record.radipop_previous = previous
    logging.setLogRecordFactory(make_record)
