"""The fetcher's promises, with a client whose pages the test controls: results in order, at
most ``parallel`` at once, no page read that the reader does not ask for when it may stop
early, and a failure handed over at the page where it happened."""

from __future__ import annotations

import threading
import time

import pytest

from tap_pipedrive.http.fetcher import Fetcher
from tap_pipedrive.http.limits import TokenBudget
from tap_pipedrive.http.paging import ListRequest, PagingKind
from tap_pipedrive.stopping import StopSignal


class PagedClient:
    """Serves ``pages`` lists of pages by request path, counting the pages read."""

    def __init__(self, pages: dict[str, list], delay: float = 0.0) -> None:
        self.lists = pages
        self.delay = delay
        self.read: dict[str, int] = dict.fromkeys(pages, 0)
        self.lock = threading.Lock()
        self.budget = TokenBudget()

    def pages(self, request: ListRequest, kind: PagingKind):  # noqa: ARG002 - the client's signature
        for page in self.lists[request.path]:
            time.sleep(self.delay)
            with self.lock:
                self.read[request.path] += 1
            if isinstance(page, Exception):
                raise page
            yield page


def request(path: str) -> ListRequest:
    return ListRequest("v2", path, stream=path.strip("/"))


def fetcher(client: PagedClient, parallel: int) -> Fetcher:
    return Fetcher(client, StopSignal(), parallel)  # type: ignore[arg-type]


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("parallel", [1, 4])
def test_map_ordered_hands_back_every_result_in_the_items_order(parallel):
    def work(n: int) -> int:
        time.sleep(0.02 * (5 - n % 5))  # later items finish first
        return n * n

    mapped = fetcher(PagedClient({}), parallel).map_ordered(work, range(12))
    results = [(item, future.result()) for item, future in mapped]
    assert results == [(n, n * n) for n in range(12)]


def test_map_ordered_runs_parallel_at_once_and_never_more():
    running, peak, lock = 0, 0, threading.Lock()

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return n

    assert [i for i, _ in fetcher(PagedClient({}), 4).map_ordered(work, range(20))] == list(range(20))
    assert peak == 4


def test_map_ordered_hands_a_failure_to_the_caller_at_its_item():
    def work(n: int) -> int:
        if n == 2:
            raise ValueError("item 2 failed")
        return n

    futures = list(fetcher(PagedClient({}), 3).map_ordered(work, range(4)))
    assert [f.exception() is None for _, f in futures] == [True, True, False, True]
    with pytest.raises(ValueError, match="item 2 failed"):
        futures[2][1].result()


def test_a_list_read_ahead_is_handed_over_whole_and_in_order():
    client = PagedClient({"/deals": [[1, 2], [3, 4], [5]]})
    f = fetcher(client, 4)
    f.read_ahead(request("/deals"), PagingKind.CURSOR)
    wait_until(lambda: client.read["/deals"] == 2)  # read before anyone asked: two pages
    time.sleep(0.1)
    assert client.read["/deals"] == 2  # and no more until the reader comes
    assert list(f.pages(request("/deals"), PagingKind.CURSOR)) == [[1, 2], [3, 4], [5]]
    assert client.read["/deals"] == 3  # handed over, not read again
    assert f.close() == 0


def test_pages_ahead_are_bounded():
    client = PagedClient({"/persons": [[n] for n in range(10)]})
    f = fetcher(client, 4)
    pages = f.pages(request("/persons"), PagingKind.CURSOR, lookahead=2)
    assert next(pages) == [0]
    time.sleep(0.2)
    assert client.read["/persons"] == 3  # the page handed over and two ahead, no more
    pages.close()


def test_a_read_that_may_stop_early_reads_no_page_it_does_not_ask_for():
    client = PagedClient({"/files": [[n] for n in range(5)]})
    f = fetcher(client, 4)
    f.read_ahead(request("/files"), PagingKind.OFFSET, lookahead=0)
    pages = f.pages(request("/files"), PagingKind.OFFSET, lookahead=0)
    assert next(pages) == [0]
    assert next(pages) == [1]
    pages.close()  # the reader found what it needed: a newest-first read at its bookmark
    time.sleep(0.2)
    assert client.read["/files"] == 2


def test_a_failed_page_reaches_the_reader_after_the_pages_before_it():
    client = PagedClient({"/notes": [[1], [2], RuntimeError("page 3 failed"), [4]]})
    f = fetcher(client, 4)
    pages = f.pages(request("/notes"), PagingKind.OFFSET)
    assert [next(pages), next(pages)] == [[1], [2]]
    with pytest.raises(RuntimeError, match="page 3 failed"):
        next(pages)


def test_one_request_at_a_time_reads_on_the_callers_thread_only_when_asked():
    client = PagedClient({"/deals": [[1], [2]]})
    f = fetcher(client, 1)
    f.read_ahead(request("/deals"), PagingKind.CURSOR)
    time.sleep(0.1)
    assert client.read["/deals"] == 0  # nothing runs ahead
    assert list(f.pages(request("/deals"), PagingKind.CURSOR)) == [[1], [2]]


def test_close_stops_and_counts_the_lists_nobody_asked_for():
    client = PagedClient({"/a": [[n] for n in range(50)], "/b": [[1]]}, delay=0.01)
    f = fetcher(client, 4)
    f.read_ahead(request("/a"), PagingKind.CURSOR)
    f.read_ahead(request("/b"), PagingKind.CURSOR)
    assert f.close() == 2
    time.sleep(0.2)
    assert client.read["/a"] <= 3  # the first page and two ahead at most, then it stopped


def test_near_the_end_of_the_token_budget_nothing_is_read_ahead():
    client = PagedClient({"/a": [[1], [2], [3]], "/b": [[4]]})
    client.budget = TokenBudget(max_tokens=TokenBudget.RESERVE + 10)
    client.budget.charge(20, "spent so far")  # now within the reserve
    fetch = fetcher(client, parallel=8)
    fetch.read_ahead(request("/b"), PagingKind.NONE)
    reader = fetch.pages(request("/a"), PagingKind.NONE)
    assert next(reader) == [1]
    time.sleep(0.3)
    assert client.read == {"/a": 1, "/b": 0}  # only what was asked for
    assert list(reader) == [[2], [3]]
