"""What streams depend on, built once per run: the client, the field catalog, the run report.

Data flows one way: tap → services → stream → client → authenticator. Nothing lower calls
back up; values (the API base URL, the custom-field options) are passed down.
"""

from __future__ import annotations

import logging
import typing as t
from dataclasses import dataclass, field

from tap_pipedrive.auth import PipedriveAuthenticator, RefreshTokenStore
from tap_pipedrive.custom_fields import CustomField
from tap_pipedrive.errors import APIError, StreamUnavailableError
from tap_pipedrive.http.client import PipedriveClient
from tap_pipedrive.http.fetcher import Fetcher
from tap_pipedrive.http.paging import ListRequest, PagingKind
from tap_pipedrive.report import RunReport
from tap_pipedrive.stopping import StopSignal

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_pipedrive.http.paging import ApiVersion, Record
    from tap_pipedrive.settings import CustomFieldsMode, Settings

LOGGER = logging.getLogger("tap-pipedrive")

#: Where the company account's id is read (``include_company_id``).
COMPANY_ENDPOINT = "/users/me"


@dataclass(frozen=True)
class FieldEndpoint:
    """Where an entity's field definitions are read."""

    version: ApiVersion
    path: str
    paging: PagingKind


class FieldCatalog:
    """Every entity's field definitions, read once per run (one request per entity).

    The custom fields of deals, persons, … come from here, and so do the ``*_fields``
    streams, which emit the definitions already read rather than reading them again.
    """

    def __init__(self, fetcher: Fetcher, endpoints: Mapping[str, FieldEndpoint]) -> None:
        """Read nothing yet: each entity's definitions are read when first asked for."""
        self._fetcher = fetcher
        self._endpoints = endpoints
        self._definitions: dict[str, list[Record]] = {}

    def _request(self, entity: str) -> ListRequest:
        where = self._endpoints[entity]
        return ListRequest(where.version, where.path, stream=f"{entity}_fields")

    def read_ahead(self) -> None:
        """Start reading every entity's definitions now, in parallel (discovery needs them all)."""
        for entity, where in self._endpoints.items():
            if entity not in self._definitions:
                self._fetcher.read_ahead(self._request(entity), where.paging)

    def definitions(self, entity: str) -> list[Record]:
        """The field definitions of ``entity`` (``deal``, ``person``, …), in Pipedrive's order."""
        if entity not in self._definitions:
            records: list[Record] = []
            try:
                for page in self._fetcher.pages(self._request(entity), self._endpoints[entity].paging):
                    records.extend(page)
            except StreamUnavailableError as exc:
                LOGGER.warning("Cannot read the %s fields, so their custom fields stay raw: %s", entity, exc)
            self._definitions[entity] = records
        return self._definitions[entity]

    def custom_fields(self, entity: str) -> list[CustomField]:
        """The custom fields of ``entity``, in Pipedrive's order."""
        definitions = self.definitions(entity)
        if self._endpoints[entity].version == "v1":
            return [CustomField.from_v1(d) for d in definitions if d.get("edit_flag") and d.get("key")]
        return [CustomField.from_v2(d) for d in definitions if d.get("is_custom_field")]


@dataclass(frozen=True)
class CustomFieldOptions:
    """How custom fields arrive: ``named`` or ``raw``, and the pinned column names."""

    mode: CustomFieldsMode
    pins: Mapping[str, str]


@dataclass(frozen=True)
class Services:
    """The run's shared parts; every stream gets the same one."""

    settings: Settings
    client: PipedriveClient
    fetcher: Fetcher
    fields: FieldCatalog
    report: RunReport
    custom: CustomFieldOptions
    stop: StopSignal
    #: parent lists read whole this run, by stream: a per-parent stream (phases, read per board)
    #: and the parent's own stream (boards) read it once between them
    listed: dict[str, list[Record]] = field(default_factory=dict)
    _company: list[int] = field(default_factory=list)

    def company_id(self) -> int:
        """The Pipedrive company account's id (``/users/me``, 2 tokens), read once per run."""
        if not self._company:
            body = self.client.get("v1", COMPANY_ENDPOINT, stream="company id")
            data = body.get("data") if isinstance(body, dict) else None
            value = data.get("company_id") if isinstance(data, dict) else None
            if not isinstance(value, int) or isinstance(value, bool):
                msg = (
                    f"Pipedrive's {COMPANY_ENDPOINT} answered without a company_id, "
                    "which include_company_id needs"
                )
                raise APIError(msg)
            self._company.append(value)
        return self._company[0]

    @property
    def authenticator(self) -> PipedriveAuthenticator:
        """The run's one authenticator (one OAuth refresh per run, not per stream)."""
        return self.client.authenticator

    def secrets(self) -> list[str | None]:
        """Every secret of the connection: the config's, and the tokens issued so far."""
        return [*self.settings.secrets(), self.authenticator.access_token, self.authenticator.refresh_token]

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        field_endpoints: Mapping[str, FieldEndpoint],
        token_store: RefreshTokenStore | None,
        write_back_hint: str,
    ) -> Services:
        """Wire the run's parts together; nothing is sent to Pipedrive yet."""
        authenticator = PipedriveAuthenticator(
            auth_scheme=settings.auth_scheme,
            api_token=settings.api_token,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
            token_url=settings.oauth_token_url,
            timeout=settings.request_timeout,
            user_agent=settings.user_agent,
            token_store=token_store,
            write_back_hint=write_back_hint,
            max_retries=settings.max_retries,
            retry_initial_delay=settings.retry_initial_delay,
        )
        report = RunReport()
        stop = StopSignal()
        client = PipedriveClient(
            authenticator=authenticator,
            base_url=settings.api_url,
            default_base_url=settings.default_api_url,
            user_agent=settings.user_agent,
            stats=report.stats,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
            retry_initial_delay=settings.retry_initial_delay,
            max_tokens_per_run=settings.max_tokens_per_run,
            stop=stop,
            parallel=settings.max_parallel_requests,
        )
        fetcher = Fetcher(client, stop, settings.max_parallel_requests)
        return cls(
            settings=settings,
            client=client,
            fetcher=fetcher,
            fields=FieldCatalog(fetcher, field_endpoints),
            report=report,
            custom=CustomFieldOptions(mode=settings.custom_fields_mode, pins=settings.custom_field_names),
            stop=stop,
        )
