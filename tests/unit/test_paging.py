"""Each of Pipedrive's paging kinds, against canned answers (no HTTP)."""

from __future__ import annotations

import pytest

from tap_pipedrive.errors import APIError
from tap_pipedrive.http.paging import ListRequest, PagingKind, read_pages


class Canned:
    """A client that answers each GET with the next canned body and records the params."""

    def __init__(self, *bodies: dict) -> None:
        self.bodies = list(bodies)
        self.asked: list[dict] = []

    def get(self, version, path, params=None, *, stream="connection") -> dict:
        assert (version, stream) in {("v1", "notes"), ("v2", "deals")}
        assert path in {"/notes", "/deals"}
        self.asked.append(dict(params or {}))
        return self.bodies.pop(0)


def ids(pages) -> list[list]:
    return [[r["id"] for r in page] for page in pages]


def v2(data, next_cursor=None) -> dict:
    return {"success": True, "data": data, "additional_data": {"next_cursor": next_cursor}}


def v1(data, *, more=False, next_start=None) -> dict:
    pagination = {"more_items_in_collection": more}
    if next_start is not None:
        pagination["next_start"] = next_start
    return {"success": True, "data": data, "additional_data": {"pagination": pagination}}


REQUEST = ListRequest("v2", "/deals", {"sort_by": "id"}, page_size=2, stream="deals")


def test_cursor_paging_follows_next_cursor_until_null():
    client = Canned(v2([{"id": 1}, {"id": 2}], "c1"), v2([{"id": 3}], None))
    assert ids(read_pages(client, REQUEST, PagingKind.CURSOR)) == [[1, 2], [3]]
    assert client.asked == [{"sort_by": "id", "limit": 2}, {"sort_by": "id", "limit": 2, "cursor": "c1"}]


def test_a_cursor_given_twice_is_an_error_not_a_loop():
    client = Canned(v2([{"id": 1}], "same"), v2([{"id": 2}], "same"))
    with pytest.raises(APIError, match="same page token twice"):
        list(read_pages(client, REQUEST, PagingKind.CURSOR))


def test_offset_paging_follows_next_start_while_there_are_more_items():
    client = Canned(v1([{"id": 1}, {"id": 2}], more=True, next_start=2), v1([{"id": 3}]))
    assert ids(read_pages(client, REQUEST, PagingKind.OFFSET)) == [[1, 2], [3]]
    assert [a.get("start") for a in client.asked] == [None, 2]


def test_offset_paging_stops_when_pipedrive_says_no_more_even_with_a_next_start():
    client = Canned(v1([{"id": 1}], more=False, next_start=1))
    assert ids(read_pages(client, REQUEST, PagingKind.OFFSET)) == [[1]]


def test_no_paging_sends_no_limit_and_reads_one_answer():
    client = Canned({"success": True, "data": [{"id": 1}, {"id": 2}]})
    assert ids(read_pages(client, REQUEST, PagingKind.NONE)) == [[1, 2]]
    assert client.asked == [{"sort_by": "id"}]


def test_a_single_object_or_null_data_is_one_or_no_record():
    assert ids(read_pages(Canned({"data": {"id": 7}}), REQUEST, PagingKind.NONE)) == [[7]]
    assert ids(read_pages(Canned({"data": None}), REQUEST, PagingKind.NONE)) == [[]]


def note(rid: int, second: int) -> dict:
    return {"id": rid, "update_time": f"2025-01-01 10:00:{second:02d}"}


TIMED = ListRequest("v1", "/notes", {"sort": "update_time ASC"}, page_size=3, stream="notes")


def test_time_paging_starts_each_page_at_the_newest_second_and_skips_ids_read_there():
    client = Canned(
        v1([note(1, 1), note(2, 2), note(3, 2)], more=True, next_start=3),
        # the next page starts at 10:00:02 again (inclusive): 2 and 3 come back, 4 is new
        v1([note(2, 2), note(3, 2), note(4, 3)], more=False),
    )
    assert ids(read_pages(client, TIMED, PagingKind.TIME)) == [[1, 2, 3], [4]]
    assert client.asked[1]["updated_since"] == "2025-01-01T10:00:02Z"
    assert client.asked[1]["start"] == 0


def test_time_paging_moves_on_by_offset_inside_one_second():
    client = Canned(
        v1([note(1, 5), note(2, 5), note(3, 5)], more=True),
        v1([note(1, 5), note(2, 5), note(3, 5)], more=True),  # page 1 again: updated_since moved to 10:00:05
        v1([note(4, 5), note(5, 6)], more=False),
    )
    assert ids(read_pages(client, TIMED, PagingKind.TIME)) == [[1, 2, 3], [], [4, 5]]
    assert [(a.get("updated_since"), a["start"]) for a in client.asked] == [
        (None, 0),
        ("2025-01-01T10:00:05Z", 0),
        ("2025-01-01T10:00:05Z", 3),
    ]
