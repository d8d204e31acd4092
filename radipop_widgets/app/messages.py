"""The message panel: what the user is told, and what goes to the log."""

from __future__ import annotations

import functools
import html
import logging
import threading
import time
import traceback

import ipywidgets as widgets

from ..errors import RadipopError

log = logging.getLogger("radipop_widgets.app")

_COLOURS = {"info": "#1b5e20", "warning": "#8a5a00", "error": "#b00020"}
MAX_MESSAGES = 40


class MessagePanel:
    """Newest-first list of messages in an ``Output`` widget.

    Messages may name files and studies: they are shown, never logged. The log
    gets the action, the exception type and the code location only.
    """

    def __init__(self):
        self.messages: list[tuple[str, str]] = []
        self._stamps: list[str] = []
        self._lock = threading.Lock()      # the worker thread of long operations writes too
        self.output = widgets.Output(layout=widgets.Layout(
            height="92px", overflow="auto", border="1px solid #ccc", padding="0 4px"))

    def info(self, text: str) -> None:
        self._add("info", text)

    def warning(self, text: str) -> None:
        self._add("warning", text)

    def error(self, text: str) -> None:
        self._add("error", text)

    def report(self, exc: BaseException, action: str) -> None:
        """Tell the user that ``action`` failed and why; log it without patient data."""
        if isinstance(exc, RadipopError):
            self.error(f"{action} failed: {exc}")
        else:
            self.error(f"{action} failed unexpectedly ({type(exc).__name__}: {exc}). "
                       "The details are in the server log.")
        where = "".join(traceback.format_tb(exc.__traceback__))
        log.error("%s failed with %s\n%s", action, type(exc).__name__, where)

    def _add(self, level: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            self.messages.insert(0, (level, text))
            self._stamps.insert(0, time.strftime("%H:%M:%S"))
            del self.messages[MAX_MESSAGES:], self._stamps[MAX_MESSAGES:]
            rows = "".join(
                f'<div style="color:{_COLOURS[lvl]};font-size:12px;line-height:1.35">'
                f'<span style="color:#888">{stamp}</span> {html.escape(msg)}</div>'
                for stamp, (lvl, msg) in zip(self._stamps, self.messages))
            self.output.outputs = ({"output_type": "display_data",
                                    "data": {"text/html": rows,
                                             "text/plain": self.messages[0][1]},
                                    "metadata": {}},)


def sentence(text: str) -> str:
    """An engine message ("undid extend") as a sentence for the panel."""
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""


def guarded(panel: MessagePanel, action: str):
    """Decorator for widget callbacks: an exception becomes a message, never a dead UI."""
    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure must reach the user
                panel.report(exc, action)
        return wrapper
    return decorate
