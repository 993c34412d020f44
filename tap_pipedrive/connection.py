"""The connection-test contract, for ``--test`` and ``--discover``.

``--test`` prints ``connection available`` or ``Connection unavailable`` (with one reason
line on stderr); ``--test=schema`` makes the same check, then prints the SCHEMA messages
instead of the verdict; ``--discover`` checks the connection on stderr only, so that stdout
is nothing but the catalog.
"""

from __future__ import annotations

import logging
import os
import typing as t

import click

from tap_pipedrive.cli import CliConfig, build_tap, connection_label
from tap_pipedrive.errors import EXIT_ERROR, ConfigError, PipedriveError

if t.TYPE_CHECKING:
    from tap_pipedrive.tap import TapPipedrive

#: The cheapest authenticated call: ``GET /api/v1/users/me`` costs 2 tokens.
CHECK_ENDPOINT = "/users/me"


def connection_error(tap: TapPipedrive) -> PipedriveError | None:
    """One cheap authenticated call; the error it ended in, or None."""
    client = tap.services.client
    retries, client.max_retries = client.max_retries, min(client.max_retries, 1)  # answer quickly
    try:
        client.get("v1", CHECK_ENDPOINT, stream="connection test")
    except PipedriveError as exc:
        return exc
    finally:
        client.max_retries = retries
    return None


def check_connection(tap: TapPipedrive) -> tuple[bool, str]:
    """One cheap authenticated call; ``(True, "")`` or ``(False, reason)``."""
    error = connection_error(tap)
    return (True, "") if error is None else (False, tap.redactor.redact(str(error)))


def _checked(
    tap_class: type[TapPipedrive], ctx: click.Context
) -> tuple[TapPipedrive | None, str, str, int]:
    """Build the tap and check its connection: ``(tap or None, reason, label, exit code)``.

    The exit code is the error's: a spent daily budget is 3 (retry after the reset), so an
    orchestrator does not take it for bad credentials (``--discover`` runs before each sync).
    """
    config: CliConfig = ctx.params.get("config") or CliConfig()
    try:
        tap = build_tap(tap_class, config, setup_mapper=False)
    except ConfigError as exc:
        return None, str(exc), connection_label(config), EXIT_ERROR
    error = connection_error(tap)
    if error is None:
        return tap, "", tap.settings.connection_name, 0
    return None, tap.redactor.redact(str(error)), tap.settings.connection_name, error.exit_code


def run_test(tap_class: type[TapPipedrive], ctx: click.Context, *, schemas: bool = False) -> t.NoReturn:
    """``--test``: print the verdict on stdout and, when it fails, one reason line on stderr.

    With ``schemas`` (``--test=schema``) a passed check prints the SCHEMA messages instead of
    the verdict: they hold the account's custom fields, so they need the connection too.
    """
    # The test's output is its verdict (and one reason line): keep the logs quiet unless
    # the user asked for a log level. Warnings that need action (a rotated refresh token
    # that could not be saved, an unknown setting) still show; retry notes do not.
    if not (os.environ.get("TAP_PIPEDRIVE_LOGLEVEL") or os.environ.get("LOGLEVEL")):
        for name in ("", "tap-pipedrive"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("tap-pipedrive.http").setLevel(logging.ERROR)
    tap, reason, label, _ = _checked(tap_class, ctx)  # --test keeps its 0/1 contract
    if tap is not None and schemas:
        try:
            tap.setup_mapper()  # builds the streams: reads the custom fields
        except PipedriveError as exc:
            reason = tap.redactor.redact(str(exc))
            tap = None
        else:
            tap.write_schemas()
            ctx.exit(0)
    if tap is not None:
        click.echo("connection available")
        ctx.exit(0)
    click.echo(f"{label}: {reason}", err=True)
    click.echo("Connection unavailable")
    ctx.exit(1)


def run_discover(tap_class: type[TapPipedrive], ctx: click.Context) -> t.NoReturn:
    """``--discover``: check the config and the connection (on stderr), print the catalog."""
    tap, reason, label, code = _checked(tap_class, ctx)
    if tap is None:
        tap_class.logger.error("Connection unavailable: %s: %s", label, reason)
        ctx.exit(code)
    tap_class.logger.info("connection available")
    try:
        tap.run_discovery()
    except PipedriveError as exc:
        tap_class.logger.error("Discovery failed: %s", tap.redactor.redact(str(exc)))  # noqa: TRY400
        ctx.exit(exc.exit_code)
    ctx.exit()
