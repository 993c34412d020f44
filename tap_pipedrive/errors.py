"""The tap's error types: each carries a one-line message that is safe to show a user.

Messages never contain a secret, a URL with a query string or a response body of HTML.
The exit code tells an orchestrator what happened (see the README's "Exit codes").
"""

from __future__ import annotations

import difflib
import typing as t
from decimal import Decimal

if t.TYPE_CHECKING:
    from collections.abc import Iterable

EXIT_ERROR = 1
EXIT_BUDGET = 3
EXIT_SIGNAL_BASE = 128

MAX_MESSAGE = 300


def is_unreachable(exc: BaseException) -> bool:
    """Whether a connection error means the host was not reached at all (DNS, refused).

    Not reached, as opposed to an established connection that was cut.
    """
    text = repr(exc)
    return any(
        marker in text
        for marker in ("NameResolution", "Failed to resolve", "Connection refused", "NewConnectionError")
    )


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """Fold ``text`` to a single line of at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'start_date'?)`` for the known name closest to ``word``, or ``""``."""
    matches = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def json_kind(value: object) -> str:
    """What a JSON value is, for a message that must not show the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class PipedriveError(Exception):
    """A failure the tap reports in one line and exits on."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        """Keep a single safe line."""
        super().__init__(one_line(message))


class ConfigError(PipedriveError):
    """The config is wrong; the message names the field (or the file, or the variable)."""


class InputError(PipedriveError):
    """A ``--state`` or ``--catalog`` file is wrong; the message names the file and what in it."""


class AuthError(PipedriveError):
    """Pipedrive (or its OAuth server) rejected the credentials."""


class ConnectError(PipedriveError):
    """Pipedrive could not be reached at all."""


class BlockedError(PipedriveError):
    """Pipedrive's firewall (Cloudflare) is blocking this integration."""


class APIError(PipedriveError):
    """Pipedrive answered with an error that retrying will not fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        """Remember the HTTP status for callers that branch on it."""
        super().__init__(message)
        self.status = status


class StreamUnavailableError(APIError):
    """A 402/403/404/410: this endpoint (or this parent) is not available to the account."""


class TransientError(PipedriveError):
    """A fault that is worth retrying (5xx, timeouts, cut connections, broken bodies)."""


class BudgetExhaustedError(PipedriveError):
    """The daily token budget, or the run's ``max_tokens_per_run``, is spent.

    The run stops cleanly: a final STATE covers every record written, so the next run
    resumes where this one stopped.
    """

    exit_code = EXIT_BUDGET


class StoppedBySignalError(PipedriveError):
    """SIGTERM or SIGINT: the run stops at the next point where STATE covers what was written."""

    def __init__(self, signum: int) -> None:
        """Remember the signal; the exit code is 128 + its number."""
        super().__init__(f"stopped by signal {signum}; the final STATE covers every record written")
        self.signum = signum
        self.exit_code = EXIT_SIGNAL_BASE + signum
