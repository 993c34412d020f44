"""Every Pipedrive stream, one short declaration each.

| stream | API | endpoint | paging | key | replication |
| --- | --- | --- | --- | --- | --- |
| deals | v2 | /deals?status=open,won,lost,deleted | cursor | id | update_time |
| archived_deals | v2 | /deals/archived | cursor | id | update_time |
| persons, organizations, activities, products | v2 | /persons … | cursor | id | update_time |
| pipelines, stages | v2 | /pipelines, /stages | cursor | id | full table |
| deal_products | v2 | /deals/products?deal_ids= (100 deals a request) | cursor | id | with its deals |
| deal_fields … activity_fields | v2 | /dealFields … | cursor | field_code | full table |
| notes, leads | v1 | /notes, /leads | by updated_since | id | update_time |
| archived_leads | v1 | /leads/archived, newest first to the bookmark | offset | id (uuid) | update_time |
| files (≤ 100) | v1 | /files, newest first to the bookmark | offset | id | update_time |
| call_logs (≤ 50) | v1 | /callLogs | offset | id | full table |
| users, lead_labels, filters, activity_types, currencies | v1 | … | none | id | full table |
| note_fields | v1 | /noteFields | none | key | full table |
| lead_fields | v1 | /leadFields | offset | key | full table |
"""

from __future__ import annotations

import typing as t

from tap_pipedrive import schemas
from tap_pipedrive.client import PipedriveStream, second, update_stamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_pipedrive.errors import StreamUnavailableError

#: Pipedrive's ``/deals/products`` takes at most 100 deal ids per request.
DEAL_IDS_PER_REQUEST = 100


def _include_fields(path: str) -> tuple[str, ...]:
    """Every optional field an endpoint offers through ``include_fields``."""
    return tuple(schemas.endpoint("v2", path)["params"]["include_fields"].get("enum", ()))


class IncrementalV2Stream(PipedriveStream):
    """A v2 list read by ``update_time``, oldest first, from the bookmark on."""

    replication_key = "update_time"
    time_filter = "updated_since"
    params: t.ClassVar[dict[str, str]] = {"sort_by": "update_time", "sort_direction": "asc"}


class FullTableV2Stream(PipedriveStream):
    """A small v2 list read whole on every run."""

    params: t.ClassVar[dict[str, str]] = {"sort_by": "id", "sort_direction": "asc"}


class FieldsStream(PipedriveStream):
    """The field definitions of one entity (v2 Fields API), keyed by ``field_code``.

    The tap reads these definitions once per run for the custom fields; this stream
    emits that same read rather than spending tokens on a second one.
    """

    primary_keys = ("field_code",)
    #: the entity these fields describe
    entity: t.ClassVar[str] = ""

    def get_records(self, context: Context | None) -> Iterable[dict]:  # noqa: ARG002
        """The run's cached field definitions."""
        yield from self._tap.field_definitions(self.entity)

    @classmethod
    def build_schema(cls, tap: t.Any) -> dict:  # noqa: ANN401
        """The entity's Fields schema; every v2 Fields endpoint may send a description."""
        schema = super().build_schema(tap)
        schema["properties"].setdefault("description", {"type": ["string", "null"]})
        return schema


class IncrementalV1Stream(PipedriveStream):
    """A v1 list that takes ``updated_since``, paged by time (see ``PipedriveAPI._time_pages``)."""

    api_version = "v1"
    paging = "time"
    replication_key = "update_time"
    time_filter = "updated_since"
    params: t.ClassVar[dict[str, str]] = {"sort": "update_time ASC"}


class FullTableV1Stream(PipedriveStream):
    """A v1 list read whole on every run."""

    api_version = "v1"
    paging = "offset"


class NewestFirstV1Stream(FullTableV1Stream):
    """A v1 list without a time filter, read newest first and only down to the bookmark.

    Pipedrive cannot filter these lists by time, but it can sort them by ``update_time``: the
    tap reads newest first and stops at the first record older than the bookmark, so a run
    with few changes spends one request, not one per page of the whole list. The bookmark
    moves (to the newest ``update_time`` read) only once the read is complete: a run stopped
    part-way reads the same range again next time. An update during the read moves a record
    to the top, which makes the next page repeat a record but never skip one.
    """

    replication_key = "update_time"
    params: t.ClassVar[dict[str, str]] = {"sort": "update_time DESC"}

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Read pages newest first until the records are older than the bookmark."""
        self._newest: str | None = None
        self._newest_ids: list = []
        start = self.get_starting_timestamp(context)
        floor = second(start) if start is not None else None
        for record in super().get_records(context):
            if floor is not None and str(update_stamp(record)) < floor:
                break  # everything after this is older still
            yield record
        self._move_bookmark(context)

    def _increment_stream_state(self, latest_record: dict, *, context: Context | None = None) -> None:  # noqa: ARG002
        """Note the newest ``update_time`` written (the bookmark moves at the end)."""
        value = latest_record.get("update_time")
        if value is None:
            return
        if self._newest is None or value > self._newest:
            self._newest, self._newest_ids = value, [latest_record.get("id")]
        elif value == self._newest:
            self._newest_ids.append(latest_record.get("id"))

    def _move_bookmark(self, context: Context | None) -> None:
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
        state.update(
            replication_key=self.replication_key, replication_key_value=self._newest, bookmark_ids=ids
        )
        self.state_manager.is_flushed = False
        self._write_state_message()


class SmallV1Stream(FullTableV1Stream):
    """A v1 list that Pipedrive returns whole, without paging."""

    paging = "none"


# --- deals and their products ---------------------------------------------------------


class _DealsWithProducts(IncrementalV2Stream):
    """Deals whose products (``deal_products``) are read 100 deals to a request.

    The products of a page's deals are read when the page is done, and only then does the
    deals' bookmark move past those deals: a run stopped in between (an error, the budget, a
    signal) reads them again next time, so no deal's products are ever skipped.
    """

    params: t.ClassVar[dict[str, str]] = {
        **IncrementalV2Stream.params,
        "status": "open,won,lost,deleted",
    }
    include_fields = _include_fields("/deals")
    custom_fields_entity = "deal"

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Read the deals page by page (see :meth:`settle_page`)."""
        self._pending_deal_ids: list[int] = []
        self._unsettled: list[tuple[dict, Context | None]] = []
        yield from super().get_records(context)

    def generate_child_contexts(self, record: dict, context: Context | None) -> Iterator[dict]:  # noqa: ARG002
        """Collect the deal's id; its products are read with its page (no context now)."""
        self._pending_deal_ids.append(record["id"])
        yield from ()

    def _increment_stream_state(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Hold the bookmark back until the deal's products have been read."""
        self._unsettled.append((latest_record, context))

    def settle_page(self) -> None:
        """Read the products of the page's deals, then let the bookmark move past them."""
        ids, self._pending_deal_ids = self._pending_deal_ids, []
        for start in range(0, len(ids), DEAL_IDS_PER_REQUEST):
            self._sync_children({"deal_ids": ids[start : start + DEAL_IDS_PER_REQUEST]})
        unsettled, self._unsettled = self._unsettled, []
        for record, context in unsettled:
            super()._increment_stream_state(record, context=context)


class DealsStream(_DealsWithProducts):
    """Live, won, lost and deleted deals (deleted ones stay listed for 30 days)."""

    name = "deals"
    endpoint = "/deals"


class ArchivedDealsStream(_DealsWithProducts):
    """Archived deals, which Pipedrive lists only on their own endpoint."""

    name = "archived_deals"
    endpoint = "/deals/archived"


class DealProductsStream(PipedriveStream):
    """Products attached to deals, read for up to 100 deals per request."""

    name = "deal_products"
    endpoint = "/deals/products"
    parent_stream_type = DealsStream
    state_partitioning_keys: t.ClassVar[list[str]] = []  # one state, not one per batch
    params: t.ClassVar[dict[str, str]] = {"sort_by": "id", "sort_direction": "asc"}

    def request_params(self, context: Context | None) -> dict[str, t.Any]:
        """Ask for the products of this batch of deals."""
        params = super().request_params(context)
        params["deal_ids"] = ",".join(str(i) for i in (context or {})["deal_ids"])
        return params

    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:
        """A batch whose deals are gone (404/410) is skipped; the next batches go on."""
        count = len((context or {}).get("deal_ids", ()))
        self.logger.warning("Skipping the products of %d deals: %s", count, exc)


# --- the other v2 entities --------------------------------------------------------------


class PersonsStream(IncrementalV2Stream):
    """Persons (contacts)."""

    name = "persons"
    endpoint = "/persons"
    custom_fields_entity = "person"
    include_fields = _include_fields("/persons")


class OrganizationsStream(IncrementalV2Stream):
    """Organizations."""

    name = "organizations"
    endpoint = "/organizations"
    custom_fields_entity = "organization"
    include_fields = _include_fields("/organizations")


class ActivitiesStream(IncrementalV2Stream):
    """Activities, with their attendees."""

    name = "activities"
    endpoint = "/activities"
    custom_fields_entity = "activity"
    include_fields = ("attendees",)


class ProductsStream(IncrementalV2Stream):
    """Products (the endpoint takes ``updated_since`` but no ``updated_until``)."""

    name = "products"
    endpoint = "/products"
    custom_fields_entity = "product"


class PipelinesStream(FullTableV2Stream):
    """Pipelines (no time filter on this endpoint)."""

    name = "pipelines"
    endpoint = "/pipelines"


class StagesStream(FullTableV2Stream):
    """Pipeline stages (no time filter on this endpoint)."""

    name = "stages"
    endpoint = "/stages"


class DealFieldsStream(FieldsStream):
    """Deal field definitions."""

    name = "deal_fields"
    endpoint = "/dealFields"
    entity = "deal"


class PersonFieldsStream(FieldsStream):
    """Person field definitions."""

    name = "person_fields"
    endpoint = "/personFields"
    entity = "person"


class OrganizationFieldsStream(FieldsStream):
    """Organization field definitions."""

    name = "organization_fields"
    endpoint = "/organizationFields"
    entity = "organization"


class ProductFieldsStream(FieldsStream):
    """Product field definitions."""

    name = "product_fields"
    endpoint = "/productFields"
    entity = "product"


class ActivityFieldsStream(FieldsStream):
    """Activity field definitions."""

    name = "activity_fields"
    endpoint = "/activityFields"
    entity = "activity"


# --- v1-only entities -------------------------------------------------------------------


class NotesStream(IncrementalV1Stream):
    """Notes on deals, persons, organizations, leads and projects."""

    name = "notes"
    endpoint = "/notes"
    custom_fields_entity = "note"
    custom_fields_style = "v1"


class LeadsStream(IncrementalV1Stream):
    """Leads (not archived)."""

    name = "leads"
    endpoint = "/leads"
    custom_fields_entity = "deal"  # leads carry the deals' custom fields
    custom_fields_style = "v1"


class ArchivedLeadsStream(NewestFirstV1Stream):
    """Archived leads, listed only on their own endpoint (no time filter there)."""

    name = "archived_leads"
    endpoint = "/leads/archived"
    custom_fields_entity = "deal"
    custom_fields_style = "v1"


class FilesStream(NewestFirstV1Stream):
    """Files attached to deals, persons, organizations, activities and more."""

    name = "files"
    endpoint = "/files"
    page_size = 100


class CallLogsStream(FullTableV1Stream):
    """Call logs."""

    name = "call_logs"
    endpoint = "/callLogs"
    page_size = 50


class LeadFieldsStream(FullTableV1Stream):
    """Lead field definitions (leads share the deals' custom fields)."""

    name = "lead_fields"
    endpoint = "/leadFields"
    primary_keys = ("key",)


class UsersStream(SmallV1Stream):
    """Users of the company account."""

    name = "users"
    endpoint = "/users"


class LeadLabelsStream(SmallV1Stream):
    """Lead labels."""

    name = "lead_labels"
    endpoint = "/leadLabels"


class FiltersStream(SmallV1Stream):
    """Saved filters."""

    name = "filters"
    endpoint = "/filters"


class ActivityTypesStream(SmallV1Stream):
    """Activity types."""

    name = "activity_types"
    endpoint = "/activityTypes"


class CurrenciesStream(SmallV1Stream):
    """Currencies."""

    name = "currencies"
    endpoint = "/currencies"


class NoteFieldsStream(SmallV1Stream):
    """Note field definitions (the run's cached read, like the v2 Fields streams)."""

    name = "note_fields"
    endpoint = "/noteFields"
    primary_keys = ("key",)

    def get_records(self, context: Context | None) -> Iterable[dict]:  # noqa: ARG002
        """The run's cached note field definitions."""
        yield from self._tap.field_definitions("note")


STREAM_TYPES: tuple[type[PipedriveStream], ...] = (
    DealsStream,
    ArchivedDealsStream,
    DealProductsStream,
    PersonsStream,
    OrganizationsStream,
    ActivitiesStream,
    ProductsStream,
    PipelinesStream,
    StagesStream,
    DealFieldsStream,
    PersonFieldsStream,
    OrganizationFieldsStream,
    ProductFieldsStream,
    ActivityFieldsStream,
    NotesStream,
    LeadsStream,
    ArchivedLeadsStream,
    FilesStream,
    CallLogsStream,
    LeadFieldsStream,
    UsersStream,
    LeadLabelsStream,
    FiltersStream,
    ActivityTypesStream,
    CurrenciesStream,
    NoteFieldsStream,
)
