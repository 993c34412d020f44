"""Pipedrive's two limits, shared by every stream of a run (and safe across threads).

* The burst window: N requests per rolling 2 seconds per token, announced in the
  ``x-ratelimit-limit`` / ``-remaining`` / ``-reset`` headers. :class:`RateLimiter` paces
  requests so that a normal run never receives a 429, and after a 429 holds every request
  back until the announced reset (Pipedrive blocks integrations that keep calling).
* The daily token budget: every operation costs its ``x-token-cost``. :class:`TokenBudget`
  counts what the run spends and stops it before ``max_tokens_per_run`` would be exceeded.
"""

from __future__ import annotations

import threading
import time
import typing as t
from collections import deque
from dataclasses import dataclass, field

from tap_pipedrive.errors import BudgetExhaustedError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

WINDOW_SECONDS = 2.0


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, TypeError, ValueError):
        return None


class RateLimiter:
    """Paces requests to the burst window that Pipedrive's headers describe."""

    def __init__(
        self,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Start with an unknown limit: one request at a time until the first answer."""
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Condition()
        self._limit: int | None = None
        # When each recent request was answered: a request we send after (answer + window)
        # reaches Pipedrive after the earlier one left its window, whatever the latency.
        self._answered: deque[float] = deque()
        self._in_flight = 0
        self._blocked_until = 0.0
        #: requests being held back now, and since when at least one has been
        self._holding = 0
        self._holding_since = 0.0
        #: wall time during which at least one request was held back (not a sum over threads)
        self.waited_seconds = 0.0

    @property
    def limit(self) -> int | None:
        """The burst limit Pipedrive announced, once known."""
        return self._limit

    def _capacity(self) -> int:
        # Leave one slot free for the customer's other integrations on the same token.
        return max(1, (self._limit or 1) - 1)

    def acquire(self) -> float:
        """Wait until a request may go out; return how long this call waited."""
        waited = 0.0
        with self._lock:
            try:
                while True:
                    now = self._clock()
                    wait = self._wait_needed(now)
                    if wait <= 0:
                        self._in_flight += 1
                        return waited
                    if not waited:
                        self._start_holding(now)
                    self._lock.release()
                    try:
                        self._sleep(wait)
                    finally:
                        self._lock.acquire()
                    waited += wait
            finally:  # sent, or stopped while waiting: either way no longer held back
                if waited:
                    self._stop_holding(self._clock())

    def _wait_needed(self, now: float) -> float:
        """How long a request must wait from ``now`` (0 or less: it may go)."""
        while self._answered and self._answered[0] <= now - self._window:
            self._answered.popleft()
        wait = self._blocked_until - now
        if self._limit is None:
            # Until Pipedrive has told us the limit: one request at a time.
            if self._in_flight:
                wait = max(wait, 0.05)
        elif len(self._answered) + self._in_flight >= self._capacity():
            # the oldest answer leaving the window frees a slot; only in-flight ones: wait for one
            wait = max(wait, self._answered[0] + self._window - now if self._answered else 0.05)
        return wait

    def _start_holding(self, now: float) -> None:
        self._holding += 1
        if self._holding == 1:
            self._holding_since = now

    def _stop_holding(self, now: float) -> None:
        self._holding -= 1
        if self._holding == 0:
            self.waited_seconds += now - self._holding_since

    def release(self, headers: Mapping[str, str] | None) -> None:
        """Record an answer (or a failed attempt) and learn from its rate-limit headers."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            now = self._clock()
            self._answered.append(now)
            if headers:
                limit = _header_number(headers, "x-ratelimit-limit")
                if limit and limit >= 1:
                    self._limit = int(limit)
                remaining = _header_number(headers, "x-ratelimit-remaining")
                reset = _header_number(headers, "x-ratelimit-reset")
                if remaining is not None and remaining < 1 and reset:
                    # Other clients on this token used the window up: wait for the reset.
                    self._blocked_until = max(self._blocked_until, now + reset)
            self._lock.notify_all()

    def block_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (after a 429)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + max(seconds, 0.0))


@dataclass
class TokenBudget:
    """Counts the tokens a run spends and enforces ``max_tokens_per_run``."""

    max_tokens: int | None = None
    spent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    #: within this many tokens of ``max_tokens``, nothing is read ahead (see ``nearly_spent``)
    RESERVE: t.ClassVar[int] = 500

    def nearly_spent(self) -> bool:
        """Whether the run is within :attr:`RESERVE` tokens of ``max_tokens_per_run``.

        From there on requests go one at a time, in the order the streams write them, so the
        budget buys what is written next and the run stops exactly where a serial run would.
        """
        return self.max_tokens is not None and self.max_tokens - self.spent < self.RESERVE

    def charge(self, cost: int, what: str) -> None:
        """Reserve ``cost`` tokens for a request, or stop the run if that would overspend."""
        with self._lock:
            if self.max_tokens is not None and self.spent + cost > self.max_tokens:
                msg = (
                    f"stopping: max_tokens_per_run ({self.max_tokens}) reached after "
                    f"{self.spent} tokens; {what} would cost {cost} more. The next run "
                    "resumes where this one stopped"
                )
                raise BudgetExhaustedError(msg)
            self.spent += cost
