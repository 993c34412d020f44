"""What reaches the target, and when: records are buffered, a STATE goes out at once with
every record before it; an unchanged STATE is not repeated; records are conformed by the
stream's compiled plan (timestamps in UTC, flags as booleans) since the SDK's pass is off."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
import types

import pytest
from singer_sdk.singerlib import RecordMessage, SchemaMessage, StateMessage

from tap_pipedrive.streams.normalise import apply_plan, compile_plan
from tap_pipedrive.writer import ChangedStateWriter, SingerWriter


class Pipe:
    """stdout as a pipe, as when the tap runs into a target (set in the test: pytest's capture
    replaces sys.stdout between a fixture and the test)."""

    def __init__(self, monkeypatch) -> None:
        self.read_end, write_end = os.pipe()
        os.set_blocking(self.read_end, False)
        self.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_end, "w"), buffer_size=65536))
        monkeypatch.setattr(sys, "stdout", self.stdout)

    def __call__(self) -> list[dict]:
        """The lines that reached the pipe since the last call."""
        try:
            data = os.read(self.read_end, 1 << 20)
        except BlockingIOError:
            return []
        return [json.loads(line) for line in data.decode().splitlines()]


@pytest.fixture
def pipe(monkeypatch):
    """A function that points stdout at a fresh pipe and returns its reader."""
    pipes: list[Pipe] = []
    yield lambda: pipes.append(Pipe(monkeypatch)) or pipes[-1]
    for made in pipes:
        made.stdout.close()
        os.close(made.read_end)


def record(n: int) -> RecordMessage:
    return RecordMessage(stream="deals", record={"id": n}, time_extracted=dt.datetime.now(dt.UTC))


def test_records_wait_in_the_buffer_and_a_state_takes_them_along_in_order(pipe):
    arrived = pipe()
    writer = SingerWriter()
    for n in range(3):
        writer.write_message(record(n))
    assert arrived() == []  # no system call per record
    writer.write_message(StateMessage(value={"bookmarks": {"deals": {"replication_key_value": "x"}}}))
    lines = arrived()
    assert [line["type"] for line in lines] == ["RECORD", "RECORD", "RECORD", "STATE"]
    assert [line["record"]["id"] for line in lines[:3]] == [0, 1, 2]
    assert lines[3]["value"] == {"bookmarks": {"deals": {"replication_key_value": "x"}}}


def test_a_schema_goes_out_at_once(pipe):
    arrived = pipe()
    schema = {"type": "object"}
    SingerWriter().write_message(SchemaMessage(stream="deals", schema=schema, key_properties=["id"]))
    assert arrived() == [{"type": "SCHEMA", "stream": "deals", "schema": schema, "key_properties": ["id"]}]


def test_a_record_line_is_what_the_sdk_would_write(pipe):
    arrived = pipe()
    writer = SingerWriter()
    writer.write_message(RecordMessage(stream="deals", record={"id": 1, "value": 2.5}, version=7))
    writer.write_message(StateMessage(value={}))
    line = arrived()[0]
    assert line == {"type": "RECORD", "stream": "deals", "record": {"id": 1, "value": 2.5}, "version": 7}


def test_an_unchanged_state_is_written_once_and_a_changed_one_again(pipe):
    arrived = pipe()
    states = ChangedStateWriter(SingerWriter())
    state = {"bookmarks": {"deals": {"replication_key_value": "2026-01-01T00:00:00Z"}}}
    states.write_state(state)
    states.write_state(state)
    state["bookmarks"]["deals"]["replication_key_value"] = "2026-01-02T00:00:00Z"  # changed in place
    states.write_state(state)
    values = [line["value"]["bookmarks"]["deals"]["replication_key_value"] for line in arrived()]
    assert values == ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]


class Unbuffered(io.RawIOBase):
    """stdout's bytes layer under PYTHONUNBUFFERED=1: no buffer, and (as a pipe can, when a
    signal arrives part-way) each write takes only up to ``most`` bytes."""

    def __init__(self, most: int) -> None:
        self.most, self.data, self.calls = most, bytearray(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.calls += 1
        taken = bytes(b[: self.most])
        self.data += taken
        return len(taken)


@pytest.mark.parametrize("most", [100, 1 << 30])
def test_with_an_unbuffered_stdout_records_go_out_in_chunks_and_whole_when_writes_are_short(
    monkeypatch, most
):
    out = Unbuffered(most)
    monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(buffer=out))
    writer = SingerWriter()
    for n in range(2000):
        writer.write_message(record(n))
    writer.write_message(StateMessage(value={"bookmarks": {}}))
    lines = [json.loads(line) for line in out.data.decode().splitlines()]
    assert [line["record"]["id"] for line in lines[:-1]] == list(range(2000))  # none lost, none cut
    assert lines[-1] == {"type": "STATE", "value": {"bookmarks": {}}}
    if most > len(out.data):  # not a system call per record (2000): one per 64 KB chunk
        assert out.calls <= len(out.data) // (1 << 16) + 1


def test_records_go_out_when_a_state_is_asked_for_even_if_it_is_unchanged(pipe):
    arrived = pipe()
    states = ChangedStateWriter(SingerWriter())
    writer = states._message_writer  # noqa: SLF001 - the writer the tap shares with its STATE writer
    states.write_state({"bookmarks": {}})
    assert [line["type"] for line in arrived()] == ["STATE"]
    writer.write_message(record(1))  # a full-table stream's record: STATE does not change
    states.write_state({"bookmarks": {}})
    assert [(line["type"], line["record"]["id"]) for line in arrived()] == [("RECORD", 1)]


def test_a_large_state_waits_its_share_of_the_byte_rate_a_small_one_does_not(monkeypatch):
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
    now = [100.0]
    states = ChangedStateWriter(SingerWriter(), clock=lambda: now[0])

    def written() -> list[int]:
        lines = out.getvalue().splitlines()
        out.seek(0)
        out.truncate()
        return [json.loads(line)["value"]["bookmarks"]["deals"]["n"] for line in lines]

    small = {"bookmarks": {"deals": {"n": 0}}}
    for n in range(3):  # a few bytes: every change goes out at once
        small["bookmarks"]["deals"]["n"] = n
        states.write_state(small)
    assert written() == [0, 1, 2]

    big = {"bookmarks": {"deals": {"n": 0, "seen_new": list(range(300_000))}}}  # about 2 MB
    states.write_state(big)
    size = len(json.dumps(big, separators=(",", ":")))
    for n in range(1, 4):  # asked for again at once: left out (a later STATE covers it)
        big["bookmarks"]["deals"]["n"] = n
        states.write_state(big)
    assert written() == [0]
    now[0] += size / 2_000_000 + 0.01  # its share of the byte rate has passed
    states.write_state(big)
    assert written() == [3]


def test_flags_become_booleans_and_timestamps_utc_at_any_depth():
    flag = {"type": ["boolean", "null"]}
    schema = {
        "properties": {
            "active_flag": flag,
            "done": {"type": "boolean"},
            "count": {"type": ["integer", "null"]},
            "either": {"type": ["boolean", "string", "null"]},
            "update_time": {"type": ["string", "null"], "format": "date-time"},
            "owner": {"type": ["object", "null"], "properties": {"active_flag": flag}},
            "emails": {"type": ["array", "null"], "items": {"type": "object", "properties": {"p": flag}}},
        }
    }
    row = {
        "active_flag": 1, "done": "0", "count": 1, "either": 1, "update_time": "2026-01-31 10:20:00",
        "owner": {"active_flag": 0}, "emails": [{"p": 1}, {"p": False}],
    }
    apply_plan(compile_plan(schema), row)
    assert row == {
        "active_flag": True, "done": False, "count": 1, "either": 1, "update_time": "2026-01-31T10:20:00Z",
        "owner": {"active_flag": False}, "emails": [{"p": True}, {"p": False}],
    }


def test_a_record_written_directly_is_the_line_of_the_sdk_s_record_message(monkeypatch):
    out = Unbuffered(1 << 30)
    monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(buffer=out))
    when = dt.datetime(2026, 12, 1, 15, 0, 1, 123456, tzinfo=dt.UTC)
    record = {"id": 1, "title": "Ünïcode", "value": 2.5, "tags": [1, None]}
    writer = SingerWriter()
    for version in (None, 7):
        expected = writer.format_message(
            RecordMessage(stream="deals", record=record, version=version, time_extracted=when)
        )
        writer.write_record("deals", record, version, when)
        writer.flush()
        assert bytes(out.data) == expected
        out.data.clear()
