"""How a run ends: a final STATE, the run summary, one error line and a documented exit code.

Whatever stops a run (it completes, fails, runs out of budget, or gets SIGTERM/SIGINT), the
last Singer message is a STATE that covers exactly the records written, so the next run
resumes without loss. Exit codes: 0 done, 1 error, 3 budget spent (resumable), 128 + signal.
"""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.singerlib import StateMessage

from tap_pipedrive.cli import CliConfig, build_tap, connection_label, read_catalog, read_state
from tap_pipedrive.errors import EXIT_SIGNAL_BASE, PipedriveError, StoppedBySignalError
from tap_pipedrive.report import Progress

if t.TYPE_CHECKING:
    from tap_pipedrive.tap import TapPipedrive


def run(
    tap_class: type[TapPipedrive],
    *,
    config: CliConfig | None,
    state: t.IO[str] | None,
    catalog: t.IO[str] | None,
) -> t.NoReturn:
    """Build the tap, sync every selected stream, and end the run (see :func:`end_run`).

    The config, the state and the catalog are checked before the first request; what is
    wrong with them ends the run in one line that names the file, setting or stream.
    """
    tap_class.print_version(print_fn=tap_class.logger.info)
    config = config or CliConfig()
    tap = None
    try:
        tap = build_tap(tap_class, config, state=read_state(state), catalog=read_catalog(catalog))
        sync(tap)
    except Exception as exc:  # every failure ends in one line and an exit code
        error = exc if isinstance(exc, PipedriveError) else unexpected(exc)
        if tap is None:
            tap_class.logger.debug("Traceback of the failure", exc_info=exc)
            stopped = isinstance(error, StoppedBySignalError)
            log = tap_class.logger.warning if stopped else tap_class.logger.error
            log("%s: %s", connection_label(config), error)
            sys.exit(error.exit_code)
        end_run(tap, error, exc)
    end_run(tap, None)


def sync(tap: TapPipedrive) -> None:
    """Sync the selected streams in order, each reading the next ones' first pages ahead."""
    services = tap.services
    fetcher = services.fetcher
    fetcher.ahead_of_streams = True
    progress = Progress(services.report, services.settings.progress_interval, tap.logger).start()
    try:
        tap.sync_all()
    finally:
        progress.stop()
        unused = fetcher.close()
        if unused:
            tap.logger.debug("%d list(s) read ahead were not needed", unused)


def unexpected(exc: BaseException) -> PipedriveError:
    """A failure the tap did not foresee, as one line: ``unexpected <Type>: <message>``."""
    return PipedriveError(f"unexpected {type(exc).__name__}: {exc}")


def end_run(
    tap: TapPipedrive, error: PipedriveError | None, cause: BaseException | None = None
) -> t.NoReturn:
    """Write the final STATE and the run summary, then exit with the right code."""
    write_final_state(tap)
    log_summary(tap)
    if error is None:
        sys.exit(0)
    if isinstance(error, StoppedBySignalError):
        tap.logger.warning("Stopped by signal %d; the final STATE covers every record written", error.signum)
        sys.exit(error.exit_code)
    tap.logger.debug("Traceback of the failure", exc_info=cause or error)
    tap.logger.error("%s: %s", tap.settings.connection_name, tap.redactor.redact(str(error)))
    sys.exit(error.exit_code)


def on_signal(tap: TapPipedrive, signum: int) -> t.NoReturn:
    """On SIGTERM/SIGINT: final STATE (covering what was written), summary, non-zero exit."""
    write_final_state(tap)
    tap.logger.warning("Stopped by signal %d; the final STATE covers every record written", signum)
    log_summary(tap)
    sys.exit(EXIT_SIGNAL_BASE + signum)


def write_final_state(tap: TapPipedrive) -> None:
    """Write STATE as the last message, even if an equal one was written before.

    (The SDK's writer skips a STATE equal to the last one, but after a stop the final
    message must be a STATE whatever came in between.)
    """
    tap.write_message(StateMessage(value=tap.state))


def log_summary(tap: TapPipedrive) -> None:
    """One summary on stderr: per stream the records, requests, tokens, retries, time."""
    services = tap.built_services
    if services is not None:
        tap.logger.info("%s", services.report.summary(services.client.limiter.waited_seconds))
