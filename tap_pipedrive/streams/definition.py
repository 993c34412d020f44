"""One row of the stream registry: everything the tap knows about reading one stream."""

from __future__ import annotations

import enum
import typing as t
from dataclasses import dataclass, field

from tap_pipedrive import schemas
from tap_pipedrive.http.paging import ApiVersion, PagingKind

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_pipedrive.custom_fields import Style
    from tap_pipedrive.streams.base import PipedriveStream


class Replication(str, enum.Enum):
    """How a stream is kept up to date."""

    #: sorted by ``update_time`` ascending, read from the bookmark on (``updated_since``)
    INCREMENTAL = "incremental"
    #: no time filter: sorted newest first, read down to the bookmark
    NEWEST_FIRST = "newest_first"
    #: no time filter and no sort by time: read whole, only what changed since the last run emitted
    WHOLE_READ = "whole_read"
    #: read whole on every run
    FULL_TABLE = "full_table"
    #: read with its parent stream's records (per batch of parents)
    WITH_PARENT = "with_parent"
    #: read once per parent written since the last run (opt-in: a request per parent)
    PER_PARENT = "per_parent"


#: ``include_fields``: every optional field the endpoint offers.
ALL_INCLUDE_FIELDS = ("*",)


@dataclass(frozen=True)
class Deletes:
    """How the deletes of a stream whose list does not show them are found.

    Every ``detect_deletes_every_hours`` the stream's ids are listed; an id written before
    and no longer listed is a candidate, confirmed by ``confirm``, the single GET that still
    answers a deleted record for 30 days (a 404 there means hidden from the token's user,
    not deleted). ``confirm=None``: the API answers a deleted record nowhere (v1 notes), so a
    vanished record is a delete.
    """

    confirm: str | None = None
    #: the field that marks a deleted record: ``is_deleted`` (v2), ``active_flag`` (v1, false)
    flag: str = "is_deleted"


@dataclass(frozen=True)
class StreamDef:
    """A stream: its name, endpoint, paging, keys, replication, custom fields and reader."""

    name: str
    #: the class that reads it
    kind: type[PipedriveStream]
    version: ApiVersion
    #: the path after ``/api/{version}``
    endpoint: str
    paging: PagingKind
    replication: Replication = Replication.FULL_TABLE
    keys: tuple[str, ...] = ("id",)
    #: constant query parameters (besides sorting, which the replication decides)
    params: Mapping[str, str] = field(default_factory=dict)
    #: fields Pipedrive sends only on request; :data:`ALL_INCLUDE_FIELDS` for all of them
    include_fields: tuple[str, ...] = ()
    #: the entity whose custom fields the records carry, and where they carry them
    custom_fields: str | None = None
    custom_fields_style: Style = "v2"
    #: for ``*_fields`` streams: the entity whose field definitions they emit
    fields_of: str | None = None
    #: how its deletes are found, for a stream whose list does not show them
    deletes: Deletes | None = None
    #: for an archived stream: the live stream that gets its changes too (``is_archived``)
    mirror_to: str | None = None
    #: for a stream read per changed parent: the streams whose written records queue it, the
    #: column that names the parent, and the parent's field (a count) that must be non-zero
    queued_by: tuple[str, ...] = ()
    parent_key: str | None = None
    gate: str | None = None
    #: read once per record of this list (phases per board): the parent's row
    parent: StreamDef | None = None
    #: the query parameter that takes the parent's id; None: the endpoint's ``{id}``
    parent_param: str | None = None
    #: the key of the answer's ``data`` object that holds the records (``goals``)
    records_under: str | None = None
    page_size: int = 500
    #: one line for the README's streams table
    doc: str = ""

    @property
    def replication_key(self) -> str | None:
        """``update_time`` for incremental, newest-first and whole-read streams."""
        if self.replication in (Replication.INCREMENTAL, Replication.NEWEST_FIRST, Replication.WHOLE_READ):
            return "update_time"
        return None

    @property
    def time_filter(self) -> str | None:
        """The query parameter that takes the bookmark."""
        return "updated_since" if self.replication is Replication.INCREMENTAL else None

    @property
    def sort_params(self) -> dict[str, str]:
        """The sorting each replication needs (v2: ``sort_by``; v1: ``sort``)."""
        if self.replication is Replication.INCREMENTAL:
            if self.version == "v2":
                return {"sort_by": "update_time", "sort_direction": "asc"}
            return {"sort": "update_time ASC"}
        if self.replication is Replication.NEWEST_FIRST:
            return {"sort": "update_time DESC"}
        if self.version == "v2" and self.paging is PagingKind.CURSOR and "sort_by" in self._params:
            return {"sort_by": "id", "sort_direction": "asc"}
        return {}  # the list's own order (by id, for cursor-paged lists without sort_by)

    @property
    def _params(self) -> Mapping[str, t.Any]:
        """The query parameters the endpoint declares."""
        return t.cast("Mapping[str, t.Any]", schemas.endpoint(self.version, self.endpoint)["params"])

    @property
    def include(self) -> tuple[str, ...]:
        """The ``include_fields`` this stream asks for."""
        if self.include_fields == ALL_INCLUDE_FIELDS:
            param = self._params.get("include_fields") or {}
            return tuple(param.get("enum", ()))
        return self.include_fields

    @property
    def query(self) -> dict[str, str]:
        """The query parameters of every request, before paging and the bookmark."""
        params = {**self.sort_params, **self.params}
        if self.include:
            params["include_fields"] = ",".join(self.include)
        return params

    @property
    def deleted_flag(self) -> str | None:
        """The field that marks a deleted record, if the records have one."""
        if self.deletes is not None:
            return self.deletes.flag
        props = schemas.endpoint(self.version, self.endpoint)["item"].get("properties", {})
        return next((f for f in ("is_deleted", "active_flag") if f in props), None)

    @property
    def token_cost(self) -> int:
        """The API tokens one request costs (the specs' ``x-token-cost``)."""
        return schemas.token_cost(self.version, self.endpoint)
