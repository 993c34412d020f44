"""A wrong config gets one clear line naming the field, exit 1, no traceback, no secret."""

from __future__ import annotations

import pytest

from tap_pipedrive.settings import normalize_domain
from tests.helpers import (
    CANARY_API_TOKEN,
    CANARY_CLIENT_ID,
    CANARY_CLIENT_SECRET,
    CANARY_REFRESH_TOKEN,
    run_tap,
)

BASIC = {"company_domain": "acme", "api_token": CANARY_API_TOKEN}
OAUTH = {
    "company_domain": "acme",
    "auth_scheme": "OAuth",
    "client_id": CANARY_CLIENT_ID,
    "client_secret": CANARY_CLIENT_SECRET,
    "refresh_token": CANARY_REFRESH_TOKEN,
}


def _without(config: dict, key: str) -> dict:
    return {k: v for k, v in config.items() if k != key}


CASES = [
    pytest.param(
        _without(BASIC, "api_token"), "'api_token' is required when auth_scheme is Basic", id="basic-no-token"
    ),
    pytest.param(_without(BASIC, "company_domain"), "'company_domain' is required", id="no-domain"),
    pytest.param(
        _without(OAUTH, "client_id"),
        "'client_id' is required when auth_scheme is OAuth",
        id="oauth-no-client-id",
    ),
    pytest.param(
        _without(OAUTH, "client_secret"),
        "'client_secret' is required when auth_scheme is OAuth",
        id="oauth-no-secret",
    ),
    pytest.param(
        _without(OAUTH, "refresh_token"),
        "'refresh_token' is required when auth_scheme is OAuth",
        id="oauth-no-refresh",
    ),
    pytest.param(
        {**BASIC, "auth_scheme": "oauth2"}, "'auth_scheme' must be one of Basic, OAuth", id="wrong-scheme"
    ),
    pytest.param(
        {**BASIC, "company_domain": "evil.com/x"},
        "'company_domain' must be your Pipedrive subdomain",
        id="domain-path",
    ),
    pytest.param(
        {**BASIC, "company_domain": "a b"},
        "'company_domain' must be your Pipedrive subdomain",
        id="domain-space",
    ),
    pytest.param(
        {**BASIC, "company_domain": "acme.pipedrive.com.evil.com"},
        "'company_domain' must be your Pipedrive subdomain",
        id="domain-suffix-injection",
    ),
    pytest.param(
        {**BASIC, "api_url": "http://proxy.example.com"},
        "'api_url' must use https unless the host is loopback",
        id="http-api-url",
    ),
    pytest.param(
        {**OAUTH, "oauth_token_url": "http://oauth.example.com/token"},
        "'oauth_token_url' must use https unless the host is loopback",
        id="http-token-url",
    ),
    pytest.param({**BASIC, "api_token": 12345678}, "'api_token' must be a string", id="token-not-string"),
    pytest.param(
        {**BASIC, "start_date": "last tuesday"},
        "'start_date' must be an ISO 8601 date-time",
        id="bad-start-date",
    ),
]


@pytest.mark.parametrize(("config", "message"), CASES)
@pytest.mark.parametrize("mode", ["sync", "test", "discover"])
def test_bad_config_names_the_field_and_exits_1(tmp_path, config, message, mode):
    args = {"sync": (), "test": ("--test",), "discover": ("--discover",)}[mode]
    run = run_tap(*args, config=config, tmp_path=tmp_path, timeout=60)
    assert run.returncode == 1
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert "12345678" not in run.stderr  # a wrong-typed secret is not echoed either
    if mode == "test":
        assert run.stdout == "Connection unavailable\n"
    else:
        assert run.stdout == ""  # no Singer message, no half catalog


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("acme", "acme"),
        ("ACME", "acme"),
        ("acme.pipedrive.com", "acme"),
        ("https://acme.pipedrive.com/", "acme"),
        ("my-company-2", "my-company-2"),
        ("evil.com/x", None),
        ("a b", None),
        ("acme.pipedrive.com.evil.com", None),
        ("acme.evil.com", None),
        ("-acme", None),
        ("https://acme.pipedrive.com/api/v1", None),
        ("acme@evil.com", None),
    ],
)
def test_company_domain_forms(given, expected):
    assert normalize_domain(given) == expected
