"""The Pipedrive tap: its settings, its streams, and the wiring of the run's services.

The connection test lives in ``connection.py``, how a run ends in ``lifecycle.py``, secret
masking in ``redaction.py``; the streams in ``streams/``, HTTP in ``http/``.
"""

from __future__ import annotations

import functools
import logging
import typing as t

from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.tap_base import CliTestOptionValue
from typing_extensions import override

from tap_pipedrive import __version__, cli, connection, lifecycle
from tap_pipedrive.auth import token_store_for
from tap_pipedrive.cli import CliConfig
from tap_pipedrive.config_checks import coerce_numbers, config_errors, config_warnings, strip_settings
from tap_pipedrive.redaction import SecretRedactor
from tap_pipedrive.services import Services
from tap_pipedrive.settings import CONFIG_SCHEMA, SECRET_FIELDS, Settings
from tap_pipedrive.streams import STREAMS, field_endpoints, wire
from tap_pipedrive.writer import ChangedStateWriter, SingerWriter

if t.TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    import click
    from singer_sdk.streams import Stream

LOGGER = logging.getLogger("tap-pipedrive")


class TapPipedrive(Tap):
    """Singer tap for Pipedrive CRM, built with the Meltano Singer SDK."""

    name = "tap-pipedrive"
    plugin_version = __version__
    # Discovery reads the account's custom fields, so it needs (and validates) the config.
    dynamic_catalog = True
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = SingerWriter

    def __init__(self, *, config_paths: Sequence[str] = (), **kwargs: t.Any) -> None:  # noqa: ANN401
        """Set up the tap; ``config_paths`` are the ``--config`` arguments (for write-back).

        Secrets are masked in every log line from the config check on.
        """
        self.config_paths = tuple(config_paths)
        self.redactor = SecretRedactor()
        self._services: Services | None = None
        self._wired = False
        super().__init__(**kwargs)
        # the SDK's StateWriter deep-copies every STATE to compare it with the next one
        self._state_writer = ChangedStateWriter(self.message_writer)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check the config with messages that name the field and never echo a secret.

        Whitespace around tokens, ids and the domain is stripped first; unknown settings and a
        start_date in the future are warned about.
        """
        config = self._config
        self.redactor.add_source(lambda: [config.get(name) for name in SECRET_FIELDS])
        self.redactor.install(LOGGER, self.logger)
        strip_settings(config)
        coerce_numbers(config)
        known = self.config_jsonschema
        self.append_builtin_config(known)
        for warning in config_warnings(config, known["properties"]):
            LOGGER.warning("%s", warning)
        errors = config_errors(config)
        if errors:
            if raise_errors:
                raise ConfigValidationError("Config validation failed", errors=errors)
            return errors
        return [self.redactor.redact(e) for e in super()._validate_config(raise_errors=raise_errors)]

    @functools.cached_property
    def settings(self) -> Settings:
        """The connection's settings, normalised and typed."""
        return Settings.from_config(self.config)

    @property
    def services(self) -> Services:
        """The run's shared parts (client, field catalog, report), built on first use."""
        if self._services is None:
            store, hint = token_store_for(self.settings, self.config_paths)
            self._services = Services.build(
                self.settings, field_endpoints=field_endpoints(), token_store=store, write_back_hint=hint
            )
            self.redactor.add_source(self._services.secrets)
            self.redactor.install(LOGGER, self.logger)
        return self._services

    @property
    def built_services(self) -> Services | None:
        """The services if this run built them (a run that failed early has none)."""
        return self._services

    @override
    def discover_streams(self) -> list[Stream]:
        """Every stream of the registry (``streams/registry.py``)."""
        services = self.services
        services.fields.read_ahead()  # the schemas need every entity's field definitions
        return [definition.kind(self, definition, services) for definition in STREAMS]

    @property
    @override
    def streams(self) -> dict[str, Stream]:
        """The streams in the registry's order (live before archived), wired to each other."""
        streams = super().streams
        if not self._wired:
            self._wired = True
            wire(streams)
        return streams

    # --- the command line -------------------------------------------------------------------

    @override
    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> CliConfig:
        """Read the config files, keeping their paths (a rotated refresh token is written back).

        What is wrong with a file is reported by the mode that runs (``--test`` still answers).
        """
        return CliConfig.from_paths(value)

    @override
    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command line, with help texts that say what the options do here."""
        return cli.describe_options(super().get_singer_command())

    @override
    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``: ``connection available`` or ``Connection unavailable``; ``=schema``: the schemas."""
        if value == CliTestOptionValue.Disabled.value:
            return
        connection.run_test(cls, ctx, schemas=value == CliTestOptionValue.Schema.value)

    @override
    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """``--discover``: the catalog on stdout, the connection check on stderr."""
        if value:
            connection.run_discover(cls, ctx)

    @override
    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: CliConfig | None = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """Run a sync; end with a one-line error and a documented exit code on failure."""
        if about:
            cls.print_about(about_format)
            return
        lifecycle.run(cls, config=config, state=state, catalog=catalog)

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """On SIGTERM/SIGINT: stop where STATE covers what was written; exit 128 + signal."""
        if self._services is None:
            lifecycle.on_signal(self, signum)  # nothing read yet: stop at once
        self._services.stop.request(signum)


if __name__ == "__main__":
    TapPipedrive.cli()
