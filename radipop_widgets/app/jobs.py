"""The job runner: long operations (loading, extend, export) in a worker thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import ipywidgets as widgets

from ..errors import RadipopError
from .messages import MessagePanel
from .ui import to_number

#: The class of the page's root while a job runs, and of the controls :meth:`JobRunner.hold`
#: holds: those are greyed and take no clicks then (:data:`HELD_CSS`). One message to the
#: page; disabling each control sent one per control (38), and the page answered a slice
#: key during an extend only after them (115 ms instead of 35).
BUSY_CLASS = "radipop-busy"
HELD_CLASS = "radipop-held"
HELD_CSS = (f".{BUSY_CLASS} .{HELD_CLASS}, .{BUSY_CLASS} .{HELD_CLASS} * "
            "{ pointer-events: none !important; cursor: progress; } "
            f".{BUSY_CLASS} .{HELD_CLASS} {{ opacity: 0.5; }}")


class JobRunner:
    """Runs one long operation at a time, with a progress bar.

    While a job runs the page stays responsive (slices and windows can be browsed);
    the controls registered with :meth:`hold` are greyed and take no clicks (``root``, the
    page's widget, carries :data:`BUSY_CLASS`), and edits are refused until it ends (a
    key that reaches a held control meets the same refusal). ``lock`` is held by every
    widget callback and by the worker while it applies its result, so the session, the
    viewer and ipycanvas' command stream see one thread at a time.
    """

    def __init__(self, messages: MessagePanel, background: bool = True):
        self.messages = messages
        self.background = bool(background)
        self.lock = threading.RLock()
        self.progress = widgets.FloatProgress(
            value=0, min=0, max=1, description="",
            layout=widgets.Layout(width="160px", visibility="hidden"))
        self.progress.add_class("radipop-progress")
        self.root: widgets.DOMWidget | None = None   # the page's widget (the App sets it)
        self._on_idle: list[Callable[[], None]] = []
        self._job: tuple[str, Future] | None = None   # (description, future) while running
        self._last: Future | None = None

    def hold(self, *controls: widgets.DOMWidget) -> None:
        """Grey ``controls`` and let them take no clicks while a job runs."""
        for control in controls:
            control.add_class(HELD_CLASS)

    def on_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after each job, once the held controls are released (to show
        again what a refused key changed, or what the job changed)."""
        self._on_idle.append(callback)

    @property
    def busy(self) -> str | None:
        """What the running job does ("Loading", ...), or None."""
        job = self._job               # read once: the worker clears it when it ends
        return job[0] if job else None

    def check_idle(self) -> None:
        """Raise if a job is running (edits wait until it ends)."""
        busy = self.busy
        if busy is not None:
            raise RadipopError(f"{busy} is still running: wait until it ends.")

    def run(self, description: str, work, done, action: str, failed=None) -> Future:
        """Run ``work(progress)`` as a job, then ``done(result)`` under the lock.

        ``description`` labels the progress bar ("Loading"); ``action`` names the job
        in an error message ("Opening the study failed: ..."). ``progress(done, total)``
        moves the bar. Errors go to the message panel, then to ``failed(error)`` (under
        the lock) when given. Returns a Future.
        """
        self.check_idle()
        future = Future()
        self._job, self._last = (description, future), future
        if self.root is not None:
            self.root.add_class(BUSY_CLASS)
        progress = self._start_progress(description)

        def target():
            result = error = None
            try:
                result = work(progress)
                with self.lock:
                    done(result)
            except Exception as exc:  # noqa: BLE001 - the user must see every failure
                error = exc
                self.messages.report(exc, action)
                if failed is not None:
                    with self.lock:
                        failed(exc)
            finally:
                with self.lock:
                    self._job = None
                    self._release()
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        if self.background:
            threading.Thread(target=target, name=f"radipop {description}", daemon=True).start()
        else:
            target()
        return future

    def _release(self) -> None:
        """Release the held controls and run the idle callbacks, each on its own: a step
        or callback that fails (the page went, its widgets closed) must not keep the others
        from running."""
        steps = [lambda: setattr(self.progress.layout, "visibility", "hidden")]
        if self.root is not None:
            steps.append(lambda: self.root.remove_class(BUSY_CLASS))
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001, S110 - a closed widget: nothing to show
                pass
        for callback in self._on_idle:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - reported, the next callback still runs
                self.messages.report(exc, "Updating the controls")

    def wait(self, timeout: float | None = 60.0):
        """Wait for the last job to end; return its result or raise its error."""
        return self._last.result(timeout) if self._last else None

    def _start_progress(self, description: str):
        bar = self.progress
        bar.description = description
        bar.value = 0
        bar.layout.visibility = "visible"

        def progress(done, total=1):
            done, total = to_number(done), to_number(total)
            if done is not None and total:
                bar.value = min(max(done / total, 0.0), 1.0)
        return progress
