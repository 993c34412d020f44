"""The whole-read streams' bookkeeping (projects, tasks), in-process with pages given by the test:
which records a read emits, what STATE keeps of it, and how a stopped read resumes."""

from __future__ import annotations

import logging

import pytest

from tap_pipedrive.errors import APIError, StreamUnavailableError
from tap_pipedrive.tap import TapPipedrive
from tests import session


def task(rid: int, stamp: str) -> dict:
    return {"id": rid, "title": f"Task {rid}", "update_time": f"2026-01-15T{stamp}:00Z"}


def ts(stamp: str) -> str:
    return f"2026-01-15T{stamp}:00Z"


@pytest.fixture
def tasks(monkeypatch):
    """The tasks stream of a tap whose client serves the pages a test sets (``.pages``)."""
    tap = TapPipedrive(config=session.config(), parse_env_config=False, setup_mapper=False)
    stream = tap.streams["tasks"]
    stream.pages = []
    monkeypatch.setattr(stream.services.client, "pages", lambda *_: iter(stream.pages))
    return stream


def run(stream, state: dict | None = None, *, stop_after: int | None = None) -> tuple[list[int], dict]:
    """Read (as the SDK would: each record written, then noted); optionally stop after some."""
    stream.state_manager.get_context_state(None).clear()
    stream.state_manager.get_context_state(None).update(state or {})
    written = []
    for record in stream.get_records(None):
        written.append(record["id"])
        stream.record_written(record, None)
        if stop_after is not None and len(written) == stop_after:
            break
    return written, dict(stream.get_context_state(None))


def test_the_floor_is_the_newest_update_time_of_the_first_page_only(tasks):
    tasks.pages = [[task(1, "10:00"), task(2, "09:00")], [task(3, "12:00"), task(4, "08:00")]]
    written, state = run(tasks)
    assert written == [1, 2, 3, 4]
    assert state["floor"] == ts("10:00")  # page 1 was served after 10:00; page 2 says nothing
    assert state["written"] == {ts("10:00"): [1], ts("12:00"): [3]}  # at or after the floor
    assert state["replication_key_value"] == ts("12:00")
    assert "reading" not in state


def test_a_read_emits_what_is_at_or_after_the_floor_and_not_written_at_its_update_time(tasks):
    state = {"floor": ts("10:00"), "written": {ts("10:00"): [1], ts("12:00"): [3]},
             "replication_key": "update_time", "replication_key_value": ts("12:00")}
    tasks.pages = [[task(1, "10:00"), task(2, "09:00"), task(3, "12:00"), task(4, "10:00"), task(5, "13:00")]]
    written, after = run(tasks, state)
    assert written == [4, 5]  # 4 changed in the floor's second after it was read; 5 is new
    assert after["floor"] == ts("13:00")
    assert after["written"] == {ts("13:00"): [5]}
    assert after["replication_key_value"] == ts("13:00")


def test_a_stopped_read_keeps_its_progress_and_the_resume_emits_only_changes_up_to_it(tasks):
    tasks.pages = [[task(1, "10:00"), task(2, "11:00")], [task(3, "09:00"), task(4, "12:00")]]
    written, stopped = run(tasks, stop_after=3)
    assert written == [1, 2, 3]
    assert "floor" not in stopped  # no complete read yet
    assert stopped["reading"] == {"floor": ts("11:00"), "through_id": 3, "written": {ts("11:00"): [2]},
                                  "newest": ts("11:00")}
    # while stopped: task 1 changes (handled before the stop), task 2 does not
    tasks.pages = [[task(1, "14:00"), task(2, "11:00")], [task(3, "09:00"), task(4, "12:00")]]
    written, done = run(tasks, stopped)
    assert written == [1, 4]
    assert done["floor"] == ts("11:00")
    assert done["written"] == {ts("11:00"): [2], ts("14:00"): [1], ts("12:00"): [4]}
    assert done["replication_key_value"] == ts("14:00")
    assert "reading" not in done
    written, _ = run(tasks, done)
    assert written == []


def test_a_list_out_of_id_order_stops_the_read_rather_than_lose_a_change(tasks):
    tasks.pages = [[task(1, "10:00"), task(3, "10:00")], [task(2, "11:00")]]
    with pytest.raises(APIError, match="not in id order"):
        run(tasks)


def test_a_stream_unavailable_mid_read_is_skipped_and_its_read_resumes_next_run(tasks, caplog):
    def pages():
        yield [task(1, "10:00"), task(2, "11:00")]
        raise StreamUnavailableError("GET /api/v2/tasks answered 403: no permission", 403)

    tasks.pages = pages()
    with caplog.at_level(logging.WARNING):
        written, state = run(tasks)
    assert written == [1, 2]
    assert "Skipping stream 'tasks'" in caplog.text
    assert "tasks" in tasks.services.report.skipped
    assert "floor" not in state, "a skipped read is not complete"
    assert state["reading"]["through_id"] == 2
    tasks.pages = [[task(1, "10:00"), task(2, "11:00"), task(3, "12:00")]]
    written, done = run(tasks, state)
    assert written == [3]
    assert done["floor"] == ts("11:00")


def test_a_read_skipped_before_its_first_record_is_a_fresh_read_next_run(tasks):
    def refused():
        raise StreamUnavailableError("GET /api/v2/tasks answered 402: account not open", 402)
        yield  # a generator that fails at its first page

    tasks.pages = refused()
    written, state = run(tasks)
    assert written == []
    assert state["reading"]["through_id"] is None
    tasks.pages = [[task(1, "10:00"), task(2, "11:00")], [task(3, "09:00")]]
    written, done = run(tasks, state)
    assert written == [1, 2, 3]
    assert done["floor"] == ts("11:00")  # its first page may raise the floor, as a first read's does
    assert done["written"] == {ts("11:00"): [2]}
