"""The one place that talks HTTP to Pipedrive.

:class:`PipedriveClient` owns the session, pacing (the burst window), the token budget,
retries with backoff, the OAuth 401 refresh and turning every answer into data or a one-line
error (by the rules of ``status.py``). It is safe to share across threads.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import typing as t
from dataclasses import dataclass
from urllib.parse import urlparse

import backoff
import msgspec
import requests

from tap_pipedrive import schemas
from tap_pipedrive.errors import (
    APIError,
    AuthError,
    BlockedError,
    BudgetExhaustedError,
    ConnectError,
    PipedriveError,
    StreamUnavailableError,
    TransientError,
    is_unreachable,
)
from tap_pipedrive.http import paging
from tap_pipedrive.http.limits import RateLimiter, TokenBudget
from tap_pipedrive.http.status import Action, classify
from tap_pipedrive.stopping import StopSignal

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, MutableMapping

    from tap_pipedrive.auth import PipedriveAuthenticator
    from tap_pipedrive.http.paging import ApiVersion, Body, ListRequest, PagingKind, Record
    from tap_pipedrive.report import StreamStats

#: Errors that end the whole run, not one stream: no thread sends a request after one of them.
FATAL_ERRORS = (AuthError, BlockedError, BudgetExhaustedError)

#: Retries and waits; the connection test keeps these quiet.
LOGGER = logging.getLogger("tap-pipedrive.http")

MAX_RATE_LIMIT_WAITS = 8
#: msgspec's JSON decoder: several times faster than json.loads on Pipedrive's pages.
_DECODE = msgspec.json.Decoder().decode


class _RateLimitedError(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


class _TokenRejectedError(Exception):
    pass


@dataclass
class _Call:
    """One logical GET, with what it costs and whom to charge."""

    version: ApiVersion
    path: str
    params: Mapping[str, t.Any] | None
    stats: StreamStats

    @property
    def what(self) -> str:
        return f"GET /api/{self.version}{self.path}"

    @property
    def cost(self) -> int:
        return schemas.token_cost(self.version, self.path)


def retry_wait(headers: Mapping[str, str]) -> float:
    """How long Pipedrive asked us to wait after a 429 (reset or Retry-After, at least 1 s)."""
    waits = [1.0]
    for name in ("x-ratelimit-reset", "Retry-After"):
        value = headers.get(name)
        if value and value.replace(".", "", 1).isdigit():
            waits.append(float(value))
    return max(waits)


class PipedriveClient:
    """Sends GET requests to Pipedrive for every stream of one run (thread-safe)."""

    def __init__(
        self,
        *,
        authenticator: PipedriveAuthenticator,
        default_base_url: str,
        base_url: str | None = None,
        user_agent: str,
        stats: MutableMapping[str, StreamStats],
        timeout: float = 300,
        max_retries: int = 5,
        retry_initial_delay: float = 1.0,
        max_tokens_per_run: int | None = None,
        limiter: RateLimiter | None = None,
        stop: StopSignal | None = None,
        parallel: int = 1,
    ) -> None:
        """Set up the shared session.

        ``base_url`` (``api_url``) wins; otherwise the authenticator resolves the API host
        (OAuth: the token response's ``api_domain``), falling back to ``default_base_url``.
        """
        self.authenticator = authenticator
        self._base_url = base_url
        self._default_base_url = default_base_url
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_initial_delay = retry_initial_delay
        self.stop = stop or StopSignal()
        self.limiter = limiter or RateLimiter(sleep=self.stop.sleep)
        self.budget = TokenBudget(max_tokens=max_tokens_per_run)
        self.stats = stats
        self._local = threading.local()  # per thread: its session, whether its host was unreachable
        self._slots = threading.BoundedSemaphore(max(1, parallel))  # requests in flight at once
        self._stats_lock = threading.Lock()
        #: the error that ends the run (rejected credentials, a block, the budget spent): once
        #: one request has met it, no other thread sends another request
        self._fatal: PipedriveError | None = None
        self._proxies: dict[str, str] | None = None  # every request goes to the one API host

    @property
    def session(self) -> requests.Session:
        """This thread's session (sessions are not shared between threads).

        It does not read the environment on each request (``trust_env``): requests would
        scan every environment variable twice a request for proxy settings and look for a
        ``.netrc`` (whose credentials the tap does not want sent beside its own). The proxy
        settings (``HTTPS_PROXY``, ``NO_PROXY``, …) are read once a run: :meth:`proxies`.
        """
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    def proxies(self, prepared: requests.PreparedRequest) -> dict[str, str]:
        """The proxy the environment names for the API host (none if ``NO_PROXY`` covers it)."""
        found = self._proxies
        if found is None:
            found = self._proxies = requests.utils.resolve_proxies(prepared, {}, trust_env=True)
        return found

    @functools.cached_property
    def base_url(self) -> str:
        """The API base, e.g. ``https://acme.pipedrive.com``."""
        if self._base_url:
            return self._base_url.rstrip("/")
        with self.stop.shielded():  # a refresh may rotate the refresh token: let it finish
            return self.authenticator.api_base(self._default_base_url).rstrip("/")

    @property
    def host(self) -> str:
        """The API host, for messages."""
        return urlparse(self.base_url).netloc

    def get(
        self,
        version: ApiVersion,
        path: str,
        params: Mapping[str, t.Any] | None = None,
        *,
        stream: str = "connection",
    ) -> Body:
        """GET ``/api/{version}{path}`` and return the JSON body.

        Paces the request, retries transient faults with exponential backoff and jitter,
        waits out 429s, refreshes an OAuth token once on a 401, and raises one of the
        :mod:`tap_pipedrive.errors` types otherwise.
        """
        call = _Call(version, path, params, self.stats[stream])
        if self._fatal is not None:  # another thread's request ended the run: send nothing more
            raise self._fatal
        retrying = backoff.on_exception(
            lambda: backoff.expo(factor=self.retry_initial_delay, max_value=60),
            TransientError,
            max_tries=self.max_retries + 1,
            jitter=backoff.full_jitter,
            on_backoff=functools.partial(self._log_retry, call=call),
            logger=None,
        )(self._attempt)
        try:
            with self.stop.interruptible():  # nothing is half-written while we wait on Pipedrive
                return retrying(call)
        except FATAL_ERRORS as exc:
            self._fatal = self._fatal or exc
            raise
        except TransientError as exc:
            if getattr(self._local, "unreachable", False):
                msg = f"cannot reach {self.host} ({exc})"
                raise ConnectError(msg) from None
            msg = f"{call.what} failed after {self.max_retries + 1} attempts: {exc}"
            raise TransientError(msg) from None

    def pages(self, request: ListRequest, kind: PagingKind) -> Iterator[list[Record]]:
        """The records of each page of a list (see :mod:`tap_pipedrive.http.paging`)."""
        return paging.read_pages(self, request, kind)

    def _log_retry(self, details: t.Mapping[str, t.Any], *, call: _Call) -> None:
        self._count(call, retries=1)
        LOGGER.warning(
            "%s: retry %d of %d in %.1fs after: %s",
            call.what,
            details["tries"],
            self.max_retries,
            details["wait"],
            details["exception"],
        )

    def _attempt(self, call: _Call) -> Body:
        """One logical request: waits out 429s and refreshes OAuth once, inside."""
        rate_limited = 0
        refreshed = False
        while True:
            try:
                return self._send(call)
            except _RateLimitedError as exc:  # noqa: PERF203 - a wait, then the next attempt
                rate_limited += 1
                self._count(call, retries=1)
                if rate_limited > MAX_RATE_LIMIT_WAITS:
                    msg = f"{call.what}: still rate limited (429) after {MAX_RATE_LIMIT_WAITS} waits"
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
                self._count(call, retries=1)
                LOGGER.warning("%s: access token rejected (401); refreshing it once", call.what)

    def _send(self, call: _Call) -> Body:
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
        self._count(call, tokens=call.cost)
        return data

    def _count(
        self, call: _Call, *, requests: int = 0, tokens: int = 0, retries: int = 0, seconds: float = 0
    ) -> None:
        """Add to a stream's figures (threads share them)."""
        with self._stats_lock:
            stats = call.stats
            stats.requests += requests
            stats.tokens += tokens
            stats.retries += retries
            stats.seconds += seconds

    def _exchange(self, call: _Call) -> tuple[requests.Response, str | None]:
        """Take a slot, pace, authenticate and send the request; read the whole body."""
        self.stop.checkpoint_in_worker()
        with self._slots:
            return self._send_paced(call)

    def _send_paced(self, call: _Call) -> tuple[requests.Response, str | None]:
        self._local.unreachable = False
        self.limiter.acquire()
        headers = None
        started = time.monotonic()
        try:
            if self._fatal is not None:  # another thread's request ended the run while this one waited
                raise self._fatal
            request = requests.Request(
                "GET",
                f"{self.base_url}/api/{call.version}{call.path}",
                params=call.params,
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
            )
            with self.stop.shielded():  # a refresh may rotate the refresh token: let it finish
                prepared = self.authenticator(self.session.prepare_request(request))
            used_token = self.authenticator.access_token
            response = self.session.send(
                prepared, timeout=self.timeout, allow_redirects=False, proxies=self.proxies(prepared)
            )
            headers = response.headers
            _ = response.content  # read it all here, where a cut connection is a transient fault
        except requests.Timeout:
            msg = f"no answer within {self.timeout:g}s"
            raise TransientError(msg) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            msg = "the connection was cut mid-response"
            raise TransientError(msg) from None
        except requests.ConnectionError as exc:
            self._local.unreachable = headers is None and is_unreachable(exc)
            msg = "connection refused or DNS failure" if self._local.unreachable else "the connection failed"
            raise TransientError(msg) from None
        finally:
            self.limiter.release(headers)
            self._count(call, requests=1, seconds=time.monotonic() - started)
        return response, used_token

    def _read(self, response: requests.Response, used_token: str | None, what: str) -> Body:
        """Carry out what the status rules say about ``response``."""
        verdict = classify(response, what)
        action, message = verdict.action, verdict.message
        if action is Action.READ:
            return _json_body(response)
        if action is Action.REFRESH:
            if self.authenticator.is_oauth:
                self.authenticator.invalidate(used_token)
            raise _TokenRejectedError
        if action is Action.WAIT:
            raise _RateLimitedError(retry_wait(response.headers))
        if action is Action.RETRY:
            raise TransientError(message)
        if action is Action.STOP:
            raise BudgetExhaustedError(message)
        if action is Action.BLOCKED:
            raise BlockedError(message)
        if action is Action.SKIP:
            raise StreamUnavailableError(message, response.status_code)
        raise APIError(message, response.status_code)


def _json_body(response: requests.Response) -> Body:
    """The JSON object of a 2xx answer; a broken body is a transient fault."""
    try:
        data = _DECODE(response.content)
    except (ValueError, msgspec.DecodeError):
        msg = f"a broken response body ({response.status_code}, not complete JSON)"
        raise TransientError(msg) from None
    if not isinstance(data, dict):
        msg = f"an unexpected response body ({response.status_code})"
        raise TransientError(msg)
    return data
