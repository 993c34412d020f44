"""The rate limiter and the token budget are shared by every stream and thread of a run."""

from __future__ import annotations

import threading
import time

import pytest

from tap_pipedrive.errors import BudgetExhaustedError
from tap_pipedrive.http.limits import RateLimiter, TokenBudget

WINDOW = 0.25


def _hammer(limiter: RateLimiter, limit: int, threads: int, per_thread: int) -> list[float]:
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(per_thread):
            limiter.acquire()
            with lock:
                sent.append(time.monotonic())
            limiter.release({"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(limit)})

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    return sorted(sent)


def test_threads_sharing_one_limiter_never_exceed_the_window():
    limit = 6
    limiter = RateLimiter(window=WINDOW)
    sent = _hammer(limiter, limit, threads=4, per_thread=8)
    assert len(sent) == 32
    # In any window, at most limit - 1 requests (one slot is left to other integrations).
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + WINDOW]
        assert len(in_window) <= limit - 1, f"{len(in_window)} requests within one window"


def test_a_429_holds_back_every_thread_until_the_reset():
    limiter = RateLimiter(window=WINDOW)
    limiter.release({"x-ratelimit-limit": "100"})
    blocked_at = time.monotonic()
    limiter.block_for(0.3)
    sent = _hammer(limiter, 100, threads=3, per_thread=2)
    assert min(sent) >= blocked_at + 0.3


def test_waited_seconds_is_the_wall_time_requests_were_held_back_not_a_sum_over_threads():
    limiter = RateLimiter(window=WINDOW)
    limiter.release({"x-ratelimit-limit": "100"})
    limiter.block_for(0.3)
    started = time.monotonic()
    _hammer(limiter, 100, threads=6, per_thread=1)  # six threads held back together, 0.3 s
    elapsed = time.monotonic() - started
    assert 0.29 <= limiter.waited_seconds <= elapsed + 0.01  # a sum over threads would be ~1.8 s


def test_remaining_zero_from_other_clients_waits_for_the_reset():
    limiter = RateLimiter(window=WINDOW)
    limiter.acquire()
    limiter.release({"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "0.3"})
    started = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - started >= 0.29


def test_budget_stops_before_overspending_across_threads():
    budget = TokenBudget(max_tokens=100)
    spent_ok = []
    errors = []

    def worker() -> None:
        for _ in range(10):
            try:
                budget.charge(10, "GET /api/v2/deals")
                spent_ok.append(10)
            except BudgetExhaustedError as exc:  # noqa: PERF203 - each refusal is the point
                errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert sum(spent_ok) == budget.spent == 100
    assert len(errors) == 30
    assert "max_tokens_per_run (100)" in str(errors[0])


@pytest.mark.parametrize("headers", [None, {}, {"x-ratelimit-limit": "junk"}])
def test_missing_or_odd_headers_keep_one_request_at_a_time(headers):
    limiter = RateLimiter(window=WINDOW)
    limiter.acquire()
    limiter.release(headers)
    assert limiter.limit is None
    started = time.monotonic()
    limiter.acquire()  # nothing in flight: goes at once
    assert time.monotonic() - started < 0.05
