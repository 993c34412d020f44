"""The connection contract, auth side: Basic in the header, OAuth refresh, Bearer, api_domain,
expiry, a 401 mid-run, refresh-token rotation and writing it back into the config file.

Every run here talks only to a fake Pipedrive on 127.0.0.1. OAuth runs have no ``api_url``
(the API host comes from the token response), so they also get a proxy on a closed loopback
port for every other host: were the tap ever to fall back to ``demo.pipedrive.com``, that
request would fail locally instead of leaving the machine.
"""

from __future__ import annotations

import base64
import json
import stat
import threading
import time
from urllib.parse import parse_qs

import pytest

from tap_pipedrive.tap import TapPipedrive
from tests.conftest import basic_config, oauth_config
from tests.fake_pipedrive import Fault
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

FORM = "application/x-www-form-urlencoded"


# --- helpers -------------------------------------------------------------------------------


def header(entry: dict, name: str) -> str | None:
    """A request header recorded by the fake, case-insensitively."""
    return next((v for k, v in entry["headers"].items() if k.lower() == name.lower()), None)


def api_requests(server) -> list[dict]:
    return [r for r in server.requests if r["path"].startswith(("/api/", "/v1/"))]


def oauth_env(server, **extra: str) -> dict:
    return {
        "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
        "TAP_PIPEDRIVE_AUTH_SCHEME": "OAuth",
        "TAP_PIPEDRIVE_CLIENT_ID": CANARY_CLIENT_ID,
        "TAP_PIPEDRIVE_CLIENT_SECRET": CANARY_CLIENT_SECRET,
        "TAP_PIPEDRIVE_REFRESH_TOKEN": CANARY_REFRESH_TOKEN,
        "TAP_PIPEDRIVE_OAUTH_TOKEN_URL": f"{server.url}/oauth/token",
        **LOOPBACK_ONLY,
        **extra,
    }


def in_process_tap(config: dict) -> TapPipedrive:
    """The tap as the CLI builds it for a check, without a catalog or mapper (no requests yet)."""
    return TapPipedrive(
        config=config, parse_env_config=False, validate_config=True, setup_mapper=False
    )


def assert_clean(run, secrets: set[str]) -> None:
    """No secret in stdout, stderr or any STATE; no traceback."""
    assert_no_secret(run.stdout, run.stderr, json.dumps(run.states), secrets=secrets)
    assert "Traceback" not in run.stderr


# --- Basic --------------------------------------------------------------------------------


def test_basic_sync_sends_the_token_only_in_the_header(fake, tmp_path):
    run = run_tap(config=basic_config(fake), tmp_path=tmp_path, timeout=120)

    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records("deals")) == len(fake.account.ids("deals"))
    assert len(run.streams_with_records()) > 10
    requests = api_requests(fake)
    assert requests
    assert fake.query_token_requests == []
    assert {r["auth"] for r in requests} == {"header"}
    assert all("api_token" not in r["query"] for r in requests)
    assert {r["status"] for r in requests} == {200}
    assert fake.oauth_requests == []
    assert_clean(run, set(CANARIES))


def test_basic_sync_with_config_from_env(fake, tmp_path):
    env = {
        "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
        "TAP_PIPEDRIVE_API_TOKEN": CANARY_API_TOKEN,
        "TAP_PIPEDRIVE_API_URL": fake.url,
    }
    run = run_tap("--config", "ENV", tmp_path=tmp_path, env=env, timeout=120)

    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records("deals")) == len(fake.account.ids("deals"))
    assert fake.query_token_requests == []
    assert {r["auth"] for r in api_requests(fake)} == {"header"}
    assert {r["status"] for r in api_requests(fake)} == {200}
    assert list(tmp_path.iterdir()) == []  # nothing written next to the run
    assert_clean(run, set(CANARIES))


# --- OAuth: the refresh request, Bearer, api_domain, one refresh per run ------------------------


def test_oauth_sync_refreshes_once_sends_bearer_to_the_api_domain(fake, tmp_path):
    issued = track_issued(fake)
    config = oauth_config(fake)
    assert "api_url" not in config
    run = run_tap(config=config, tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=120)

    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records("deals")) == len(fake.account.ids("deals"))
    assert len(run.streams_with_records()) > 10

    # one refresh for the whole run, shared by every stream
    assert len(fake.oauth_requests) == 1
    refresh = fake.oauth_requests[0]
    assert refresh["method"] == "POST"
    assert refresh["path"] == "/oauth/token"
    assert refresh["content_type"].split(";")[0].strip().lower() == FORM
    assert refresh["form"] == {"grant_type": "refresh_token", "refresh_token": CANARY_REFRESH_TOKEN}
    assert parse_qs(refresh["body"]) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [CANARY_REFRESH_TOKEN],
    }
    # client credentials in HTTP Basic, not in the body
    assert refresh["basic_auth"]
    scheme, _, value = header(refresh, "Authorization").partition(" ")
    assert scheme.lower() == "basic"
    assert base64.b64decode(value).decode() == f"{CANARY_CLIENT_ID}:{CANARY_CLIENT_SECRET}"
    assert CANARY_CLIENT_SECRET not in refresh["body"]
    assert refresh["status"] == 200

    # the API host came from api_domain (no api_url): every API call reached this fake, as Bearer
    requests = api_requests(fake)
    assert requests
    assert {r["auth"] for r in requests} == {"bearer"}
    assert {r["status"] for r in requests} == {200}
    assert fake.query_token_requests == []
    assert_clean(run, set(CANARIES) | issued)




# --- OAuth: expiry ------------------------------------------------------------------------------






def test_sync_outlasting_the_access_token_refreshes_and_completes(fake_factory, tmp_path):
    server = fake_factory(access_token_ttl=2)
    issued = track_issued(server)
    # one slow answer early in the run (the deal fields, read for discovery) outlasts the part of
    # the 2 s token's life the tap uses (it refreshes at half-life for short tokens)
    server.add_fault(Fault("timeout", path_pattern=r"/dealFields", times=1, delay=1.3))
    run = run_tap(config=oauth_config(server), tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=120)

    assert run.returncode == 0, run.stderr[-2000:]
    assert server.faults_served == 1
    assert len(server.oauth_requests) >= 2
    assert all(r["form"]["grant_type"] == "refresh_token" for r in server.oauth_requests)
    assert len(run.records("deals")) == len(server.account.ids("deals"))
    # every API call was eventually answered: a 401 (if any) was followed by a good retry
    assert api_requests(server)[-1]["status"] == 200
    assert_clean(run, set(CANARIES) | issued)


# --- OAuth: a 401 mid-run -------------------------------------------------------------------------






def test_401_mid_run_refreshes_once_and_the_run_completes(fake, tmp_path):
    issued = track_issued(fake)
    done = threading.Event()

    def expire_when_running() -> None:
        while not done.is_set():
            if len(api_requests(fake)) >= 3:
                fake.expire_access_tokens()
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=expire_when_running, daemon=True)
    watcher.start()
    try:
        run = run_tap(config=oauth_config(fake), tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=120)
    finally:
        done.set()
        watcher.join(5)

    assert run.returncode == 0, run.stderr[-2000:]
    requests = api_requests(fake)
    rejected = [i for i, r in enumerate(requests) if r["status"] == 401]
    # the expiry hits the requests in flight at that moment (several, with parallel requests)
    assert 1 <= len(rejected) <= 8, "the token expiry should have hit the requests in flight mid-run"
    assert rejected[0] > 0
    assert rejected[-1] < len(requests) - 1
    for i in rejected:  # each is sent again, and then accepted
        same = (requests[i]["path"], requests[i]["query"])
        again = [r for r in requests[i + 1:] if (r["path"], r["query"]) == same]
        assert again, requests[i]["path"]
        assert again[0]["status"] == 200, requests[i]["path"]
    assert len(fake.oauth_requests) == 2  # the start, and exactly one refresh for all of them
    assert "refreshing it once" in run.stderr
    for stream in ("deals", "persons", "organizations", "activities"):
        ids = run.ids(stream)
        assert len(ids) == len(set(ids)) == len(fake.account.ids(stream)), stream
    assert_clean(run, set(CANARIES) | issued)


# --- OAuth: refresh-token rotation --------------------------------------------------------------




def _write_config(path, config: dict) -> None:
    path.write_text(json.dumps(config, indent=4) + "\n")
    path.chmod(0o600)


def test_rotated_refresh_token_is_written_back_and_the_next_run_works(fake_factory, tmp_path):
    server = fake_factory(rotate_refresh_tokens=True)
    issued = track_issued(server)
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "tap-pipedrive.json"
    # an unusual key order, and keys the tap does not write itself
    config = {
        "start_date": "2020-01-01T00:00:00Z",
        "refresh_token": CANARY_REFRESH_TOKEN,
        "connection_name": "Demo CRM",
        "client_secret": CANARY_CLIENT_SECRET,
        "company_domain": "demo",
        "auth_scheme": "OAuth",
        "client_id": CANARY_CLIENT_ID,
        "oauth_token_url": f"{server.url}/oauth/token",
        "retry_initial_delay": 0.01,
        "custom_field_names": {},
    }
    _write_config(path, config)
    inode = path.stat().st_ino

    run = run_tap(config_path=path, tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=120)

    assert run.returncode == 0, run.stderr[-2000:]
    assert len(server.oauth_requests) == 1
    (rotated,) = server.refresh_tokens
    assert rotated != CANARY_REFRESH_TOKEN
    written = json.loads(path.read_text())
    assert written["refresh_token"] == rotated
    assert list(written) == list(config)  # the key order is kept
    assert {k: v for k, v in written.items() if k != "refresh_token"} == {
        k: v for k, v in config.items() if k != "refresh_token"
    }
    assert path.stat().st_ino != inode  # replaced by a rename, not rewritten in place
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["tap-pipedrive.json"]  # no temp file left
    assert not [line for line in run.stderr.splitlines() if "WARNING" in line and "rotated" in line]
    assert_clean(run, set(CANARIES) | issued)

    # the next run starts from the written-back token (the old one is spent)
    run2 = run_tap(config_path=path, tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=120)

    assert run2.returncode == 0, run2.stderr[-2000:]
    assert len(server.oauth_requests) == 2
    assert server.oauth_requests[1]["form"]["refresh_token"] == rotated
    assert server.oauth_requests[1]["status"] == 200
    (rotated2,) = server.refresh_tokens
    written2 = json.loads(path.read_text())
    assert written2["refresh_token"] == rotated2 != rotated
    assert list(written2) == list(config)
    assert sorted(p.name for p in folder.iterdir()) == ["tap-pipedrive.json"]
    assert len(run2.records("deals")) == len(server.account.ids("deals"))
    assert_clean(run2, set(CANARIES) | issued)








WRITE_BACK_OFF = [
    pytest.param("env", "environment variables", id="config-ENV"),
    pytest.param("file+env", "environment variables", id="config-file-and-ENV"),
    pytest.param("write_back_false", "oauth_write_back is false", id="oauth_write_back-false"),
]


@pytest.mark.parametrize(("source", "why"), WRITE_BACK_OFF)
def test_rotation_without_write_back_writes_nothing_and_warns(fake_factory, tmp_path, source, why):
    server = fake_factory(rotate_refresh_tokens=True)
    issued = track_issued(server)
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "tap-pipedrive.json"
    if source == "env":
        args, env = ("--config", "ENV"), oauth_env(server)
    elif source == "file+env":
        _write_config(path, oauth_config(server))
        args, env = ("--config", str(path), "--config", "ENV"), oauth_env(server)
    else:
        _write_config(path, oauth_config(server, oauth_write_back=False))
        args, env = ("--config", str(path)), dict(LOOPBACK_ONLY)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    run = run_tap(*args, tmp_path=tmp_path, env=env, timeout=120)

    assert run.returncode == 0, run.stderr[-2000:]
    assert len(server.oauth_requests) == 1
    assert len(run.records("deals")) == len(server.account.ids("deals"))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written
    assert list(tmp_path.iterdir()) == [folder]  # nor anywhere else
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line and "rotated" in line]
    assert len(warnings) == 1, run.stderr[-3000:]
    assert "update refresh_token" in warnings[0]
    assert why in warnings[0]
    assert_clean(run, set(CANARIES) | issued)
