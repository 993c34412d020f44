"""Secret redaction: the last line of defence between a secret and a log line or a message."""

from __future__ import annotations

import logging
import typing as t

from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: Shorter strings are not worth masking (they would mask ordinary words).
MIN_SECRET_LENGTH = 4


class SecretRedactor(logging.Filter):
    """Replaces a connection's secrets with ``***`` in every log line it filters.

    Its sources are asked on every record, so tokens issued during the run (OAuth access
    tokens, a rotated refresh token) are masked as soon as they exist.
    """

    def __init__(self) -> None:
        """Start with no secrets; :meth:`add_source` adds where they come from."""
        super().__init__()
        self._sources: list[Callable[[], Iterable[str | None]]] = []

    def add_source(self, source: Callable[[], Iterable[str | None]]) -> None:
        """Mask whatever ``source()`` returns from now on."""
        self._sources.append(source)

    @property
    def secrets(self) -> list[str]:
        """The secret values now in use."""
        return [
            s
            for source in self._sources
            for s in source()
            if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH
        ]

    def redact(self, text: str, secrets: list[str] | None = None) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self.secrets if secrets is None else secrets:
            text = text.replace(secret, "***")
        return text

    @override
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

    def install(self, *loggers: logging.Logger) -> None:
        """Filter every handler of the root logger and of ``loggers`` (once each)."""
        for handler in (*logging.getLogger().handlers, *(h for lg in loggers for h in lg.handlers)):
            if self not in handler.filters:
                handler.addFilter(self)
