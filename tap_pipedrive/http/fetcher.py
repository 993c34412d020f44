"""Requests in parallel, under the run's one rate limiter and token budget; results in order.

The streams still write one ordered Singer stream on the main thread. What runs ahead is
only the reading: the next pages of the list being written, the first pages of the streams
that come next, the children of a page of deals, the field definitions, the parents queued
for a per-parent stream. Nothing read ahead reaches STATE before it is written, so a stop
loses nothing: what was read and not written is read again next time.

``max_parallel_requests`` caps how many requests are in flight at once (the client holds a
slot per request); 1 reads everything on the main thread, one request at a time.
"""

from __future__ import annotations

import collections
import queue
import threading
import typing as t
from concurrent.futures import Future

if t.TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Iterator

    from tap_pipedrive.http.client import PipedriveClient
    from tap_pipedrive.http.paging import ListRequest, PagingKind, Record
    from tap_pipedrive.stopping import StopSignal

T = t.TypeVar("T")
R = t.TypeVar("R")
Page = list["Record"]

#: Pages of one list read ahead of the writer (bounded: memory stays flat).
PAGES_AHEAD = 2
#: How often a blocked thread looks whether the run is stopping.
POLL_SECONDS = 0.2
_DONE = object()


def request_key(request: ListRequest, kind: PagingKind) -> Hashable:
    """What makes two list reads the same read."""
    params = tuple(sorted((k, str(v)) for k, v in request.params.items()))
    return (request.version, request.path, params, request.page_size, kind)


class ReadAhead:
    """One list, read page by page by a background thread, at most ``lookahead`` pages ahead.

    The first page is read at once; page *n* is read once the reader has asked for page
    *n* - ``lookahead``. A list the reader may stop early (newest first, down to a bookmark)
    is read with ``lookahead`` 0: no page the reader does not ask for, no token wasted.
    """

    def __init__(
        self, client: PipedriveClient, request: ListRequest, kind: PagingKind, lookahead: int
    ) -> None:
        """Start reading at once."""
        self._client = client
        self._lookahead = lookahead
        self._buffer: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._turn = threading.Condition()
        self._asked = 0  # pages the reader has asked for
        self._cancelled = False
        self._thread = threading.Thread(
            target=self._run, args=(request, kind), name=f"read-ahead {request.what}", daemon=True
        )
        self._thread.start()

    def _run(self, request: ListRequest, kind: PagingKind) -> None:
        try:
            pages = self._client.pages(request, kind)
            fetched = 0
            while self._may_read(fetched):
                page = next(pages, _DONE)
                self._buffer.put(page)
                if page is _DONE:
                    return
                fetched += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
            self._buffer.put(exc)

    def _may_read(self, fetched: int) -> bool:
        """Wait until page ``fetched`` may be read; False once the reader is gone.

        Near the end of ``max_tokens_per_run`` only the pages the reader asked for are read.
        """
        with self._turn:
            while not self._cancelled and fetched >= self._allowed():
                self._turn.wait(POLL_SECONDS)
            return not self._cancelled

    def _allowed(self) -> int:
        if self._client.budget.nearly_spent():
            return self._asked
        return max(1, self._asked + self._lookahead)

    def pages(self, stop: StopSignal) -> Iterator[Page]:
        """The pages, in order, as they arrive (a stop while waiting stops at once)."""
        try:
            while True:
                with self._turn:
                    self._asked += 1
                    self._turn.notify()
                with stop.interruptible():
                    item = self._buffer.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield t.cast("Page", item)
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop reading (a page being read is finished, then dropped)."""
        with self._turn:
            self._cancelled = True
            self._turn.notify()


class Workers:
    """Daemon threads that run tasks and stay for the next one.

    Each thread keeps its HTTP session (``PipedriveClient.session``), so a request per parent
    reuses a kept-alive connection instead of opening one, with a thread and a session, per
    request. A task finding every thread busy starts another; daemon threads never hold up
    the end of a run.
    """

    def __init__(self) -> None:
        """No thread yet."""
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self.started = 0

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on an idle thread (or a new one)."""
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self.started += 1
                threading.Thread(target=self._serve, name=f"fetch-{self.started}", daemon=True).start()
        self._tasks.put(task)

    def _serve(self) -> None:
        while True:
            self._tasks.get()()
            with self._lock:
                self._idle += 1


class Fetcher:
    """Reads lists and runs requests ahead of the writer, at most ``parallel`` at once."""

    def __init__(self, client: PipedriveClient, stop: StopSignal, parallel: int) -> None:
        """Nothing is read until asked for."""
        self._client = client
        self._stop = stop
        self.parallel = max(1, parallel)
        self._ahead: dict[Hashable, ReadAhead] = {}
        self._lock = threading.Lock()
        self._workers = Workers()
        #: whether a stream starts reading the next streams' lists (only in a whole run)
        self.ahead_of_streams = False

    @property
    def parallel_enabled(self) -> bool:
        """Whether anything runs ahead at all (not near the end of ``max_tokens_per_run``)."""
        return self.parallel > 1 and not self._client.budget.nearly_spent()

    def read_ahead(self, request: ListRequest, kind: PagingKind, lookahead: int = PAGES_AHEAD) -> None:
        """Start reading ``request``'s list now, for :meth:`pages` to hand over later."""
        if not self.parallel_enabled:
            return
        key = request_key(request, kind)
        with self._lock:
            if key not in self._ahead:
                self._ahead[key] = ReadAhead(self._client, request, kind, lookahead)

    def pages(self, request: ListRequest, kind: PagingKind, lookahead: int = PAGES_AHEAD) -> Iterator[Page]:
        """The pages of ``request``'s list, read ahead of the writer.

        The next page is read while this one is written; with ``parallel`` 1, everything is
        read on this thread, one request at a time.
        """
        with self._lock:
            reader = self._ahead.pop(request_key(request, kind), None)
        if reader is None:
            if not self.parallel_enabled:
                yield from self._client.pages(request, kind)
                return
            reader = ReadAhead(self._client, request, kind, lookahead)
        yield from reader.pages(self._stop)

    def map_ordered(self, work: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, Future[R]]]:
        """Run ``work`` on each item in background threads, at most ``parallel`` at once.

        Each item's finished future comes back in the items' order.
        """
        if not self.parallel_enabled:
            for item in items:
                future: Future[R] = Future()
                try:
                    future.set_result(work(item))
                except Exception as exc:  # noqa: BLE001 - the caller looks at the future
                    future.set_exception(exc)
                yield item, future
            return
        window: collections.deque[tuple[T, Future[R]]] = collections.deque()
        for item in items:
            window.append((item, self._start(work, item)))
            if len(window) >= self.parallel:
                yield self._finished(window.popleft())
        while window:
            yield self._finished(window.popleft())

    def _finished(self, entry: tuple[T, Future[R]]) -> tuple[T, Future[R]]:
        with self._stop.interruptible():
            entry[1].exception()  # wait for it
        return entry

    def _start(self, work: Callable[[T], R], item: T) -> Future[R]:
        future: Future[R] = Future()

        def run() -> None:
            try:
                future.set_result(work(item))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

        self._workers.submit(run)
        return future

    def close(self) -> int:
        """Stop everything still reading ahead (the run is over); how many were never asked for."""
        with self._lock:
            readers, self._ahead = list(self._ahead.values()), {}
        for reader in readers:
            reader.cancel()
        return len(readers)
