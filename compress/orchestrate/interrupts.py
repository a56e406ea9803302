"""Ctrl-C that always stops a run at its next step, even when Python swallowed it in a finalizer.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Interrupts:
    """SIGINT raises KeyboardInterrupt and also sets a flag that ``check`` turns into one.

    A KeyboardInterrupt raised inside a finalizer or a weakref callback is
    swallowed by Python ("Exception ignored in ..."); the flag makes sure the
    run still stops at its next step instead of finishing with exit 0.
    """

    def __init__(self) -> None:
        self.requested = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handler)
        unraisable = sys.unraisablehook

        def quiet(event: Any) -> None:  # the flag already carries a swallowed Ctrl-C
            if not isinstance(event.exc_value, KeyboardInterrupt):
                unraisable(event)

        sys.unraisablehook = quiet
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = unraisable
