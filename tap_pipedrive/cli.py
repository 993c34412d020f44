"""What the command line gives the tap: its config (files and ``ENV``), state and catalog.

Every wrong input ends in one line that names the file, the setting or the variable, and
never shows a value that could be a secret. A ``--config`` file is read when click parses
the options (its problems are kept, and reported by whichever mode runs, so that ``--test``
still answers ``Connection unavailable``); ``ENV`` is read when the tap is built, after the
mode has set up its logging.

``ENV`` reads ``TAP_PIPEDRIVE_<SETTING>`` from the environment and from a ``.env`` file in
the current folder; an exported variable wins over the ``.env``. (The SDK's own ``ENV``
looks for ``.env`` upward from where it is installed and lets it override exported
variables: a project's ``.env``, such as the one ``meltano config set`` writes, would then
override what the user exported.) This module is the one user of the SDK's private
``_ConfigInput`` and ``parse_environment_config``; ``tests/unit/test_sdk_seams.py`` pins them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing as t
from decimal import Decimal
from pathlib import Path

import click
from dotenv import dotenv_values
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.plugin_base import _ConfigInput

from tap_pipedrive import catalog_checks, state_checks
from tap_pipedrive.errors import ConfigError, InputError, PipedriveError, json_kind, one_line
from tap_pipedrive.settings import normalize_domain

if t.TYPE_CHECKING:
    from tap_pipedrive.tap import TapPipedrive

ENV_PREFIX = "TAP_PIPEDRIVE_"
#: How ``ENV`` spells the boolean values it accepts (the SDK's true values, and their opposites).
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")
#: The ``--help`` of the options whose SDK wording does not say what they do here.
HELP = {
    "config": "A JSON config file, or ENV for TAP_PIPEDRIVE_<SETTING> variables (exported, or in "
    "./.env; exported ones win). Repeatable: later files override earlier ones, ENV overrides files.",
    "discover": "Print the catalog (reads the account's custom fields: needs the connection).",
    "test": "Check the connection with one cheap request: prints 'connection available' (exit 0) or "
    "'Connection unavailable' with the reason on stderr (exit 1). --test=schema prints the SCHEMA "
    "messages instead (after the same check: the schemas hold the account's custom fields).",
    "catalog": "A catalog file (as --discover prints it) that selects the streams to sync.",
    "state": "A state file: the value of the last STATE message of an earlier run (a whole STATE "
    "message and Meltano's {\"singer_state\": ...} are accepted too).",
}


@dataclasses.dataclass
class CliConfig(_ConfigInput):
    """The SDK's config input, plus the ``--config`` arguments and what was wrong with them."""

    #: the ``--config`` arguments, ``ENV`` included (for refresh-token write-back)
    paths: tuple[str, ...] = ()
    #: one line per file that could not be read (reported when the tap is built)
    errors: tuple[str, ...] = ()

    @classmethod
    def from_paths(cls, paths: tuple[str, ...]) -> CliConfig:
        """Read the ``--config`` files in order (later ones win); ``ENV`` is read later."""
        config: dict[str, t.Any] = {}
        errors = []
        for path in paths:
            if path == "ENV":
                continue
            try:
                config |= read_config_file(path)
            except ConfigError as exc:
                errors.append(str(exc))
        paths = tuple(map(str, paths))
        return cls(config=config, parse_env="ENV" in paths, paths=paths, errors=tuple(errors))


def read_config_file(path: str) -> dict[str, t.Any]:
    """The settings in one JSON config file; ConfigError names the file and what is wrong."""
    source = f"config file '{path}'"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source} was not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{source} cannot be read: {exc.strerror or type(exc).__name__}") from None
    value = parse_json(text, source, ConfigError)
    if not isinstance(value, dict):
        kind = json_kind(value)
        raise ConfigError(f"{source} must hold a JSON object of settings (as sample_config.json), not {kind}")
    return value


def parse_json(text: str, source: str, error: type[PipedriveError]) -> object:
    """``text`` as JSON (numbers with a fraction as Decimal, as the SDK reads them), or ``error``."""
    if not text.strip():
        raise error(f"{source} is empty: it must hold a JSON object")
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:  # its message names the place, never the text
        raise error(f"{source} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def read_input(file: t.IO[str], what: str) -> tuple[object, str]:
    """The JSON in a ``--state`` or ``--catalog`` file, and the file's name for messages."""
    source = f"{what} file '{getattr(file, 'name', '-')}'"
    try:
        text = file.read()
    except UnicodeDecodeError:
        raise InputError(f"{source} is not UTF-8 text") from None
    return parse_json(text, source, InputError), source


def read_state(file: t.IO[str] | None) -> dict[str, t.Any] | None:
    """The checked ``--state`` (see ``state_checks``), or None without one."""
    if file is None:
        return None
    value, source = read_input(file, "state")
    return state_checks.checked_state(value, source)


def read_catalog(file: t.IO[str] | None) -> dict[str, t.Any] | None:
    """The checked ``--catalog`` (see ``catalog_checks``), or None without one."""
    if file is None:
        return None
    value, source = read_input(file, "catalog")
    return catalog_checks.checked_catalog(value, source)


def environment_settings(schema: t.Mapping[str, t.Any], dotenv: Path | None = None) -> dict[str, t.Any]:
    """The settings ``ENV`` gives: ``TAP_PIPEDRIVE_*`` variables, exported or in ``./.env``.

    Raises:
        ConfigError: naming each variable whose value is not of its setting's type.
    """
    dotenv = Path(".env") if dotenv is None else dotenv
    if dotenv.is_file():
        for name, value in dotenv_values(dotenv).items():
            if name.startswith(ENV_PREFIX) and value is not None:
                os.environ.setdefault(name, value)  # an exported variable wins
    settings: dict[str, t.Any] = {}
    errors = []
    for name, prop in schema.get("properties", {}).items():
        variable = ENV_PREFIX + name.upper().replace("-", "_")
        types = _types(prop)
        if "boolean" in types and os.environ.get(variable, "").lower() not in (*_TRUE, *_FALSE):
            errors.append(f"{variable}: '{name}' must be true or false")
            continue
        try:
            # The SDK's conversions (integer, boolean, JSON for objects and arrays), one setting
            # at a time so that a wrong one can be named. Its own .env lookup is given an empty
            # file (os.devnull): the .env was read above, without overriding exported variables.
            one = {"properties": {name: prop}}
            settings |= parse_environment_config(one, ENV_PREFIX, dotenv_path=os.devnull)
        except ValueError:  # int("two"), or not JSON
            kind = _KIND_WORDS.get((*types, "")[0], "valid")
            errors.append(f"{variable}: '{name}' must be {kind}")
    if errors:
        raise ConfigError("; ".join(errors))
    return settings


_KIND_WORDS = {"integer": "a whole number", "object": "a JSON object", "array": "a JSON array"}


def _types(prop: t.Mapping[str, t.Any]) -> list[str]:
    """The JSON-schema types of a setting, ``null`` left out."""
    kind = prop.get("type", [])
    return [k for k in ([kind] if isinstance(kind, str) else kind) if k != "null"]


def build_tap(tap_class: type[TapPipedrive], config: CliConfig, **kwargs: t.Any) -> TapPipedrive:  # noqa: ANN401
    """The tap for the command line's config (``kwargs`` go to the tap).

    Raises:
        ConfigError: one line naming each wrong file, variable or setting.
    """
    if config.errors:
        raise ConfigError("; ".join(config.errors))
    settings = dict(config.config)
    if config.parse_env:
        schema = tap_class.config_jsonschema
        tap_class.append_builtin_config(schema)
        settings |= environment_settings(schema)
    try:
        return tap_class(
            config=settings, config_paths=config.paths, parse_env_config=False, validate_config=True, **kwargs
        )
    except ConfigValidationError as exc:
        raise ConfigError("; ".join(exc.errors) or str(exc)) from None


def connection_label(config: CliConfig) -> str:
    """The connection's name for an error line, even when its config is invalid."""
    conf = dict(config.config)
    if config.parse_env:
        for key in ("connection_name", "company_domain"):
            if value := os.environ.get(f"{ENV_PREFIX}{key.upper()}"):
                conf[key] = value
    name = conf.get("connection_name")
    if isinstance(name, str) and name.strip():
        return one_line(name.strip(), 60)
    domain = conf.get("company_domain")
    if isinstance(domain, str) and domain.strip():
        return one_line(normalize_domain(domain) or domain.strip(), 60)
    return "tap-pipedrive"


def describe_options(command: click.Command) -> click.Command:
    """Give the options whose SDK help does not say what they do here this tap's words."""
    command.help = (
        "Extract Pipedrive CRM data: Singer messages on stdout, the log on stderr. See the "
        "README for a first run against the fake Pipedrive."
    )
    for param in command.params:
        if isinstance(param, click.Option) and param.name in HELP:
            param.help = HELP[param.name]
            if param.name == "test":
                param.metavar = "[=schema]"  # the value is optional: --test, or --test=schema
    return command
