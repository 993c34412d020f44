"""Deals (live and archived: one class, two registry rows) and the children read with them.

The deals' bookmark moves with every deal written; a deal whose children (``deal_products``)
are not read yet stays in the deals' STATE (``children_pending``). When a page of deals is
done, their children are read, 100 deals to a request, and only then do they leave it. A
child batch keeps the ids it has written in its own STATE until the batch is settled. So a
run stopped anywhere (an error, the budget, a signal) resumes with exactly what is missing:
no deal, and no deal's product, is written twice or skipped.

A deal product can change, appear or go without its deal's ``update_time`` moving, so on the
delete-detection cadence (``detect_deletes_every_hours``) the products of every deal are read
again, 100 deals to a request: what changed since it was written is written again, and what
was removed gets a tombstone. The ids and versions written are kept in STATE for that.
"""

from __future__ import annotations

import typing as t
import zlib
from datetime import datetime, timedelta, timezone

from typing_extensions import override

from tap_pipedrive.idset import IdSet
from tap_pipedrive.streams.base import PipedriveStream
from tap_pipedrive.streams.deletes import SEEN, tombstone, utc_now
from tap_pipedrive.streams.kinds import ListStream
from tap_pipedrive.timestamps import update_stamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_pipedrive.errors import StreamUnavailableError
    from tap_pipedrive.http.paging import Record

#: Pipedrive's ``/deals/products`` takes at most 100 deal ids per request.
DEAL_IDS_PER_REQUEST = 100
#: The deals' STATE key of the deals written whose children are not read yet.
PENDING = "children_pending"
#: A child's STATE key of the batch in progress: its parents and the records written so far.
BATCH = "batch"
#: A child's STATE keys for its sweeps: the versions written, and when it was last swept.
VERSIONS, SWEPT_AT = "versions", "swept_at"


def chunks(ids: list[int]) -> t.Iterator[list[int]]:
    """``ids`` in batches of :data:`DEAL_IDS_PER_REQUEST`."""
    for start in range(0, len(ids), DEAL_IDS_PER_REQUEST):
        yield ids[start : start + DEAL_IDS_PER_REQUEST]


class DealsStream(ListStream):
    """Deals, whose child streams are read per page of deals, in batches of 100 deals."""

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """The deals (and their children); then, when due, a sweep of the children."""
        yield from super().get_records(context)
        for child in self.child_streams:
            if isinstance(child, DealChildStream) and child.parents[-1:] == [self]:
                child.sweep_if_due()  # once every parent has read its deals

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """Settle what an earlier run left pending, then read the deals page by page."""
        self.seen: IdSet | None = None
        if self.services.settings.detect_deletes:  # the deals whose children a sweep reads
            self.seen = IdSet(self.get_context_state(None), SEEN)
            self.id_sets.append(self.seen)
        self.settle_page()
        yield from super().read_records(context)

    @override
    def generate_child_contexts(self, record: Record, context: Context | None) -> Iterator[Context]:
        """None per deal: the children are read per batch of deals (see :meth:`settle_page`).

        A deal of a stream that is read only for its children (not selected) is never
        written, so it is pending from here; a selected one once it is written.
        """
        if not self.selected:
            self._add_pending(record)
        yield from ()

    @override
    def record_written(self, record: Record, context: Context | None) -> None:
        """Move the bookmark past the deal; its children are pending until its page is done."""
        self.move_bookmark(record, context)
        self._add_pending(record)

    def _add_pending(self, record: Record) -> None:
        if self.seen is not None:
            self.seen.add(record["id"])
        if self._has_children:
            self.get_context_state(None).setdefault(PENDING, []).append(record["id"])

    @property
    def _has_children(self) -> bool:
        return any(c.selected or c.has_selected_descendents for c in self.child_streams)

    @override
    def settle_page(self) -> None:
        """Read the children of the pending deals, batch by batch, and let each batch go."""
        state = self.get_context_state(None)
        readers = [c for c in self.child_streams if isinstance(c, DealChildStream) and c.selected]
        for batch in chunks(state.get(PENDING) or []):  # read the batches in parallel
            for reader in readers:
                reader.read_batch_ahead(batch)
        while pending := state.get(PENDING):
            batch = next(chunks(pending))
            self.sync_children({"deal_ids": batch})
            # One step, so that no stop falls between: the batch leaves the deals' pending
            # list and each child's record of what it wrote for the batch.
            state[PENDING] = pending[len(batch) :]
            for child in self.child_streams:
                child.get_context_state(None).pop(BATCH, None)
            self.write_state(force=True)
        state.pop(PENDING, None)


class DealChildStream(PipedriveStream):
    """A list of deals' children (products, installments), read for up to 100 deals a request."""

    _unavailable = False
    #: what was written (ids, versions), read from STATE ``_tracked`` (with detect_deletes)
    seen: IdSet | None = None
    versions: IdSet | None = None
    _tracked: dict[str, t.Any] | None = None

    parent_stream_type = DealsStream
    state_partitioning_keys: t.ClassVar[list[str]] = []  # one state, not one per batch

    def read_batch_ahead(self, deal_ids: list[int]) -> None:
        """Start reading the children of a batch of deals (its turn comes when the page settles)."""
        if not self._unavailable:
            context = {"deal_ids": deal_ids}
            self.services.fetcher.read_ahead(self.list_request(context), self.definition.paging)

    @override
    def request_params(self, context: Context | None) -> dict[str, t.Any]:
        """Ask for the children of this batch of deals."""
        params = super().request_params(context)
        params["deal_ids"] = ",".join(str(i) for i in (context or {})["deal_ids"])
        return params

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """The batch's products, less those an interrupted run already wrote for it.

        In a sweep: the products not written in this version yet; at its end, the tombstones
        of the products no deal has any more.
        """
        context = context or {}
        if self._unavailable:
            return  # not in the company's plan: skipped for the rest of the run
        state = self.get_context_state(None)
        self._track(state)
        if context.get("sweep_done"):
            yield from self._removed()
            return
        sweep = bool(context.get("sweep"))
        deal_ids = list(context["deal_ids"])
        batch = state.get(BATCH)
        if not sweep and (not batch or batch.get("deal_ids") != deal_ids):
            batch = state[BATCH] = {"deal_ids": deal_ids, "written": []}
        written = set(batch["written"]) if batch and not sweep else set()
        for record in super().read_records(context):
            rid, version = record.get("id"), _version(record)
            if sweep:
                self._swept.add(rid)
                self._swept_versions.add(version)
                if self.versions is not None and version in self.versions:
                    continue  # unchanged since it was written
            elif rid in written:
                continue
            yield record

    def _track(self, state: dict[str, t.Any]) -> None:
        """The id sets of what was written, read from STATE once (not again for each batch)."""
        if not self.services.settings.detect_deletes:
            self.seen = self.versions = None
            return
        if self.seen is None or self.versions is None or state is not self._tracked:
            self.seen, self.versions = IdSet(state, SEEN), IdSet(state, VERSIONS)
            self._tracked = state
        self.id_sets = [self.seen, self.versions]

    @override
    def record_written(self, record: Record, context: Context | None) -> None:
        """Note the product as written for its batch (the batch settles with its deals)."""
        batch = self.get_context_state(None).get(BATCH)
        if batch is not None and not (context or {}).get("sweep"):
            batch["written"].append(record.get("id"))
        if self.seen is not None and self.versions is not None:
            self.seen.add(record.get("id"))
            self.versions.add(_version(record))

    @override
    def tombstone_written(self, record: Record) -> None:
        """A removed child is written once."""
        if self.seen is not None:
            self.seen.discard(record.get("id"))

    def sweep_if_due(self) -> None:
        """Read every deal's products again if the last sweep is older than the cadence."""
        if not self.selected or not self.services.settings.detect_deletes:
            return
        state = self.get_context_state(None)
        last = state.get(SWEPT_AT)
        if last is None:  # the first read was every deal's products: sweep from now on
            state[SWEPT_AT] = utc_now()
            self.write_state(force=True)
            return
        hours = self.services.settings.detect_deletes_every_hours
        since = datetime.now(timezone.utc) - datetime.fromisoformat(last.replace("Z", "+00:00"))
        if since < timedelta(hours=hours):
            return
        self._swept: set[object] = set()
        self._swept_versions: set[object] = set()
        parents = [p for p in self.parents if isinstance(p, DealsStream) and p.seen is not None]
        deal_ids = sorted(t.cast("set[int]", {i for p in parents if p.seen for i in p.seen}))
        batches = list(chunks(deal_ids))
        window = self.services.fetcher.parallel  # batches read ahead: a bounded few, not all
        for n, batch in enumerate(batches):
            for ahead in batches[n : n + window]:
                self.read_batch_ahead(ahead)
            self.sync({"deal_ids": batch, "sweep": True})
        self.sync({"deal_ids": [], "sweep_done": True})

    def _removed(self) -> Iterable[Record]:
        """The sweep is complete: a tombstone for each product no deal has any more."""
        if self.seen is None or self.versions is None:
            return
        for rid in self.seen.difference(self._swept):
            yield tombstone(self.definition, rid)
        self.versions.replace(self._swept_versions)
        state = self.get_context_state(None)
        state[SWEPT_AT] = utc_now()
        self.write_state(force=True)

    @override
    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:
        """Skip a batch whose deals are gone (404/410), or the stream on a 402/403.

        A 402/403 says the account cannot read these at all (the plan, the permissions).
        """
        if exc.status in (402, 403):
            self._unavailable = True
            super().skip(context, exc)
            return
        count = len((context or {}).get("deal_ids", ()))
        self.logger.warning("Skipping the %s of %d deals: %s", self.name, count, exc)


def _version(record: Record) -> int:
    """A product's id and ``update_time`` as one number (what a sweep compares)."""
    return zlib.crc32(f"{record.get('id')}|{update_stamp(record)}".encode())
