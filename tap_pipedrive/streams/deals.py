"""Deals (live and archived: one class, two registry rows) and the children read with them.

The deals' bookmark moves with every deal written; a deal whose children (``deal_products``)
are not read yet stays in the deals' STATE (``children_pending``). When a page of deals is
done, their children are read, 100 deals to a request, and only then do they leave it. A
child batch keeps the ids it has written in its own STATE until the batch is settled. So a
run stopped anywhere (an error, the budget, a signal) resumes with exactly what is missing:
no deal, and no deal's product, is written twice or skipped.
"""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.streams.base import PipedriveStream
from tap_pipedrive.streams.kinds import ListStream

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


class DealsStream(ListStream):
    """Deals, whose child streams are read per page of deals, in batches of 100 deals."""

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Settle what an earlier run left pending, then read the deals page by page."""
        self.settle_page()
        yield from super().get_records(context)

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
        if self._has_children:
            self.get_context_state(None).setdefault(PENDING, []).append(record["id"])

    @property
    def _has_children(self) -> bool:
        return any(c.selected or c.has_selected_descendents for c in self.child_streams)

    @override
    def settle_page(self) -> None:
        """Read the children of the pending deals, batch by batch, and let each batch go."""
        state = self.get_context_state(None)
        while pending := state.get(PENDING):
            batch = pending[:DEAL_IDS_PER_REQUEST]
            self.sync_children({"deal_ids": batch})
            # One step, so that no stop falls between: the batch leaves the deals' pending
            # list and each child's record of what it wrote for the batch.
            state[PENDING] = pending[len(batch) :]
            for child in self.child_streams:
                child.get_context_state(None).pop(BATCH, None)
            self.write_state(force=True)
        state.pop(PENDING, None)


class DealProductsStream(PipedriveStream):
    """Products attached to deals, read for up to 100 deals per request."""

    parent_stream_type = DealsStream
    state_partitioning_keys: t.ClassVar[list[str]] = []  # one state, not one per batch

    @override
    def request_params(self, context: Context | None) -> dict[str, t.Any]:
        """Ask for the products of this batch of deals."""
        params = super().request_params(context)
        params["deal_ids"] = ",".join(str(i) for i in (context or {})["deal_ids"])
        return params

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """The batch's products, less those an interrupted run already wrote for it."""
        deal_ids = list((context or {})["deal_ids"])
        state = self.get_context_state(None)
        batch = state.get(BATCH)
        if not batch or batch.get("deal_ids") != deal_ids:
            batch = state[BATCH] = {"deal_ids": deal_ids, "written": []}
        written = set(batch["written"])
        for record in super().get_records(context):
            if record.get("id") not in written:
                yield record

    @override
    def record_written(self, record: Record, context: Context | None) -> None:
        """Note the product as written for its batch (the batch settles with its deals)."""
        self.get_context_state(None)[BATCH]["written"].append(record.get("id"))

    @override
    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:
        """A batch whose deals are gone (404/410) is skipped; the next batches go on."""
        count = len((context or {}).get("deal_ids", ()))
        self.logger.warning("Skipping the products of %d deals: %s", count, exc)
