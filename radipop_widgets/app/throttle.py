"""Coalescing a flood of browser events: at most one piece of work per interval.

A browser sends a mouse move per pixel (a hostile client: thousands a second); drawing
the brush cursor or the stroke preview for each would keep the kernel busy long after
the mouse stopped. A :class:`Throttle` runs its work at once when the last run ended at
least ``interval`` seconds ago, and otherwise once at the end of the interval (the latest
state then, however many requests came in between).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

INTERVAL = 0.02   # s: 50 renders a second at most


class Throttle:
    """Run ``work()`` on :meth:`request`, at most every ``interval`` seconds.

    A request within the interval after the previous run (counted from its end, so slow
    work is never queued up) schedules one deferred run; later requests join it. The
    deferred run happens on a timer thread; ``lock`` is held around it.
    """

    def __init__(self, work: Callable[[], None], lock, interval: float = INTERVAL):
        self._work = work
        self._lock = lock
        self.interval = float(interval)
        self._last = -float("inf")      # monotonic time the last run ended
        self._pending = None            # the scheduled run (a Timer)
        self.runs = 0

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def request(self) -> None:
        with self._lock:
            if self._pending is not None:
                return
            wait = self._last + self.interval - time.monotonic()
            if wait <= 0:
                self._run()
            else:
                self._pending = self._schedule(wait)

    def flush(self) -> None:
        """Run the pending work now (if any)."""
        with self._lock:
            if self._pending is not None:
                self.cancel()
                self._run()

    def cancel(self) -> None:
        """Forget the pending work."""
        with self._lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                pending.cancel()

    def _run(self) -> None:
        try:
            self._work()
        finally:
            self.runs += 1
            self._last = time.monotonic()

    def _deferred(self, handle_holder) -> None:
        with self._lock:
            if self._pending is None or self._pending is not handle_holder[0]:
                return                  # cancelled (or replaced) meanwhile
            self._pending = None
            self._run()

    def _schedule(self, wait: float):
        # a timer thread, like the background jobs (the lock keeps the widgets to one
        # thread at a time); not the thread's asyncio loop: in a process that also drives
        # Playwright's sync API that loop is Playwright's and runs only when it is driven
        holder = [None]
        timer = threading.Timer(wait, self._deferred, (holder,))
        timer.daemon = True
        holder[0] = timer
        timer.start()
        return timer
