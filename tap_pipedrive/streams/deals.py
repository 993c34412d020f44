"""Deals (live and archived: one class, two registry rows) and their products.

The products of a page's deals are read when the page is done, 100 deals to a request, and
only then does the deals' bookmark move past those deals: a run stopped in between (an
error, the budget, a signal) reads them again next time, so no deal's products are skipped.
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


class DealsStream(ListStream):
    """Deals, whose child streams are read per page of deals, in batches of 100 deals."""

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Read the deals page by page (see :meth:`settle_page`)."""
        self._pending_ids: list[int] = []
        self._unsettled: list[tuple[Record, Context | None]] = []
        yield from super().get_records(context)

    @override
    def generate_child_contexts(self, record: Record, context: Context | None) -> Iterator[Context]:
        """Collect the deal's id; its children are read with its page (no context now)."""
        self._pending_ids.append(record["id"])
        yield from ()

    @override
    def record_written(self, record: Record, context: Context | None) -> None:
        """Hold the bookmark back until the deal's children have been read."""
        self._unsettled.append((record, context))

    @override
    def settle_page(self) -> None:
        """Read the children of the page's deals, then let the bookmark move past them."""
        ids, self._pending_ids = self._pending_ids, []
        for start in range(0, len(ids), DEAL_IDS_PER_REQUEST):
            self.sync_children({"deal_ids": ids[start : start + DEAL_IDS_PER_REQUEST]})
        unsettled, self._unsettled = self._unsettled, []
        for record, context in unsettled:
            self.move_bookmark(record, context)


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
    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:
        """A batch whose deals are gone (404/410) is skipped; the next batches go on."""
        count = len((context or {}).get("deal_ids", ()))
        self.logger.warning("Skipping the products of %d deals: %s", count, exc)
