"""The input rules in-process: config files, ENV, settings, the state and the catalog.

Each wrong input becomes one message that names the file, setting, variable or stream (never a
secret); each input a user can mean is accepted as they meant it. The same cases as whole
processes (exit codes, the one line, no traceback) are in ``tests/contract/test_inputs.py``.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

import pytest

from tap_pipedrive.catalog_checks import checked_catalog
from tap_pipedrive.cli import CliConfig, environment_settings
from tap_pipedrive.config_checks import config_errors, config_warnings, strip_settings
from tap_pipedrive.errors import ConfigError, InputError
from tap_pipedrive.state_checks import checked_state
from tap_pipedrive.tap import TapPipedrive
from tests.helpers import CANARY_API_TOKEN, CANARY_CLIENT_SECRET, CANARY_REFRESH_TOKEN

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
SOURCE = "state file 'state.json'"


def bookmark(value: object = "2026-01-09T15:52:36Z", **extra) -> dict:
    return {"replication_key": "update_time", "replication_key_value": value, "bookmark_ids": [50], **extra}


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


# --- config files and ENV -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "was not found"),
        ("", "is empty: it must hold a JSON object"),
        (
            "{'company_domain': 'demo'}",
            "is not JSON: Expecting property name enclosed in double quotes at line 1, column 2",
        ),
        ("[1, 2]", "must hold a JSON object of settings (as sample_config.json), not an array"),
        ('"demo"', "must hold a JSON object of settings (as sample_config.json), not a string"),
    ],
)
def test_a_config_file_that_cannot_be_read_is_named_with_the_reason(tmp_path, content, message):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    config = CliConfig.from_paths((str(path),))
    assert config.errors == (f"config file '{path}' {message}",)


def test_config_files_merge_in_order_and_env_is_kept_for_later(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"company_domain": "a", "start_date": "2024-01-01"}))
    second.write_text(json.dumps({"company_domain": "b"}))
    config = CliConfig.from_paths((str(first), "ENV", str(second)))
    assert config.config == {"company_domain": "b", "start_date": "2024-01-01"}
    assert config.parse_env
    assert config.errors == ()
    assert config.paths == (str(first), "ENV", str(second))


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No TAP_PIPEDRIVE_* variable from the caller, and a current folder without a .env."""
    for name in [n for n in os.environ if n.startswith("TAP_PIPEDRIVE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_an_exported_variable_wins_over_the_dotenv_in_the_current_folder(clean_env, tmp_path):
    (tmp_path / ".env").write_text(
        "TAP_PIPEDRIVE_API_TOKEN=from-dotenv\nTAP_PIPEDRIVE_COMPANY_DOMAIN=dotenv-co\nOTHER_TOOL_SECRET=x\n"
    )
    clean_env.setenv("TAP_PIPEDRIVE_API_TOKEN", "exported")
    settings = environment_settings(settings_schema())
    assert settings == {"api_token": "exported", "company_domain": "dotenv-co"}
    assert "OTHER_TOOL_SECRET" not in os.environ  # only the tap's own variables are read


def test_the_dotenv_the_sdk_would_find_is_not_read(clean_env, tmp_path):
    """The SDK looks for .env upward from where it is installed: from .venv, the checkout's."""
    import singer_sdk.configuration._dict_config as sdk_env  # noqa: PLC0415

    checkout = tmp_path / "checkout.env"
    checkout.write_text("TAP_PIPEDRIVE_API_TOKEN=from-the-checkout\n")
    clean_env.setattr(sdk_env, "find_dotenv", lambda *_, **__: str(checkout))
    clean_env.setenv("TAP_PIPEDRIVE_API_TOKEN", "exported")
    assert environment_settings(settings_schema()) == {"api_token": "exported"}
    assert os.environ["TAP_PIPEDRIVE_API_TOKEN"] == "exported"


def test_a_dotenv_in_a_parent_folder_is_not_read(clean_env, tmp_path):
    (tmp_path / ".env").write_text("TAP_PIPEDRIVE_API_TOKEN=from-parent\n")
    (tmp_path / "sub").mkdir()
    clean_env.chdir(tmp_path / "sub")
    assert environment_settings(settings_schema()) == {}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TAP_PIPEDRIVE_MAX_RETRIES", "two", "'max_retries' must be a whole number"),
        ("TAP_PIPEDRIVE_OAUTH_WRITE_BACK", "ture", "'oauth_write_back' must be true or false"),
        ("TAP_PIPEDRIVE_CUSTOM_FIELD_NAMES", "{abc", "'custom_field_names' must be a JSON object"),
    ],
)
def test_a_variable_of_the_wrong_type_is_named(clean_env, variable, value, message):
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        environment_settings(settings_schema())
    assert str(raised.value) == f"{variable}: {message}"


def test_variables_get_their_settings_types(clean_env):
    clean_env.setenv("TAP_PIPEDRIVE_MAX_RETRIES", "2")
    clean_env.setenv("TAP_PIPEDRIVE_OAUTH_WRITE_BACK", "off")
    clean_env.setenv("TAP_PIPEDRIVE_CUSTOM_FIELD_NAMES", '{"abc": "deal_source"}')
    assert environment_settings(settings_schema()) == {
        "max_retries": 2,
        "oauth_write_back": False,
        "custom_field_names": {"abc": "deal_source"},
    }


# --- the state -------------------------------------------------------------------------------------


def test_the_tap_s_own_state_is_taken_as_it_is():
    state = {"bookmarks": {"deals": bookmark(), "pipelines": {}}}
    assert checked_state(state, SOURCE, now=NOW) == state


@pytest.mark.parametrize(
    "wrapped",
    [
        pytest.param(lambda s: {"type": "STATE", "value": s}, id="state-message"),
        pytest.param(lambda s: {"singer_state": s}, id="meltano-state-get"),
    ],
)
def test_a_state_in_a_wrapper_is_unwrapped(wrapped, caplog):
    state = {"bookmarks": {"deals": bookmark()}}
    with caplog.at_level(logging.INFO, "tap-pipedrive"):
        assert checked_state(wrapped(state), SOURCE, now=NOW) == state
    assert any("starting from its value" in r.getMessage() for r in caplog.records)


def test_a_bookmark_is_normalised_and_gets_its_replication_key():
    state = {"bookmarks": {"deals": {"replication_key_value": "2026-01-09T17:52:36+02:00"}}}
    assert checked_state(state, SOURCE, now=NOW) == {
        "bookmarks": {
            "deals": {"replication_key_value": "2026-01-09T15:52:36Z", "replication_key": "update_time"}
        }
    }


def test_keys_the_checks_do_not_know_are_left_alone():
    state = {
        "bookmarks": {
            "deals": bookmark(deleted_since="whatever", children={"x": 1}),
            "pipelines": {"y": [1]},
        },
        "currently_syncing": None,
    }
    assert checked_state(state, SOURCE, now=NOW) == state


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            {"bookmarks": {"deals": bookmark("not a date")}},
            (
                "the bookmark of 'deals' is not a time: replication_key_value 'not a date' "
                "(expected RFC 3339, e.g. 2025-01-31T10:20:00Z)"
            ),
        ),
        (
            {"bookmarks": {"persons": bookmark(12345)}},
            "the bookmark of 'persons' is not a time: replication_key_value 12345",
        ),
        (
            {"bookmarks": {"deals": bookmark("2026-13-45T00:00:00Z")}},
            "the bookmark of 'deals' is not a time: replication_key_value '2026-13-45T00:00:00Z'",
        ),
        (
            {"bookmarks": {"notes": bookmark("2099-01-01T00:00:00Z")}},
            "the bookmark of 'notes' is in the future: replication_key_value '2099-01-01T00:00:00Z'",
        ),
        (
            {"bookmarks": {"deals": bookmark(replication_key="add_time")}},
            "the bookmark of 'deals' is on 'add_time', not 'update_time'",
        ),
        ({"bookmarks": {"deals": bookmark(bookmark_ids="50")}}, "bookmark_ids must be a list of record ids"),
        ({"bookmarks": {"deals": ["2024"]}}, "the bookmark of 'deals' must be an object, not an array"),
        ({"bookmarks": ["deals"]}, "'bookmarks' must be an object of stream name → bookmark, not an array"),
        ([{"bookmarks": {}}], "must hold a JSON object (the value of the last STATE message"),
        ("2024-01-01", "must hold a JSON object"),
        ({"deals": bookmark()}, "has no 'bookmarks' object (it has deals): not this tap's state"),
        (
            {"bookmarks": {"deals": bookmark(), "persons": {"update_time": "2024-01-01T00:00:00+00:00"}}},
            "the bookmark of 'persons' is another tap's",
        ),
    ],
)
def test_a_wrong_state_is_refused_naming_the_stream_and_the_value(state, message):
    with pytest.raises(InputError) as raised:
        checked_state(state, SOURCE, now=NOW)
    assert str(raised.value).startswith(SOURCE)
    assert message in str(raised.value)


def test_every_wrong_bookmark_is_named_in_the_one_line():
    state = {"bookmarks": {"deals": bookmark("not a date"), "persons": bookmark(12345)}}
    with pytest.raises(InputError) as raised:
        checked_state(state, SOURCE, now=NOW)
    assert "'deals'" in str(raised.value)
    assert "'persons'" in str(raised.value)


def test_a_bookmark_of_a_full_table_stream_is_not_read_so_not_checked():
    state = {"bookmarks": {"pipelines": {"replication_key_value": "not a date"}}}
    assert checked_state(state, SOURCE, now=NOW) == state


def test_a_bookmark_a_few_hours_ahead_is_clock_skew_not_a_mistake():
    state = {"bookmarks": {"deals": bookmark("2026-01-15T20:00:00Z")}}
    assert checked_state(state, SOURCE, now=NOW) == state


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(
            {
                "currently_syncing": "deals",
                "bookmarks": {
                    "deals": {"update_time": "2024-01-01T00:00:00+00:00"},
                    "dealflow": {"update_time": "2024-01-01T00:00:00+00:00"},
                },
            },
            id="singer-io",
        ),
        pytest.param({"bookmarks": {"deals": "2024-01-01T00:00:00Z"}}, id="bare-values"),
    ],
)
def test_a_state_another_tap_wrote_is_ignored_with_a_warning(state, caplog):
    with caplog.at_level(logging.WARNING, "tap-pipedrive"):
        assert checked_state(state, SOURCE, now=NOW) == {}
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"{SOURCE} was written by another tap")
    assert "it is ignored" in warning


def test_a_bookmark_of_a_stream_the_tap_does_not_have_is_dropped_with_a_warning(caplog):
    state = {"bookmarks": {"deals": bookmark(), "dealz": "whatever"}}
    with caplog.at_level(logging.WARNING, "tap-pipedrive"):
        assert checked_state(state, SOURCE, now=NOW) == {"bookmarks": {"deals": bookmark()}}
    assert [r.getMessage() for r in caplog.records] == [
        f"{SOURCE}: tap-pipedrive has no stream 'dealz' (did you mean 'deals'?); its bookmark is ignored"
    ]


def test_the_state_given_is_not_changed():
    state = {"bookmarks": {"deals": {"replication_key_value": "2026-01-09 15:52:36"}, "dealz": {}}}
    before = json.dumps(state)
    checked_state(state, SOURCE, now=NOW)
    assert json.dumps(state) == before


# --- the catalog -----------------------------------------------------------------------------------


def entry(name: str, *, selected: bool | None = True) -> dict:
    metadata = {} if selected is None else {"selected": selected}
    return {
        "tap_stream_id": name,
        "stream": name,
        "schema": {},
        "metadata": [{"breadcrumb": [], "metadata": metadata}],
    }


CATALOG = "catalog file 'catalog.json'"


def test_a_catalog_selecting_a_stream_the_tap_does_not_have_is_warned_about(caplog):
    catalog = {"streams": [entry("deals"), entry("dealz"), entry("persns", selected=False)]}
    with caplog.at_level(logging.WARNING, "tap-pipedrive"):
        assert checked_catalog(catalog, CATALOG) is catalog
    assert [r.getMessage() for r in caplog.records] == [
        f"{CATALOG} selects 'dealz', which tap-pipedrive does not have (did you mean 'deals'?): it is skipped"
    ]


def test_a_catalog_that_selects_none_of_the_taps_streams_is_refused():
    with pytest.raises(InputError) as raised:
        checked_catalog({"streams": [entry("dealz"), entry("deals", selected=False)]}, CATALOG)
    assert str(raised.value) == f"{CATALOG} selects no stream of tap-pipedrive (only dealz)"


def test_a_catalog_that_selects_nothing_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, "tap-pipedrive"):
        checked_catalog({"streams": [entry("deals", selected=False)]}, CATALOG)
    assert [r.getMessage() for r in caplog.records] == [f"{CATALOG} selects no stream: nothing is synced"]


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        ([], "is not a Singer catalog: it must be a JSON object, not an array"),
        ({}, "is not a Singer catalog: it has no 'streams' list"),
        ({"streams": 5}, "is not a Singer catalog: it has 'streams' as a number"),
        ({"streams": [{"stream": "deals"}]}, "is not a Singer catalog: an entry has no 'tap_stream_id'"),
    ],
)
def test_a_file_that_is_not_a_catalog_is_refused(catalog, message):
    with pytest.raises(InputError) as raised:
        checked_catalog(catalog, CATALOG)
    assert str(raised.value).startswith(f"{CATALOG} {message}")
