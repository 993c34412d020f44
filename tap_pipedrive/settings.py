"""The connection's settings: the config schema (each default once), and typed values.

:class:`Settings` reads a config that ``config_checks.config_errors`` accepted; the schema's
defaults fill what the config leaves out.
"""

from __future__ import annotations

import enum
import re
import typing as t
from dataclasses import dataclass, field

from singer_sdk import typing as th

from tap_pipedrive import __version__


class AuthScheme(str, enum.Enum):
    """How a connection authenticates."""

    BASIC = "Basic"
    OAUTH = "OAuth"


class CustomFieldsMode(str, enum.Enum):
    """How custom fields arrive."""

    NAMED = "named"
    RAW = "raw"


#: The settings each scheme requires.
SCHEME_FIELDS: dict[AuthScheme, tuple[str, ...]] = {
    AuthScheme.BASIC: ("api_token",),
    AuthScheme.OAUTH: ("client_id", "client_secret", "refresh_token"),
}
SECRET_FIELDS = ("api_token", "client_secret", "refresh_token")
DEFAULT_TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - a URL, not a secret
DEFAULT_USER_AGENT = f"tap-pipedrive/{__version__}"


def _scheme_rule() -> dict[str, t.Any]:
    """The per-scheme requirements, as JSON Schema (for ``--about`` and Meltano Hub)."""
    return {
        "if": {
            "properties": {"auth_scheme": {"const": AuthScheme.OAUTH.value}},
            "required": ["auth_scheme"],
        },
        "then": {"required": list(SCHEME_FIELDS[AuthScheme.OAUTH])},
        "else": {"required": list(SCHEME_FIELDS[AuthScheme.BASIC])},
    }


CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "connection_name",
        th.StringType,
        title="Connection name",
        description="Label of this connection in logs and in the connection-test reason "
        "line. Default: the company domain.",
    ),
    th.Property(
        "auth_scheme",
        th.StringType,
        title="Auth scheme",
        allowed_values=[s.value for s in AuthScheme],
        default=AuthScheme.BASIC.value,
        description="`Basic`: company domain + API token. `OAuth`: company domain + "
        "client id + client secret + refresh token.",
    ),
    th.Property(
        "company_domain",
        th.StringType,
        required=True,
        title="Company domain",
        description="Your Pipedrive subdomain: `acme` for acme.pipedrive.com "
        "(`acme.pipedrive.com` and `https://acme.pipedrive.com/` are accepted too).",
        examples=["acme"],
    ),
    th.Property(
        "api_token",
        th.StringType,
        secret=True,
        title="API token",
        description="Your personal API token (Basic). Required when auth_scheme is Basic.",
    ),
    th.Property(
        "client_id",
        th.StringType,
        title="OAuth client id",
        description="The OAuth app's client id. Required when auth_scheme is OAuth.",
    ),
    th.Property(
        "client_secret",
        th.StringType,
        secret=True,
        title="OAuth client secret",
        description="The OAuth app's client secret. Required when auth_scheme is OAuth.",
    ),
    th.Property(
        "refresh_token",
        th.StringType,
        secret=True,
        title="OAuth refresh token",
        description="The OAuth refresh token. Required when auth_scheme is OAuth. If "
        "Pipedrive rotates it, the tap writes the new one back into the config file it "
        "was given (see oauth_write_back).",
    ),
    th.Property(
        "oauth_write_back",
        th.BooleanType,
        default=True,
        title="Write back rotated refresh tokens",
        description="When Pipedrive returns a new refresh token, write it back into the "
        "single JSON config file passed with --config (atomically, other keys kept).",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description="The earliest update_time to extract. Default: all history.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        title="API base URL",
        description="Override of the API base, for proxies and tests. Default "
        "`https://{company_domain}.pipedrive.com` (with OAuth, the api_domain the token "
        "endpoint returns). Must be https unless the host is loopback.",
    ),
    th.Property(
        "oauth_token_url",
        th.StringType,
        default=DEFAULT_TOKEN_URL,
        title="OAuth token URL",
        description="Pipedrive's OAuth token endpoint. Must be https unless the host is loopback.",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(minimum=1),
        default=300,
        title="Request timeout",
        description="Seconds to wait for each HTTP request.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0, maximum=20),
        default=5,
        title="Max retries",
        description="How often a request that failed transiently (5xx, timeout, cut "
        "connection, broken body) is retried, with exponential backoff and jitter.",
    ),
    th.Property(
        "retry_initial_delay",
        th.NumberType(minimum=0),
        default=1.0,
        title="Initial retry delay",
        description="Seconds before the first retry; the delay doubles each retry "
        "(capped at 60 s) with full jitter.",
    ),
    th.Property(
        "max_tokens_per_run",
        th.IntegerType(minimum=1),
        title="Max API tokens per run",
        description="Stop cleanly (exit code 3, resumable) before this run would spend "
        "more of the company's daily API token budget than this.",
    ),
    th.Property(
        "max_parallel_requests",
        th.IntegerType(minimum=1, maximum=32),
        default=8,
        title="Max parallel requests",
        description="How many requests to Pipedrive may be in flight at once (reading the next "
        "pages, the next streams and the children ahead of writing them), always within the "
        "burst limit Pipedrive announces. 1 reads one request at a time.",
    ),
    th.Property(
        "detect_deletes",
        th.BooleanType,
        default=True,
        title="Detect deletes",
        description="Find the persons, organizations, activities, products, notes and files "
        "deleted in Pipedrive (which its lists do not show) and the deal products removed "
        "from deals, and emit each once with `_sdc_deleted_at` (see detect_deletes_every_hours).",
    ),
    th.Property(
        "detect_deletes_every_hours",
        th.NumberType(minimum=0),
        default=24,
        title="Detect deletes every … hours",
        description="How often to list the ids of those entities to find the deleted ones "
        "(each pass costs one list request per 500 records); 0 = every run. Rows missing from "
        "a full-table stream's latest read are flagged on every run (no extra cost).",
    ),
    th.Property(
        "custom_fields_mode",
        th.StringType,
        allowed_values=[m.value for m in CustomFieldsMode],
        default=CustomFieldsMode.NAMED.value,
        title="Custom fields mode",
        description="`named`: each custom field is a typed column named after the field "
        "(`Deal source` → `deal_source`), option fields carry labels and ids. `raw`: "
        "Pipedrive's form (hash keys, option ids), for joins on the *_fields streams.",
    ),
    th.Property(
        "custom_field_names",
        th.ObjectType(additional_properties=th.StringType),
        title="Custom field column names",
        description="Pins column names: an object of Pipedrive field code → column name, "
        'e.g. `{"dcf558aac1ae4e8c4f849ba5e668430d8df9be12": "deal_source"}`. A pinned '
        "column keeps its name when the field is renamed in Pipedrive.",
    ),
    th.Property(
        "include_company_id",
        th.BooleanType,
        default=False,
        title="Include company id",
        description="Add `company_id` (the Pipedrive company account's id, from /users/me) to "
        "every record of every stream and to each stream's primary key, so several companies "
        "can load into the same tables without overwriting each other's rows.",
    ),
    th.Property(
        "progress_interval",
        th.NumberType(minimum=0),
        default=30,
        title="Progress interval",
        description="Seconds between progress lines on stderr (per active stream: records, "
        "requests, tokens, records a second); a run that ends sooner logs only its summary. "
        "0 = no progress lines.",
    ),
    th.Property(
        "user_agent",
        th.StringType,
        title="User agent",
        description=f"HTTP User-Agent. Default `{DEFAULT_USER_AGENT}`.",
    ),
).to_dict()
CONFIG_SCHEMA["allOf"] = [_scheme_rule()]

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


@dataclass(frozen=True)
class Settings:
    """The connection's settings, normalised and typed (built from a checked config)."""

    connection_name: str
    auth_scheme: AuthScheme
    company_domain: str
    api_url: str | None
    oauth_token_url: str
    oauth_write_back: bool
    request_timeout: float
    max_retries: int
    retry_initial_delay: float
    max_tokens_per_run: int | None
    max_parallel_requests: int
    detect_deletes: bool
    detect_deletes_every_hours: float
    custom_fields_mode: CustomFieldsMode
    custom_field_names: t.Mapping[str, str]
    user_agent: str
    include_company_id: bool = False
    progress_interval: float = 30.0
    api_token: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Settings:
        """Normalise a config that :func:`config_errors` accepted (defaults filled in)."""
        domain = normalize_domain(config["company_domain"]) or ""  # checked: never empty
        defaults = {name: spec.get("default") for name, spec in CONFIG_SCHEMA["properties"].items()}

        def get(name: str) -> t.Any:  # noqa: ANN401 - one setting, whatever its type
            value = config.get(name)
            return defaults[name] if value is None else value

        return cls(
            connection_name=(config.get("connection_name") or "").strip() or domain,
            auth_scheme=AuthScheme(get("auth_scheme")),
            company_domain=domain,
            api_url=config["api_url"].strip().rstrip("/") if config.get("api_url") else None,
            oauth_token_url=str(get("oauth_token_url")).strip(),
            oauth_write_back=bool(get("oauth_write_back")),
            request_timeout=float(get("request_timeout")),
            max_retries=int(get("max_retries")),
            retry_initial_delay=float(get("retry_initial_delay")),
            max_tokens_per_run=get("max_tokens_per_run"),
            max_parallel_requests=int(get("max_parallel_requests")),
            detect_deletes=bool(get("detect_deletes")),
            detect_deletes_every_hours=float(get("detect_deletes_every_hours")),
            custom_fields_mode=CustomFieldsMode(get("custom_fields_mode")),
            custom_field_names=dict(get("custom_field_names") or {}),
            user_agent=config.get("user_agent") or DEFAULT_USER_AGENT,
            include_company_id=bool(get("include_company_id")),
            progress_interval=float(get("progress_interval")),
            api_token=config.get("api_token"),
            client_id=config.get("client_id"),
            client_secret=config.get("client_secret"),
            refresh_token=config.get("refresh_token"),
        )

    @property
    def is_oauth(self) -> bool:
        """Whether this connection uses OAuth."""
        return self.auth_scheme is AuthScheme.OAUTH

    @property
    def default_api_url(self) -> str:
        """``https://{company_domain}.pipedrive.com``."""
        return f"https://{self.company_domain}.pipedrive.com"

    def secrets(self) -> list[str]:
        """The secret values of this connection's config."""
        return [s for s in (self.api_token, self.client_secret, self.refresh_token) if s]
