"""The authenticator in-process: OAuth refresh before expiry, one refresh on a 401, the API
host from ``api_domain``, refresh-token rotation and writing it back into the config file.

Every request goes to a fake Pipedrive on 127.0.0.1 (its OAuth endpoint included).
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from tap_pipedrive.auth import PipedriveAuthenticator, RefreshTokenStore
from tap_pipedrive.errors import AuthError
from tap_pipedrive.tap import TapPipedrive
from tests.conftest import oauth_config
from tests.helpers import (
    CANARIES,
    CANARY_CLIENT_ID,
    CANARY_CLIENT_SECRET,
    CANARY_REFRESH_TOKEN,
    assert_no_secret,
)


def api_requests(server) -> list[dict]:
    return [r for r in server.requests if r["path"].startswith(("/api/", "/v1/"))]


def in_process_tap(config: dict) -> TapPipedrive:
    """The tap as the CLI builds it for a check, without a catalog or mapper (no requests yet)."""
    return TapPipedrive(config=config, parse_env_config=False, validate_config=True, setup_mapper=False)


def test_api_base_url_is_the_token_responses_api_domain(fake):
    tap = in_process_tap(oauth_config(fake))
    body = tap.services.client.get("v1", "/users/me", stream="test")

    assert body["success"] is True
    assert tap.services.authenticator.api_domain == fake.url
    assert tap.services.client.base_url == fake.url
    assert [r["path"] for r in api_requests(fake)] == ["/api/v1/users/me"]
    assert len(fake.oauth_requests) == 1


def test_access_token_is_refreshed_before_it_expires(fake):
    now = [dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)]
    auth = PipedriveAuthenticator(
        auth_scheme="OAuth",
        client_id=CANARY_CLIENT_ID,
        client_secret=CANARY_CLIENT_SECRET,
        refresh_token=CANARY_REFRESH_TOKEN,
        token_url=f"{fake.url}/oauth/token",
        timeout=10,
        clock=lambda: now[0],
    )
    auth.ensure_token()
    first = auth.access_token
    assert len(fake.oauth_requests) == 1
    assert auth.expires_in == int(fake.access_token_ttl)

    now[0] += dt.timedelta(seconds=fake.access_token_ttl / 2)
    auth.ensure_token()
    assert len(fake.oauth_requests) == 1  # still good: no refresh
    assert auth.access_token == first

    now[0] += dt.timedelta(seconds=fake.access_token_ttl / 2)  # at (or past) the expiry
    auth.ensure_token()
    assert len(fake.oauth_requests) == 2
    assert auth.access_token != first
    assert auth.refresh_count == 2


def test_short_lived_token_is_refreshed_in_process(fake_factory):
    server = fake_factory(access_token_ttl=2)
    tap = in_process_tap(oauth_config(server))
    tap.services.client.get("v1", "/users/me", stream="test")
    assert len(server.oauth_requests) == 1

    time.sleep(1.2)  # past the refresh margin (half of a 2 s token), before the server's expiry
    tap.services.client.get("v1", "/users/me", stream="test")

    assert len(server.oauth_requests) == 2
    assert [r["status"] for r in api_requests(server)] == [200, 200]  # refreshed before a 401


def test_401_refreshes_once_and_retries_in_process(fake):
    tap = in_process_tap(oauth_config(fake))
    tap.services.client.get("v1", "/users/me", stream="test")
    fake.expire_access_tokens()

    body = tap.services.client.get("v1", "/users/me", stream="test")
    tap.services.client.get("v1", "/users/me", stream="test")

    assert body["success"] is True
    assert [r["status"] for r in api_requests(fake)] == [200, 401, 200, 200]
    assert len(fake.oauth_requests) == 2
    assert tap.services.authenticator.refresh_count == 2


def test_401_twice_in_a_row_is_an_auth_error_not_a_loop(fake):
    """A token rejected even after the refresh ends the request (one refresh, not a loop)."""
    tap = in_process_tap(oauth_config(fake))
    tap.services.client.get("v1", "/users/me", stream="test")
    # The one private hook of the fake a test uses: it issues a token that is already dead.
    original = fake._new_access_token  # noqa: SLF001

    def dead_on_arrival() -> str:  # the refreshed token is already expired too
        token = original()
        fake._access_tokens.pop(token, None)  # noqa: SLF001
        return token

    fake._new_access_token = dead_on_arrival  # noqa: SLF001
    fake.expire_access_tokens()
    with pytest.raises(AuthError, match="even after a refresh"):
        tap.services.client.get("v1", "/users/me", stream="test")
    assert [r["status"] for r in api_requests(fake)] == [200, 401, 401]
    assert len(fake.oauth_requests) == 2


def test_rotated_refresh_token_is_used_for_the_next_refresh_in_the_same_run(fake_factory):
    server = fake_factory(rotate_refresh_tokens=True)
    tap = in_process_tap(oauth_config(server))
    tap.services.client.get("v1", "/users/me", stream="test")
    (rotated,) = server.refresh_tokens
    assert rotated != CANARY_REFRESH_TOKEN

    server.expire_access_tokens()
    tap.services.client.get("v1", "/users/me", stream="test")

    assert [r["form"]["refresh_token"] for r in server.oauth_requests] == [
        CANARY_REFRESH_TOKEN,
        rotated,
    ]
    assert [r["status"] for r in server.oauth_requests] == [200, 200]


def _write_config(path, config: dict) -> None:
    path.write_text(json.dumps(config, indent=4) + "\n")
    path.chmod(0o600)


def _store_authenticator(server, path) -> PipedriveAuthenticator:
    return PipedriveAuthenticator(
        auth_scheme="OAuth",
        client_id=CANARY_CLIENT_ID,
        client_secret=CANARY_CLIENT_SECRET,
        refresh_token=CANARY_REFRESH_TOKEN,
        token_url=f"{server.url}/oauth/token",
        timeout=10,
        token_store=RefreshTokenStore(path, expected=CANARY_REFRESH_TOKEN),
    )


def test_every_rotation_of_a_run_is_written_back(fake_factory, tmp_path):
    server = fake_factory(rotate_refresh_tokens=True)
    path = tmp_path / "config.json"
    config = oauth_config(server)
    _write_config(path, config)
    auth = _store_authenticator(server, path)

    auth.ensure_token()
    auth.invalidate(None)  # as after a 401
    auth.ensure_token()

    (latest,) = server.refresh_tokens
    forms = [r["form"]["refresh_token"] for r in server.oauth_requests]
    assert forms[0] == CANARY_REFRESH_TOKEN
    assert forms[1] not in (CANARY_REFRESH_TOKEN, latest)  # the first rotated token was used
    assert json.loads(path.read_text()) == {**config, "refresh_token": latest}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_write_back_leaves_a_file_changed_by_someone_else_alone(fake_factory, tmp_path, caplog):
    server = fake_factory(rotate_refresh_tokens=True)
    path = tmp_path / "config.json"
    _write_config(path, oauth_config(server, refresh_token="set-by-the-user-meanwhile"))
    before = path.read_bytes()
    auth = _store_authenticator(server, path)

    with caplog.at_level("WARNING", logger="tap-pipedrive"):
        auth.ensure_token()

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "update refresh_token" in warnings[0]
    assert_no_secret(*warnings, secrets=set(CANARIES) | server.refresh_tokens)
