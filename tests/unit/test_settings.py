"""The settings in-process: each wrong config gets one message naming the field, never its
value; a checked config becomes typed settings with the schema's defaults."""

from __future__ import annotations

import pytest

from tap_pipedrive.config_checks import coerce_numbers, config_errors
from tap_pipedrive.settings import CONFIG_SCHEMA, AuthScheme, CustomFieldsMode, Settings, normalize_domain
from tests.contract.test_config import CASES
from tests.helpers import CANARY_API_TOKEN


@pytest.mark.parametrize(("config", "message"), CASES)
def test_each_wrong_config_gets_one_message_naming_the_field(config, message):
    errors = config_errors(config)
    assert [e for e in errors if message in e], errors
    assert all(e.startswith("config: '") for e in errors)
    for secret in ("12345678", CANARY_API_TOKEN):
        assert not [e for e in errors if secret in e]


def test_a_good_config_has_no_errors_and_gets_the_schemas_defaults():
    config = {"company_domain": "https://ACME.pipedrive.com/", "api_token": CANARY_API_TOKEN}
    assert config_errors(config) == []
    settings = Settings.from_config(config)
    defaults = {k: v.get("default") for k, v in CONFIG_SCHEMA["properties"].items()}
    assert settings.company_domain == normalize_domain(config["company_domain"]) == "acme"
    assert settings.connection_name == "acme"
    assert settings.auth_scheme is AuthScheme.BASIC
    assert settings.request_timeout == defaults["request_timeout"] == 300
    assert settings.max_retries == defaults["max_retries"] == 5
    assert settings.retry_initial_delay == defaults["retry_initial_delay"]
    assert settings.custom_fields_mode is CustomFieldsMode.NAMED
    assert settings.oauth_token_url == defaults["oauth_token_url"]
    assert settings.default_api_url == "https://acme.pipedrive.com"
    assert settings.user_agent.startswith("tap-pipedrive/")


def test_settings_never_show_a_secret_in_their_repr():
    settings = Settings.from_config({"company_domain": "acme", "api_token": CANARY_API_TOKEN})
    assert CANARY_API_TOKEN not in repr(settings)
    assert settings.secrets() == [CANARY_API_TOKEN]


def test_number_settings_from_environment_strings_become_numbers():
    config = {"request_timeout": "30", "retry_initial_delay": "0.5", "max_retries": "junk"}
    coerce_numbers(config)
    assert config == {"request_timeout": 30.0, "retry_initial_delay": 0.5, "max_retries": "junk"}


def test_the_schema_requires_each_schemes_fields():
    (rule,) = CONFIG_SCHEMA["allOf"]
    assert rule["then"]["required"] == ["client_id", "client_secret", "refresh_token"]
    assert rule["else"]["required"] == ["api_token"]
