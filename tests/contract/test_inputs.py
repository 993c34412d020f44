"""The mistakes a new user makes, as whole runs: each ends in one line naming the file, setting,
variable or stream, with a non-zero exit (or is accepted and works), no traceback and no secret;
``--test`` answers ``Connection unavailable`` in every failure.

The rules one by one are in ``tests/unit/test_inputs.py``; the config fields one by one in
``test_config.py``. This file starts with the settings; the other inputs follow.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import basic_config, oauth_config
from tests.helpers import (
    CANARY_API_TOKEN,
    CANARY_CLIENT_SECRET,
    CANARY_REFRESH_TOKEN,
    LOOPBACK_ONLY,
    Run,
    run_tap,
)

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
