"""The mistakes a new user makes, as whole runs: each ends in one line naming the file, setting,
variable or stream, with a non-zero exit (or is accepted and works), no traceback and no secret;
``--test`` answers ``Connection unavailable`` in every failure.

The rules one by one are in ``tests/unit/test_inputs.py``; the config fields one by one in
``test_config.py``.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import basic_config, oauth_config
from tests.helpers import (
    CANARY_API_TOKEN,
    CANARY_CLIENT_SECRET,
    CANARY_REFRESH_TOKEN,
    LOOPBACK_ONLY,
    Run,
    catalog_selecting,
    run_tap,
)

if TYPE_CHECKING:
    from pathlib import Path

UNAVAILABLE = "Connection unavailable\n"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \| (?P<level>[A-Z]+)\s*\| [^|]*\| (?P<msg>.*)$")
MODES = {"sync": (), "test": ("--test",), "discover": ("--discover",)}


def log(run: Run, level: str) -> list[str]:
    """The messages of the run's log lines of ``level``."""
    return [m["msg"] for m in map(LOG_LINE.match, run.stderr.splitlines()) if m and m["level"] == level]


def ending_line(run: Run, mode: str) -> str:
    """The one line a failed run ends with, after checking the shape of the failure."""
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    if mode == "test":
        assert run.stdout == UNAVAILABLE
        reasons = [line for line in run.stderr.splitlines() if not LOG_LINE.match(line)]
        assert len(reasons) == 1, run.stderr  # one reason line (warnings before it are log lines)
        assert run.stderr.splitlines()[-1] == reasons[0]
        return reasons[0]
    assert run.stdout == ""  # no Singer message, no half catalog
    last = LOG_LINE.match(run.stderr.strip().splitlines()[-1])
    assert last, f"the run did not end with a log line: {run.stderr[-500:]!r}"
    assert last["level"] == "ERROR"
    assert len(log(run, "ERROR")) == 1, run.stderr
    return last["msg"].removeprefix("Connection unavailable: ")


def api_requests(server) -> list[dict]:
    return [r for r in server.requests if r["path"].startswith(("/api/", "/v1/", "/oauth/"))]


# --- 1: a token pasted with its line break ------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scheme", ["Basic", "OAuth"])
def test_credentials_pasted_with_a_line_break_are_stripped_and_work(fake, tmp_path, mode, scheme):
    if scheme == "Basic":
        config = basic_config(fake, api_token=f"{CANARY_API_TOKEN}\n", company_domain=" demo\n")
    else:
        config = oauth_config(
            fake, client_secret=f" {CANARY_CLIENT_SECRET}\n", refresh_token=f"{CANARY_REFRESH_TOKEN}\r\n"
        )
    run = run_tap(*MODES[mode], config=config, tmp_path=tmp_path, env=LOOPBACK_ONLY, timeout=120)

    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    if mode == "test":
        assert run.stdout == "connection available\n"
    elif mode == "discover":
        assert json.loads(run.stdout)["streams"]
    else:
        assert run.records("users")


@pytest.mark.parametrize("mode", MODES)
def test_a_token_with_a_line_break_inside_is_refused_without_echoing_it(tmp_path, mode):
    half, other = CANARY_API_TOKEN[:10], CANARY_API_TOKEN[10:]
    config = {"company_domain": "demo", "api_token": f"{half}\n{other}", "api_url": "http://127.0.0.1:9"}
    run = run_tap(*MODES[mode], config=config, tmp_path=tmp_path, timeout=60)

    line = ending_line(run, mode)
    assert line == "demo: config: 'api_token' has a space or line break inside; check how it was pasted"
    assert half not in run.stderr
    assert other not in run.stderr


# --- 2: the config file itself is wrong ---------------------------------------------------------


def _missing(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "nowhere" / "config.json"
    return ["--config", str(path)], f"tap-pipedrive: config file '{path}' was not found"


def _not_json(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "config.json"
    path.write_text(f'{{"company_domain": "demo", "api_token": "{CANARY_API_TOKEN}",}}')
    return ["--config", str(path)], (
        f"tap-pipedrive: config file '{path}' is not JSON: Expecting property name enclosed in double "
        "quotes at line 1, column 67"
    )


def _empty_file(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "config.json"
    path.write_text("\n")
    expected = f"tap-pipedrive: config file '{path}' is empty: it must hold a JSON object"
    return ["--config", str(path)], expected


def _empty_object(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "config.json"
    path.write_text("{}")
    return ["--config", str(path)], (
        "tap-pipedrive: config: 'api_token' is required when auth_scheme is Basic; config: 'company_domain' "
        "is required (e.g. 'acme' for acme.pipedrive.com)"
    )


def _a_list(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "config.json"
    path.write_text('[{"company_domain": "demo"}]')
    return ["--config", str(path)], (
        f"tap-pipedrive: config file '{path}' must hold a JSON object of settings (as sample_config.json), "
        "not an array"
    )


def _env_not_a_number(tmp_path: Path) -> tuple[list[str], str]:  # noqa: ARG001
    return ["--config", "ENV"], "demo: TAP_PIPEDRIVE_MAX_RETRIES: 'max_retries' must be a whole number"


ENV_WITH_TEXT_RETRIES = {
    "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
    "TAP_PIPEDRIVE_API_TOKEN": CANARY_API_TOKEN,
    "TAP_PIPEDRIVE_MAX_RETRIES": "two",
}


CONFIG_CASES = [_missing, _not_json, _empty_file, _empty_object, _a_list, _env_not_a_number]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.__name__)
def test_a_wrong_config_file_or_variable_is_named_in_one_line(tmp_path, case, mode):
    args, expected = case(tmp_path)
    run = run_tap(*args, *MODES[mode], tmp_path=tmp_path, env=ENV_WITH_TEXT_RETRIES if "ENV" in args else {},
                  timeout=60)

    assert ending_line(run, mode) == expected


# --- 3: --state or --catalog not JSON -----------------------------------------------------------


@pytest.mark.parametrize("option", ["--state", "--catalog"])
def test_a_state_or_catalog_that_is_not_json_is_named_before_any_request(fake, tmp_path, option):
    path = tmp_path / "input.json"
    path.write_text('{"bookmarks": {"deals": ')
    run = run_tap(option, str(path), config=basic_config(fake), tmp_path=tmp_path, timeout=60)

    what = option.removeprefix("--")
    assert ending_line(run, "sync") == (
        f"demo: {what} file '{path}' is not JSON: Expecting value at line 1, column 25"
    )
    assert api_requests(fake) == []


# --- 4: a state in a wrapper --------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A finished run of a small account, and the fake it read (kept running for the next run)."""
    from tests.conftest import make_fake  # noqa: PLC0415

    server = make_fake().start()
    run = run_tap(config=basic_config(server), tmp_path=tmp_path_factory.mktemp("first"), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    yield server, run
    server.stop()


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda state: {"type": "STATE", "value": state}, id="state-message"),
        pytest.param(lambda state: {"singer_state": state}, id="meltano-state-get"),
    ],
)
def test_a_state_in_a_wrapper_resumes_like_the_state_itself(first_run, tmp_path, wrap):
    server, first = first_run
    run = run_tap(config=basic_config(server), state=wrap(first.final_state), tmp_path=tmp_path, timeout=300)

    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    bookmarks = first.final_state["bookmarks"]
    incremental = [name for name, value in bookmarks.items() if "replication_key" in value]
    assert incremental
    assert {name: run.records(name) for name in incremental} == {name: [] for name in incremental}
    assert run.final_state == first.final_state


# --- 5: a state whose content is wrong ----------------------------------------------------------


def _bookmark(value: object) -> dict:
    return {"bookmarks": {"activities": {"replication_key": "update_time", "replication_key_value": value}}}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        pytest.param(
            _bookmark("not a date"),
            "the bookmark of 'activities' is not a time: replication_key_value 'not a date' "
            "(expected RFC 3339, e.g. 2025-01-31T10:20:00Z)",
            id="not-a-date",
        ),
        pytest.param(
            _bookmark(12345),
            "the bookmark of 'activities' is not a time: replication_key_value 12345 "
            "(expected RFC 3339, e.g. 2025-01-31T10:20:00Z)",
            id="a-number",
        ),
        pytest.param(
            _bookmark("2099-01-01T00:00:00Z"),
            "the bookmark of 'activities' is in the future: replication_key_value '2099-01-01T00:00:00Z'",
            id="in-the-future",
        ),
    ],
)
def test_a_wrong_bookmark_is_named_before_any_request(fake, tmp_path, state, message):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    run = run_tap("--state", str(path), config=basic_config(fake), tmp_path=tmp_path, timeout=60)

    assert ending_line(run, "sync") == f"demo: state file '{path}': {message}"
    assert api_requests(fake) == []  # no stream synced before the mistake was found


def test_a_state_that_is_a_list_is_refused(fake, tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps([{"bookmarks": {}}]))
    run = run_tap("--state", str(path), config=basic_config(fake), tmp_path=tmp_path, timeout=60)

    assert ending_line(run, "sync") == (
        f"demo: state file '{path}' must hold a JSON object (the value of the last STATE message, "
        '{"bookmarks": …}), not an array'
    )
    assert api_requests(fake) == []


def test_a_state_singer_ios_tap_wrote_is_ignored_with_one_warning(fake, tmp_path):
    path = tmp_path / "state.json"
    bookmarks = {"deals": {"update_time": "2024-01-01T00:00:00+00:00"}}
    state = {"currently_syncing": "deals", "bookmarks": bookmarks}
    path.write_text(json.dumps(state))
    run = run_tap("--state", str(path), config=basic_config(fake), tmp_path=tmp_path, timeout=300)

    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert f"state file '{path}' was written by another tap" in "\n".join(log(run, "WARNING"))
    assert sorted(run.ids("deals")) == sorted(fake.account.ids("deals"))  # all of them, from the start


def test_a_bookmark_of_an_unknown_stream_is_ignored_with_a_warning(fake, tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"bookmarks": {"dealz": {"replication_key_value": "2024-01-01T00:00:00Z"}}}))
    run = run_tap("--state", str(path), config=basic_config(fake), tmp_path=tmp_path, timeout=300)

    assert run.returncode == 0, run.stderr[-2000:]
    assert (
        f"state file '{path}': tap-pipedrive has no stream 'dealz' (did you mean 'deals'?); its bookmark is "
        "ignored"
    ) in log(run, "WARNING")
    assert "dealz" not in run.final_state["bookmarks"]


# --- 6: a catalog that selects a stream the tap does not have ----------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> dict:
    from tests.conftest import make_fake  # noqa: PLC0415

    with make_fake() as server:
        run = run_tap("--discover", config=basic_config(server), tmp_path=tmp_path_factory.mktemp("catalog"))
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def _with_renamed(catalog: dict, selected: set[str], old: str, new: str) -> dict:
    copy = catalog_selecting(json.loads(json.dumps(catalog)), selected)
    for entry in copy["streams"]:
        if entry["tap_stream_id"] == old:
            entry["tap_stream_id"] = entry["stream"] = new
    return copy


def test_a_catalog_selecting_an_unknown_stream_warns_and_syncs_the_others(fake, catalog, tmp_path):
    run = run_tap(
        catalog=_with_renamed(catalog, {"users", "persons"}, "persons", "persns"),
        config=basic_config(fake), tmp_path=tmp_path, timeout=300,
    )

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.streams_with_records() == {"users"}
    path = tmp_path / "catalog.json"
    warning = (
        f"catalog file '{path}' selects 'persns', which tap-pipedrive does not have "
        "(did you mean 'persons'?): it is skipped"
    )
    assert log(run, "WARNING") == [warning]


def test_a_catalog_selecting_only_unknown_streams_is_refused_before_any_request(fake, catalog, tmp_path):
    run = run_tap(
        catalog=_with_renamed(catalog, {"persons"}, "persons", "persns"),
        config=basic_config(fake), tmp_path=tmp_path, timeout=60,
    )

    path = tmp_path / "catalog.json"
    expected = f"demo: catalog file '{path}' selects no stream of tap-pipedrive (only persns)"
    assert ending_line(run, "sync") == expected
    assert api_requests(fake) == []


# --- 7: unknown settings, a start date in the future --------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_an_unknown_setting_is_warned_about_with_the_closest_known_one(fake, tmp_path, mode):
    config = basic_config(fake, start_dat="2026-01-01T00:00:00Z")
    run = run_tap(*MODES[mode], config=config, tmp_path=tmp_path, timeout=300)

    assert run.returncode == 0, run.stderr[-2000:]
    assert log(run, "WARNING")[:1] == [
        "config: unknown setting 'start_dat' is ignored (did you mean 'start_date'?)"
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_misspelt_token_setting_is_named_next_to_the_missing_one(tmp_path, mode):
    config = {"company_domain": "demo", "api_tokne": CANARY_API_TOKEN, "api_url": "http://127.0.0.1:9"}
    run = run_tap(*MODES[mode], config=config, tmp_path=tmp_path, timeout=60)

    assert ending_line(run, mode) == "demo: config: 'api_token' is required when auth_scheme is Basic"
    warning = "config: unknown setting 'api_tokne' is ignored (did you mean 'api_token'?)"
    assert log(run, "WARNING") == [warning]


def test_a_start_date_in_the_future_is_warned_about(fake, tmp_path):
    run = run_tap("--test", config=basic_config(fake, start_date="2099-01-01"), tmp_path=tmp_path, timeout=60)

    assert run.returncode == 0, run.stderr
    assert run.stdout == "connection available\n"
    warning = "config: 'start_date' 2099-01-01 is in the future: no record is that new yet"
    assert log(run, "WARNING") == [warning]


# --- 8: --test=schema ---------------------------------------------------------------------------


def test_test_schema_against_an_unreachable_host_fails_in_one_line_quickly(tmp_path):
    config = {"company_domain": "demo", "api_token": CANARY_API_TOKEN, "api_url": "http://127.0.0.1:9"}
    started = time.monotonic()
    run = run_tap("--test=schema", config=config, tmp_path=tmp_path, timeout=60)

    assert time.monotonic() - started < 8  # one retry at most, not max_retries with backoff
    assert ending_line(run, "test") == "demo: cannot reach 127.0.0.1:9 (connection refused or DNS failure)"


def test_test_schema_with_a_rejected_token_fails_in_one_line(fake, tmp_path):
    run = run_tap("--test=schema", config=basic_config(fake, api_token="wrong-token-3a9"), tmp_path=tmp_path,
                  timeout=60)

    assert ending_line(run, "test") == "demo: Pipedrive rejected the API token (401)"
    assert "wrong-token-3a9" not in run.stderr + run.stdout


# --- 9: --help ----------------------------------------------------------------------------------


def test_help_says_what_test_does_here(tmp_path):
    run = run_tap("--help", tmp_path=tmp_path, timeout=60)

    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    assert "sync a single record" not in text
    assert "--test [=schema] Check the connection with one cheap request" in text
    assert "prints 'connection available' (exit 0) or 'Connection unavailable'" in text
    assert "exported ones win" in text  # --config ENV and the .env


# --- 10: a .env never overrides what the user exported -----------------------------------------


def _dotenv_test(tmp_path: Path, *, exported: dict, dotenv: str) -> Run:
    (tmp_path / ".env").write_text(dotenv)
    return run_tap("--config", "ENV", "--test", tmp_path=tmp_path, env={**LOOPBACK_ONLY, **exported},
                   timeout=60)


def test_an_exported_variable_wins_over_the_dotenv_meltano_writes(fake, tmp_path):
    dotenv = f"TAP_PIPEDRIVE_API_TOKEN='wrong-dotenv-token'\nTAP_PIPEDRIVE_API_URL='{fake.url}'\n"
    exported = {"TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo", "TAP_PIPEDRIVE_API_TOKEN": CANARY_API_TOKEN}
    run = _dotenv_test(tmp_path, exported=exported, dotenv=dotenv)

    assert run.returncode == 0, run.stderr
    assert run.stdout == "connection available\n"
    assert [r["auth"] for r in api_requests(fake)] == ["header"]


def test_a_wrong_exported_token_is_not_masked_by_a_right_one_in_the_dotenv(fake, tmp_path):
    dotenv = f"TAP_PIPEDRIVE_API_TOKEN='{CANARY_API_TOKEN}'\nTAP_PIPEDRIVE_API_URL='{fake.url}'\n"
    exported = {"TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo", "TAP_PIPEDRIVE_API_TOKEN": "wrong-exported-token"}
    run = _dotenv_test(tmp_path, exported=exported, dotenv=dotenv)

    assert ending_line(run, "test") == "demo: Pipedrive rejected the API token (401)"


def test_a_dotenv_in_a_parent_folder_is_not_read(fake, tmp_path):
    (tmp_path / ".env").write_text(f"TAP_PIPEDRIVE_API_TOKEN='{CANARY_API_TOKEN}'\n")
    folder = tmp_path / "sub"
    folder.mkdir()
    env = {"TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo", "TAP_PIPEDRIVE_API_URL": fake.url}
    run = run_tap("--config", "ENV", "--test", tmp_path=folder, env=env, timeout=60)

    assert ending_line(run, "test") == "demo: config: 'api_token' is required when auth_scheme is Basic"
    assert api_requests(fake) == []
