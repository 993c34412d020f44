"""The ways a Pipedrive list is read, besides the plain one (:class:`ListStream`)."""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.streams.base import PipedriveStream
from tap_pipedrive.timestamps import second, update_stamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

    from tap_pipedrive.http.paging import Record
    from tap_pipedrive.streams.base import Schema


class ListStream(PipedriveStream):
    """A list read page by page: incrementally by ``update_time``, or whole."""


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
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """The run's cached field definitions."""
        yield from self.services.fields.definitions(self.definition.fields_of or "")


class NewestFirstStream(PipedriveStream):
    """A list without a time filter, read newest first and only down to the bookmark.

    Pipedrive cannot filter these lists by time, but it can sort them by ``update_time``: the
    tap reads newest first and stops at the first record older than the bookmark, so a run
    with few changes spends one request, not one per page of the whole list. The bookmark
    moves (to the newest ``update_time`` read) only once the read is complete: a run stopped
    part-way reads the same range again next time. An update during the read moves a record
    to the top, which makes the next page repeat a record but never skip one.
    """

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Read pages newest first until the records are older than the bookmark."""
        self._newest: str | None = None
        self._newest_ids: list[object] = []
        start = self.get_starting_timestamp(context)
        floor = second(start) if start is not None else None
        for record in super().get_records(context):
            if floor is not None and str(update_stamp(record)) < floor:
                break  # everything after this is older still
            yield record
        self._move_to_newest(context)

    @override
    def record_written(self, record: Record, context: Context | None) -> None:
        """Note the newest ``update_time`` written (the bookmark moves at the end)."""
        value = record.get("update_time")
        if value is None:
            return
        if self._newest is None or value > self._newest:
            self._newest, self._newest_ids = value, [record.get("id")]
        elif value == self._newest:
            self._newest_ids.append(record.get("id"))

    def _move_to_newest(self, context: Context | None) -> None:
        """Move the bookmark to the newest record written, with the ids written at it."""
        if self._newest is None:
            return
        state = self.get_context_state(context)
        old = state.get("replication_key_value")
        if old is not None and self._newest < old:
            return
        ids = self._newest_ids
        if self._newest == old:
            ids = [*state.get("bookmark_ids", ()), *ids]
        self.set_bookmark(context, self._newest, ids)
