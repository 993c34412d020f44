"""Checking a config, with messages that name the field and never echo its value.

jsonschema alone would do the type checks, but its messages print the failing value (a
secret, for ``api_token``) and say nothing of the auth scheme; :func:`config_errors` runs
before it. :func:`strip_settings` runs before both (a token pasted with its line break works),
and :func:`config_warnings` names what is probably a mistake but does not stop a run.
"""

from __future__ import annotations

import ipaddress
import re
import typing as t
from datetime import datetime, timezone
from urllib.parse import urlparse

from tap_pipedrive.errors import did_you_mean, one_line
from tap_pipedrive.settings import SCHEME_FIELDS, AuthScheme, normalize_domain

if t.TYPE_CHECKING:
    from collections.abc import Collection

#: Number settings: environment variables give them as strings, which the SDK leaves as is.
_NUMBER_FIELDS = ("request_timeout", "retry_initial_delay", "detect_deletes_every_hours")
_STRING_FIELDS = (
    "connection_name",
    "company_domain",
    "api_token",
    "client_id",
    "client_secret",
    "refresh_token",
    "start_date",
    "api_url",
    "oauth_token_url",
    "user_agent",
)
#: String settings whose surrounding whitespace can only be an accident of copying (a token
#: pasted with its line break, ``"Basic "``): :func:`strip_settings` removes it.
_STRIPPED_FIELDS = (*_STRING_FIELDS, "auth_scheme", "custom_fields_mode")
#: Credentials: whitespace *inside* one cannot be meant either, and would break the header.
_CREDENTIAL_FIELDS = ("api_token", "client_id", "client_secret", "refresh_token")
_INNER_SPACE = re.compile(r"\s")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine (localhost, 127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable base URL (https, or http to loopback), or None."""
    parsed = urlparse(value.strip())
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        return "must be an absolute http(s) URL"
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        return "must not carry credentials, a query or a fragment"
    if parsed.scheme != "https" and not is_loopback(parsed.hostname):
        return "must use https unless the host is loopback"
    return None


def parse_start_date(value: str) -> datetime | None:
    """Parse an ISO 8601 date or date-time, or return None."""
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


def strip_settings(config: dict[str, t.Any]) -> None:
    """Strip the whitespace around every string setting where it cannot be meant (in place)."""
    for name in _STRIPPED_FIELDS:
        value = config.get(name)
        if isinstance(value, str):
            config[name] = value.strip()


def coerce_numbers(config: dict[str, t.Any]) -> None:
    """Turn number settings given as strings (``TAP_PIPEDRIVE_REQUEST_TIMEOUT=30``) into numbers."""
    for name in _NUMBER_FIELDS:
        value = config.get(name)
        if isinstance(value, str):
            try:
                config[name] = float(value)
            except ValueError:
                continue  # the schema check reports it


def _scheme_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    scheme = config.get("auth_scheme")
    if scheme is None:
        scheme = AuthScheme.BASIC.value
    if scheme not in {s.value for s in AuthScheme}:
        return [f"config: 'auth_scheme' must be one of Basic, OAuth (got {str(scheme)[:20]!r})"]
    return [
        f"config: '{name}' is required when auth_scheme is {scheme}"
        for name in SCHEME_FIELDS[AuthScheme(scheme)]
        if not config.get(name)
    ]


def _domain_errors(domain: object) -> list[str]:
    if not domain:
        return ["config: 'company_domain' is required (e.g. 'acme' for acme.pipedrive.com)"]
    if isinstance(domain, str) and normalize_domain(domain) is None:
        message = (
            "config: 'company_domain' must be your Pipedrive subdomain, e.g. 'acme' or "
            f"'acme.pipedrive.com' (got {domain[:60]!r})"
        )
        return [message]
    return []


def _pin_errors(pins: object) -> list[str]:
    if pins is None:
        return []
    if not isinstance(pins, dict) or not all(isinstance(v, str) and v for v in pins.values()):
        return ["config: 'custom_field_names' must map field codes to column names"]
    if len(set(pins.values())) != len(pins):
        return ["config: 'custom_field_names' gives two fields the same column name"]
    return []


def _inner_space_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    errors = [
        f"config: '{name}' has a space or line break inside; check how it was pasted"
        for name in _CREDENTIAL_FIELDS
        if isinstance(config.get(name), str) and _INNER_SPACE.search(config[name])
    ]
    agent = config.get("user_agent")
    if isinstance(agent, str) and _CONTROL.search(agent):
        errors.append("config: 'user_agent' must be one line of text")
    return errors


def config_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Every problem with ``config``, one message each, naming the field (never its value)."""
    errors = [
        f"config: '{name}' must be a string"
        for name in _STRING_FIELDS
        if config.get(name) is not None and not isinstance(config[name], str)
    ]
    errors += _scheme_errors(config)
    errors += _inner_space_errors(config)
    errors += _domain_errors(config.get("company_domain"))
    for name in ("api_url", "oauth_token_url"):
        value = config.get(name)
        if isinstance(value, str) and (problem := url_problem(value)):
            errors.append(f"config: '{name}' {problem}")
    errors += _pin_errors(config.get("custom_field_names"))
    start = config.get("start_date")
    if isinstance(start, str) and parse_start_date(start) is None:
        errors.append("config: 'start_date' must be an ISO 8601 date-time, e.g. 2024-01-01T00:00:00Z")
    return errors


def config_warnings(
    config: t.Mapping[str, t.Any], known: Collection[str], now: datetime | None = None
) -> list[str]:
    """What is probably a mistake but does not stop a run: unknown settings, a future start_date."""
    warnings = [
        f"config: unknown setting '{one_line(str(name), 60)}' is ignored{did_you_mean(str(name), known)}"
        for name in config
        if name not in known
    ]
    start = config.get("start_date")
    moment = parse_start_date(start) if isinstance(start, str) else None
    if isinstance(start, str) and moment is not None:
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        if moment > (now or datetime.now(timezone.utc)):
            warnings.append(
                f"config: 'start_date' {one_line(start, 40)} is in the future: no record is that new yet"
            )
    return warnings
