"""What each answer from Pipedrive means: HTTP status → action → message, as one table.

The first rule that matches an answer decides. Messages are one line, never carry a secret
or a page of HTML, and say what the user can do. The client (``client.py``) carries out the
action; ``tests/unit/test_status_rules.py`` pins down every row.
"""

from __future__ import annotations

import enum
import typing as t
from dataclasses import dataclass
from urllib.parse import urlparse

from tap_pipedrive.errors import one_line

if t.TYPE_CHECKING:
    from collections.abc import Callable, Container

    import requests

#: Pipedrive's boilerplate ``error_info``, which adds nothing to a message.
_BOILERPLATE_INFO = "Please check developers.pipedrive.com"


class Action(enum.Enum):
    """What the client does with an answer."""

    READ = "read"  # a 2xx: read its JSON body
    RETRY = "retry"  # a transient fault: retry with backoff
    WAIT = "wait"  # the burst limit: hold every request until the reset, then send again
    REFRESH = "refresh"  # a rejected token: refresh it (OAuth) once and send again
    STOP = "stop"  # the daily token budget is spent: stop cleanly, resumable
    SKIP = "skip"  # this endpoint (or this parent) is not available: skip it
    BLOCKED = "blocked"  # Cloudflare is blocking the integration: stop
    FAIL = "fail"  # a request retrying will not fix: stop


def error_text(response: requests.Response) -> str:
    """Pipedrive's own error text, or the HTTP reason; never an HTML page."""
    if looks_like_html(response):
        return response.reason or "error"
    try:
        body = response.json()
    except ValueError:
        return response.reason or "error"
    if isinstance(body, dict):
        text = body.get("error") or body.get("message") or response.reason
        info = body.get("error_info")
        if info and info != _BOILERPLATE_INFO:
            text = f"{text} ({info})"
        return one_line(str(text), 200)
    return response.reason or "error"


def looks_like_html(response: requests.Response) -> bool:
    """Whether the body is an HTML page (Cloudflare, a proxy) rather than Pipedrive's JSON."""
    kind = response.headers.get("Content-Type", "")
    return "html" in kind or response.content[:200].lstrip().startswith(b"<")


def is_daily_budget(response: requests.Response) -> bool:
    """Whether a 429 is the daily token budget (not the 2-second burst window)."""
    if response.headers.get("x-daily-ratelimit-token-remaining") == "0":
        return True
    return "daily" in error_text(response).lower()


def _always(_response: requests.Response) -> bool:
    return True


@dataclass(frozen=True)
class StatusRule:
    """One row: which answers it covers, what to do, and what to tell the user."""

    statuses: Container[int]
    action: Action
    #: ``{what}`` the request, ``{status}``, ``{reason}``, ``{text}`` Pipedrive's error text,
    #: ``{target}`` a redirect's host
    message: str
    applies: Callable[[requests.Response], bool] = _always


RULES: tuple[StatusRule, ...] = (
    StatusRule(range(200, 300), Action.READ, ""),
    StatusRule(
        range(300, 400),
        Action.FAIL,
        "{what}: Pipedrive redirected to {target}; not following it with credentials",
    ),
    StatusRule({401}, Action.REFRESH, "Pipedrive rejected the API token (401)"),
    StatusRule(
        {429},
        Action.STOP,
        "stopping: Pipedrive's daily API token budget for this company is spent ({text}). It "
        "resets at midnight, Pipedrive server time; the next run resumes where this one stopped",
        applies=is_daily_budget,
    ),
    StatusRule({429}, Action.WAIT, "{what}: Pipedrive's burst limit reached (429)"),
    StatusRule(
        {403},
        Action.BLOCKED,
        "Pipedrive's firewall (Cloudflare) is blocking this integration (403). It does so to "
        "clients that keep calling after a 429; wait before the next run",
        applies=looks_like_html,
    ),
    StatusRule(range(500, 600), Action.RETRY, "{status} {reason}"),
    StatusRule({402, 403, 404, 410}, Action.SKIP, "{what} answered {status}: {text}"),
    StatusRule(range(400, 500), Action.FAIL, "{what} was rejected ({status}: {text})"),
)


@dataclass(frozen=True)
class Verdict:
    """The rule an answer matched, and its message for this answer."""

    action: Action
    message: str


def classify(response: requests.Response, what: str) -> Verdict:
    """The first rule of :data:`RULES` that covers ``response`` (``what``: ``GET /api/v2/…``)."""
    status = response.status_code
    for rule in RULES:
        if status in rule.statuses and rule.applies(response):
            return Verdict(rule.action, _render(rule.message, response, what))
    return Verdict(Action.FAIL, _render("{what} answered {status}: {reason}", response, what))


def _render(template: str, response: requests.Response, what: str) -> str:
    if not template:
        return ""
    return template.format(
        what=what,
        status=response.status_code,
        reason=response.reason or ("Server Error" if response.status_code >= 500 else "error"),  # noqa: PLR2004
        text=error_text(response) if "{text}" in template else "",
        target=urlparse(response.headers.get("Location", "")).netloc or "elsewhere",
    )
