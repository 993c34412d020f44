"""The fake Pipedrive HTTP server: routing, auth, OAuth, pagination, accounting, limits, faults.

``FakePipedrive._handle`` turns one request into a ``Response`` (pure logic, no sockets); the
request handler only reads the request and writes that response, including the broken ways
("reset", "cut") some faults need.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from . import render, spec
from .account import DEFAULT_COMPANY, Account
from .endpoints import MoreEndpoints
from .limits import CLOUDFLARE_HTML, DailyBudget, Fault, Faults, RateLimiter
from .paging import (
    ApiError,
    bool_query,
    cursor_page,
    custom_fields_param,
    id_list,
    int_param,
    int_query,
    matches,
    parse_rfc3339,
    path_id,
    sort_rows,
    v1_page,
    v1_sort,
)
from .projects import PROJECT_STATUSES
from .values import V2_TIME, fmt_time

if TYPE_CHECKING:
    from email.message import Message

ERROR_INFO = "Please check developers.pipedrive.com"
GATEWAY_401 = {"success": False, "error": "unauthorized access", "errorCode": 401,
               "error_info": ERROR_INFO}
NOT_FOUND = {"success": False, "error": "Entity was not found",
             "error_info": "Object was not found.", "data": None, "additional_data": None}
FAULT_MESSAGES = {
    400: "Bad request", 402: "Company account is not open",
    403: "You do not have permissions to do this.", 404: "Entity was not found",
    410: "Old resource permanently unavailable", 500: "Internal server error",
    502: "Bad gateway", 503: "Service is temporarily unavailable (scheduled maintenance)",
    504: "Gateway timeout",
}
ANSWERING_FAULTS = ("timeout", "truncated_json", "cut")  # faults that spoil the real answer
DEFAULT_SCOPE = "base,deals:read,activities:read,contacts:read,products:read,leads:read,users:read"

V2_LISTS = {
    "v2 /deals": "deals", "v2 /deals/archived": "archived_deals", "v2 /persons": "persons",
    "v2 /organizations": "organizations", "v2 /activities": "activities",
    "v2 /products": "products", "v2 /pipelines": "pipelines", "v2 /stages": "stages",
    "v2 /deals/products": "deal_products", "v2 /dealFields": "deal_fields",
    "v2 /personFields": "person_fields", "v2 /organizationFields": "organization_fields",
    "v2 /productFields": "product_fields", "v2 /activityFields": "activity_fields",
    "v2 /deals/installments": "deal_installments", "v2 /projects": "projects",
    "v2 /projects/archived": "archived_projects", "v2 /tasks": "tasks",
    "v2 /projectTemplates": "project_templates", "v2 /projectFields": "project_fields",
}
V1_PAGED = {"v1 /notes": "notes", "v1 /leads": "leads", "v1 /leads/archived": "archived_leads",
            "v1 /files": "files", "v1 /callLogs": "call_logs", "v1 /leadFields": "lead_fields"}
V1_WHOLE = {"v1 /users": "users", "v1 /leadLabels": "lead_labels", "v1 /filters": "filters",
            "v1 /activityTypes": "activity_types", "v1 /currencies": "currencies",
            "v1 /noteFields": "note_fields"}
# single-record GETs: deleted records answer here for 30 days, hidden ones never
SINGLES = {"v2 /deals/{id}": "deals", "v2 /persons/{id}": "persons",
           "v2 /organizations/{id}": "organizations", "v2 /activities/{id}": "activities",
           "v2 /products/{id}": "products", "v1 /notes/{id}": "notes", "v1 /files/{id}": "files"}
V1_MAX_LIMIT = {"v1 /files": 100, "v1 /callLogs": 50}  # documented exceptions to 500
V1_DEFAULT_SORT = {"leads": [("add_time", False)], "archived_leads": [("add_time", False)]}
# query parameters that filter by equality on the record key of the same name
EQUALITY_PARAMS = ("owner_id", "person_id", "org_id", "organization_id", "pipeline_id",
                   "stage_id", "deal_id", "lead_id", "user_id", "done",
                   "pinned_to_deal_flag", "pinned_to_organization_flag", "pinned_to_person_flag")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    mode: str = "normal"  # "reset": close without answering; "cut": half the body, then close
    delay: float = 0.0


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error_body(message: str, info: str = ERROR_INFO) -> bytes:
    return _json({"success": False, "error": message, "error_info": info, "data": None,
                  "additional_data": None})


def _route(path: str) -> str | None:
    """``/api/v2/deals`` -> ``"v2 /deals"``; ``/v1/...`` is an alias of ``/api/v1/...``."""
    for prefix, version in (("/api/v2/", "v2"), ("/api/v1/", "v1"), ("/v1/", "v1")):
        if path.startswith(prefix):
            return f"{version} /{path[len(prefix):].strip('/')}"
    return None


class FakePipedrive(MoreEndpoints):
    """A local Pipedrive on 127.0.0.1 serving one ``Account`` (see the package docstring)."""

    def __init__(
        self, account: Account | None = None, *, seed: int = 7, size: str = "small",
        counts: dict | None = None, host: str = "127.0.0.1", port: int = 0,
        api_token: str = "demo-token",  # noqa: S107 - the fake's published demo credentials
        client_id: str = "demo-client-id",
        client_secret: str = "demo-client-secret",  # noqa: S107
        refresh_token: str = "demo-refresh-token",  # noqa: S107
        auth_code: str = "demo-auth-code", rotate_refresh_tokens: bool = False,
        access_token_ttl: float = 3599, scope: str = DEFAULT_SCOPE,
        burst_limit: int | None = None, burst_window: float = 2.0, cloudflare_after: int = 5,
        daily_token_budget: int | None = None, company_domain: str | None = None,
        company_id: int | None = None, latency: float = 0.0,
    ) -> None:
        if account is None:
            account = Account(seed, size, counts, company_id=company_id or DEFAULT_COMPANY[0],
                              company_domain=company_domain)
        elif company_id is not None or company_domain is not None:
            account.set_company(company_id or account.company_id, company_domain)
        self.account = account
        self.seed = self.account.seed  # also seeds fault draws and issued tokens
        self.host, self.port = host, port
        self.api_token = api_token
        self.client_id, self.client_secret = client_id, client_secret
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.access_token_ttl = access_token_ttl
        self.scope = scope
        # seconds of network round trip added to every request (half on the way in, half on
        # the way out), slept on the request's own thread: concurrent requests overlap
        self.latency = latency
        self._lock = threading.RLock()
        self._refresh_tokens = {refresh_token}
        self._auth_codes = {auth_code}
        self._access_tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._token_serial = 0
        self.issued_tokens: set[str] = set()  # every access and refresh token handed out
        self._faults = Faults(seed)
        self._limiter = RateLimiter(burst_limit, burst_window, cloudflare_after)
        self._budget = DailyBudget(daily_token_budget)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset_counters()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakePipedrive:
        httpd = _Server((self.host, self.port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-pipedrive", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> FakePipedrive:  # noqa: PYI034 - Self needs Python 3.11
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def company_id(self) -> int:
        """The company this fake is (``/users/me`` ``company_id``)."""
        return self.account.company_id

    @property
    def company_domain(self) -> str:
        """Its subdomain (``/users/me`` ``company_domain``)."""
        return self.account.company_domain

    # ---- accounting and controls ------------------------------------------------------------

    def reset_counters(self) -> None:
        """Forget recorded requests, spent tokens, 429s, faults served and rate-limit state."""
        with self._lock:
            self.requests: list[dict] = []
            self.query_token_requests: list[dict] = []
            self.oauth_requests: list[dict] = []
            self.tokens_spent = 0
            self._faults.served = 0
            self._limiter.reset_state()

    @property
    def count_429(self) -> int:
        return self._limiter.count_429

    @property
    def early_requests_after_429(self) -> int:
        """Requests that came before the x-ratelimit-reset a 429 announced (0 = well behaved)."""
        return self._limiter.early_requests

    @property
    def faults_served(self) -> int:
        return self._faults.served

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.faults.clear()

    def set_daily_budget(self, tokens: int | None) -> None:
        """Set (or with None remove) the daily token budget; usage starts again from 0."""
        with self._lock:
            self._budget = DailyBudget(tokens)

    def reset_daily_budget(self) -> None:
        """A new day: the budget's usage goes back to 0."""
        with self._lock:
            self._budget.used = 0

    @property
    def daily_tokens_remaining(self) -> int | None:
        b = self._budget
        return None if b.limit is None else b.limit - b.used

    def expire_access_tokens(self) -> None:
        """Invalidate every issued OAuth access token (the next API call gets the gateway 401)."""
        with self._lock:
            self._access_tokens.clear()

    def revoke_refresh_token(self, token: str) -> None:
        with self._lock:
            self._refresh_tokens.discard(token)

    @property
    def refresh_tokens(self) -> set[str]:
        """The refresh tokens that are currently valid."""
        with self._lock:
            return set(self._refresh_tokens)

    def issue_access_token(self) -> str:
        """A valid Bearer token without the OAuth dance (for tests of the API side only)."""
        with self._lock:
            return self._new_access_token()

    def _serial_token(self, kind: str) -> str:
        """A new token ("at" access, "rt" refresh): deterministic, and remembered in
        ``issued_tokens`` so tests can check that none of them leaks into output."""
        self._token_serial += 1
        digest = hashlib.sha256(f"{self.seed}:{kind}:{self._token_serial}".encode()).hexdigest()
        token = f"{self._token_serial}:{kind}:{digest[:40]}"
        self.issued_tokens.add(token)
        return token

    def _new_access_token(self) -> str:
        token = self._serial_token("at")
        self._access_tokens[token] = time.monotonic() + self.access_token_ttl
        return token

    # ---- request handling ------------------------------------------------------------------

    def _authenticate(self, headers: Message, query: dict) -> tuple[str, str | None, bool]:
        """(auth kind, rate-limit key, valid?) for an API request."""
        if headers.get("x-api-token") is not None:
            return "header", f"api:{self.api_token}", headers["x-api-token"] == self.api_token
        authz = headers.get("Authorization") or ""
        if authz[:7].lower() == "bearer ":
            with self._lock:
                expiry = self._access_tokens.get(authz[7:].strip())
            valid = expiry is not None and time.monotonic() < expiry
            # one window per app install, not per access token: a refresh must not reset it
            return "bearer", f"oauth:{self.client_id}", valid
        if "api_token" in query:
            return "query", f"api:{self.api_token}", query["api_token"] == self.api_token
        return "none", None, False

    def _handle(self, method: str, raw_path: str, headers: Message, body: bytes) -> Response:
        split = urlsplit(raw_path)
        multi = parse_qs(split.query, keep_blank_values=True)
        key, path_params = spec.resolve(_route(split.path))
        req = _Request(method=method, path=split.path, key=key, path_params=path_params,
                       query={k: v[0] for k, v in multi.items()}, multi=multi, now=time.time())
        if req.path.rstrip("/") == "/oauth/token":
            return self._oauth(req, headers, body)
        auth, req.rate_key, ok = self._authenticate(headers, req.query)
        req.entry = {"method": method, "path": req.path,
                     "query": {k: v[0] if len(v) == 1 else v for k, v in multi.items()},
                     "status": None, "token_cost": 0, "tokens_charged": 0, "auth": auth,
                     "time": req.now, "fault": None}
        if auth == "query":
            with self._lock:
                self.query_token_requests.append({"method": method, "path": req.path,
                                                  "time": req.now})
        # the gateway answers 401 before routing: bad credentials on an unknown path get it too
        resp = self._handle_api(req) if ok else Response(401, _json(GATEWAY_401),
                                                           {"x-401-by-gw": "true"})
        req.entry["status"] = resp.status
        with self._lock:
            self.requests.append(req.entry)
        return resp

    def _gate(self, req: _Request, cost: int) -> tuple[Response | None, Fault | None, dict]:
        """Limits and faults, in the order the real stack applies them (caller holds _lock)."""
        verdict = self._limiter.check(req.rate_key, req.now)
        if verdict.outcome == "blocked":
            return _cloudflare(), None, {}
        if verdict.outcome == "429":
            return Response(429, _error_body("Request over limit"),
                            {**verdict.headers, **self._budget.headers()}), None, {}
        if not self._budget.allows(cost):  # rejected before it reaches the API: costs nothing
            return Response(429, _error_body("Daily API token budget exceeded"),
                            {**verdict.headers, **self._budget.headers(),
                             "x-daily-ratelimit-token-remaining": "0"}), None, {}
        fault = self._faults.pick(req.path)
        if fault is not None:
            req.entry["fault"] = fault.kind
            if fault.kind == 429:
                self._limiter.penalize(req.rate_key, req.now, fault.reset)
        return None, fault, verdict.headers

    def _handle_api(self, req: _Request) -> Response:
        cost = spec.token_cost(req.key) if req.key in spec.ENDPOINTS else 0
        req.entry["token_cost"] = cost
        with self._lock:
            refused, fault, limit_headers = self._gate(req, cost)
        if refused is not None:
            return refused
        if fault is not None and fault.kind not in ANSWERING_FAULTS:
            resp = self._fault_response(fault, limit_headers)
            if resp.content_type == "application/json":  # from the API, so with its headers
                with self._lock:
                    resp.headers = {**limit_headers, **self._budget.headers(), **resp.headers}
            return resp
        resp = self._answer(req)
        with self._lock:
            if resp.status < 300 and fault is None:  # a faulted request never costs tokens
                self.tokens_spent += cost
                self._budget.used += cost
                req.entry["tokens_charged"] = cost
            resp.headers.update({**limit_headers, **self._budget.headers()})
        if fault is not None:
            _spoil(resp, fault)
        return resp

    def _answer(self, req: _Request) -> Response:
        try:
            with self.account.lock:  # build and serialise under the lock: rows are live objects
                return Response(200, _json(self._dispatch(req)))
        except ApiError as err:
            body = _json(NOT_FOUND) if err.status == 404 else _error_body(err.message)
            return Response(err.status, body)

    @staticmethod
    def _fault_response(fault: Fault, limit_headers: dict) -> Response:
        kind = fault.kind
        if kind == 429:
            reset = str(fault.reset)
            return Response(429, _error_body("Request over limit"),
                            {**limit_headers, "x-ratelimit-remaining": "0",
                             "x-ratelimit-reset": reset, "Retry-After": reset})
        if kind == "html403":
            return _cloudflare()
        if kind == "reset":
            return Response(0, mode="reset")
        if kind == "non_json":
            html = b"<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"
            return Response(200, html, content_type="text/html")
        if kind == 404:
            return Response(404, _json(NOT_FOUND))
        return Response(int(kind), _error_body(FAULT_MESSAGES[int(kind)]))

    # ---- endpoints -----------------------------------------------------------------------

    def _dispatch(self, req: _Request) -> dict:
        key, q, multi = req.key, req.query, req.multi
        if key not in spec.ENDPOINTS:
            raise ApiError(404, "")
        if req.method != "GET":
            raise ApiError(405, "Method not allowed")
        if key in V2_LISTS:
            return self._v2_list(key, V2_LISTS[key], q, multi)
        if key in V1_PAGED:
            return self._v1_paged(key, V1_PAGED[key], q)
        if key in V1_WHOLE:
            entity = V1_WHOLE[key]
            data = self.account.records(entity)
            if key == "v1 /filters" and q.get("type"):
                data = [r for r in data if r["type"] == q["type"]]
            return {"success": True, "data": data, "additional_data": {}}
        if key == "v1 /users/me":
            return {"success": True, "data": self._me()}
        if key in SINGLES:
            return self._single(key, SINGLES[key], req)
        more = self._more(key, req)
        if more is not None:
            return more
        raise ApiError(404, "")

    def _single(self, key: str, entity: str, req: _Request) -> dict:
        rid = path_id(key, req.path_params, "id")
        include = self._include(key, req.query)
        takes_custom = "custom_fields" in spec.ENDPOINTS[key]["params"]
        custom_keys = custom_fields_param(req.query) if takes_custom else None
        try:
            row = self.account.single(entity, rid)
        except KeyError:
            raise ApiError(404, "") from None
        data = render.records(self.account, entity, [row], include, custom_keys=custom_keys)[0]
        return {"success": True, "data": data}

    def _me(self) -> dict:
        me = dict(next(u for u in self.account.view("users") if u["is_you"]))
        me.update(company_id=self.account.company_id, company_name=self.account.company_name,
                  company_domain=self.account.company_domain, company_country="EE",
                  company_industry="Software",
                  language={"language_code": "en", "country_code": "US"})
        return me

    def _include(self, key: str, q: dict) -> set[str]:
        raw = q.get("include_fields")
        if not raw:
            return set()
        # the fields endpoints list combinations ("ui_visibility,important_fields"): split them
        enum = (spec.param(key, "include_fields") or {}).get("enum", [])
        allowed = {part for value in enum for part in value.split(",")}
        wanted = {p.strip() for p in raw.split(",") if p.strip()}
        if wanted - allowed:
            bad = ",".join(sorted(wanted - allowed))
            raise ApiError(400, f"Validation failed: include_fields: Invalid value(s): {bad}")
        return wanted

    def _v2_list(self, key: str, entity: str, q: dict, multi: dict) -> dict:
        params = spec.ENDPOINTS[key]["params"]
        limit = int_param(q, "limit", 100, 1, 500)
        sort_by = q.get("sort_by") or "id"
        if sort_by not in (params.get("sort_by") or {}).get("enum", ["id"]):
            raise ApiError(400, f"Validation failed: sort_by: Invalid enum value '{sort_by}'")
        direction = q.get("sort_direction") or "asc"
        if direction not in ("asc", "desc"):
            msg = f"Validation failed: sort_direction: Invalid enum value '{direction}'"
            raise ApiError(400, msg)
        bounds = {}
        for name in ("updated_since", "updated_until"):
            if name in q:
                if name not in params:  # /pipelines, /stages; /products lacks updated_until
                    msg = f"Validation failed: {name}: Unrecognized parameter '{name}'"
                    raise ApiError(400, msg)
                bounds[name] = fmt_time(parse_rfc3339(name, q[name]), V2_TIME)
        include = self._include(key, q)
        if entity == "project_fields":  # no include_fields: the settings always come along
            include = {"ui_visibility", "important_fields", "required_fields"}
        if entity.endswith("_fields"):
            items = [render.field_item(entity, f, include) for f in self.account.fields(entity)]
            rows = [{"id": i, "item": it} for i, it in enumerate(items)]
            page, next_cursor = cursor_page(rows, "id", direction, q.get("cursor"), limit)
            return {"success": True, "data": [r["item"] for r in page],
                    "additional_data": {"next_cursor": next_cursor}}
        ordered = self._ordered_v2(key, entity, q, multi, bounds, sort_by=sort_by)
        page, next_cursor = cursor_page([], sort_by, direction, q.get("cursor"), limit,
                                        ordered=ordered)
        custom_keys = custom_fields_param(q)
        data = render.records(self.account, entity, page, include, custom_keys=custom_keys)
        return {"success": True, "data": data, "additional_data": {"next_cursor": next_cursor}}

    def _ordered_v2(self, key: str, entity: str, q: dict, multi: dict, bounds: dict, *,
                    sort_by: str) -> tuple[list[dict], list]:
        """The rows a v2 list query shows, in page order, kept until the data or the clock
        changes (``Account.derived``): a client walks a list page by page with one query, and
        filtering and sorting the whole list for every page made a 1,000,000-row list take
        hours. Every parameter but ``cursor`` and ``limit`` is part of the key."""
        cache = self.account.derived().setdefault("v2 ordered rows", {})
        query_key = (key, sort_by, tuple(sorted(
            (name, tuple(values)) for name, values in multi.items()
            if name not in ("cursor", "limit"))))
        ordered = cache.get(query_key)
        if ordered is None:
            rows = self._filter_v2(key, entity, q, multi, bounds)
            ordered = cache[query_key] = sort_rows(rows, sort_by)
        return ordered

    def _filter_v2(self, key: str, entity: str, q: dict, multi: dict, bounds: dict) -> list[dict]:
        params = spec.ENDPOINTS[key]["params"]
        rows = self.account.view(entity)
        consumed: set[str] = set()  # parameters a filter below has applied already
        if entity in ("deal_products", "deal_installments"):
            # those of live, deleted and archived deals alike: the table is not filtered
            values = multi.get("deal_ids", []) + multi.get("deal_ids[]", [])
            wanted = id_list("deal_ids", [p for v in values for p in v.split(",") if p])
            rows = [r for r in rows if r["deal_id"] in wanted]
        if entity in ("projects", "archived_projects"):
            rows, consumed = _filter_projects(rows, q)
        if entity == "tasks":
            rows, consumed = _filter_tasks(rows, q)
        if entity in ("deals", "archived_deals"):
            statuses = [s for s in (q.get("status") or "open,won,lost").split(",") if s]
            bad = ",".join(sorted(set(statuses) - {"open", "won", "lost", "deleted"}))
            if bad:
                raise ApiError(400, f"Validation failed: status: Invalid enum value '{bad}'")
            rows = [r for r in rows if r["status"] in statuses]
        if q.get("ids"):
            wanted = id_list("ids", [x for x in q["ids"].split(",") if x])
            rows = [r for r in rows if r["id"] in wanted]
        for name in EQUALITY_PARAMS:
            if name in params and q.get(name) and name not in consumed:
                rows = [r for r in rows if matches(r.get(name), q[name])]
        if "updated_since" in bounds:
            rows = [r for r in rows if r["update_time"] >= bounds["updated_since"]]
        if "updated_until" in bounds:
            rows = [r for r in rows if r["update_time"] < bounds["updated_until"]]
        return rows


    def _v1_paged(self, key: str, entity: str, q: dict) -> dict:
        params = spec.ENDPOINTS[key]["params"]
        if entity == "lead_fields":
            rows = self.account.records(entity)
        else:
            rows = self.account.view(entity)
            if "updated_since" in params and q.get("updated_since"):
                bound = fmt_time(parse_rfc3339("updated_since", q["updated_since"]),
                                 self.account.time_format(entity))
                rows = [r for r in rows if r["update_time"] >= bound]
            for name in EQUALITY_PARAMS:
                if name in params and q.get(name):
                    rows = [r for r in rows if matches(r.get(name), q[name])]
            rows = v1_sort(rows, q.get("sort") if "sort" in params else None,
                            V1_DEFAULT_SORT.get(entity, []))
        page, additional = v1_page(rows, q, V1_MAX_LIMIT.get(key, 500))
        if entity != "lead_fields":
            page = render.records(self.account, entity, page, set())
        return {"success": True, "data": page, "additional_data": additional}

    # ---- OAuth -------------------------------------------------------------------------------

    def _oauth(self, req: _Request, headers: Message, body: bytes) -> Response:
        ctype = headers.get("Content-Type") or ""
        authz = headers.get("Authorization") or ""
        is_form = ctype.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
        text = body.decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(text).items()} if is_form else {}
        entry = {"method": req.method, "path": req.path, "time": req.now, "content_type": ctype,
                 "form": form, "basic_auth": authz[:6].lower() == "basic ", "body": text,
                 "headers": dict(headers.items()), "status": None}
        with self._lock:
            self.oauth_requests.append(entry)
            fault = self._faults.pick(req.path, oauth=True)
            if fault is not None and fault.kind not in ANSWERING_FAULTS:
                resp = self._fault_response(fault, {})
            elif req.method != "POST":
                resp = _oauth_error(405, "invalid_request", "Method not allowed")
            elif not is_form:
                resp = _oauth_error(400, "invalid_request", "Invalid request: content must be "
                                    "application/x-www-form-urlencoded")
            else:
                resp = self._client_error(form, authz) or self._grant(form)
            if fault is not None and fault.kind in ANSWERING_FAULTS:
                _spoil(resp, fault)
            entry["status"] = resp.status
        return resp

    def _client_error(self, form: dict, authz: str) -> Response | None:
        """None if the client authenticated (Basic header, or the discouraged form fields)."""
        if authz[:6].lower() == "basic ":
            try:
                client_id, _, secret = base64.b64decode(authz[6:].strip()).decode().partition(":")
            except (ValueError, binascii.Error):
                client_id, secret = "", ""
        elif "client_id" in form and "client_secret" in form:
            client_id, secret = form["client_id"], form["client_secret"]
        else:
            return _oauth_error(400, "invalid_client",
                                "Invalid client: cannot retrieve client credentials")
        if (client_id, secret) != (self.client_id, self.client_secret):
            return _oauth_error(401, "invalid_client", "Invalid client: client is invalid")
        return None

    def _grant(self, form: dict) -> Response:
        grant = form.get("grant_type")
        if not grant:
            return _oauth_error(400, "invalid_request", "Missing parameter: grant_type")
        if grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if refresh not in self._refresh_tokens:
                return _oauth_error(400, "invalid_grant", "Invalid grant: refresh_token is invalid")
            if self.rotate_refresh_tokens:  # the old token counts as "already exchanged"
                self._refresh_tokens.discard(refresh)
                refresh = self._serial_token("rt")
                self._refresh_tokens.add(refresh)
        elif grant == "authorization_code":
            if form.get("code") not in self._auth_codes:
                return _oauth_error(400, "invalid_grant",
                                    "Invalid grant: authorization_code is invalid")
            self._auth_codes.discard(form["code"])  # single use
            refresh = self._serial_token("rt")
            self._refresh_tokens.add(refresh)
        else:
            return _oauth_error(400, "unsupported_grant_type",
                                "Unsupported grant type: grant_type is invalid")
        return Response(200, _json({
            "access_token": self._new_access_token(), "token_type": "Bearer",
            "refresh_token": refresh, "scope": self.scope,
            "expires_in": int(self.access_token_ttl), "api_domain": self.url,
        }))


@dataclass
class _Request:
    method: str
    path: str
    key: str | None  # "v2 /deals", or None outside /api/v1, /v1, /api/v2
    query: dict[str, str]  # first value of each parameter
    multi: dict[str, list[str]]  # every value
    now: float
    path_params: dict[str, str] = field(default_factory=dict)  # {"id": "123"} of /deals/{id}
    rate_key: str | None = None
    entry: dict = field(default_factory=dict)  # what server.requests records


def _filter_projects(rows: list[dict], q: dict) -> tuple[list[dict], set[str]]:
    """``status`` (default: all but deleted), ``phase_id``, and the deal, person or
    organization a project is associated with."""
    statuses = [s for s in (q.get("status") or "open,completed,canceled").split(",") if s]
    bad = ",".join(sorted(set(statuses) - set(PROJECT_STATUSES)))
    if bad:
        raise ApiError(400, f"Validation failed: status: Invalid enum value '{bad}'")
    rows = [r for r in rows if r["status"] in statuses]
    int_query(q, "filter_id")  # validated; the fake has no project filters to apply
    phase = int_query(q, "phase_id")
    if phase is not None:
        rows = [r for r in rows if r["phase_id"] == phase]
    for name, listed in (("deal_id", "deal_ids"), ("person_id", "person_ids"),
                         ("org_id", "org_ids")):
        wanted = int_query(q, name)
        if wanted is not None:
            rows = [r for r in rows if wanted in r[listed]]
    return rows, {"phase_id", "deal_id", "person_id", "org_id"}


def _filter_tasks(rows: list[dict], q: dict) -> tuple[list[dict], set[str]]:
    """``is_done``, ``is_milestone``, ``assignee_id``, ``project_id`` and ``parent_task_id``
    (``null``: root tasks only)."""
    for name in ("is_done", "is_milestone"):
        wanted = bool_query(q, name)
        if wanted is not None:
            rows = [r for r in rows if r[name] == wanted]
    assignee, project = int_query(q, "assignee_id"), int_query(q, "project_id")
    if assignee is not None:
        rows = [r for r in rows if assignee in r["assignee_ids"]]
    if project is not None:
        rows = [r for r in rows if r["project_id"] == project]
    parent = q.get("parent_task_id")
    if parent:
        wanted = None if parent == "null" else int_query(q, "parent_task_id")
        rows = [r for r in rows if r["parent_task_id"] == wanted]
    return rows, {"assignee_id", "project_id", "parent_task_id"}


def _cloudflare() -> Response:
    return Response(403, CLOUDFLARE_HTML.encode(), {"Server": "cloudflare"},
                    content_type="text/html; charset=UTF-8")


def _spoil(resp: Response, fault: Fault) -> None:
    """Apply a fault that still sends (part of) the real answer."""
    if fault.kind == "timeout":
        resp.delay = fault.delay
    elif fault.kind == "truncated_json":  # a 200 whose JSON stops halfway; length matches
        resp.status, resp.body = 200, resp.body[: len(resp.body) // 2]
    elif fault.kind == "cut":  # full Content-Length announced, half the body sent
        resp.status, resp.mode = 200, "cut"


def _oauth_error(status: int, code: str, message: str) -> Response:
    # Pipedrive documents only the messages; the body carries them as "message" and, for OAuth
    # client libraries, as RFC 6749 "error"/"error_description"
    return Response(status, _json({"success": False, "error": code,
                                   "error_description": message, "message": message}))


class _Server(ThreadingHTTPServer):
    """Serves each connection on a daemon thread; remembers them so stop() can hang up."""

    daemon_threads = True
    fake: FakePipedrive

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: object) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # idle keep-alive connections would otherwise outlive the server
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up mid-response are normal here (timeouts, cut faults)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    # headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (~40 ms a request on keep-alive connections)
    disable_nagle_algorithm = True
    server_version = "FakePipedrive/1.0"

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Quiet: tests read ``server.requests`` instead."""

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.server.fake
        # the latency, outside every lock: the request travels, is handled, the answer travels
        # (the rate limiter sees the request when it arrives, as Pipedrive does)
        half_trip = fake.latency / 2
        if half_trip > 0:
            time.sleep(half_trip)
        resp = fake._handle(method, self.path, self.headers, body)
        if resp.delay or half_trip > 0:
            time.sleep(resp.delay + half_trip)
        if resp.mode == "reset":
            self._reset_connection()
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if resp.mode == "cut":  # promise the whole body, deliver half, hang up
            self.wfile.write(resp.body[: len(resp.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(resp.body)

    def _reset_connection(self) -> None:
        # SO_LINGER 0 makes close() send a TCP RST: the client sees "connection reset by peer"
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def handle(self) -> None:
        # the client went away (or a fault closed the socket): nothing to report
        with contextlib.suppress(ConnectionError, OSError):
            super().handle()
