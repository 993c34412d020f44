"""Pipedrive's ways of paging a list, one small class each.

* :class:`CursorPaging`: v2 (and some v1) lists: ``cursor``/``limit``, the next cursor in
  ``additional_data.next_cursor`` (``null`` at the end).
* :class:`OffsetPaging`: v1 lists: ``start``/``limit``, ``additional_data.pagination``.
* :class:`TimePaging`: v1 lists filtered by ``updated_since`` and sorted by ``update_time``,
  paged by time instead of offset (see the class).
* :class:`NoPaging`: lists Pipedrive returns whole, in one answer.
"""

from __future__ import annotations

import abc
import enum
import typing as t
from dataclasses import dataclass, field

from typing_extensions import override

from tap_pipedrive.errors import APIError
from tap_pipedrive.timestamps import update_stamp

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

ApiVersion = t.Literal["v1", "v2"]
Record = dict[str, t.Any]
Body = dict[str, t.Any]


class PagingKind(str, enum.Enum):
    """How a list endpoint pages."""

    CURSOR = "cursor"
    OFFSET = "offset"
    TIME = "time"
    NONE = "none"


class Getter(t.Protocol):
    """What paging needs of the HTTP client: one GET that returns the JSON body."""

    def get(
        self,
        version: ApiVersion,
        path: str,
        params: Mapping[str, t.Any] | None = None,
        *,
        stream: str = ...,
    ) -> Body:
        """GET ``/api/{version}{path}``."""
        ...


@dataclass(frozen=True)
class ListRequest:
    """The first page of a list: endpoint, query parameters, page size, whom to charge."""

    version: ApiVersion
    path: str
    params: Mapping[str, t.Any] = field(default_factory=dict)
    page_size: int = 500
    stream: str = "connection"

    @property
    def what(self) -> str:
        """``GET /api/v2/deals``, for messages."""
        return f"GET /api/{self.version}{self.path}"


def _records(body: Body) -> list[Record]:
    data = body.get("data")
    if isinstance(data, list):
        return data
    return [] if data is None else [data]


class Paging(abc.ABC):
    """Reads every page of a list, yielding each page's records."""

    @abc.abstractmethod
    def pages(self, client: Getter, request: ListRequest) -> Iterator[list[Record]]:
        """The records of each page, in order."""


class NoPaging(Paging):
    """One answer holds the whole list."""

    @override
    def pages(self, client: Getter, request: ListRequest) -> Iterator[list[Record]]:
        """The one page."""
        yield _records(client.get(request.version, request.path, request.params, stream=request.stream))


class _TokenPaging(Paging):
    """A list whose answer names the next page (a cursor, an offset)."""

    #: the query parameter that takes the token
    token_param: t.ClassVar[str]

    @abc.abstractmethod
    def next_token(self, extra: Mapping[str, t.Any]) -> object:
        """The next page's token from ``additional_data``, or None at the end."""

    @override
    def pages(self, client: Getter, request: ListRequest) -> Iterator[list[Record]]:
        """Follow the tokens until there is none; a token seen twice is an error, not a loop."""
        params = {**request.params, "limit": request.page_size}
        seen: set[object] = set()
        while True:
            body = client.get(request.version, request.path, params, stream=request.stream)
            yield _records(body)
            token = self.next_token(body.get("additional_data") or {})
            if token in (None, ""):
                return
            if token in seen:
                msg = f"{request.what}: Pipedrive returned the same page token twice"
                raise APIError(msg)
            seen.add(token)
            params[self.token_param] = token


class CursorPaging(_TokenPaging):
    """``cursor``/``limit``; ``additional_data.next_cursor``."""

    token_param = "cursor"  # noqa: S105 - a query parameter, not a password

    @override
    def next_token(self, extra: Mapping[str, t.Any]) -> object:
        """The next cursor."""
        return extra.get("next_cursor")


class OffsetPaging(_TokenPaging):
    """``start``/``limit``; ``additional_data.pagination.next_start``."""

    token_param = "start"  # noqa: S105 - a query parameter, not a password

    @override
    def next_token(self, extra: Mapping[str, t.Any]) -> object:
        """The next offset, while Pipedrive says there are more items."""
        pagination = extra.get("pagination") or {}
        return pagination.get("next_start") if pagination.get("more_items_in_collection") else None


class TimePaging(Paging):
    """Pages of a v1 list sorted by ``update_time``, each starting at the last one's newest second.

    An offset (``start``) would skip a record whenever one read earlier is updated during the
    run (it moves to the end of the list and everything after it shifts up by one), and that
    record would be behind the bookmark for good. Paging by ``updated_since`` instead
    (inclusive) re-reads the newest second of the page before and drops the ids already read
    there; only a page that lies wholly inside one second moves on by offset.
    """

    @override
    def pages(self, client: Getter, request: ListRequest) -> Iterator[list[Record]]:
        """Read pages until Pipedrive says there are no more items."""
        params = {**request.params, "limit": request.page_size, "start": 0}
        newest: object = None
        read_at_newest: set[object] = set()
        while True:
            body = client.get(request.version, request.path, params, stream=request.stream)
            data = _records(body)
            yield [r for r in data if not (update_stamp(r) == newest and r.get("id") in read_at_newest)]
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            if not data or not pagination.get("more_items_in_collection"):
                return
            last = update_stamp(data[-1])
            ids_at_last = {r.get("id") for r in data if update_stamp(r) == last}
            read_at_newest = read_at_newest | ids_at_last if last == newest else ids_at_last
            newest = last
            if not isinstance(last, str) or last == params.get("updated_since"):
                params["start"] += len(data)  # the whole page is one second (or has no time)
            else:
                params["updated_since"], params["start"] = last, 0


PAGING: dict[PagingKind, Paging] = {
    PagingKind.CURSOR: CursorPaging(),
    PagingKind.OFFSET: OffsetPaging(),
    PagingKind.TIME: TimePaging(),
    PagingKind.NONE: NoPaging(),
}


def read_pages(client: Getter, request: ListRequest, kind: PagingKind) -> Iterator[list[Record]]:
    """The records of each page of ``request``'s list, paged the way ``kind`` says."""
    return PAGING[kind].pages(client, request)
