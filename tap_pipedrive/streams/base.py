"""The stream base: one Pipedrive list read through the run's client, with exact bookmarks.

A plain ``singer_sdk.Stream`` (the tap owns its HTTP client), built from a registry row
(:class:`~tap_pipedrive.streams.definition.StreamDef`) and the run's
:class:`~tap_pipedrive.services.Services`. This class is the one place that touches the
SDK's private stream hooks (``_increment_stream_state``, ``_write_state_message``,
``_write_record_message``, ``_process_record``, ``_sync_children``,
``state_manager.is_flushed``); ``tests/unit/test_sdk_seams.py`` fails loudly if the SDK
changes them.
"""

from __future__ import annotations

import logging
import typing as t

from singer_sdk import Stream
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from typing_extensions import override

from tap_pipedrive import custom_fields, schemas
from tap_pipedrive.errors import StreamUnavailableError
from tap_pipedrive.http.fetcher import PAGES_AHEAD
from tap_pipedrive.http.paging import ListRequest
from tap_pipedrive.streams.definition import Replication
from tap_pipedrive.streams.deletes import (
    DELETED_AT_SCHEMA,
    SDC_DELETED_AT,
    DeleteDetection,
    FullTableDeletes,
    take_tombstone_mark,
)
from tap_pipedrive.streams.normalise import apply_plan, compile_plan
from tap_pipedrive.timestamps import normalize_timestamp, second
from tap_pipedrive.writer import SingerWriter

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context
    from singer_sdk.singerlib import Catalog

    from tap_pipedrive.http.paging import Record
    from tap_pipedrive.idset import IdSet
    from tap_pipedrive.services import Services
    from tap_pipedrive.streams.children import QueuedChildStream
    from tap_pipedrive.streams.definition import StreamDef

Schema = dict[str, t.Any]

#: Where the SDK notes, at a stream's turn, the value its read starts from.
_STARTING_VALUE = "starting_replication_value"

#: Where a field Pipedrive sends that the stream's schema does not declare arrives.
UNLISTED = "unlisted_fields"
UNLISTED_SCHEMA: Schema = {
    "type": ["object", "null"],
    "additionalProperties": True,
    "description": "Fields Pipedrive sent that this stream's schema does not declare (yet): "
    "name → value. Nothing Pipedrive sends is dropped.",
}


#: STATE of an archived stream whose first read has not completed yet (see ``get_records``).
FIRST_READ = "first_read"

#: The column naming the Pipedrive company a record is from (``include_company_id``).
COMPANY_ID = "company_id"
COMPANY_ID_SCHEMA: Schema = {
    "type": ["integer"],
    "description": "The Pipedrive company account this record is from (include_company_id).",
}


class PipedriveStream(Stream):
    """A Pipedrive list endpoint: paging, incremental filters and exact bookmarks."""

    # The compiled plan of post_process does the conformance records need (normalise.py).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    # Pipedrive lists are read sorted by update_time ascending, so the bookmark can move
    # forward page by page and a run stopped part-way resumes without loss.
    is_sorted = True

    def __init__(self, tap: Tap, definition: StreamDef, services: Services) -> None:
        """Declare the stream from its registry row; its schema from the OpenAPI extract."""
        self.definition = definition
        self.services = services
        super().__init__(tap, schema=self.build_schema(), name=definition.name)
        self.primary_keys = self._keys(definition.keys)
        self.replication_key = definition.replication_key
        self._timestamps = compile_plan(self.schema)
        self._deselects: bool | None = None  # whether the catalog deselects any property
        self._skip_at: str | None = None
        self._skip_ids: frozenset[object] = frozenset()
        self._custom: custom_fields.ValueMapper | None = None
        self._read_complete = False
        self._declared: frozenset[str] = frozenset()
        self._tombstone_next = False  # the record between post_process and its STATE is one
        self._detection: DeleteDetection | None = None
        self._full_table: FullTableDeletes | None = None
        #: the id sets this stream keeps in STATE (encoded when STATE is written)
        self.id_sets: list[IdSet] = []
        #: the streams this one is read with (the tap wires them: see ``tap.py``)
        self.parents: list[PipedriveStream] = []
        #: the live stream that also gets this (archived) stream's changes (wired by the tap)
        self.mirror: PipedriveStream | None = None
        #: the streams read once per record of this one (wired by the tap)
        self.per_parent_children: list[QueuedChildStream] = []
        #: the streams that sync after this one, in order (wired by the tap)
        self.following: list[PipedriveStream] = []
        self._mirroring = False

    def build_schema(self) -> Schema:
        """The stream's JSON schema: the spec's fields, plus the account's custom fields."""
        d = self.definition
        # a per-parent stream's rows name their parent (the tap adds it where Pipedrive does not)
        parent = {d.parent_key: {"type": ["integer", "null"]}} if d.parent_key else {}
        schema = schemas.stream_schema(
            d.version, d.endpoint, primary_keys=d.keys, include_fields=d.include, missing=parent,
            under=d.records_under,
        )
        if d.custom_fields:
            options = self.services.custom
            custom_fields.extend_schema(
                schema,
                self.services.fields.custom_fields(d.custom_fields),
                mode=options.mode,
                style=d.custom_fields_style,
                pins=options.pins,
            )
        return self._with_tap_columns(schema)

    def _with_tap_columns(self, schema: Schema) -> Schema:
        """``schema`` with the columns the tap adds to every stream (deletes, unknown fields).

        With ``include_company_id``, also ``company_id``, which joins the primary key.
        """
        schema["properties"][SDC_DELETED_AT] = dict(DELETED_AT_SCHEMA)
        schema["properties"][UNLISTED] = dict(UNLISTED_SCHEMA)
        if self.services.settings.include_company_id:
            schema["properties"][COMPANY_ID] = dict(COMPANY_ID_SCHEMA)
        return schema

    def _keys(self, keys: t.Sequence[str]) -> list[str]:
        """The stream's primary key: ``keys``, led by ``company_id`` with ``include_company_id``."""
        if self.services.settings.include_company_id:
            return [COMPANY_ID, *(k for k in keys if k != COMPANY_ID)]
        return list(keys)

    @override
    def apply_catalog(self, catalog: Catalog) -> None:
        """Take the catalog's selection and keys; ``company_id`` stays in both if asked for.

        (A catalog discovered before ``include_company_id`` was turned on lacks the column.)
        """
        super().apply_catalog(catalog)
        if self.services.settings.include_company_id:
            self.primary_keys = self._keys(self.primary_keys or ())
            self.effective_schema.setdefault("properties", {})[COMPANY_ID] = dict(COMPANY_ID_SCHEMA)

    @override
    def log(self, message: str, *args: t.Any, level: int = logging.INFO, **kwargs: t.Any) -> None:
        """Log through the SDK, except its generic error line for a stream that stopped.

        The tap reports why a run stopped in one line of its own (and a planned stop such as
        a spent token budget is no "unhandled error").
        """
        if message.startswith("An unhandled error occurred while syncing"):
            level = logging.DEBUG
        super().log(message, *args, level=level, **kwargs)

    # --- reading ------------------------------------------------------------------------

    @override
    def get_starting_replication_key_value(self, context: Context | None) -> t.Any | None:
        """Where the read starts: the bookmark, or ``start_date`` if later.

        The SDK notes this in STATE when the stream's turn comes; a stream whose first page
        is read ahead, before its turn, works it out the same way from its STATE.
        """
        state = self.get_context_state(context)
        if _STARTING_VALUE in state or not self.replication_key:
            return super().get_starting_replication_key_value(context)
        same_key = state.get("replication_key") == self.replication_key
        value = state.get("replication_key_value") if same_key else None
        start_date = self.config.get("start_date")
        if start_date:
            value = self.compare_start_date(value, start_date) if value else start_date
        return value

    def request_params(self, context: Context | None) -> dict[str, t.Any]:
        """Query parameters of the first page: the row's, and the bookmark's time filter."""
        params: dict[str, t.Any] = dict(self.definition.query)
        if self.definition.time_filter:
            start = self.get_starting_timestamp(context)
            if start is not None:
                # Pipedrive rejects fractional seconds; the filter is inclusive, so the
                # records of the bookmark's second come back and are filtered below.
                params[self.definition.time_filter] = second(start)
        return params

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """The stream's records (:meth:`read_records`), then the deletes found since."""
        detect = self.services.settings.detect_deletes
        state = self.get_context_state(context)
        d = self.definition
        self._detection = DeleteDetection(d, state, self.services) if detect and d.deletes else None
        full = detect and d.replication is Replication.FULL_TABLE
        self._full_table = FullTableDeletes(d, state) if full else None
        self.id_sets = [] if self._detection is None else [self._detection.seen]
        # Records archived since the last run go to the live stream too; not on a first read,
        # which is every archived record, never live in the warehouse. A first read stopped
        # part-way leaves a bookmark: FIRST_READ says its resume is still that first read.
        mirrors = bool(self.mirror and self.mirror.selected)
        if mirrors and not state.get("replication_key_value"):
            state[FIRST_READ] = True
        self._mirroring = mirrors and bool(state.get("replication_key_value")) and not state.get(FIRST_READ)
        self._declared = frozenset(self.effective_schema.get("properties", {}))
        self.read_next_streams_ahead()
        self._read_complete = True
        yield from self.read_records(context)
        if not self._read_complete:
            return  # skipped part-way: what was not read is not deleted
        state.pop(FIRST_READ, None)
        if self._detection is not None:
            if self._detection.due:
                yield from self._detection.find()
            else:
                self._detection.start_clock()
        if self._full_table is not None:
            yield from self._full_table.finish()

    def read_records(self, context: Context | None) -> Iterable[Record]:
        """Read every page; write STATE after each page so a stopped run resumes exactly."""
        self._prepare_bookmark_filter(context)
        d = self.definition
        if d.custom_fields and self._custom is None:
            self._custom = custom_fields.ValueMapper(
                fields=self.services.fields.custom_fields(d.custom_fields),
                schema=self.effective_schema,
                mode=self.services.custom.mode,
                style=d.custom_fields_style,
                pins=self.services.custom.pins,
                warn=self.logger.warning,
                warned=self.services.report.warned_fields,
            )
        request, ahead = self.list_request(context), self.pages_ahead(context)
        try:
            for page in self.services.fetcher.pages(request, d.paging, ahead):
                yield from page
                # Every record of the page has been written by now: let STATE say so.
                self.settle_page()
                self.write_state()
        except StreamUnavailableError as exc:
            self.skip(context, exc)

    def list_request(self, context: Context | None) -> ListRequest:
        """The first page of this stream's list (what :meth:`read_records` reads)."""
        d = self.definition
        return ListRequest(d.version, d.endpoint, self.request_params(context), d.page_size, self.name)

    def pages_ahead(self, context: Context | None) -> int:  # noqa: ARG002 - for the overrides
        """How many pages of the list may be read ahead of the one being written.

        A read that may stop before the end (newest first, down to a bookmark) reads none
        ahead, so that no page is bought that is not written.
        """
        return PAGES_AHEAD

    #: whether the stream's list can be read ahead, before the stream's turn (its read is
    #: the one list of :meth:`read_records`, which depends only on its own STATE)
    reads_ahead: t.ClassVar[bool] = False

    def read_next_streams_ahead(self) -> None:
        """Start reading the lists of the streams that come next (as many as may run at once)."""
        fetcher = self.services.fetcher
        if not (fetcher.parallel_enabled and fetcher.ahead_of_streams):
            return
        started = 0
        for stream in self.following:
            if started >= fetcher.parallel - 1:
                return
            if stream.reads_ahead and stream.selected and not stream.parent_stream_type:
                request, ahead = stream.list_request(None), stream.pages_ahead(None)
                fetcher.read_ahead(request, stream.definition.paging, ahead)
                started += 1

    def settle_page(self) -> None:
        """Finish what depends on the page just written, before STATE covers it."""

    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:  # noqa: ARG002
        """Skip this stream (its endpoint is not available to the account) and go on."""
        self._read_complete = False
        self.logger.warning("Skipping stream '%s': %s", self.name, exc)
        self.services.report.skip(self.name, str(exc))

    @override
    def _write_record_message(self, record: Record) -> None:
        """Write the record's RECORD message: straight to the tap's writer when nothing is deselected.

        The SDK's path builds a message object per record and, to drop deselected fields, walks
        every field of every record (that walk alone took a tenth of the CPU per record).
        """
        if self._deselects is None:
            self._deselects = not all(selected for crumb, selected in self.mask.items() if crumb)
        writer = self._tap.message_writer
        if self._deselects or not isinstance(writer, SingerWriter):
            super()._write_record_message(record)
            return
        extracted = utc_now()
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                writer.write_record(stream_map.stream_alias, mapped, self._stream_version, extracted)
        self.state_manager.is_flushed = False

    @override
    def _process_record(
        self,
        record: Record,
        child_context: Context | None = None,
        partition_context: Context | None = None,
    ) -> None:
        """The SDK's per-record step: partition keys onto the record, child streams synced.

        A stream with neither has nothing to do there (most streams, for every record).
        """
        if self.child_streams or partition_context:
            super()._process_record(record, child_context=child_context, partition_context=partition_context)

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Normalise timestamps to RFC 3339 UTC; drop records already written at the bookmark.

        A record Pipedrive lists as deleted (``is_deleted``: deals) gets ``_sdc_deleted_at``,
        its delete time, like the tap's records of deletes Pipedrive does not list.
        """
        tombstone = self._tombstone_next = take_tombstone_mark(row)
        apply_plan(self._timestamps, row)
        if row.get("is_deleted") is True and row.get(SDC_DELETED_AT) is None:
            row[SDC_DELETED_AT] = row.get("update_time")
        if (
            self._skip_at is not None
            and not tombstone
            and row.get(self.replication_key or "") == self._skip_at
            and row.get("id") in self._skip_ids
        ):
            return None
        if self._custom is not None:
            self._custom.apply(row)
        if not self._declared.issuperset(row):
            self._keep_unlisted(row, row.keys() - self._declared)
        if self.services.settings.include_company_id:
            row[COMPANY_ID] = self.services.company_id()
        self.services.report.stats[self.name].records += 1
        return row

    def _keep_unlisted(self, row: Record, names: set[str]) -> None:
        """Move fields the schema does not declare into ``unlisted_fields``; warn once each."""
        present = row.get(UNLISTED)
        kept: dict[str, t.Any] = present if isinstance(present, dict) else {}
        for name in sorted(names):
            kept[name] = row.pop(name)
            warned = f"{self.name}.{name}"
            if warned not in self.services.report.warned_fields:
                self.services.report.warned_fields.add(warned)
                self.logger.warning(
                    "Pipedrive sent the field '%s' in '%s', which the schema does not declare: "
                    "it arrives in '%s'. Discover the catalog again to get it as a column "
                    "if the tap declares it by now",
                    name,
                    self.name,
                    UNLISTED,
                )
        row[UNLISTED] = kept

    # --- bookmarks ----------------------------------------------------------------------

    def _prepare_bookmark_filter(self, context: Context | None) -> None:
        """Remember which records at the bookmark's second were already written."""
        self._skip_at, self._skip_ids = None, frozenset()
        if not self.replication_key:
            return
        state = self.get_context_state(context)
        value = normalize_timestamp(state.get("replication_key_value"))
        start = self.get_starting_timestamp(context)
        if isinstance(value, str) and start is not None and value == second(start):
            self._skip_at = value
            self._skip_ids = frozenset(state.get("bookmark_ids", ()))

    @override
    def _increment_stream_state(self, latest_record: Record, *, context: Context | None = None) -> None:
        """The SDK's hook after each record is written: see :meth:`record_written`.

        A stop (SIGTERM) asked for while the record was written happens here, once STATE
        takes the record in.
        """
        if self._tombstone_next:
            self.tombstone_written(latest_record)
        else:
            if self._detection is not None:
                self._detection.seen.add(latest_record.get("id"))
            if self._full_table is not None:
                self._full_table.written(latest_record)
            self.record_written(latest_record, context)
            if self._mirroring and self.mirror is not None:
                self.mirror.write_copy(latest_record)
            for child in self.per_parent_children:
                child.enqueue(latest_record)
        self.services.stop.checkpoint()

    def write_copy(self, record: Record) -> None:
        """Write ``record`` (of another stream: its archived twin) into this stream too."""
        self._write_record_message(dict(record))
        self.services.report.stats[self.name].records += 1

    def tombstone_written(self, record: Record) -> None:
        """A delete has been written: it is not written again (the bookmark does not move)."""
        if self._detection is not None:
            self._detection.seen.discard(record.get("id"))
        if self._full_table is not None:
            self._full_table.keys.discard(self._full_table.key(record))

    def record_written(self, record: Record, context: Context | None) -> None:
        """A record has been written: move the bookmark past it (subclasses may hold it)."""
        self.move_bookmark(record, context)

    def move_bookmark(self, record: Record, context: Context | None) -> None:
        """Advance the bookmark to ``record``, and keep the ids written at the bookmark's second.

        ``updated_since`` is inclusive and works at second resolution, so the next run reads
        that second again; these ids let it skip what was already written.
        """
        state = self.get_context_state(context)
        before = state.get("replication_key_value")
        super()._increment_stream_state(record, context=context)
        if not self.replication_key:
            return
        after = state.get("replication_key_value")
        if after != before or "bookmark_ids" not in state:
            state["bookmark_ids"] = []
        if record.get(self.replication_key) == after:
            state["bookmark_ids"].append(record.get("id"))

    def set_bookmark(self, context: Context | None, value: str, ids: list[object]) -> None:
        """Put the bookmark at ``value`` with the ids written at it, and write STATE."""
        state = self.get_context_state(context)
        state.update(replication_key=self.replication_key, replication_key_value=value, bookmark_ids=ids)
        self.write_state(force=True)

    def write_state(self, *, force: bool = False) -> None:
        """Write STATE now (``force``: even if the SDK thinks nothing changed)."""
        for ids in self.id_sets:
            ids.flush()
        if force:
            self.state_manager.is_flushed = False
        self._write_state_message()

    def sync_children(self, context: Context) -> None:
        """Sync the child streams for ``context`` (a batch of this stream's records)."""
        self._sync_children(context)
