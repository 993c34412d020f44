"""Stopping on SIGTERM/SIGINT without losing or repeating a record.

A signal can arrive at any moment: between a record being written and the bookmark taking
it in, or in the middle of writing a message. So the handler never stops the run there. It
stops the run at once only while the main thread waits on Pipedrive (a request, a backoff, a
burst-limit wait), where nothing is half-written; otherwise it notes the signal, and the run
stops at the next checkpoint (after the next record is written and recorded, or before the
next request).
"""

from __future__ import annotations

import contextlib
import threading
import time
import typing as t

from tap_pipedrive.errors import StoppedBySignalError

if t.TYPE_CHECKING:
    from collections.abc import Iterator


class StopSignal:
    """The run's stop flag, shared by the client (waits) and the streams (checkpoints)."""

    def __init__(self) -> None:
        """No stop requested yet."""
        self._signum: int | None = None
        self._interruptible = 0  # nesting depth, main thread only
        self._shielded = 0
        self._woken = threading.Event()

    @property
    def requested(self) -> int | None:
        """The signal that asked the run to stop, if any."""
        return self._signum

    def request(self, signum: int) -> None:
        """Called from the signal handler: stop now if that is safe, else at the next checkpoint."""
        self._signum = signum
        self._woken.set()
        if self._interruptible and not self._shielded:
            raise StoppedBySignalError(signum)

    def checkpoint(self) -> None:
        """Stop here if a stop was requested (call where STATE covers everything written)."""
        if self._signum is not None and not self._shielded:
            raise StoppedBySignalError(self._signum)

    def checkpoint_in_worker(self) -> None:
        """A background thread stops before its next request once a stop is requested."""
        if self._signum is not None and threading.current_thread() is not threading.main_thread():
            raise StoppedBySignalError(self._signum)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A wait on Pipedrive: a signal stops the run at once (nothing is half-written here)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self.checkpoint()
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Work that must finish once begun (saving a rotated refresh token): no stop inside."""
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up (and stop) as soon as a stop is requested."""
        if self._shielded:
            time.sleep(max(seconds, 0.0))
        elif self._woken.wait(timeout=max(seconds, 0.0)):
            self.checkpoint()
