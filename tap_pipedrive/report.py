"""What a run did: per stream the records, requests, tokens, retries and time; what it skipped."""

from __future__ import annotations

import threading
import time
import typing as t
from collections import Counter, defaultdict
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    import logging


@dataclass
class StreamStats:
    """What one stream cost."""

    records: int = 0
    requests: int = 0
    tokens: int = 0
    retries: int = 0
    seconds: float = 0.0


@dataclass
class RunReport:
    """The run's figures, filled in by the client and the streams, read by the summary."""

    stats: defaultdict[str, StreamStats] = field(default_factory=lambda: defaultdict(StreamStats))
    #: stream → why it was skipped
    skipped: dict[str, str] = field(default_factory=dict)
    #: stream → how many records vanished from its list without being deleted (hidden)
    hidden: Counter[str] = field(default_factory=Counter)
    #: custom-field codes already warned about (one warning per field per run)
    warned_fields: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def skip(self, stream: str, reason: str) -> None:
        """Note that ``stream`` was skipped, and why."""
        self.skipped[stream] = reason

    def summary(self, waited_seconds: float) -> str:
        """The run summary: totals on the first line, then one line per stream."""
        totals = [0, 0, 0, 0]
        lines = []
        for name, s in sorted(self.stats.items()):
            totals = [
                totals[0] + s.records,
                totals[1] + s.requests,
                totals[2] + s.tokens,
                totals[3] + s.retries,
            ]
            skipped = f" (skipped: {self.skipped[name]})" if name in self.skipped else ""
            hidden = f", {self.hidden[name]} hidden (not deleted)" if self.hidden[name] else ""
            lines.append(
                f"  {name}: {s.records} records, {s.requests} requests, {s.tokens} tokens, "
                f"{s.retries} retries, {s.seconds:.1f}s{hidden}{skipped}"
            )
        head = (
            f"Run summary: {totals[0]} records, {totals[1]} requests, {totals[2]} API tokens, "
            f"{totals[3]} retries, {time.monotonic() - self.started:.1f}s "
            f"({waited_seconds:.1f}s waiting for the burst limit)"
        )
        return "\n".join([head, *lines])


class Progress:
    """Every ``interval`` seconds, one line on stderr per stream active since the last line.

    A daemon thread reads the report's counters (plain integers the run keeps up to date); a
    run that ends within the first interval logs nothing extra.
    """

    def __init__(self, report: RunReport, interval: float, logger: logging.Logger) -> None:
        """Nothing runs until :meth:`start`."""
        self.report = report
        self.interval = interval
        self.logger = logger
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tap-pipedrive-progress", daemon=True)
        self._last: dict[str, tuple[int, int]] = {}
        self._last_at = time.monotonic()

    def start(self) -> Progress:
        """Start the lines (none with an interval of 0)."""
        if self.interval > 0:
            self._last_at = time.monotonic()
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the lines (the run summary follows)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            for line in self.lines():
                self.logger.info("%s", line)

    def lines(self) -> list[str]:
        """The progress lines of the streams that read or wrote since the last call."""
        now = time.monotonic()
        elapsed = max(now - self._last_at, 1e-9)
        self._last_at = now
        lines = []
        for name, s in sorted(dict(self.report.stats).items()):
            records, requests = s.records, s.requests
            before = self._last.get(name, (0, 0))
            self._last[name] = (records, requests)
            if (records, requests) == before:
                continue
            rate = (records - before[0]) / elapsed
            lines.append(
                f"Progress: {name}: {records} records, {requests} requests, {s.tokens} tokens, "
                f"{rate:.0f} records/s"
            )
        return lines
