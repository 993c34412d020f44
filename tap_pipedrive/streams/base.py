"""The stream base: one Pipedrive list read through the run's client, with exact bookmarks.

A plain ``singer_sdk.Stream`` (the tap owns its HTTP client), built from a registry row
(:class:`~tap_pipedrive.streams.definition.StreamDef`) and the run's
:class:`~tap_pipedrive.services.Services`. This class is the one place that touches the
SDK's private stream hooks (``_increment_stream_state``, ``_write_state_message``,
``_sync_children``, ``state_manager.is_flushed``); ``tests/unit/test_sdk_seams.py`` fails
loudly if the SDK changes them.
"""

from __future__ import annotations

import logging
import typing as t

from singer_sdk import Stream
from typing_extensions import override

from tap_pipedrive import custom_fields, schemas
from tap_pipedrive.errors import StreamUnavailableError
from tap_pipedrive.http.paging import ListRequest
from tap_pipedrive.timestamps import normalize_timestamp, second

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.http.paging import Record
    from tap_pipedrive.services import Services
    from tap_pipedrive.streams.definition import StreamDef

Schema = dict[str, t.Any]


class PipedriveStream(Stream):
    """A Pipedrive list endpoint: paging, incremental filters and exact bookmarks."""

    # Pipedrive lists are read sorted by update_time ascending, so the bookmark can move
    # forward page by page and a run stopped part-way resumes without loss.
    is_sorted = True

    def __init__(self, tap: Tap, definition: StreamDef, services: Services) -> None:
        """Declare the stream from its registry row; its schema from the OpenAPI extract."""
        self.definition = definition
        self.services = services
        super().__init__(tap, schema=self.build_schema(), name=definition.name)
        self.primary_keys = definition.keys
        self.replication_key = definition.replication_key
        self._timestamp_fields = schemas.timestamp_fields(self.schema)
        self._skip_at: str | None = None
        self._skip_ids: frozenset[object] = frozenset()
        self._custom: custom_fields.ValueMapper | None = None

    def build_schema(self) -> Schema:
        """The stream's JSON schema: the spec's fields, plus the account's custom fields."""
        d = self.definition
        schema = schemas.stream_schema(
            d.version, d.endpoint, primary_keys=d.keys, include_fields=d.include, under=d.records_under
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
        return schema

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
        request = ListRequest(d.version, d.endpoint, self.request_params(context), d.page_size, self.name)
        try:
            for page in self.services.client.pages(request, d.paging):
                yield from page
                # Every record of the page has been written by now: let STATE say so.
                self.settle_page()
                self.write_state()
        except StreamUnavailableError as exc:
            self.skip(context, exc)

    def settle_page(self) -> None:
        """Finish what depends on the page just written, before STATE covers it."""

    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:  # noqa: ARG002
        """Skip this stream (its endpoint is not available to the account) and go on."""
        self.logger.warning("Skipping stream '%s': %s", self.name, exc)
        self.services.report.skip(self.name, str(exc))

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Normalise timestamps to RFC 3339 UTC; drop records already written at the bookmark."""
        for name in self._timestamp_fields:
            value = row.get(name)
            if value is not None:
                row[name] = normalize_timestamp(value)
        if (
            self._skip_at is not None
            and row.get(self.replication_key or "") == self._skip_at
            and row.get("id") in self._skip_ids
        ):
            return None
        if self._custom is not None:
            self._custom.apply(row)
        self.services.report.stats[self.name].records += 1
        return row

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
        self.record_written(latest_record, context)
        self.services.stop.checkpoint()

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
        if force:
            self.state_manager.is_flushed = False
        self._write_state_message()

    def sync_children(self, context: Context) -> None:
        """Sync the child streams for ``context`` (a batch of this stream's records)."""
        self._sync_children(context)
