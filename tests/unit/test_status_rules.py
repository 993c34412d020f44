"""Every row of the status table (``tap_pipedrive/http/status.py``): an answer → an action → a message."""

from __future__ import annotations

import json

import pytest
import requests

from tap_pipedrive.http.status import RULES, Action, classify

WHAT = "GET /api/v2/deals"
CLOUDFLARE = b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head></html>"


def answer(
    status: int, body: object = None, headers: dict | None = None, reason: str = ""
) -> requests.Response:
    """A response as requests builds it from the wire."""
    response = requests.Response()  # filled in as requests' adapter does (it sets _content)
    response.status_code = status
    response.reason = reason
    response.headers.update(headers or {})
    if isinstance(body, bytes):
        response._content = body  # noqa: SLF001
    else:
        response._content = json.dumps(body if body is not None else {}).encode()  # noqa: SLF001
        response.headers.setdefault("Content-Type", "application/json")
    return response


def error(message: str, info: str = "Please check developers.pipedrive.com") -> dict:
    return {"success": False, "error": message, "error_info": info, "data": None}


# (case id, the answer, the action, the rule it must match (index in RULES), text the message has)
CASES = [
    ("200", answer(200, {"success": True, "data": []}), Action.READ, 0, ""),
    (
        "302 redirect",
        answer(302, b"", {"Location": "https://elsewhere.example.com/login"}),
        Action.FAIL,
        1,
        "GET /api/v2/deals: Pipedrive redirected to elsewhere.example.com; not following it with credentials",
    ),
    (
        "401 token",
        answer(401, {"success": False, "error": "unauthorized access", "errorCode": 401}),
        Action.REFRESH,
        2,
        "Pipedrive rejected the API token (401)",
    ),
    (
        "429 daily by header",
        answer(429, error("Request over limit"), {"x-daily-ratelimit-token-remaining": "0"}),
        Action.STOP,
        3,
        "daily API token budget for this company is spent (Request over limit)",
    ),
    (
        "429 daily by text",
        answer(429, error("Daily API token budget exceeded")),
        Action.STOP,
        3,
        "resets at midnight, Pipedrive server time",
    ),
    (
        "429 burst",
        answer(429, error("Request over limit"), {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}),
        Action.WAIT,
        4,
        "GET /api/v2/deals: Pipedrive's burst limit reached (429)",
    ),
    (
        "403 Cloudflare page",
        answer(403, CLOUDFLARE, {"Content-Type": "text/html; charset=UTF-8"}),
        Action.BLOCKED,
        5,
        "Pipedrive's firewall (Cloudflare) is blocking this integration (403)",
    ),
    (
        "503",
        answer(503, error("maintenance"), reason="Service Unavailable"),
        Action.RETRY,
        6,
        "503 Service Unavailable",
    ),
    ("500 no reason", answer(500, b"oops"), Action.RETRY, 6, "500 Server Error"),
    (
        "402 plan",
        answer(402, error("Company account is not open")),
        Action.SKIP,
        7,
        "GET /api/v2/deals answered 402: Company account is not open",
    ),
    (
        "403 permission",
        answer(403, error("You do not have permissions to do this.")),
        Action.SKIP,
        7,
        "answered 403: You do not have permissions to do this.",
    ),
    (
        "404 with error_info",
        answer(404, error("Entity was not found", "Object was not found.")),
        Action.SKIP,
        7,
        "answered 404: Entity was not found (Object was not found.)",
    ),
    (
        "410",
        answer(410, error("The field is not found")),
        Action.SKIP,
        7,
        "answered 410: The field is not found",
    ),
    (
        "400",
        answer(400, error("Validation failed: limit: Number must be less than or equal to 500")),
        Action.FAIL,
        8,
        (
            "GET /api/v2/deals was rejected (400: Validation failed: limit: Number must be less than or "
            "equal to 500)"
        ),
    ),
    (
        "422 HTML body",
        answer(422, b"<html>nope</html>", reason="Unprocessable"),
        Action.FAIL,
        8,
        "(422: Unprocessable)",
    ),
]


@pytest.mark.parametrize(
    ("response", "action", "rule", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_answer_gets_its_rows_action_and_message(response, action, rule, text):
    verdict = classify(response, WHAT)
    assert RULES[rule].action is action
    assert verdict.action is action
    assert text in verdict.message
    assert "<" not in verdict.message  # never a page of HTML


def test_every_row_of_the_table_has_a_case():
    assert {c[3] for c in CASES} == set(range(len(RULES)))


def test_an_answer_no_row_covers_fails_with_its_status():
    verdict = classify(answer(600, b"", reason="Odd"), WHAT)
    assert verdict.action is Action.FAIL
    assert verdict.message == "GET /api/v2/deals answered 600: Odd"
