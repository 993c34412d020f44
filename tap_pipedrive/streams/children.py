"""Streams read once per record of another stream (opt-in: each costs a request per parent).

A deal's history, participants and followers, a product's variations, a mail thread's
messages (see the README's streams table for their token costs).

A parent written by its stream (a deal whose ``update_time`` moved) joins the child stream's
queue in STATE. The child streams sync after every other stream, so a run spends what is
left of its token budget on them; a run stopped by the budget (or anything else) leaves the
parents not yet read in the queue, and the next run goes on from there. A parent's child
rows are fetched first and written in one go, so a stop never falls between them.
"""

from __future__ import annotations

import json
import typing as t
import zlib

from typing_extensions import override

from tap_pipedrive import schemas
from tap_pipedrive.errors import StreamUnavailableError
from tap_pipedrive.http.paging import ListRequest
from tap_pipedrive.idset import IdMap, IdSet
from tap_pipedrive.streams.base import PipedriveStream
from tap_pipedrive.streams.deletes import tombstone

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.http.paging import Record
    from tap_pipedrive.services import Services
    from tap_pipedrive.streams.base import Schema
    from tap_pipedrive.streams.definition import StreamDef

#: The STATE keys: the parents to read, the version of each parent queued, the child rows
#: written (by parent), their versions, and (for histories) the newest row read per parent.
QUEUE, PARENTS, MEMBERS, VERSIONS, NEWEST = "queue", "parents", "members", "versions", "newest_read"
#: Statuses that say one parent is gone (merged or purged since it was listed), not the stream.
GONE = (404, 410)
_LOW_BITS = 32


class QueuedChildStream(PipedriveStream):
    """A child list read once per parent written since the last run (its queue)."""

    #: opt-in: not selected unless the catalog selects it (a request per parent)
    selected_by_default = False

    def __init__(self, tap: Tap, definition: StreamDef, services: Services) -> None:
        """Nothing is queued until a parent is written."""
        super().__init__(tap, definition, services)
        self._queue: IdSet | None = None
        self._parents: IdMap | None = None
        self._gone_parents = 0

    @property
    def queue(self) -> IdSet:
        """The parents whose children are still to be read (STATE's ``queue``)."""
        if self._queue is None:
            self._queue = IdSet(self.get_context_state(None), QUEUE)
        return self._queue

    def enqueue(self, parent: Record) -> None:
        """A parent was written: read its children this run (or, budget allowing, the next).

        Only a parent that changed since it was queued last (a full-table parent, such as a
        mail thread, is written on every run).
        """
        if not self.selected or not self.wants(parent):
            return
        if self._parents is None:
            self._parents = IdMap(self.get_context_state(None), PARENTS)
        parent_id, version = parent.get("id"), _parent_version(parent)
        if not isinstance(parent_id, int) or self._parents.get(parent_id) == version:
            return
        self.queue.add(parent_id)
        self._parents.put(parent_id, version)

    def wants(self, parent: Record) -> bool:
        """Whether ``parent`` may have children to read (its count says so, when it has one)."""
        gate = self.definition.gate
        return gate is None or bool(parent.get(gate))

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """Each queued parent's new child rows, one parent at a time, parents in id order."""
        self.id_sets.append(self.queue)
        parents = sorted(self.queue, key=str)
        # the parents' children are read in parallel (at most max_parallel_requests at once)
        for parent_id, result in self.services.fetcher.map_ordered(lambda p: list(self.fetch(p)), parents):
            try:
                fetched = result.result()
            except StreamUnavailableError as exc:
                if exc.status not in GONE:
                    self.skip(context, exc)
                    return
                self._gone_parents += 1  # merged or purged since it was listed: nothing to read
                fetched = []
            with self.services.stop.shielded():  # the parent's rows, all or none
                yield from self.new_rows(parent_id, fetched)
                self.parent_done(parent_id, fetched)
            self.services.stop.checkpoint()
        if self._gone_parents:
            self.logger.warning(
                "%s: %d parents were gone (404/410) when their children were read; skipped",
                self.name,
                self._gone_parents,
            )

    def request(self, parent_id: object) -> ListRequest:
        """The first page of one parent's children."""
        d = self.definition
        return ListRequest(d.version, d.endpoint.format(id=parent_id), d.query, d.page_size, d.name)

    def fetch(self, parent_id: object) -> Iterable[Record]:
        """Every child row of ``parent_id``, with the parent's key."""
        column = self.definition.parent_key or "parent_id"
        for page in self.services.client.pages(self.request(parent_id), self.definition.paging):
            for row in page:
                row.setdefault(column, parent_id)
                yield row

    def new_rows(self, parent_id: object, fetched: list[Record]) -> Iterable[Record]:  # noqa: ARG002
        """The rows of ``fetched`` not written before (all of them, unless a subclass knows)."""
        return fetched

    def parent_done(self, parent_id: object, fetched: list[Record]) -> None:  # noqa: ARG002
        """Every new row of ``parent_id`` is written: it leaves the queue."""
        self.queue.discard(parent_id)

    @override
    def record_written(self, record: Record, context: Context | None) -> None:
        """Nothing to move: a child stream's STATE is its queue."""


class DealChangesStream(QueuedChildStream):
    """A deal's history: its ``dealChange`` rows, newest first, down to the newest read before.

    Rows never change and their ids grow, so STATE keeps each deal's newest row id read
    (``newest_read``) and a deal read again is read only down to it.
    """

    @override
    def build_schema(self) -> Schema:
        """The ``dealChange`` row the spec's example shows (under ``data``), with ``deal_id``."""
        example = schemas.endpoint(self.definition.version, self.definition.endpoint).get("example") or {}
        props = {
            name: schemas.to_json_schema(schemas.example_spec(name, value), name)
            for name, value in (example.get("data") or {}).items()
        }
        for name in ("old_value", "new_value"):  # a value of whatever type the field has
            props[name] = {"type": ["string", "null"], "description": "The value, as text"}
        props["additional_data"] = {**schemas.ANY_JSON, "description": "Pipedrive's extra data of the change"}
        props["id"] = {"type": ["integer"]}
        props["deal_id"] = {"type": ["integer", "null"], "description": "The deal the change is of"}
        schema: Schema = {"type": "object", "properties": props}
        return self._with_tap_columns(schema)

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """Read the queued deals' new changes."""
        self.newest = IdMap(self.get_context_state(None), NEWEST)
        yield from super().read_records(context)

    @override
    def fetch(self, parent_id: object) -> Iterable[Record]:
        """The deal's changes newer than the newest read before (pages stop once past it)."""
        known = self.newest.get(int(t.cast("int", parent_id))) or 0
        for page in self.services.client.pages(self.request(parent_id), self.definition.paging):
            for item in page:
                row = dict(item.get("data") or {})
                if not isinstance(row.get("id"), int) or row["id"] <= known:
                    return  # newest first: everything after this was read before
                for name in ("old_value", "new_value"):
                    value = row.get(name)
                    row[name] = value if value is None or isinstance(value, str) else json.dumps(value)
                row["deal_id"] = row.get("item_id", parent_id)
                yield row

    @override
    def parent_done(self, parent_id: object, fetched: list[Record]) -> None:
        """Remember the deal's newest change read, then let it go."""
        if fetched:
            self.newest.put(int(t.cast("int", parent_id)), max(int(r["id"]) for r in fetched))
        super().parent_done(parent_id, fetched)


class SnapshotChildStream(QueuedChildStream):
    """A parent's current child list (participants, followers, variations, messages).

    STATE keeps which rows each parent had (``members``) and a checksum of each row written
    (``versions``): a parent read again writes only its new or changed rows, and a tombstone
    for each row it no longer has.
    """

    _had_children: set[object] | None = None

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """Read the queued parents' children, with what was written before."""
        state = self.get_context_state(None)
        self.members, self.versions = IdSet(state, MEMBERS), IdSet(state, VERSIONS)
        self.id_sets += [self.members, self.versions]
        self._by_parent: dict[object, set[object]] = {}
        for member in self.members:
            parent, child = _split(member)
            self._by_parent.setdefault(parent, set()).add(child)
        yield from super().read_records(context)

    @override
    def wants(self, parent: Record) -> bool:
        """Read a parent whose count says it has children, or that had some (they may be gone)."""
        if super().wants(parent):
            return True
        if self._had_children is None:
            members = IdSet(self.get_context_state(None), MEMBERS)
            self._had_children = {_split(m)[0] for m in members}
        return parent.get("id") in self._had_children

    def child_key(self, row: Record) -> object:
        """The row's key within its parent."""
        keys = [k for k in self.definition.keys if k != self.definition.parent_key]
        values = tuple(row.get(k) for k in keys)
        return values[0] if len(values) == 1 else values

    @override
    def new_rows(self, parent_id: object, fetched: list[Record]) -> Iterable[Record]:
        """New or changed rows; then a tombstone per row the parent no longer has."""
        current = {self.child_key(r) for r in fetched}
        for row in fetched:
            if _version(parent_id, row) not in self.versions:
                yield row
        for child in sorted(self._by_parent.get(parent_id, set()) - current, key=str):
            gone = tombstone(self.definition, self._key_of(parent_id, child))
            yield gone

    def _key_of(self, parent_id: object, child: object) -> object:
        """A removed row's primary key (as the stream's keys order it)."""
        return (parent_id, child) if self.definition.keys[0] == self.definition.parent_key else child

    @override
    def parent_done(self, parent_id: object, fetched: list[Record]) -> None:
        """The parent's rows now are what it has: remember them, then let it go."""
        current = {self.child_key(r) for r in fetched}
        for child in self._by_parent.get(parent_id, set()) - current:
            self.members.discard(_member(parent_id, child))
        for child in current:
            self.members.add(_member(parent_id, child))
        self._by_parent[parent_id] = current
        self.versions.add_all(_version(parent_id, r) for r in fetched)
        super().parent_done(parent_id, fetched)


def _member(parent: object, child: object) -> object:
    """A (parent, child) pair as one number when both are small ids, else as text."""
    if isinstance(parent, int) and isinstance(child, int) and 0 <= child < 1 << _LOW_BITS and parent >= 0:
        return (parent << _LOW_BITS) | child
    return json.dumps([parent, child])


def _split(member: object) -> tuple[object, object]:
    if isinstance(member, int):
        return member >> _LOW_BITS, member & ((1 << _LOW_BITS) - 1)
    parent, child = json.loads(str(member))
    return parent, tuple(child) if isinstance(child, list) else child


def _parent_version(parent: Record) -> int:
    """What says a parent changed: its ``update_time``, or (with none) the whole record."""
    stamp = parent.get("update_time")
    text = str(stamp) if stamp is not None else json.dumps(parent, sort_keys=True, default=str)
    return zlib.crc32(text.encode())


def _version(parent: object, row: Record) -> int:
    """A checksum of one child row of one parent (what a later read compares)."""
    return zlib.crc32(json.dumps([parent, row], sort_keys=True, default=str).encode())
