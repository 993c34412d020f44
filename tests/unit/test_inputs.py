"""The input rules in-process, starting with the settings.

Each wrong input becomes one message that names the file, setting, variable or stream (never a
secret); each input a user can mean is accepted as they meant it. The same cases as whole
processes (exit codes, the one line, no traceback) are in ``tests/contract/test_inputs.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tap_pipedrive.config_checks import config_errors, config_warnings, strip_settings
from tap_pipedrive.tap import TapPipedrive
from tests.helpers import CANARY_API_TOKEN, CANARY_CLIENT_SECRET, CANARY_REFRESH_TOKEN

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)


def settings_schema() -> dict:
    """The tap's settings with the SDK's builtin ones (stream_maps, flattening, batch_config, …)."""
    schema = TapPipedrive.config_jsonschema
    TapPipedrive.append_builtin_config(schema)
    return schema


def known_settings() -> list[str]:
    return list(settings_schema()["properties"])


# --- settings: whitespace, unknown keys, the start date ------------------------------------------


def test_whitespace_around_tokens_ids_and_the_domain_is_stripped():
    config = {
        "company_domain": " demo\n",
        "auth_scheme": "OAuth ",
        "client_id": "\tid\n",
        "client_secret": f"{CANARY_CLIENT_SECRET}\r\n",
        "refresh_token": f" {CANARY_REFRESH_TOKEN}",
        "start_date": "2024-01-01T00:00:00Z\n",
        "custom_fields_mode": "raw\n",
    }
    strip_settings(config)
    assert config == {
        "company_domain": "demo",
        "auth_scheme": "OAuth",
        "client_id": "id",
        "client_secret": CANARY_CLIENT_SECRET,
        "refresh_token": CANARY_REFRESH_TOKEN,
        "start_date": "2024-01-01T00:00:00Z",
        "custom_fields_mode": "raw",
    }
    assert config_errors(config) == []


@pytest.mark.parametrize("name", ["api_token", "client_id", "client_secret", "refresh_token"])
def test_whitespace_inside_a_credential_is_refused_naming_the_field(name):
    config = {"company_domain": "demo", "api_token": CANARY_API_TOKEN, name: "canary-half\nother-half"}
    errors = config_errors(config)
    assert f"config: '{name}' has a space or line break inside; check how it was pasted" in errors
    assert not [e for e in errors if "canary-half" in e or "other-half" in e]


def test_a_user_agent_must_be_one_line():
    errors = config_errors({"company_domain": "demo", "api_token": "t0ken", "user_agent": "me\r\nX-Evil: 1"})
    assert errors == ["config: 'user_agent' must be one line of text"]


@pytest.mark.parametrize(
    ("key", "warning"),
    [
        ("start_dat", "config: unknown setting 'start_dat' is ignored (did you mean 'start_date'?)"),
        ("api_tokne", "config: unknown setting 'api_tokne' is ignored (did you mean 'api_token'?)"),
        (
            "flatening_enabled",
            "config: unknown setting 'flatening_enabled' is ignored (did you mean 'flattening_enabled'?)",
        ),
        ("colour", "config: unknown setting 'colour' is ignored"),
    ],
)
def test_an_unknown_setting_is_named_with_the_closest_known_one(key, warning):
    assert config_warnings({"company_domain": "demo", key: "x"}, known_settings(), now=NOW) == [warning]


def test_the_sdks_builtin_settings_are_known_settings():
    builtin = {"stream_maps": {}, "flattening_enabled": True, "batch_config": {}, "faker_config": {}}
    assert config_warnings({"company_domain": "demo", **builtin}, known_settings(), now=NOW) == []


def test_a_start_date_in_the_future_is_warned_about():
    known = known_settings()
    assert config_warnings({"start_date": "2026-01-16"}, known, now=NOW) == [
        "config: 'start_date' 2026-01-16 is in the future: no record is that new yet"
    ]
    assert config_warnings({"start_date": "2026-01-14T00:00:00Z"}, known, now=NOW) == []
