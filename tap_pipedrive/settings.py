"""Checking and normalising the connection's settings, with messages that name the field.

jsonschema alone would do the type checks, but its messages print the failing value (a
secret, for ``api_token``) and say nothing of the auth scheme; these checks come first.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse

BASIC = "Basic"
OAUTH = "OAuth"
AUTH_SCHEMES = (BASIC, OAUTH)
SCHEME_FIELDS = {
    BASIC: ("api_token",),
    OAUTH: ("client_id", "client_secret", "refresh_token"),
}
SECRET_FIELDS = ("api_token", "client_secret", "refresh_token")
DEFAULT_TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - a URL, not a secret

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_domain(value: str) -> str | None:
    """``acme``, ``acme.pipedrive.com`` or ``https://acme.pipedrive.com/`` → ``acme``.

    Returns None for anything that is not one valid subdomain label of pipedrive.com, so no
    other host can be injected into the API URL.
    """
    text = value.strip().lower()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    text = text.rstrip("/")
    text = text.removesuffix(".pipedrive.com")
    return text if _LABEL.match(text) else None


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


#: Number settings: environment variables give them as strings, which the SDK leaves as is.
NUMBER_FIELDS = ("request_timeout", "retry_initial_delay")


def coerce_numbers(config: dict) -> None:
    """Turn number settings given as strings (``TAP_PIPEDRIVE_REQUEST_TIMEOUT=30``) into numbers."""
    for name in NUMBER_FIELDS:
        value = config.get(name)
        if isinstance(value, str):
            try:
                config[name] = float(value)
            except ValueError:
                continue  # the schema check reports it


def config_errors(config: dict) -> list[str]:  # noqa: C901
    """Every problem with ``config``, one message each, naming the field (never its value)."""
    string_fields = (
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
    errors = [
        f"config: '{name}' must be a string"
        for name in string_fields
        if config.get(name) is not None and not isinstance(config[name], str)
    ]
    scheme = config.get("auth_scheme", BASIC)
    if scheme is None:
        scheme = BASIC
    if scheme not in AUTH_SCHEMES:
        errors.append(f"config: 'auth_scheme' must be one of Basic, OAuth (got {str(scheme)[:20]!r})")
    else:
        errors.extend(
            f"config: '{name}' is required when auth_scheme is {scheme}"
            for name in SCHEME_FIELDS[scheme]
            if not config.get(name)
        )
    domain = config.get("company_domain")
    if not domain:
        errors.append("config: 'company_domain' is required (e.g. 'acme' for acme.pipedrive.com)")
    elif isinstance(domain, str) and normalize_domain(domain) is None:
        errors.append(
            "config: 'company_domain' must be your Pipedrive subdomain, e.g. 'acme' or "
            f"'acme.pipedrive.com' (got {domain[:60]!r})"
        )
    for name in ("api_url", "oauth_token_url"):
        value = config.get(name)
        if isinstance(value, str) and (problem := url_problem(value)):
            errors.append(f"config: '{name}' {problem}")
    pins = config.get("custom_field_names")
    if pins is not None:
        if not isinstance(pins, dict) or not all(isinstance(v, str) and v for v in pins.values()):
            errors.append("config: 'custom_field_names' must map field codes to column names")
        elif len(set(pins.values())) != len(pins):
            errors.append("config: 'custom_field_names' gives two fields the same column name")
    start = config.get("start_date")
    if isinstance(start, str) and parse_start_date(start) is None:
        errors.append("config: 'start_date' must be an ISO 8601 date-time, e.g. 2024-01-01T00:00:00Z")
    return errors


@dataclass(frozen=True)
class Settings:
    """The connection's settings, normalised."""

    connection_name: str
    auth_scheme: str
    company_domain: str
    api_url: str | None
    oauth_token_url: str

    @classmethod
    def from_config(cls, config: dict) -> Settings:
        """Normalise a config that :func:`config_errors` accepted."""
        domain = normalize_domain(config["company_domain"]) or ""
        return cls(
            connection_name=(config.get("connection_name") or "").strip() or domain,
            auth_scheme=config.get("auth_scheme") or BASIC,
            company_domain=domain,
            api_url=config["api_url"].strip().rstrip("/") if config.get("api_url") else None,
            oauth_token_url=(config.get("oauth_token_url") or DEFAULT_TOKEN_URL).strip(),
        )

    @property
    def default_api_url(self) -> str:
        """``https://{company_domain}.pipedrive.com``."""
        return f"https://{self.company_domain}.pipedrive.com"
