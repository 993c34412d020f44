"""The ways a Pipedrive list is read, besides the plain one (:class:`ListStream`)."""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.http.fetcher import PAGES_AHEAD
from tap_pipedrive.streams.base import PipedriveStream
from tap_pipedrive.timestamps import second, update_stamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

    from tap_pipedrive.http.paging import Record
    from tap_pipedrive.streams.base import Schema


class ListStream(PipedriveStream):
    """A list read page by page: incrementally by ``update_time``, or whole."""

    reads_ahead = True


class FieldsStream(PipedriveStream):
    """The field definitions of one entity, keyed by ``field_code`` (v2) or ``key`` (v1).

    The tap reads these definitions once per run for the custom fields; this stream emits
    that same read rather than spending tokens on a second one.
    """

    @override
    def build_schema(self) -> Schema:
        """The entity's Fields schema; every v2 Fields endpoint may send a description."""
        schema = super().build_schema()
        if self.definition.version == "v2":
            schema["properties"].setdefault("description", {"type": ["string", "null"]})
        return schema

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """The run's cached field definitions."""
        yield from self.services.fields.definitions(self.definition.fields_of or "")


class NewestFirstStream(PipedriveStream):
    """A list without a time filter, read newest first and only down to the bookmark.

    Pipedrive cannot filter these lists by time, but it can sort them by ``update_time``: the
    tap reads newest first and stops at the first record older than the bookmark, so a run
    with few changes spends one request, not one per page of the whole list. The bookmark
    moves (to the newest ``update_time`` read) once the read is complete. While it is not,
    STATE keeps what the read has written as windows of time (``read``: each window's newest
    and oldest second, with the ids written at each), so a run stopped part-way resumes
    without writing a record twice: the next run skips what the windows cover. An update
    during the read moves a record to the top, which makes the next page repeat a record
    (covered, so skipped) but never skip one.
    """

    reads_ahead = True

    @override
    def pages_ahead(self, context: Context | None) -> int:
        """The first read reads every page; a later one stops at the bookmark, so none ahead."""
        return PAGES_AHEAD if self.get_starting_timestamp(context) is None else 0

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """Read pages newest first until the records are older than the bookmark."""
        state = self.get_context_state(context)
        windows: list[Window] = state.setdefault("read", [])
        self._active: Window | None = None
        start = self.get_starting_timestamp(context)
        floor = second(start) if start is not None else None
        for record in super().read_records(context):
            stamp = str(update_stamp(record))
            if floor is not None and stamp < floor:
                break  # everything after this is older still
            covering = next((w for w in windows if _covers(w, stamp, record.get("id"))), None)
            if covering is None:
                yield record
            elif covering is not self._active:
                # Everything from the active window down to this one has been read: one window.
                self._active = _merge(windows, self._active, covering)
        self._move_to_newest(context, windows)

    @override
    def record_written(self, record: Record, context: Context | None) -> None:
        """Extend the window being written down to this record."""
        stamp, rid = str(update_stamp(record)), record.get("id")
        windows: list[Window] = self.get_context_state(context)["read"]
        active = self._active
        if active is None:
            active = self._active = {"high": stamp, "high_ids": [], "low": stamp, "low_ids": []}
            windows.append(active)
        if stamp < active["low"]:
            active["low"], active["low_ids"] = stamp, []
        # newest first: a record not covered is at (or below) the window's oldest second, or
        # at its newest (updated in that second after an interrupted read passed it)
        active["low_ids" if stamp == active["low"] else "high_ids"].append(rid)
        if active["low"] == active["high"]:
            active["high_ids"] = active["low_ids"]

    def _move_to_newest(self, context: Context | None, windows: list[Window]) -> None:
        """The read is complete: the bookmark moves to the newest record written."""
        state = self.get_context_state(context)
        old = state.get("replication_key_value")
        newest, ids = old, list(state.get("bookmark_ids", ()))
        for window in windows:
            if newest is None or window["high"] > newest:
                newest, ids = window["high"], list(window["high_ids"])
            elif window["high"] == newest:
                ids += [i for i in window["high_ids"] if i not in ids]
        state.pop("read", None)
        if newest is None:
            self.write_state(force=True)
        else:
            self.set_bookmark(context, str(newest), ids)


#: A stretch of time a newest-first read has written: its newest and oldest second, and the
#: ids written at each (every record strictly between was written too).
Window = dict[str, t.Any]


def _covers(window: Window, stamp: str, rid: object) -> bool:
    if window["low"] < stamp < window["high"]:
        return True
    return (stamp == window["high"] and rid in window["high_ids"]) or (
        stamp == window["low"] and rid in window["low_ids"]
    )


def _merge(windows: list[Window], active: Window | None, reached: Window) -> Window:
    """Join the window being written with the one the read has just reached."""
    if active is None:
        return reached
    windows.remove(active)
    high, high_ids = _end(active, reached, "high", max)
    low, low_ids = _end(active, reached, "low", min)
    reached.update(high=high, high_ids=high_ids, low=low, low_ids=low_ids)
    return reached


def _end(a: Window, b: Window, end: str, pick: t.Callable[[str, str], str]) -> tuple[str, list[object]]:
    value = pick(a[end], b[end])
    ids = [i for w in (a, b) if w[end] == value for i in w[f"{end}_ids"]]
    return value, list(dict.fromkeys(ids))
