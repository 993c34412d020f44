"""The one place that talks HTTP to Pipedrive, and the stream base built on it.

:class:`PipedriveAPI` owns the session, pacing (burst window), the token budget, retries with
backoff, the OAuth 401 refresh and the mapping of every failure to a one-line error.
:class:`PipedriveStream` owns paging and incremental state; the concrete streams in
``streams.py`` only declare what they read.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import typing as t
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlparse

import backoff
import requests
from singer_sdk.streams import RESTStream

from tap_pipedrive import custom_fields, schemas
from tap_pipedrive.errors import (
    APIError,
    AuthError,
    BlockedError,
    BudgetExhaustedError,
    ConnectError,
    StreamUnavailableError,
    TransientError,
    one_line,
)
from tap_pipedrive.limits import RateLimiter, StreamStats, TokenBudget

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_pipedrive.auth import PipedriveAuthenticator

#: Retries and waits; the connection test keeps these quiet.
LOGGER = logging.getLogger("tap-pipedrive.http")

MAX_RATE_LIMIT_RETRIES = 8
UNAVAILABLE_STATUSES = {402, 403, 404, 410}


class _RateLimitedError(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


class _TokenRejectedError(Exception):
    pass


def _error_text(response: requests.Response) -> str:
    """Pipedrive's own error text, or the HTTP reason; never an HTML page."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or "error"
    if isinstance(body, dict):
        text = body.get("error") or body.get("message") or response.reason
        info = body.get("error_info")
        if info and info != "Please check developers.pipedrive.com":
            text = f"{text} ({info})"
        return one_line(str(text), 200)
    return response.reason or "error"


def _looks_like_html(response: requests.Response) -> bool:
    kind = response.headers.get("Content-Type", "")
    return "html" in kind or response.content[:200].lstrip().startswith(b"<")


@dataclass
class _Call:
    """One logical GET, with what it costs and whom to charge."""

    version: str
    path: str
    params: dict[str, t.Any] | None
    stats: StreamStats

    @property
    def what(self) -> str:
        return f"GET /api/{self.version}{self.path}"

    @property
    def cost(self) -> int:
        return schemas.token_cost(self.version, self.path)


class PipedriveAPI:
    """Sends GET requests to Pipedrive for every stream of one run (thread-safe)."""

    def __init__(
        self,
        *,
        base_url: Callable[[], str],
        authenticator: PipedriveAuthenticator,
        user_agent: str,
        timeout: float = 300,
        max_retries: int = 5,
        retry_initial_delay: float = 1.0,
        max_tokens_per_run: int | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        """Set up the shared session; ``base_url`` is resolved at the first request."""
        self._base_url = base_url
        self.authenticator = authenticator
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_initial_delay = retry_initial_delay
        self.limiter = limiter or RateLimiter()
        self.budget = TokenBudget(max_tokens=max_tokens_per_run)
        self.stats: dict[str, StreamStats] = defaultdict(StreamStats)
        self.session = requests.Session()
        self._local = threading.local()

    @functools.cached_property
    def base_url(self) -> str:
        """The API base, e.g. ``https://acme.pipedrive.com``."""
        return self._base_url().rstrip("/")

    @property
    def host(self) -> str:
        """The API host, for messages."""
        return urlparse(self.base_url).netloc

    def get(
        self,
        version: str,
        path: str,
        params: dict[str, t.Any] | None = None,
        *,
        stream: str = "connection",
    ) -> dict:
        """GET ``/api/{version}{path}`` and return the JSON body.

        Paces the request, retries transient faults with exponential backoff and jitter,
        waits out 429s, refreshes an OAuth token once on a 401, and raises one of the
        :mod:`tap_pipedrive.errors` types otherwise.
        """
        call = _Call(version, path, params, self.stats[stream])
        retrying = backoff.on_exception(
            lambda: backoff.expo(factor=self.retry_initial_delay, max_value=60),
            TransientError,
            max_tries=self.max_retries + 1,
            jitter=backoff.full_jitter,
            on_backoff=functools.partial(self._log_retry, call=call),
            logger=None,
        )(self._attempt)
        try:
            return retrying(call)
        except TransientError as exc:
            if getattr(self._local, "unreachable", False):
                msg = f"cannot reach {self.host} ({exc})"
                raise ConnectError(msg) from None
            msg = f"{call.what} failed after {self.max_retries + 1} attempts: {exc}"
            raise TransientError(msg) from None

    def _log_retry(self, details: dict, *, call: _Call) -> None:
        call.stats.retries += 1
        LOGGER.warning(
            "%s: retry %d of %d in %.1fs after: %s",
            call.what,
            details["tries"],
            self.max_retries,
            details["wait"],
            details["exception"],
        )

    def _attempt(self, call: _Call) -> dict:
        """One logical request: waits out 429s and refreshes OAuth once, inside."""
        rate_limited = 0
        refreshed = False
        while True:
            try:
                return self._send(call)
            except _RateLimitedError as exc:  # noqa: PERF203 - a wait, then the next attempt
                rate_limited += 1
                call.stats.retries += 1
                if rate_limited > MAX_RATE_LIMIT_RETRIES:
                    msg = f"{call.what}: still rate limited (429) after {MAX_RATE_LIMIT_RETRIES} waits"
                    raise APIError(msg, 429) from None
                LOGGER.warning(
                    "%s: Pipedrive's burst limit reached (429); waiting %.1fs before any further request",
                    call.what,
                    exc.wait,
                )
                self.limiter.block_for(exc.wait)
            except _TokenRejectedError:
                if not self.authenticator.is_oauth:
                    msg = "Pipedrive rejected the API token (401)"
                    raise AuthError(msg) from None
                if refreshed:
                    msg = "Pipedrive rejected the OAuth access token (401), even after a refresh"
                    raise AuthError(msg) from None
                refreshed = True
                call.stats.retries += 1
                LOGGER.warning("%s: access token rejected (401); refreshing it once", call.what)

    def _send(self, call: _Call) -> dict:
        """Send one HTTP request and return its JSON body; its tokens count only if it worked."""
        self.budget.charge(call.cost, call.what)  # reserved now: parallel requests cannot overspend
        worked = False
        try:
            response, used_token = self._exchange(call)
            data = self._read(response, used_token, call.what)
            worked = True
        finally:
            if not worked:
                self.budget.charge(-call.cost, call.what)
        call.stats.tokens += call.cost
        return data

    def _exchange(self, call: _Call) -> tuple[requests.Response, str | None]:
        """Pace, authenticate and send the request; read the whole body."""
        self._local.unreachable = False
        self.limiter.acquire()
        headers = None
        started = time.monotonic()
        try:
            request = requests.Request(
                "GET",
                f"{self.base_url}/api/{call.version}{call.path}",
                params=call.params,
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
            )
            prepared = self.authenticator(self.session.prepare_request(request))
            used_token = self.authenticator.access_token
            response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False)
            headers = response.headers
            _ = response.content  # read it all here, where a cut connection is a transient fault
        except requests.Timeout:
            msg = f"no answer within {self.timeout:g}s"
            raise TransientError(msg) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            msg = "the connection was cut mid-response"
            raise TransientError(msg) from None
        except requests.ConnectionError as exc:
            self._local.unreachable = headers is None and _is_unreachable(exc)
            msg = "connection refused or DNS failure" if self._local.unreachable else "the connection failed"
            raise TransientError(msg) from None
        finally:
            self.limiter.release(headers)
            call.stats.requests += 1
            call.stats.seconds += time.monotonic() - started
        return response, used_token

    def _read(self, response: requests.Response, used_token: str | None, what: str) -> dict:  # noqa: C901
        """Return the JSON body of a 2xx answer, or raise the error the status means."""
        status = response.status_code
        if status < 300:  # noqa: PLR2004
            try:
                data = json.loads(response.content)
            except ValueError:
                msg = f"a broken response body ({status}, not complete JSON)"
                raise TransientError(msg) from None
            if not isinstance(data, dict):
                msg = f"an unexpected response body ({status})"
                raise TransientError(msg)
            return data
        if status < 400:  # noqa: PLR2004
            target = urlparse(response.headers.get("Location", "")).netloc or "elsewhere"
            msg = f"{what}: Pipedrive redirected to {target}; not following it with credentials"
            raise APIError(msg, status)
        if status == 401:  # noqa: PLR2004
            if self.authenticator.is_oauth:
                self.authenticator.invalidate(used_token)
            raise _TokenRejectedError
        if status == 429:  # noqa: PLR2004
            text = _error_text(response)
            if response.headers.get("x-daily-ratelimit-token-remaining") == "0" or "daily" in text.lower():
                msg = (
                    f"stopping: Pipedrive's daily API token budget for this company is spent "
                    f"({text}). It resets at midnight, Pipedrive server time; the next run "
                    "resumes where this one stopped"
                )
                raise BudgetExhaustedError(msg)
            raise _RateLimitedError(_retry_wait(response.headers))
        html = _looks_like_html(response)
        if status == 403 and html:  # noqa: PLR2004
            msg = (
                "Pipedrive's firewall (Cloudflare) is blocking this integration (403). It does "
                "so to clients that keep calling after a 429; wait before the next run"
            )
            raise BlockedError(msg)
        if status >= 500:  # noqa: PLR2004
            msg = f"{status} {response.reason or 'Server Error'}"
            raise TransientError(msg)
        text = response.reason if html else _error_text(response)
        if status in UNAVAILABLE_STATUSES:
            raise StreamUnavailableError(f"{what} answered {status}: {text}", status)
        raise APIError(f"{what} was rejected ({status}: {text})", status)

    def _time_pages(
        self,
        version: str,
        path: str,
        params: dict[str, t.Any],
        *,
        page_size: int,
        stream: str,
    ) -> Iterator[list[dict]]:
        """Pages of a v1 list sorted by ``update_time``, each starting at the last one's newest second.

        An offset (``start``) would skip a record whenever one read earlier is updated during
        the run (it moves to the end of the list and everything after it shifts up by one),
        and that record would be behind the bookmark for good. Paging by ``updated_since``
        instead (inclusive) re-reads the newest second of the page before and drops the ids
        already read there; only a page that lies wholly inside one second moves on by offset.
        """
        params = {**params, "limit": page_size, "start": 0}
        newest, read_at_newest = None, set()
        while True:
            body = self.get(version, path, params, stream=stream)
            data = body.get("data") or []
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

    def pages(
        self,
        version: str,
        path: str,
        params: dict[str, t.Any],
        *,
        paging: str,
        page_size: int,
        stream: str,
    ) -> Iterator[list[dict]]:
        """Yield the records of each page of a list endpoint.

        ``paging`` is ``cursor`` (v2: ``cursor``/``limit``, ``additional_data.next_cursor``),
        ``offset`` (v1: ``start``/``limit``, ``additional_data.pagination``), ``time`` (v1
        lists filtered by ``updated_since``: see :meth:`_time_pages`) or ``none``.
        """
        if paging == "time":
            yield from self._time_pages(version, path, params, page_size=page_size, stream=stream)
            return
        params = dict(params)
        if paging != "none":
            params["limit"] = page_size
        seen_tokens: set[object] = set()
        while True:
            body = self.get(version, path, params, stream=stream)
            data = body.get("data")
            yield data if isinstance(data, list) else ([] if data is None else [data])
            extra = body.get("additional_data") or {}
            if paging == "cursor":
                token = extra.get("next_cursor")
                key = "cursor"
            elif paging == "offset":
                pagination = extra.get("pagination") or {}
                more = pagination.get("more_items_in_collection")
                token = pagination.get("next_start") if more else None
                key = "start"
            else:
                return
            if token in (None, ""):
                return
            if token in seen_tokens:
                msg = f"GET /api/{version}{path}: Pipedrive returned the same page token twice"
                raise APIError(msg)
            seen_tokens.add(token)
            params[key] = token


def update_stamp(record: dict) -> object:
    """A record's ``update_time`` as Pipedrive's time filters take it (RFC 3339 seconds)."""
    return schemas.normalize_timestamp(record.get("update_time"))


def _retry_wait(headers: t.Mapping[str, str]) -> float:
    """How long Pipedrive asked us to wait after a 429 (reset or Retry-After, at least 1 s)."""
    waits = [1.0]
    for name in ("x-ratelimit-reset", "Retry-After"):
        value = headers.get(name)
        if value and value.replace(".", "", 1).isdigit():
            waits.append(float(value))
    return max(waits)


def second(moment: datetime) -> str:
    """RFC 3339 UTC at second resolution, as Pipedrive's time filters take it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_unreachable(exc: requests.ConnectionError) -> bool:
    """Whether the host could not be reached at all (DNS, refused), not a cut connection."""
    text = repr(exc)
    return any(
        marker in text
        for marker in ("NameResolution", "Failed to resolve", "Connection refused", "NewConnectionError")
    )


class PipedriveStream(RESTStream):
    """A Pipedrive list endpoint: paging, incremental filters and exact bookmarks."""

    #: ``v1`` or ``v2``
    api_version: t.ClassVar[str] = "v2"
    #: the endpoint after ``/api/{version}``, e.g. ``/deals``
    endpoint: t.ClassVar[str] = ""
    #: ``cursor`` (v2), ``offset`` (v1) or ``none`` (whole list in one answer)
    paging: t.ClassVar[str] = "cursor"
    page_size: t.ClassVar[int] = 500
    #: constant query parameters
    params: t.ClassVar[dict[str, str]] = {}
    #: the time filter that takes the bookmark (``updated_since``), on incremental streams
    time_filter: t.ClassVar[str | None] = None
    #: fields Pipedrive returns only when asked (``include_fields``)
    include_fields: t.ClassVar[tuple[str, ...]] = ()
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    #: the entity whose custom fields the records carry (``deal``, ``person``, …)
    custom_fields_entity: t.ClassVar[str | None] = None
    #: ``v2``: values in a ``custom_fields`` object; ``v1``: top-level hash keys
    custom_fields_style: t.ClassVar[str] = "v2"

    # Pipedrive lists are read sorted by update_time ascending, so the bookmark can move
    # forward page by page and a run stopped part-way resumes without loss.
    is_sorted = True

    def __init__(self, tap: t.Any, schema: dict | None = None) -> None:  # noqa: ANN401
        """Declare the stream's schema from the OpenAPI extract unless one is given."""
        if schema is None:
            schema = self.build_schema(tap)
        super().__init__(tap, schema=schema)
        self._timestamp_fields = schemas.timestamp_fields(self.schema)
        self._skip_at: str | None = None
        self._skip_ids: frozenset = frozenset()
        self._custom: custom_fields.ValueMapper | None = None

    @classmethod
    def build_schema(cls, tap: t.Any) -> dict:  # noqa: ANN401
        """The stream's JSON schema: the spec's fields, plus the account's custom fields."""
        schema = schemas.stream_schema(
            cls.api_version,
            cls.endpoint,
            primary_keys=cls.primary_keys,
            include_fields=cls.include_fields,
        )
        if cls.custom_fields_entity:
            custom_fields.extend_schema(
                schema,
                tap.custom_fields(cls.custom_fields_entity),
                mode=tap.custom_fields_mode,
                style=cls.custom_fields_style,
                pins=tap.custom_field_pins,
            )
        return schema

    def log(self, message: str, *args: t.Any, level: int = logging.INFO, **kwargs: t.Any) -> None:  # noqa: ANN401
        """Log through the SDK, except its generic error line for a stream that stopped.

        The tap reports why a run stopped in one line of its own (and a planned stop such as
        a spent token budget is no "unhandled error").
        """
        if message.startswith("An unhandled error occurred while syncing"):
            level = logging.DEBUG
        super().log(message, *args, level=level, **kwargs)

    @property
    def api(self) -> PipedriveAPI:
        """The run's shared HTTP client."""
        return self._tap.api

    @property
    def url_base(self) -> str:
        """The API base of this connection."""
        return self.api.base_url

    @property
    def path(self) -> str:  # type: ignore[override]
        """The request path."""
        return f"/api/{self.api_version}{self.endpoint}"

    def get_new_paginator(self) -> None:
        """Paging is done by :meth:`PipedriveAPI.pages`, which knows both of Pipedrive's kinds."""

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """Records of one response (the ``data`` list)."""
        data = response.json().get("data")
        yield from (data if isinstance(data, list) else [data] if data else [])

    def request_params(self, context: Context | None) -> dict[str, t.Any]:
        """Query parameters of the first page."""
        params: dict[str, t.Any] = dict(self.params)
        if self.include_fields:
            params["include_fields"] = ",".join(self.include_fields)
        if self.replication_key and self.time_filter:
            start = self.get_starting_timestamp(context)
            if start is not None:
                # Pipedrive rejects fractional seconds; the filter is inclusive, so the
                # records of the bookmark's second come back and are filtered below.
                params[self.time_filter] = second(start)
        return params

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Read every page; write STATE after each page so a stopped run resumes exactly."""
        self._prepare_bookmark_filter(context)
        if self.custom_fields_entity and self._custom is None:
            self._custom = custom_fields.ValueMapper(
                fields=self._tap.custom_fields(self.custom_fields_entity),
                schema=self.effective_schema,
                mode=self._tap.custom_fields_mode,
                style=self.custom_fields_style,
                pins=self._tap.custom_field_pins,
                warn=self.logger.warning,
                warned=self._tap.custom_field_warnings,
            )
        try:
            for page in self.api.pages(
                self.api_version,
                self.endpoint,
                self.request_params(context),
                paging=self.paging,
                page_size=self.page_size,
                stream=self.name,
            ):
                yield from page
                # Every record of the page has been written by now: let STATE say so.
                self.settle_page()
                self._write_state_message()
        except StreamUnavailableError as exc:
            self.skip(context, exc)

    def settle_page(self) -> None:
        """Finish what depends on the page just written, before STATE covers it."""

    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:  # noqa: ARG002
        """Skip this stream (its endpoint is not available to the account) and go on."""
        self.logger.warning("Skipping stream '%s': %s", self.name, exc)
        self._tap.skipped_streams[self.name] = str(exc)

    def _prepare_bookmark_filter(self, context: Context | None) -> None:
        """Remember which records at the bookmark's second were already written."""
        self._skip_at, self._skip_ids = None, frozenset()
        if not self.replication_key:
            return
        state = self.get_context_state(context)
        value = state.get("replication_key_value")
        start = self.get_starting_timestamp(context)
        value = schemas.normalize_timestamp(value)
        if value and start is not None and value == second(start):
            self._skip_at = value
            self._skip_ids = frozenset(state.get("bookmark_ids", ()))

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:  # noqa: ARG002
        """Normalise timestamps to RFC 3339 UTC; drop records already written at the bookmark."""
        for name in self._timestamp_fields:
            value = row.get(name)
            if value is not None:
                row[name] = schemas.normalize_timestamp(value)
        if (
            self._skip_at is not None
            and row.get(self.replication_key) == self._skip_at
            and row.get("id") in self._skip_ids
        ):
            return None
        if self._custom is not None:
            self._custom.apply(row)
        self.api.stats[self.name].records += 1
        return row

    def _increment_stream_state(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Advance the bookmark, and keep the ids written at the bookmark's second.

        ``updated_since`` is inclusive and works at second resolution, so the next run reads
        that second again; these ids let it skip what was already written.
        """
        state = self.get_context_state(context)
        before = state.get("replication_key_value")
        super()._increment_stream_state(latest_record, context=context)
        if not self.replication_key:
            return
        after = state.get("replication_key_value")
        if after != before or "bookmark_ids" not in state:
            state["bookmark_ids"] = []
        if latest_record.get(self.replication_key) == after:
            state["bookmark_ids"].append(latest_record.get("id"))
