"""Rate limits (rolling burst window, daily token budget) and deterministic fault injection."""

from __future__ import annotations

import math
import random
import re
from collections import deque
from dataclasses import dataclass, field

CLOUDFLARE_HTML = """<!DOCTYPE html>
<html lang="en-US"><head><title>Attention Required! | Cloudflare</title></head>
<body><div id="cf-wrapper"><div id="cf-error-details">
<h1 data-translate="block_headline">Sorry, you have been blocked</h1>
<h2>You are unable to access pipedrive.com</h2>
<p>This website is using a security service to protect itself from online attacks.
This error is produced by Cloudflare.</p>
<p>Cloudflare Ray ID: <strong>8f00000000000000</strong></p>
</div></div></body></html>
"""

FAULT_KINDS = frozenset({400, 402, 403, 404, 410, 429, 500, 502, 503, 504, "timeout", "reset",
                         "cut", "truncated_json", "non_json", "html403"})


@dataclass
class Fault:
    """A fault to inject into matching requests.

    ``path_pattern`` is a regex searched in the request path; None matches every API request
    (but not the OAuth token endpoint, which a fault reaches only through an explicit pattern).
    ``times`` limits it to the first N matches (after skipping ``after``); ``rate`` makes each
    match fail with that probability, drawn from the server's seeded RNG. With neither, every
    match fails. ``delay`` is the sleep of "timeout"; ``reset`` the x-ratelimit-reset of 429.
    """

    kind: int | str
    path_pattern: str | None = None
    rate: float | None = None
    times: int | None = None
    after: int = 0
    delay: float = 3.0
    reset: int = 1
    matched: int = field(default=0, init=False)
    served: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.kind, str) and self.kind.isdigit():
            self.kind = int(self.kind)
        if self.kind not in FAULT_KINDS:
            msg = f"unknown fault kind {self.kind!r}; use one of {sorted(map(str, FAULT_KINDS))}"
            raise ValueError(msg)


class Faults:
    """The active faults; picks at most one per request, in the order they were added."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"{seed}:faults")
        self.faults: list[Fault] = []
        self.served = 0

    def pick(self, path: str, *, oauth: bool = False) -> Fault | None:
        for f in self.faults:
            if f.path_pattern is None:
                if oauth:
                    continue
            elif not re.search(f.path_pattern, path):
                continue
            f.matched += 1
            if f.matched <= f.after or (f.times is not None and f.served >= f.times):
                continue
            if f.rate is not None and self.rng.random() >= f.rate:
                continue
            f.served += 1
            self.served += 1
            return f
        return None


@dataclass
class Verdict:
    """What the rate limiter says about one request: "ok", "429" or "blocked"."""

    outcome: str
    headers: dict[str, str]


class RateLimiter:
    """Per-credential rolling window plus the penalty bookkeeping for any 429 it or a fault sent.

    A request that arrives before the x-ratelimit-reset announced by a 429 is "early": it is
    counted, answered 429 again, and after ``cloudflare_after`` of them the credential gets the
    Cloudflare 403 page for good (as Pipedrive does to clients that ignore 429s).
    """

    def __init__(self, limit: int | None, window: float = 2.0, cloudflare_after: int = 5) -> None:
        self.limit = limit
        self.window = window
        self.cloudflare_after = cloudflare_after
        self.reset_state()

    def reset_state(self) -> None:
        self.hits: dict[str, deque[float]] = {}
        self.penalty_until: dict[str, float] = {}
        self.early_in_penalty: dict[str, int] = {}
        self.blocked: set[str] = set()
        self.count_429 = 0
        self.early_requests = 0

    def _headers(self, remaining: int, reset: int) -> dict[str, str]:
        if self.limit is None:
            return {}
        return {"x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-reset": str(reset)}

    def penalize(self, key: str, now: float, reset: int) -> None:
        """Remember a 429 with x-ratelimit-reset ``reset`` (also used by injected 429s)."""
        self.penalty_until[key] = now + reset
        self.early_in_penalty[key] = 0
        self.count_429 += 1

    def check(self, key: str, now: float) -> Verdict:
        if key in self.blocked:
            return Verdict("blocked", {})
        until = self.penalty_until.get(key)
        if until is not None and now < until:
            self.early_requests += 1
            self.early_in_penalty[key] += 1
            if self.early_in_penalty[key] > self.cloudflare_after:
                self.blocked.add(key)
                return Verdict("blocked", {})
            self.count_429 += 1
            reset = max(1, math.ceil(until - now))
            # an injected 429 penalises even without a burst limit; announce its reset anyway
            headers = self._headers(0, reset) or {"x-ratelimit-remaining": "0",
                                                  "x-ratelimit-reset": str(reset)}
            return Verdict("429", {**headers, "Retry-After": str(reset)})
        if self.limit is None:
            return Verdict("ok", {})
        q = self.hits.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.limit:
            # seconds until the oldest request leaves the window, rounded up: a client that
            # waits exactly this long is guaranteed a free slot
            reset = max(1, math.ceil(q[0] + self.window - now))
            self.penalize(key, now, reset)
            return Verdict("429", {**self._headers(0, reset), "Retry-After": str(reset)})
        q.append(now)
        reset = max(1, math.ceil(q[0] + self.window - now))
        return Verdict("ok", self._headers(self.limit - len(q), reset))


class DailyBudget:
    """The company's daily token budget (None = unlimited, and then no headers)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def allows(self, cost: int) -> bool:
        return self.limit is None or self.used + cost <= self.limit

    def headers(self) -> dict[str, str]:
        if self.limit is None:
            return {}
        return {"x-daily-ratelimit-token-limit": str(self.limit),
                "x-daily-ratelimit-token-remaining": str(max(0, self.limit - self.used))}
