"""The Pipedrive tap: settings, streams, the connection test and how a run ends."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import typing as t
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.singerlib import StateMessage
from singer_sdk.tap_base import CliTestOptionValue

from tap_pipedrive import custom_fields
from tap_pipedrive import settings as cfg
from tap_pipedrive.auth import PipedriveAuthenticator, RefreshTokenStore
from tap_pipedrive.client import PipedriveAPI
from tap_pipedrive.errors import (
    EXIT_SIGNAL_BASE,
    ConfigError,
    PipedriveError,
    StreamUnavailableError,
    one_line,
)
from tap_pipedrive.streams import STREAM_TYPES

if t.TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.streams import Stream

try:
    __version__ = version("tap-pipedrive")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

LOGGER = logging.getLogger("tap-pipedrive")

#: Where each entity's field definitions are read: (API version, path, paging).
FIELD_ENDPOINTS = {
    "deal": ("v2", "/dealFields", "cursor"),
    "person": ("v2", "/personFields", "cursor"),
    "organization": ("v2", "/organizationFields", "cursor"),
    "product": ("v2", "/productFields", "cursor"),
    "activity": ("v2", "/activityFields", "cursor"),
    "note": ("v1", "/noteFields", "none"),
}


class _RedactSecrets(logging.Filter):
    """Replaces the connection's secrets in every log line (a last line of defence).

    ``secrets`` is asked on every record, so tokens issued during the run (OAuth access
    tokens, a rotated refresh token) are masked too.
    """

    def __init__(self, secrets: t.Callable[[], t.Iterable[str | None]]) -> None:
        super().__init__()
        self._secrets = secrets

    @property
    def secrets(self) -> list[str]:
        """The secret values now in use (short strings are not worth masking)."""
        return [s for s in self._secrets() if isinstance(s, str) and len(s) >= 4]  # noqa: PLR2004

    def redact(self, text: str, secrets: list[str] | None = None) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self.secrets if secrets is None else secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the message; drop an exception whose text holds one."""
        secrets = self.secrets
        text = record.getMessage()
        if any(s in text for s in secrets):
            record.msg, record.args = self.redact(text, secrets), None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = str(record.exc_info[1])
            if any(s in exc_text for s in secrets):
                record.exc_info = None
                record.exc_text = None
        return True


class TapPipedrive(Tap):
    """Singer tap for Pipedrive CRM, built with the Meltano Singer SDK."""

    name = "tap-pipedrive"
    plugin_version = __version__
    # Discovery reads the account's custom fields, so it needs (and validates) the config.
    dynamic_catalog = True

    config_jsonschema = th.PropertiesList(
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
            allowed_values=list(cfg.AUTH_SCHEMES),
            default=cfg.BASIC,
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
            default=cfg.DEFAULT_TOKEN_URL,
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
            "custom_fields_mode",
            th.StringType,
            allowed_values=[custom_fields.NAMED, custom_fields.RAW],
            default=custom_fields.NAMED,
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
            "user_agent",
            th.StringType,
            title="User agent",
            description=f"HTTP User-Agent. Default `tap-pipedrive/{__version__}`.",
        ),
    ).to_dict()
    config_jsonschema["allOf"] = [  # noqa: RUF012 - extends the class's schema dict once
        {
            "if": {
                "properties": {"auth_scheme": {"const": cfg.OAUTH}},
                "required": ["auth_scheme"],
            },
            "then": {"required": list(cfg.SCHEME_FIELDS[cfg.OAUTH])},
            "else": {"required": list(cfg.SCHEME_FIELDS[cfg.BASIC])},
        }
    ]

    #: The config file paths given on the command line (for refresh-token write-back).
    config_paths: t.ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:  # noqa: ANN401
        """Set up the tap; secrets are masked in every log line from here on."""
        self._redactor = _RedactSecrets(self._secret_values)
        self.skipped_streams: dict[str, str] = {}
        self.custom_field_warnings: set[str] = set()
        self._started = time.monotonic()
        super().__init__(*args, **kwargs)

    # --- settings -------------------------------------------------------------------------

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check the config with messages that name the field and never echo a secret."""
        config = self._config
        self._install_redactor()
        cfg.coerce_numbers(config)
        errors = cfg.config_errors(config)
        if errors:
            if raise_errors:
                raise ConfigValidationError("Config validation failed", errors=errors)
            return errors
        return [self.redact(e) for e in super()._validate_config(raise_errors=raise_errors)]

    def _secret_values(self) -> list[str | None]:
        """Every secret of this connection: the config's and the tokens issued so far."""
        config = getattr(self, "_config", None) or {}
        values = [config.get(name) for name in cfg.SECRET_FIELDS]
        auth = self.__dict__.get("authenticator")
        if auth is not None:
            values += [auth.access_token, auth.refresh_token]
        return values

    def _install_redactor(self) -> None:
        for handler in (*logging.getLogger().handlers, *LOGGER.handlers, *self.logger.handlers):
            if self._redactor not in handler.filters:
                handler.addFilter(self._redactor)

    def redact(self, text: str) -> str:
        """``text`` with this connection's secrets replaced by ``***``."""
        return self._redactor.redact(text)

    @functools.cached_property
    def settings(self) -> cfg.Settings:
        """The normalised connection settings."""
        return cfg.Settings.from_config(dict(self.config))

    @functools.cached_property
    def authenticator(self) -> PipedriveAuthenticator:
        """The run's one authenticator, shared by every stream."""
        store, hint = self._token_store()
        return PipedriveAuthenticator(
            auth_scheme=self.settings.auth_scheme,
            api_token=self.config.get("api_token"),
            client_id=self.config.get("client_id"),
            client_secret=self.config.get("client_secret"),
            refresh_token=self.config.get("refresh_token"),
            token_url=self.settings.oauth_token_url,
            timeout=float(self.config.get("request_timeout", 300)),
            user_agent=self.user_agent,
            token_store=store,
            write_back_hint=hint,
        )

    @property
    def user_agent(self) -> str:
        """The HTTP User-Agent."""
        return self.config.get("user_agent") or f"tap-pipedrive/{__version__}"

    def _token_store(self) -> tuple[RefreshTokenStore | None, str]:
        """Where a rotated refresh token can be written back, or why it cannot."""
        if not self.config.get("oauth_write_back", True):
            return None, "oauth_write_back is false"
        paths = [p for p in type(self).config_paths if p != "ENV"]
        if "ENV" in type(self).config_paths:
            return None, "the config came (partly) from environment variables"
        if len(paths) != 1:
            return None, "the config did not come from a single JSON file"
        path = Path(paths[0])
        if ".meltano" in path.parts:
            return None, "the config came from Meltano"
        return RefreshTokenStore(path, expected=self.config.get("refresh_token")), ""

    @functools.cached_property
    def api(self) -> PipedriveAPI:
        """The run's one HTTP client, shared by every stream."""
        self._install_redactor()
        return PipedriveAPI(
            base_url=self._resolve_base_url,
            authenticator=self.authenticator,
            user_agent=self.user_agent,
            timeout=float(self.config.get("request_timeout", 300)),
            max_retries=int(self.config.get("max_retries", 5)),
            retry_initial_delay=float(self.config.get("retry_initial_delay", 1.0)),
            max_tokens_per_run=self.config.get("max_tokens_per_run"),
        )

    def _resolve_base_url(self) -> str:
        if self.settings.api_url:
            return self.settings.api_url
        if self.authenticator.is_oauth:
            self.authenticator.ensure_token()
            domain = self.authenticator.api_domain
            if domain:
                if problem := cfg.url_problem(domain):
                    msg = f"the api_domain Pipedrive's OAuth server returned {problem}"
                    raise ConfigError(msg)
                return domain
        return self.settings.default_api_url

    # --- custom fields --------------------------------------------------------------------

    @property
    def custom_fields_mode(self) -> str:
        """``named`` or ``raw``."""
        return self.config.get("custom_fields_mode") or custom_fields.NAMED

    @property
    def custom_field_pins(self) -> dict[str, str]:
        """Pinned column names (field code → column)."""
        return dict(self.config.get("custom_field_names") or {})

    def field_definitions(self, entity: str) -> list[dict]:
        """An entity's field definitions, read once per run (one request per entity)."""
        cache = self.__dict__.setdefault("_field_definitions", {})
        if entity not in cache:
            version, path, paging = FIELD_ENDPOINTS[entity]
            records: list[dict] = []
            try:
                for page in self.api.pages(
                    version, path, {}, paging=paging, page_size=500, stream=f"{entity}_fields"
                ):
                    records.extend(page)
            except StreamUnavailableError as exc:
                self.logger.warning(
                    "Cannot read the %s fields, so their custom fields stay raw: %s", entity, exc
                )
            cache[entity] = records
        return cache[entity]

    def custom_fields(self, entity: str) -> list[custom_fields.CustomField]:
        """The custom fields of an entity, in Pipedrive's order."""
        definitions = self.field_definitions(entity)
        if FIELD_ENDPOINTS[entity][0] == "v1":
            return [
                custom_fields.CustomField.from_v1(d)
                for d in definitions
                if d.get("edit_flag") and d.get("key")
            ]
        return [custom_fields.CustomField.from_v2(d) for d in definitions if d.get("is_custom_field")]

    # --- streams --------------------------------------------------------------------------

    def discover_streams(self) -> list[Stream]:
        """Every Pipedrive stream (see ``streams.py`` for the table)."""
        return [stream_type(self) for stream_type in STREAM_TYPES]

    @property
    def streams(self) -> dict[str, Stream]:
        """The streams, with ``deal_products`` fed by archived deals as well as live ones."""
        streams = super().streams
        products = streams.get("deal_products")
        archived = streams.get("archived_deals")
        if products is not None and archived is not None and products not in archived.child_streams:
            archived.child_streams.append(products)
        return streams

    # --- the connection test --------------------------------------------------------------

    def check_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (``GET /api/v1/users/me``, 2 tokens)."""
        api = self.api
        retries, api.max_retries = api.max_retries, min(api.max_retries, 1)  # answer quickly
        try:
            api.get("v1", "/users/me", stream="connection test")
        except PipedriveError as exc:
            return False, self.redact(str(exc))
        finally:
            api.max_retries = retries
        return True, ""

    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> _ConfigInput:
        """Remember the config paths (a rotated refresh token is written back to the file)."""
        cls.config_paths = tuple(str(v) for v in value or ())
        return super().cb_config(ctx, param, value)

    @classmethod
    def _connection_label(cls, config: _ConfigInput) -> str:
        """The connection's name for a reason line, even when its config is invalid."""
        conf = dict(config.config)
        if config.parse_env:
            for key in ("connection_name", "company_domain"):
                if value := os.environ.get(f"TAP_PIPEDRIVE_{key.upper()}"):
                    conf[key] = value
        name = conf.get("connection_name")
        if isinstance(name, str) and name.strip():
            return one_line(name.strip(), 60)
        domain = conf.get("company_domain")
        if isinstance(domain, str) and domain.strip():
            return one_line(cfg.normalize_domain(domain) or domain.strip(), 60)
        return "tap-pipedrive"

    @classmethod
    def _build_checked(cls, ctx: click.Context) -> tuple[TapPipedrive | None, str]:
        """Build the tap for --test/--discover; return it or the reason it could not be."""
        config: _ConfigInput = ctx.params.get("config", _ConfigInput())
        try:
            tap = cls(
                config=config.config,
                parse_env_config=config.parse_env,
                validate_config=True,
                setup_mapper=False,
            )
        except ConfigValidationError as exc:
            return None, "; ".join(str(e) for e in exc.errors) or str(exc)
        return tap, ""

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``: print ``connection available`` or ``Connection unavailable``."""
        if value == CliTestOptionValue.Disabled.value:
            return
        if value == CliTestOptionValue.Schema.value:
            super().cb_test(ctx, param, value)
            return
        # The test's output is its verdict (and one reason line): keep the logs quiet unless
        # the user asked for a log level. Warnings that need action (a rotated refresh token
        # that could not be saved) still show; retry notes do not.
        if not (os.environ.get("TAP_PIPEDRIVE_LOGLEVEL") or os.environ.get("LOGLEVEL")):
            for name in ("", "tap-pipedrive"):
                logging.getLogger(name).setLevel(logging.WARNING)
            logging.getLogger("tap-pipedrive.http").setLevel(logging.ERROR)
        tap, reason = cls._build_checked(ctx)
        label = (
            tap.settings.connection_name
            if tap
            else cls._connection_label(ctx.params.get("config", _ConfigInput()))
        )
        if tap is not None:
            ok, reason = tap.check_connection()
            if ok:
                click.echo("connection available")
                ctx.exit(0)
        click.echo(f"{label}: {reason}", err=True)
        click.echo("Connection unavailable")
        ctx.exit(1)

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:  # noqa: ARG003, FBT001
        """``--discover``: check the config and the connection (on stderr), print the catalog."""
        if not value:
            return
        tap, reason = cls._build_checked(ctx)
        if tap is not None:
            ok, reason = tap.check_connection()
        if tap is None or not ok:
            label = (
                tap.settings.connection_name
                if tap
                else cls._connection_label(ctx.params.get("config", _ConfigInput()))
            )
            cls.logger.error("Connection unavailable: %s: %s", label, reason)
            ctx.exit(1)
        cls.logger.info("connection available")
        try:
            tap.run_discovery()
        except PipedriveError as exc:
            cls.logger.error("Discovery failed: %s", tap.redact(str(exc)))  # noqa: TRY400
            ctx.exit(exc.exit_code)
        ctx.exit()

    # --- a run, and how it ends -----------------------------------------------------------

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """Run a sync; end with a one-line error and a documented exit code on failure."""
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        tap = None
        try:
            tap = cls(
                config=config.config,
                state=None if state is None else json.loads(state.read()),
                catalog=None if catalog is None else json.loads(catalog.read()),
                parse_env_config=config.parse_env,
                validate_config=True,
            )
            tap.sync_all()
        except ConfigValidationError:
            raise  # the SDK reports each error and exits 1
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, PipedriveError)
                else PipedriveError(f"unexpected {type(exc).__name__}: {exc}")
            )
            if tap is None:
                cls.logger.error("%s", error)  # noqa: TRY400
                cls.logger.debug("Traceback of the failure", exc_info=exc)
                sys.exit(error.exit_code)
            tap.end_run(error, exc)
        tap.end_run(None)

    def end_run(self, error: PipedriveError | None, cause: BaseException | None = None) -> t.NoReturn:
        """Write the final STATE and the run summary, then exit with the right code."""
        self.write_final_state()
        self.log_summary()
        if error is None:
            sys.exit(0)
        self.logger.debug("Traceback of the failure", exc_info=cause or error)
        self.logger.error("%s: %s", self.settings.connection_name, self.redact(str(error)))
        sys.exit(error.exit_code)

    def write_final_state(self) -> None:
        """Write STATE as the last message, even if an equal one was written before.

        (The SDK's writer skips a STATE equal to the last one, but after a stop the final
        message must be a STATE whatever came in between.)
        """
        self.write_message(StateMessage(value=self.state))

    def log_summary(self) -> None:
        """One summary on stderr: per stream the records, requests, tokens, retries, time."""
        api = self.__dict__.get("api")
        if api is None:
            return
        totals = [0, 0, 0, 0]
        lines = []
        for name, s in sorted(api.stats.items()):
            totals = [
                totals[0] + s.records,
                totals[1] + s.requests,
                totals[2] + s.tokens,
                totals[3] + s.retries,
            ]
            skipped = f" (skipped: {self.skipped_streams[name]})" if name in self.skipped_streams else ""
            lines.append(
                f"  {name}: {s.records} records, {s.requests} requests, {s.tokens} tokens, "
                f"{s.retries} retries, {s.seconds:.1f}s{skipped}"
            )
        self.logger.info(
            "Run summary: %d records, %d requests, %d API tokens, %d retries, %.1fs "
            "(%.1fs waiting for the burst limit)\n%s",
            *totals,
            time.monotonic() - self._started,
            api.limiter.waited_seconds,
            "\n".join(lines),
        )

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        """On SIGTERM/SIGINT: final STATE (covering what was written), summary, non-zero exit."""
        self.write_final_state()
        self.logger.warning("Stopped by signal %d; the final STATE covers every record written", signum)
        self.log_summary()
        sys.exit(EXIT_SIGNAL_BASE + signum)


if __name__ == "__main__":
    TapPipedrive.cli()
