"""Full-table streams that one request cannot read: per parent, per folder, per kind of goal."""

from __future__ import annotations

import copy
import itertools
import typing as t

from typing_extensions import override

from tap_pipedrive import schemas
from tap_pipedrive.errors import StreamUnavailableError
from tap_pipedrive.http.paging import ListRequest
from tap_pipedrive.streams.base import PipedriveStream
from tap_pipedrive.streams.kinds import ListStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context

    from tap_pipedrive.http.paging import Record
    from tap_pipedrive.streams.definition import StreamDef

#: Statuses that mean one read's parent is gone (deleted since the parent list was read):
#: that read is skipped. A 402/403 means the account cannot read the endpoint: the stream is.
GONE = (404, 410)


class SeveralReadsStream(PipedriveStream):
    """A full-table stream read with several requests to its endpoint; each record once.

    Subclasses name the reads (:meth:`reads`). A record that two reads return (a mail thread
    in two folders) is emitted once, from the first.
    """

    def reads(self, context: Context | None) -> Iterator[ListRequest]:
        """The requests that together list every record (each one paged)."""
        raise NotImplementedError

    def request(self, params: Mapping[str, object] | None = None, *, path: str | None = None) -> ListRequest:
        """A read of this stream's endpoint (or ``path``) with the row's and these parameters."""
        d = self.definition
        query = {**d.query, **(params or {})}
        return ListRequest(d.version, path or d.endpoint, query, d.page_size, self.name)

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """Every read's records, each once; a stream the account cannot read is skipped."""
        seen: set[tuple[object, ...]] = set()
        try:
            # The first read goes alone (a 402/403 there skips the stream after one request),
            # then the others in parallel (as many as max_parallel_requests), written in order.
            reads = list(self.reads(context))
            results = itertools.chain(
                [self._read(r) for r in reads[:1]],
                (done.result() for _, done in self.services.fetcher.map_ordered(self._read, reads[1:])),
            )
            for records in results:
                for record in records:
                    key = tuple(record.get(k) for k in self.definition.keys)
                    if key not in seen:
                        seen.add(key)
                        yield record
        except StreamUnavailableError as exc:
            self.skip(context, exc)

    def _read(self, request: ListRequest) -> list[Record]:
        """Every record of one read (its pages), or none if its parent is gone."""
        under = self.definition.records_under
        records: list[Record] = []
        try:
            for page in self.services.client.pages(request, self.definition.paging):
                for record in page:
                    records.extend((record.get(under) or []) if under else [record])
        except StreamUnavailableError as exc:
            if exc.status not in GONE or self.definition.parent is None:
                raise
            self.logger.warning("%s: %s; skipping that read", self.name, exc)
            return []
        return records


class ParentStream(ListStream):
    """A full-table list that another stream is read once per record of (boards for phases).

    The two read the list once between them in a run: whichever comes first reads it whole
    and leaves it in the run's services (``listed``), the other takes it from there.
    """

    reads_ahead = False  # the other stream may have read it already

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """The list as read this run already, or read now (and then left for the other)."""
        listed = self.services.listed.get(self.name)
        if listed is not None:
            yield from copy.deepcopy(listed)
            return
        self._skipped = False
        records = []
        for record in super().read_records(context):
            records.append(copy.deepcopy(record))  # as Pipedrive sent it
            yield record
        if not self._skipped:
            self.services.listed[self.name] = records

    @override
    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:
        """Skip the stream; a per-parent stream will find the list unavailable too."""
        self._skipped = True
        super().skip(context, exc)


class PerParentStream(SeveralReadsStream):
    """A list read once for each record of its parent list (phases per board, assignments per role).

    The parent list is read first (its row says how; it is read once a run, with the parent's
    own stream: see :class:`ParentStream`), then one read per parent id, which goes into the
    ``{id}`` of the endpoint or into the row's ``parent_param``.

    A parent deleted between the two (404/410) is skipped; a 402/403 skips the stream.
    """

    @override
    def reads(self, context: Context | None) -> Iterator[ListRequest]:
        """One read per parent."""
        d = self.definition
        parent = t.cast("StreamDef", d.parent)
        parents = self.services.listed.get(parent.name)
        if parents is None:
            listing = ListRequest(parent.version, parent.endpoint, parent.query, parent.page_size, self.name)
            parents = [r for page in self.services.client.pages(listing, parent.paging) for r in page]
            self.services.listed[parent.name] = parents
        for parent_id in [r.get("id") for r in parents]:
            if d.parent_param:
                yield self.request({d.parent_param: parent_id})
            else:
                yield self.request(path=d.endpoint.replace("{id}", str(parent_id)))


class GoalsStream(SeveralReadsStream):
    """Every goal, active and inactive, of every assignee.

    ``/goals/find`` answers only the token user's active goals unless a filter widens it:
    ``assignee.type`` does ("everyone's goals will be returned"), and ``is_active`` picks
    active or inactive ones. One read per assignee type (person, company, team: the spec's
    list) and state gives every goal, each once: six requests (one per goal type and state
    would take ten), and a goal type Pipedrive adds later is not missed.
    """

    @override
    def reads(self, context: Context | None) -> Iterator[ListRequest]:
        """One read per assignee type and state."""
        d = self.definition
        kinds = schemas.endpoint(d.version, d.endpoint)["params"]["assignee.type"]["enum"]
        for kind in kinds:
            for active in ("true", "false"):
                yield self.request({"assignee.type": kind, "is_active": active})


class MailThreadsStream(SeveralReadsStream):
    """The mail threads of the token user's own mailbox, read folder by folder.

    The folders are the spec's: inbox, drafts, sent, archive. A thread in two folders (a
    conversation with replies is in the inbox and in sent) is emitted once.

    The endpoint has no time filter and sorts by the latest message, not by ``update_time``,
    so it is read whole.
    """

    @override
    def reads(self, context: Context | None) -> Iterator[ListRequest]:
        """One read per folder."""
        d = self.definition
        for folder in schemas.endpoint(d.version, d.endpoint)["params"]["folder"]["enum"]:
            yield self.request({"folder": folder})
