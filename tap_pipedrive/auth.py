"""One authenticator for both of Pipedrive's auth schemes.

``Basic``: the personal API token goes in the ``x-api-token`` header (never in the query
string, where URLs end up in logs and error messages).

``OAuth``: a refresh token is exchanged at Pipedrive's token endpoint (HTTP Basic client
credentials, form body) for a short-lived access token, sent as a Bearer token. The token
response also names the company's API host (``api_domain``) and may carry a new refresh
token (rotation), which is kept for the rest of the run and written back where possible.

One instance serves every stream of a run, so a run refreshes once, not once per stream.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
import threading
import typing as t
from pathlib import Path
from urllib.parse import urlparse

import backoff
import requests
from singer_sdk.authenticators import OAuthAuthenticator
from typing_extensions import override

from tap_pipedrive.config_checks import url_problem
from tap_pipedrive.errors import AuthError, ConfigError, ConnectError, is_unreachable, one_line
from tap_pipedrive.settings import AuthScheme

if t.TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tap_pipedrive.settings import Settings

#: Refresh this long before the access token's announced expiry, so that a token never
#: expires between the check and the request (or during a slow page).
EXPIRY_MARGIN_SECONDS = 300

LOGGER = logging.getLogger("tap-pipedrive.auth")


class RefreshTokenStore:
    """Writes a rotated refresh token back into the JSON config file the user passed.

    The file is replaced atomically (temp file + rename in the same folder); every other key
    and the key order are kept.
    """

    def __init__(self, path: str | os.PathLike[str], expected: str | None = None) -> None:
        """Remember the config file and the refresh token it should hold now."""
        self.path = Path(path)
        self.expected = expected

    def save(self, refresh_token: str) -> None:
        """Write ``refresh_token`` into the file, atomically.

        Raises:
            OSError: the file cannot be read or replaced, or no longer holds the token this
                run started with (then it is left alone).
        """
        config = json.loads(self.path.read_text(encoding="utf-8"))
        held = config.get("refresh_token")
        # The tap strips a token pasted with its line break: compare what it used.
        if self.expected is not None and (held.strip() if isinstance(held, str) else held) != self.expected:
            msg = "the file's refresh_token is not the one this run used"
            raise OSError(msg)
        config["refresh_token"] = refresh_token
        mode = self.path.stat().st_mode & 0o777
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tap-pipedrive-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(config, handle, indent=2)
                handle.write("\n")
            Path(tmp).chmod(mode)
            Path(tmp).replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise
        self.expected = refresh_token  # only once the file holds it


def token_store_for(settings: Settings, config_paths: Sequence[str]) -> tuple[RefreshTokenStore | None, str]:
    """Where a rotated refresh token can be written back, or why it cannot be."""
    if not settings.oauth_write_back:
        return None, "oauth_write_back is false"
    if "ENV" in config_paths:
        return None, "the config came (partly) from environment variables"
    if len(config_paths) != 1:
        return None, "the config did not come from a single JSON file"
    path = Path(config_paths[0])
    if ".meltano" in path.parts:
        return None, "the config came from Meltano"
    return RefreshTokenStore(path, expected=settings.refresh_token), ""


class _TokenEndpointFaultError(Exception):
    """A fault of the OAuth token endpoint that is worth retrying (5xx, 429, a cut answer)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class PipedriveAuthenticator(OAuthAuthenticator):
    """Authenticates requests with an API token (``Basic``) or OAuth (``OAuth``)."""

    def __init__(
        self,
        *,
        auth_scheme: AuthScheme,
        api_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        token_url: str,
        timeout: float = 60,
        user_agent: str = "tap-pipedrive",
        token_store: RefreshTokenStore | None = None,
        write_back_hint: str = "",
        clock: Callable[[], dt.datetime] | None = None,
        max_retries: int = 5,
        retry_initial_delay: float = 1.0,
    ) -> None:
        """Set up the scheme's credentials; nothing is sent until the first request."""
        oauth_headers = {"User-Agent": user_agent}
        if client_id and client_secret:
            basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
            oauth_headers["Authorization"] = f"Basic {basic}"
        super().__init__(
            auth_endpoint=token_url,
            client_id=client_id,
            client_secret=client_secret,
            oauth_headers=oauth_headers,
        )
        self.auth_scheme = AuthScheme(auth_scheme)
        self._api_token = api_token
        self.refresh_token = refresh_token
        self.api_domain: str | None = None
        self.refresh_count = 0
        self._timeout = timeout
        self._token_store = token_store
        self._write_back_hint = write_back_hint
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._max_retries = max_retries
        self._retry_initial_delay = retry_initial_delay
        self._lock = threading.Lock()
        self.logger = LOGGER

    @property
    def is_oauth(self) -> bool:
        """Whether this connection uses OAuth."""
        return self.auth_scheme is AuthScheme.OAUTH

    @property
    @override
    def oauth_request_body(self) -> dict[str, t.Any]:
        """The refresh-token grant, as Pipedrive's token endpoint wants it."""
        return {"grant_type": "refresh_token", "refresh_token": self.refresh_token}

    @override
    def is_token_valid(self) -> bool:
        """Whether the access token is still good for at least the safety margin."""
        if self.access_token is None or self.last_refreshed is None:
            return False
        if not self.expires_in:
            return True
        age = (self._clock() - self.last_refreshed).total_seconds()
        return age < self.expires_in - min(EXPIRY_MARGIN_SECONDS, self.expires_in / 2)

    def api_base(self, default: str) -> str:
        """The API base URL of this connection: OAuth's ``api_domain``, else ``default``.

        With OAuth this gets an access token first: the token response names the host.
        """
        if not self.is_oauth:
            return default
        self.ensure_token()
        if not self.api_domain:
            return default
        if problem := url_problem(self.api_domain):
            msg = f"the api_domain Pipedrive's OAuth server returned {problem}"
            raise ConfigError(msg)
        return self.api_domain

    def ensure_token(self) -> None:
        """Refresh the access token now if it is missing or about to expire."""
        with self._lock:
            if not self.is_token_valid():
                self.update_access_token()

    def invalidate(self, used_token: str | None) -> None:
        """Forget the access token after Pipedrive rejected it (a 401).

        Several threads may see the same 401; only the first one forces a refresh.
        """
        with self._lock:
            if used_token is None or used_token == self.access_token:
                self.last_refreshed = None

    @override
    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the scheme's credentials to ``request`` (headers only, never the URL)."""
        if not self.is_oauth:
            request.headers["x-api-token"] = self._api_token or ""
            return request
        self.ensure_token()
        request.headers["Authorization"] = f"Bearer {self.access_token}"
        return request

    @override
    def update_access_token(self) -> None:
        """Exchange the refresh token for an access token (and maybe a new refresh token)."""
        host = urlparse(self.auth_endpoint).hostname or self.auth_endpoint
        self.logger.info("Requesting a new OAuth access token from %s", host)
        requested_at = self._clock()
        retrying = backoff.on_exception(
            lambda: backoff.expo(factor=self._retry_initial_delay, max_value=60),
            _TokenEndpointFaultError,
            max_tries=self._max_retries + 1,
            jitter=backoff.full_jitter,
            on_backoff=lambda details: self.logger.warning(
                "OAuth token endpoint %s: retry %d of %d in %.1fs after: %s",
                host,
                details["tries"],
                self._max_retries,
                details["wait"],
                details["exception"],
            ),
            logger=None,
        )(self._token_response)
        try:
            body = retrying(host)
        except _TokenEndpointFaultError as exc:
            if exc.unreachable:
                msg = f"cannot reach {host} ({exc})"
                raise ConnectError(msg) from None
            msg = f"the OAuth token endpoint {host} failed after {self._max_retries + 1} attempts: {exc}"
            raise AuthError(msg) from None
        self.access_token = body["access_token"]
        self.expires_in = int(body["expires_in"]) if body.get("expires_in") else None
        self.last_refreshed = requested_at
        self.refresh_count += 1
        if body.get("api_domain"):
            self.api_domain = str(body["api_domain"]).rstrip("/")
        new_refresh = body.get("refresh_token")
        if new_refresh and new_refresh != self.refresh_token:
            self.refresh_token = new_refresh
            self._persist_rotated_token(new_refresh)

    def _token_response(self, host: str) -> dict[str, t.Any]:
        """One refresh request: the token response, a rejection, or a fault worth retrying."""
        try:
            response = self._session.post(
                self.auth_endpoint,
                headers=self._oauth_headers,
                data=self.oauth_request_payload,
                timeout=self._timeout,
                allow_redirects=False,
            )
            _ = response.content  # a cut connection shows here
        except requests.RequestException as exc:
            raise _TokenEndpointFaultError(type(exc).__name__, unreachable=is_unreachable(exc)) from None
        status = response.status_code
        if status in (400, 401):  # Pipedrive's OAuth server says what it rejects
            raise AuthError(self._refusal(response))
        if status == 429 or status >= 500:  # noqa: PLR2004
            raise _TokenEndpointFaultError(f"{status} {response.reason or 'Server Error'}")
        if status != 200:  # noqa: PLR2004
            msg = f"the OAuth token endpoint {host} answered {status} ({response.reason or 'error'})"
            raise AuthError(msg)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise _TokenEndpointFaultError("an unreadable answer (not a token response)")
        return body

    def _refusal(self, response: requests.Response) -> str:
        """Say why the token endpoint refused, naming the credential at fault."""
        try:
            body = response.json()
            detail = body.get("message") or body.get("error_description") or body.get("error")
        except ValueError:
            detail = None
        detail = one_line(str(detail), 160) if detail else response.reason
        text = str(detail).lower()
        if response.status_code == 401 or "client" in text:  # noqa: PLR2004
            what = "the OAuth client credentials (client_id / client_secret)"
        elif "refresh_token" in text or "grant" in text:
            what = "the refresh token (refresh_token)"
        else:
            what = "the OAuth refresh request"
        return f"Pipedrive's OAuth server rejected {what} ({response.status_code}: {detail})"

    def _persist_rotated_token(self, new_token: str) -> None:
        """Keep a rotated refresh token for the next run, or say what to update."""
        if self._token_store is not None:
            try:
                self._token_store.save(new_token)
            except OSError as exc:
                self.logger.warning(
                    "Pipedrive rotated the OAuth refresh token, but writing it back to %s "
                    "failed (%s): update refresh_token in your config before the next run",
                    self._token_store.path,
                    type(exc).__name__,
                )
            else:
                self.logger.info(
                    "Pipedrive rotated the OAuth refresh token; saved the new one to %s",
                    self._token_store.path,
                )
            return
        self.logger.warning(
            "Pipedrive rotated the OAuth refresh token; the old one no longer works. "
            "The tap cannot write it back here (%s): update refresh_token (%s) before "
            "the next run",
            self._write_back_hint or "write-back is off",
            "TAP_PIPEDRIVE_REFRESH_TOKEN or `meltano config set tap-pipedrive refresh_token`",
        )
