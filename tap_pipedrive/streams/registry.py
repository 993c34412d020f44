"""Every stream of the tap, one row each: the catalog at a glance.

Discovery builds the streams from this table; the field catalog's endpoints, the OpenAPI
extract's endpoint list (``scripts/extract_openapi.py``) and the README's streams table
(``scripts/readme_tables.py``) all come from it. A new entity that reads like an existing one
is one row here.
"""

from __future__ import annotations

import typing as t

from tap_pipedrive.http.paging import PagingKind
from tap_pipedrive.services import FieldEndpoint
from tap_pipedrive.streams.base import PipedriveStream
from tap_pipedrive.streams.children import DealChangesStream, QueuedChildStream, SnapshotChildStream
from tap_pipedrive.streams.deals import DealChildStream, DealsStream
from tap_pipedrive.streams.definition import ALL_INCLUDE_FIELDS, Deletes, Replication, StreamDef
from tap_pipedrive.streams.kinds import FieldsStream, ListStream, NewestFirstStream
from tap_pipedrive.streams.several_reads import GoalsStream, MailThreadsStream, ParentStream, PerParentStream
from tap_pipedrive.streams.whole_read import WholeReadStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.streams import Stream

CURSOR, OFFSET, TIME, NONE = PagingKind.CURSOR, PagingKind.OFFSET, PagingKind.TIME, PagingKind.NONE
INCREMENTAL, NEWEST_FIRST = Replication.INCREMENTAL, Replication.NEWEST_FIRST
FULL_TABLE, WITH_PARENT, WHOLE_READ = Replication.FULL_TABLE, Replication.WITH_PARENT, Replication.WHOLE_READ
PER_PARENT = Replication.PER_PARENT
DEALS_STATUSES = {"status": "open,won,lost,deleted"}
PROJECT_STATUSES = {"status": "open,completed,canceled,deleted"}
DEAL_PARENTS = ("deals", "archived_deals")


def _fields(entity: str, endpoint: str) -> StreamDef:
    return StreamDef(
        f"{entity}_fields",
        FieldsStream,
        "v2",
        endpoint,
        CURSOR,
        keys=("field_code",),
        fields_of=entity,
        doc=f"{entity.capitalize()} field definitions (the run's one read of them)",
    )


# the parents of the streams read once per parent record
BOARDS = StreamDef("boards", ParentStream, "v2", "/boards", NONE, doc="Project boards")
ROLES = StreamDef("roles", ParentStream, "v1", "/roles", OFFSET, doc="Roles (the visibility hierarchy)")
PERMISSION_SETS = StreamDef(
    "permission_sets", ParentStream, "v1", "/permissionSets", NONE, doc="Permission sets of every app"
)

STREAMS: tuple[StreamDef, ...] = (
    StreamDef(
        "deals", DealsStream, "v2", "/deals", CURSOR, INCREMENTAL,
        params=DEALS_STATUSES, include_fields=ALL_INCLUDE_FIELDS, custom_fields="deal",
        doc="Live, won, lost and deleted deals (deleted ones stay listed for 30 days)",
    ),
    StreamDef(
        "archived_deals", DealsStream, "v2", "/deals/archived", CURSOR, INCREMENTAL,
        params=DEALS_STATUSES, include_fields=ALL_INCLUDE_FIELDS, custom_fields="deal", mirror_to="deals",
        doc="Archived deals, which Pipedrive lists only on their own endpoint",
    ),
    StreamDef(
        "deal_products", DealChildStream, "v2", "/deals/products", CURSOR, WITH_PARENT,
        doc="Products attached to deals, read for 100 deals a request with their deals",
    ),
    StreamDef(
        "deal_installments", DealChildStream, "v2", "/deals/installments", CURSOR, WITH_PARENT,
        doc="Installments (payment schedules) of deals, read like deal_products; skipped if the "
        "plan has none",
    ),
    StreamDef(
        "persons", ListStream, "v2", "/persons", CURSOR, INCREMENTAL,
        include_fields=ALL_INCLUDE_FIELDS, custom_fields="person", deletes=Deletes("/persons/{id}"),
        doc="Persons (contacts)",
    ),
    StreamDef(
        "organizations", ListStream, "v2", "/organizations", CURSOR, INCREMENTAL,
        include_fields=ALL_INCLUDE_FIELDS, custom_fields="organization",
        deletes=Deletes("/organizations/{id}"), doc="Organizations",
    ),
    StreamDef(
        "activities", ListStream, "v2", "/activities", CURSOR, INCREMENTAL,
        include_fields=("attendees",), custom_fields="activity", deletes=Deletes("/activities/{id}"),
        doc="Activities, with their attendees",
    ),
    StreamDef(
        "products", ListStream, "v2", "/products", CURSOR, INCREMENTAL,
        custom_fields="product", deletes=Deletes("/products/{id}"), doc="Products",
    ),
    StreamDef("pipelines", ListStream, "v2", "/pipelines", CURSOR, doc="Pipelines (no time filter)"),
    StreamDef("stages", ListStream, "v2", "/stages", CURSOR, doc="Pipeline stages (no time filter)"),
    _fields("deal", "/dealFields"),
    _fields("person", "/personFields"),
    _fields("organization", "/organizationFields"),
    _fields("product", "/productFields"),
    _fields("activity", "/activityFields"),
    StreamDef(
        "notes", ListStream, "v1", "/notes", TIME, INCREMENTAL,
        custom_fields="note", custom_fields_style="v1", deletes=Deletes(None, "active_flag"),
        doc="Notes on deals, persons, organizations, leads and projects",
    ),
    StreamDef(
        "leads", ListStream, "v1", "/leads", TIME, INCREMENTAL,
        custom_fields="deal", custom_fields_style="v1",
        doc="Leads (not archived); they carry the deals' custom fields",
    ),
    StreamDef(
        "archived_leads", NewestFirstStream, "v1", "/leads/archived", OFFSET, NEWEST_FIRST,
        custom_fields="deal", custom_fields_style="v1", mirror_to="leads",
        doc="Archived leads (no time filter on this endpoint)",
    ),
    StreamDef(
        "files", NewestFirstStream, "v1", "/files", OFFSET, NEWEST_FIRST, page_size=100,
        deletes=Deletes("/files/{id}", "active_flag"),
        doc="Files attached to deals, persons, organizations, activities and more",
    ),
    StreamDef("call_logs", ListStream, "v1", "/callLogs", OFFSET, page_size=50, doc="Call logs"),
    StreamDef(
        "lead_fields", ListStream, "v1", "/leadFields", OFFSET, keys=("key",),
        doc="Lead field definitions (leads share the deals' custom fields)",
    ),
    StreamDef(
        "note_fields", FieldsStream, "v1", "/noteFields", NONE, keys=("key",), fields_of="note",
        doc="Note field definitions (the run's one read of them)",
    ),
    StreamDef("users", ListStream, "v1", "/users", NONE, doc="Users of the company account"),
    StreamDef("lead_labels", ListStream, "v1", "/leadLabels", NONE, doc="Lead labels"),
    StreamDef("filters", ListStream, "v1", "/filters", NONE, doc="Saved filters"),
    StreamDef("activity_types", ListStream, "v1", "/activityTypes", NONE, doc="Activity types"),
    StreamDef("currencies", ListStream, "v1", "/currencies", NONE, doc="Currencies"),
    StreamDef(
        "projects", WholeReadStream, "v2", "/projects", CURSOR, WHOLE_READ,
        params=PROJECT_STATUSES, custom_fields="project",
        doc="Open, completed, canceled and deleted projects (not archived)",
    ),
    StreamDef(
        "archived_projects", WholeReadStream, "v2", "/projects/archived", CURSOR, WHOLE_READ,
        params=PROJECT_STATUSES, custom_fields="project", mirror_to="projects",
        doc="Archived projects, which Pipedrive lists only on their own endpoint",
    ),
    StreamDef("tasks", WholeReadStream, "v2", "/tasks", CURSOR, WHOLE_READ, doc="Tasks of projects"),
    BOARDS,
    StreamDef(
        "phases", PerParentStream, "v2", "/phases", NONE, parent=BOARDS, parent_param="board_id",
        doc="Phases of the project boards (one request per board)",
    ),
    StreamDef("project_templates", ListStream, "v2", "/projectTemplates", CURSOR, doc="Project templates"),
    _fields("project", "/projectFields"),
    StreamDef(
        "goals", GoalsStream, "v1", "/goals/find", NONE, records_under="goals",
        doc="Every goal, active and inactive, of every assignee (six requests: see below)",
    ),
    ROLES,
    StreamDef(
        "role_assignments", PerParentStream, "v1", "/roles/{id}/assignments", OFFSET,
        keys=("role_id", "user_id"), parent=ROLES, doc="Which user holds which role (one request per role)",
    ),
    PERMISSION_SETS,
    StreamDef(
        "permission_set_assignments", PerParentStream, "v1", "/permissionSets/{id}/assignments", OFFSET,
        keys=("permission_set_id", "user_id"), parent=PERMISSION_SETS,
        doc="Which user has which permission set (one request per permission set)",
    ),
    StreamDef("lead_sources", ListStream, "v1", "/leadSources", NONE, keys=("name",), doc="Lead sources"),
    StreamDef(
        "mail_threads", MailThreadsStream, "v1", "/mailbox/mailThreads", OFFSET,
        doc="Mail threads of the token user's own mailbox only (each folder; a thread once)",
    ),
    # Read once per parent written since the last run, after every other stream: opt-in.
    StreamDef(
        "deal_changes", DealChangesStream, "v1", "/deals/{id}/flow", OFFSET, PER_PARENT,
        params={"items": "dealChange", "all_changes": "1"}, queued_by=DEAL_PARENTS, parent_key="deal_id",
        doc="A deal's history (every field change, with old and new value, time, user, source): "
        "opt-in, a request (40 tokens) per changed deal",
    ),
    StreamDef(
        "deal_participants", SnapshotChildStream, "v1", "/deals/{id}/participants", OFFSET, PER_PARENT,
        queued_by=DEAL_PARENTS, parent_key="deal_id", gate="participants_count",
        doc="Persons participating in deals: opt-in, a request per changed deal with participants",
    ),
    StreamDef(
        "deal_followers", SnapshotChildStream, "v2", "/deals/{id}/followers", CURSOR, PER_PARENT,
        keys=("deal_id", "user_id"), queued_by=DEAL_PARENTS, parent_key="deal_id", gate="followers_count",
        doc="Users following deals: opt-in, a request per changed deal with followers",
    ),
    StreamDef(
        "product_variations", SnapshotChildStream, "v2", "/products/{id}/variations", CURSOR, PER_PARENT,
        queued_by=("products",), parent_key="product_id",
        doc="Variations of products: opt-in, a request per changed product",
    ),
    StreamDef(
        "mail_messages", SnapshotChildStream, "v1", "/mailbox/mailThreads/{id}/mailMessages", NONE,
        PER_PARENT, queued_by=("mail_threads",), parent_key="mail_thread_id",
        doc="Messages of the token user's mail threads: opt-in, a request per changed thread",
    ),
)

#: GET endpoints the tap reads besides its streams' lists.
OTHER_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("v1", "/users/me"),  # the connection test
    # single records: deleted and hidden records answer here, not in the lists
    ("v2", "/deals/{id}"),
    ("v2", "/persons/{id}"),
    ("v2", "/organizations/{id}"),
    ("v2", "/activities/{id}"),
    ("v2", "/products/{id}"),
    ("v1", "/notes/{id}"),
    ("v1", "/files/{id}"),
)


def wire(streams: dict[str, Stream]) -> None:
    """Put ``streams`` (the SDK's dict, in place) in registry order and connect them.

    Live streams sync before their archived twins (which write their changes into them), and
    each child stream learns its parents (the SDK only tells parents their children).
    """
    order = {d.name: i for i, d in enumerate(STREAMS)}
    ordered = sorted(streams.items(), key=lambda item: order.get(item[0], len(order)))
    streams.clear()
    streams.update(ordered)
    ordered_streams = [s for s in streams.values() if isinstance(s, PipedriveStream)]
    for position, stream in enumerate(ordered_streams):
        stream.following = ordered_streams[position + 1 :]
    for stream in ordered_streams:
        for child in stream.child_streams:
            if isinstance(child, PipedriveStream):
                child.parents.append(stream)
        if stream.definition.mirror_to:
            stream.mirror = t.cast("PipedriveStream", streams[stream.definition.mirror_to])
        if isinstance(stream, QueuedChildStream):
            for name in stream.definition.queued_by:
                t.cast("PipedriveStream", streams[name]).per_parent_children.append(stream)


def field_endpoints(streams: Iterable[StreamDef] = STREAMS) -> dict[str, FieldEndpoint]:
    """Entity → where its field definitions are read (the ``*_fields`` streams' endpoints)."""
    return {s.fields_of: FieldEndpoint(s.version, s.endpoint, s.paging) for s in streams if s.fields_of}


def endpoints(streams: Iterable[StreamDef] = STREAMS) -> list[tuple[str, str]]:
    """Every (version, path) the tap reads, in registry order."""
    out = [(s.version, s.endpoint) for s in streams]
    return [*dict.fromkeys([*out, *OTHER_ENDPOINTS])]


_PAGING_TEXT = {CURSOR: "cursor", OFFSET: "offset", TIME: "by `updated_since`", NONE: "none"}
_REPLICATION_TEXT = {
    INCREMENTAL: "`update_time`",
    NEWEST_FIRST: "`update_time`, newest first down to the bookmark",
    WHOLE_READ: "`update_time`, read whole, changes emitted",
    FULL_TABLE: "full table",
    WITH_PARENT: "with its parent stream",
    PER_PARENT: "per parent changed since the last run (opt-in)",
}


def markdown_table(streams: Iterable[StreamDef] = STREAMS) -> str:
    """The README's streams table."""
    rows = [
        "| stream | API | endpoint | paging | key | replication | tokens a request | what |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in streams:
        params = {**s.params, **({s.parent_param: "{id}"} if s.parent_param else {})}
        query = "&".join(f"{k}={v}" for k, v in params.items())
        endpoint = f"`/api/{s.version}{s.endpoint}{'?' + query if query else ''}`"
        paging = _PAGING_TEXT[s.paging] + (f", {s.page_size}" if s.paging is not NONE else "")
        keys = ", ".join(f"`{k}`" for k in s.keys)
        rows.append(
            f"| `{s.name}` | {s.version} | {endpoint} | {paging} | {keys} | "
            f"{_REPLICATION_TEXT[s.replication]} | {s.token_cost} | {s.doc} |"
        )
    return "\n".join(rows)
