"""The connection contract, user side: ``--test`` prints one verdict line on stdout and, when the
connection is unavailable, one reason line on stderr (prefixed with the connection name); exit
code 0 or 1; no Singer message, no traceback, no secret. ``--test=schema`` keeps the SDK's
meaning; ``--discover`` checks the connection first and prints only the catalog on stdout.

Config error cases in detail are in ``test_config.py``; here one of them stands for the kind.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import basic_config, oauth_config
from tests.helpers import (
    CANARIES,
    CANARY_API_TOKEN,
    CANARY_CLIENT_ID,
    CANARY_CLIENT_SECRET,
    CANARY_REFRESH_TOKEN,
    LOOPBACK_ONLY,
    assert_no_secret,
    run_tap,
    track_issued,
)

AVAILABLE = "connection available\n"
UNAVAILABLE = "Connection unavailable\n"
WRONG_API_TOKEN = "wrong-api-token-0c41d7"
WRONG_CLIENT_SECRET = "wrong-client-secret-e93b"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_requests(server) -> list[dict]:
    return [r for r in server.requests if r["path"].startswith(("/api/", "/v1/"))]


def secrets_of(issued: set[str]) -> set[str]:
    return {*CANARIES, WRONG_API_TOKEN, WRONG_CLIENT_SECRET, *issued}


# --- the connection test: the seven cases ---------------------------------------------------------


def _good_basic(server):
    return basic_config(server)


def _bad_token(server):
    return basic_config(server, api_token=WRONG_API_TOKEN)


def _unreachable(server):
    return basic_config(server, api_url=f"http://127.0.0.1:{closed_port()}")


def _invalid(server):
    return {k: v for k, v in basic_config(server).items() if k != "api_token"}


def _good_oauth(server):
    return oauth_config(server)


def _bad_client_secret(server):
    return oauth_config(server, client_secret=WRONG_CLIENT_SECRET)


def _revoked_refresh_token(server):
    server.revoke_refresh_token(CANARY_REFRESH_TOKEN)
    return oauth_config(server)


# (config, exit code, reason substrings, API requests the fake should see, token requests)
CASES = [
    pytest.param(_good_basic, 0, [], [("header", 200)], 0, id="good-basic"),
    pytest.param(
        _bad_token,
        1,
        ["Pipedrive rejected the API token (401)"],
        [("header", 401)],
        0,
        id="bad-token",
    ),
    pytest.param(_unreachable, 1, ["cannot reach 127.0.0.1:"], [], 0, id="unreachable"),
    pytest.param(_invalid, 1, ["'api_token' is required"], [], 0, id="invalid-config"),
    pytest.param(_good_oauth, 0, [], [("bearer", 200)], 1, id="good-oauth"),
    pytest.param(
        _bad_client_secret,
        1,
        ["client credentials", "client_secret"],
        [],
        1,
        id="bad-client-secret",
    ),
    pytest.param(
        _revoked_refresh_token,
        1,
        ["refresh token", "refresh_token"],
        [],
        1,
        id="revoked-refresh-token",
    ),
]


@pytest.mark.parametrize(("make_config", "code", "reasons", "api_seen", "token_requests"), CASES)
def test_connection_test(fake, tmp_path, make_config, code, reasons, api_seen, token_requests):  # noqa: PLR0917 - one parameter per column of CASES
    issued = track_issued(fake)
    config = make_config(fake)
    run = run_tap("--test", config=config, tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=60)

    assert run.returncode == code, run.stderr
    assert run.stdout == (AVAILABLE if code == 0 else UNAVAILABLE)  # one line, no Singer message
    assert run.messages == []
    assert "Traceback" not in run.stderr
    if code == 0:
        assert run.stderr == ""
    else:
        (line,) = run.stderr.splitlines()  # exactly one reason line
        assert line.startswith("demo: "), line  # the connection name defaults to the domain
        for reason in reasons:
            assert reason in line
    # one cheap call: GET /api/v1/users/me, at most one refresh, nothing else
    assert [(r["auth"], r["status"]) for r in api_requests(fake)] == api_seen
    assert all(r["path"] == "/api/v1/users/me" for r in api_requests(fake))
    assert len(fake.oauth_requests) == token_requests
    assert fake.query_token_requests == []
    assert_no_secret(run.stdout, run.stderr, secrets=secrets_of(issued))


@pytest.mark.parametrize(
    ("make_config", "reason"),
    [
        pytest.param(_bad_token, "Pipedrive rejected the API token (401)", id="bad-token"),
        pytest.param(_invalid, "'api_token' is required", id="invalid-config"),
    ],
)
def test_connection_test_reason_is_prefixed_with_the_connection_name(
    fake, tmp_path, make_config, reason
):
    config = {**make_config(fake), "connection_name": "Acme EU prod"}
    run = run_tap("--test", config=config, tmp_path=tmp_path, timeout=60)

    assert run.returncode == 1
    assert run.stdout == UNAVAILABLE
    (line,) = run.stderr.splitlines()
    assert line.startswith("Acme EU prod: ")
    assert reason in line
    assert_no_secret(run.stdout, run.stderr, secrets=secrets_of(set()))


@pytest.mark.parametrize(
    ("source", "label"),
    [
        pytest.param(
            {"company_domain": "https://ACME.pipedrive.com/"}, "acme", id="file-normalized-domain"
        ),
        pytest.param({"TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo"}, "demo", id="env-domain"),
        pytest.param(
            {
                "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
                "TAP_PIPEDRIVE_CONNECTION_NAME": "Acme EU prod",
            },
            "Acme EU prod",
            id="env-connection-name",
        ),
    ],
)
def test_invalid_config_reason_has_the_same_prefix_as_a_valid_config(tmp_path, source, label):
    """The label of a config error is the same connection name a valid config would get."""
    if any(k.startswith("TAP_PIPEDRIVE_") for k in source):
        run = run_tap("--config", "ENV", "--test", tmp_path=tmp_path, env=source, timeout=60)
    else:
        run = run_tap("--test", config=source, tmp_path=tmp_path, timeout=60)

    assert run.returncode == 1
    assert run.stdout == UNAVAILABLE
    (line,) = run.stderr.splitlines()
    assert line == f"{label}: config: 'api_token' is required when auth_scheme is Basic"


def test_connection_test_with_config_from_env(fake, tmp_path):
    env = {
        "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
        "TAP_PIPEDRIVE_API_TOKEN": CANARY_API_TOKEN,
        "TAP_PIPEDRIVE_API_URL": fake.url,
    }
    run = run_tap("--config", "ENV", "--test", tmp_path=tmp_path, env=env, timeout=60)

    assert run.returncode == 0, run.stderr
    assert run.stdout == AVAILABLE
    assert [(r["auth"], r["status"]) for r in api_requests(fake)] == [("header", 200)]


def test_connection_test_with_a_numeric_setting_from_env(fake, tmp_path):
    """Number settings (request_timeout, retry_initial_delay) can come from ENV too."""
    env = {
        "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
        "TAP_PIPEDRIVE_API_TOKEN": CANARY_API_TOKEN,
        "TAP_PIPEDRIVE_API_URL": fake.url,
        "TAP_PIPEDRIVE_REQUEST_TIMEOUT": "30",
        "TAP_PIPEDRIVE_RETRY_INITIAL_DELAY": "0.5",
    }
    run = run_tap("--config", "ENV", "--test", tmp_path=tmp_path, env=env, timeout=60)

    assert run.returncode == 0, run.stderr
    assert run.stdout == AVAILABLE


# --- rotation during a connection test ------------------------------------------------------------


def test_connection_test_writes_a_rotated_refresh_token_back(fake_factory, tmp_path):
    server = fake_factory(rotate_refresh_tokens=True)
    issued = track_issued(server)
    path = tmp_path / "config.json"
    config = oauth_config(server)
    path.write_text(json.dumps(config))
    run = run_tap("--test", config_path=path, tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=60)

    assert run.returncode == 0, run.stderr
    assert run.stdout == AVAILABLE
    (rotated,) = server.refresh_tokens
    written = json.loads(path.read_text())
    assert written["refresh_token"] == rotated != CANARY_REFRESH_TOKEN
    assert list(written) == list(config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    assert_no_secret(run.stdout, run.stderr, secrets=secrets_of(issued))


def test_connection_test_warns_when_a_rotated_token_cannot_be_written_back(fake_factory, tmp_path):
    """The refresh token in the user's env is spent by the test: they must be told."""
    server = fake_factory(rotate_refresh_tokens=True)
    issued = track_issued(server)
    env = {
        "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
        "TAP_PIPEDRIVE_AUTH_SCHEME": "OAuth",
        "TAP_PIPEDRIVE_CLIENT_ID": CANARY_CLIENT_ID,
        "TAP_PIPEDRIVE_CLIENT_SECRET": CANARY_CLIENT_SECRET,
        "TAP_PIPEDRIVE_REFRESH_TOKEN": CANARY_REFRESH_TOKEN,
        "TAP_PIPEDRIVE_OAUTH_TOKEN_URL": f"{server.url}/oauth/token",
        **LOOPBACK_ONLY,
    }
    run = run_tap("--config", "ENV", "--test", tmp_path=tmp_path, env=env, timeout=60)

    assert run.returncode == 0, run.stderr
    assert run.stdout == AVAILABLE
    assert CANARY_REFRESH_TOKEN not in server.refresh_tokens  # the env's token is now spent
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line and "rotated" in line]
    assert len(warnings) == 1, f"no write-back warning on stderr: {run.stderr!r}"
    assert "update refresh_token" in warnings[0]
    assert_no_secret(run.stdout, run.stderr, secrets=secrets_of(issued))


# --- --test=schema ------------------------------------------------------------------------------


def test_test_schema_keeps_the_sdk_meaning(fake, tmp_path):
    run = run_tap("--test=schema", config=basic_config(fake), tmp_path=tmp_path, timeout=60)

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.messages
    assert {m["type"] for m in run.messages} == {"SCHEMA"}
    assert {"deals", "persons", "users", "deal_fields"} <= {m["stream"] for m in run.messages}
    assert "connection available" not in run.stdout
    assert "Connection unavailable" not in run.stdout
    assert_no_secret(run.stdout, run.stderr, secrets=secrets_of(set()))


# --- --discover ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Basic", "OAuth"])
def test_discover_prints_only_the_catalog(fake, tmp_path, scheme):
    issued = track_issued(fake)
    config = basic_config(fake) if scheme == "Basic" else oauth_config(fake)
    run = run_tap("--discover", config=config, tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=60)

    assert run.returncode == 0, run.stderr[-2000:]
    catalog = json.loads(run.stdout)  # the whole stdout is the catalog
    assert isinstance(catalog, dict)
    assert isinstance(catalog.get("streams"), list)
    assert {"deals", "persons", "users"} <= {s["tap_stream_id"] for s in catalog["streams"]}
    assert "connection available" not in run.stdout
    assert "connection available" in run.stderr
    assert "Traceback" not in run.stderr
    assert fake.query_token_requests == []
    if scheme == "OAuth":
        assert len(fake.oauth_requests) == 1  # one refresh for the check and every stream
        assert {r["auth"] for r in api_requests(fake)} == {"bearer"}
    else:
        assert {r["auth"] for r in api_requests(fake)} == {"header"}
    # no secret in the catalog (nor on stderr), including the tokens the fake issued
    assert_no_secret(run.stdout, run.stderr, secrets=secrets_of(issued))


def test_discover_with_a_bad_token_prints_nothing_and_exits_1(fake, tmp_path):
    run = run_tap("--discover", config=_bad_token(fake), tmp_path=tmp_path, timeout=60)

    assert run.returncode == 1
    assert run.stdout == ""
    assert "Pipedrive rejected the API token (401)" in run.stderr
    assert "demo" in run.stderr
    assert "Traceback" not in run.stderr
    assert [(r["auth"], r["status"]) for r in api_requests(fake)] == [("header", 401)]
    assert_no_secret(run.stdout, run.stderr, secrets=secrets_of(set()))


def test_discover_with_the_daily_budget_spent_exits_3_like_a_sync(fake, tmp_path):
    # An orchestrator retries exit 3 after the reset; Meltano discovers before every run, so a
    # retry that comes too early must stop with 3 again, not fail the run with 1.
    fake.set_daily_budget(1)  # less than the check's 2 tokens
    run = run_tap("--discover", config=basic_config(fake), tmp_path=tmp_path, timeout=60)

    assert run.returncode == 3, run.stderr[-2000:]
    assert run.stdout == ""
    assert "Connection unavailable" in run.stderr
    assert "daily API token budget" in run.stderr
    assert "Traceback" not in run.stderr
