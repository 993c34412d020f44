"""The fake Pipedrive behaves like the real API where the tap depends on it."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import requests

from tests.fake_pipedrive import Account, FakePipedrive, Fault
from tests.fake_pipedrive.admin import GOAL_TYPES
from tests.fake_pipedrive.spec import ENDPOINTS, REAL_NULLS

TOKEN = {"x-api-token": "demo-token"}
BASIC = ("demo-client-id", "demo-client-secret")
TIMEOUT = 30
ROOT = Path(__file__).resolve().parent.parent
GATEWAY_401 = (
    '{"success":false,"error":"unauthorized access","errorCode":401,'
    '"error_info":"Please check developers.pipedrive.com"}'
)

# endpoint key -> (path, extra params); every list is walked to the end
LISTS = {
    "v2 /deals": ("/api/v2/deals", {"status": "open,won,lost,deleted"}),
    "v2 /deals/archived": ("/api/v2/deals/archived", {"status": "open,won,lost,deleted"}),
    "v2 /persons": ("/api/v2/persons", {}),
    "v2 /organizations": ("/api/v2/organizations", {}),
    "v2 /activities": ("/api/v2/activities", {}),
    "v2 /products": ("/api/v2/products", {}),
    "v2 /pipelines": ("/api/v2/pipelines", {}),
    "v2 /stages": ("/api/v2/stages", {}),
    "v2 /deals/products": ("/api/v2/deals/products", {}),  # deal_ids added per chunk
    "v2 /dealFields": ("/api/v2/dealFields", {}),
    "v2 /personFields": ("/api/v2/personFields", {}),
    "v2 /organizationFields": ("/api/v2/organizationFields", {}),
    "v2 /productFields": ("/api/v2/productFields", {}),
    "v2 /activityFields": ("/api/v2/activityFields", {}),
    "v1 /notes": ("/api/v1/notes", {}),
    "v1 /leads": ("/api/v1/leads", {}),
    "v1 /leads/archived": ("/api/v1/leads/archived", {}),
    "v1 /users": ("/api/v1/users", {}),
    "v1 /users/me": ("/api/v1/users/me", {}),
    "v1 /leadLabels": ("/api/v1/leadLabels", {}),
    "v1 /filters": ("/api/v1/filters", {}),
    "v1 /activityTypes": ("/api/v1/activityTypes", {}),
    "v1 /currencies": ("/api/v1/currencies", {}),
    "v1 /files": ("/v1/files", {}),  # the /v1 alias
    "v1 /callLogs": ("/api/v1/callLogs", {}),
    "v1 /noteFields": ("/api/v1/noteFields", {}),
    "v1 /leadFields": ("/api/v1/leadFields", {}),
    # one request per id of PATH_IDS[key]
    "v2 /deals/{id}": ("/api/v2/deals/{id}", {}),
    "v2 /persons/{id}": ("/api/v2/persons/{id}", {}),
    "v2 /organizations/{id}": ("/api/v2/organizations/{id}", {}),
    "v2 /activities/{id}": ("/api/v2/activities/{id}", {}),
    "v2 /products/{id}": ("/api/v2/products/{id}", {}),
    "v1 /notes/{id}": ("/api/v1/notes/{id}", {}),
    "v1 /files/{id}": ("/api/v1/files/{id}", {}),
    "v1 /deals/{id}/flow": ("/api/v1/deals/{id}/flow", {"items": "dealChange", "all_changes": "1"}),
    "v1 /deals/{id}/participants": ("/api/v1/deals/{id}/participants", {}),
    "v2 /deals/{id}/followers": ("/api/v2/deals/{id}/followers", {}),
    "v2 /products/{id}/variations": ("/api/v2/products/{id}/variations", {}),
    "v1 /roles/{id}/assignments": ("/api/v1/roles/{id}/assignments", {}),
    "v1 /permissionSets/{id}/assignments": ("/api/v1/permissionSets/{id}/assignments", {}),
    "v1 /mailbox/mailThreads/{id}/mailMessages": ("/api/v1/mailbox/mailThreads/{id}/mailMessages", {}),
    "v2 /deals/installments": ("/api/v2/deals/installments", {}),  # deal_ids added per chunk
    "v2 /projects": ("/api/v2/projects", {"status": "open,completed,canceled,deleted"}),
    "v2 /projects/archived": ("/api/v2/projects/archived", {"status": "open,completed,canceled,deleted"}),
    "v2 /projectFields": ("/api/v2/projectFields", {}),
    "v2 /tasks": ("/api/v2/tasks", {}),
    "v2 /boards": ("/api/v2/boards", {}),
    "v2 /phases": ("/api/v2/phases", {}),  # once per board (VARIANTS)
    "v2 /projectTemplates": ("/api/v2/projectTemplates", {}),
    "v1 /goals/find": ("/api/v1/goals/find", {}),  # every type, active or not (VARIANTS)
    "v1 /roles": ("/api/v1/roles", {}),
    "v1 /permissionSets": ("/api/v1/permissionSets", {}),
    "v1 /leadSources": ("/api/v1/leadSources", {}),
    "v1 /mailbox/mailThreads": ("/api/v1/mailbox/mailThreads", {}),  # every folder (VARIANTS)
}
# the stream each new endpoint's records make up (all of them, walked per parent)
ENTITY_OF = {
    "v1 /deals/{id}/flow": "deal_changes",
    "v1 /deals/{id}/participants": "deal_participants",
    "v2 /deals/{id}/followers": "deal_followers",
    "v2 /products/{id}/variations": "product_variations",
    "v1 /roles/{id}/assignments": "role_assignments",
    "v1 /permissionSets/{id}/assignments": "permission_set_assignments",
    "v1 /mailbox/mailThreads/{id}/mailMessages": "mail_messages",
    "v2 /deals/installments": "deal_installments",
    "v2 /projects": "projects",
    "v2 /projects/archived": "archived_projects",
    "v2 /tasks": "tasks",
    "v2 /boards": "boards",
    "v2 /phases": "phases",
    "v2 /projectTemplates": "project_templates",
    "v2 /projectFields": "project_fields",
    "v1 /roles": "roles",
    "v1 /permissionSets": "permission_sets",
    "v1 /leadSources": "lead_sources",
    "v1 /mailbox/mailThreads": "mail_threads",
}
# the ids an endpoint with a path parameter is walked for
PATH_IDS = {
    "v2 /deals/{id}": lambda a: a.ids("deals") + a.ids("archived_deals"),
    "v2 /persons/{id}": lambda a: a.ids("persons"),
    "v2 /organizations/{id}": lambda a: a.ids("organizations"),
    "v2 /activities/{id}": lambda a: a.ids("activities"),
    "v2 /products/{id}": lambda a: a.ids("products"),
    "v1 /notes/{id}": lambda a: a.ids("notes"),
    "v1 /files/{id}": lambda a: a.ids("files"),
    "v1 /deals/{id}/flow": lambda a: a.ids("deals") + a.ids("archived_deals"),
    "v1 /deals/{id}/participants": lambda a: a.ids("deals") + a.ids("archived_deals"),
    "v2 /deals/{id}/followers": lambda a: a.ids("deals") + a.ids("archived_deals"),
    "v2 /products/{id}/variations": lambda a: a.ids("products"),
    "v1 /roles/{id}/assignments": lambda a: a.ids("roles"),
    "v1 /permissionSets/{id}/assignments": lambda a: a.ids("permission_sets"),
    "v1 /mailbox/mailThreads/{id}/mailMessages": lambda a: a.ids("mail_threads"),
}
# endpoints walked once per set of parameters, every record once in all
VARIANTS = {
    "v2 /phases": lambda a: [{"board_id": b} for b in a.ids("boards")],
    "v1 /goals/find": lambda _: [
        {"type.name": t, "is_active": active} for t in GOAL_TYPES for active in ("true", "false")
    ],
    "v1 /mailbox/mailThreads": lambda _: [{"folder": f} for f in ("inbox", "drafts", "sent", "archive")],
}


def json_schema(schema: dict, widen: frozenset = frozenset()) -> dict:
    """OpenAPI 3.0 (``nullable``) -> JSON schema (type lists); ``widen`` adds null to top-level
    properties that the live API nulls although the spec does not say so (spec.REAL_NULLS)."""
    out = {k: v for k, v in schema.items() if k not in ("nullable", "format")}
    if "properties" in schema:
        nested = {}
        for name in widen:
            parent, _, child = name.partition(".")
            nested.setdefault(parent, set()).update({child} if child else set())
        out["properties"] = {
            k: json_schema(v, frozenset(nested.get(k, ()))) for k, v in schema["properties"].items()
        }
        for name in {n for n in widen if "." not in n} & set(out["properties"]):
            out["properties"][name] = {"anyOf": [out["properties"][name], {"type": "null"}]}
    if isinstance(schema.get("items"), dict):
        out["items"] = json_schema(schema["items"], widen)  # "a.b": b inside a's items
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = json_schema(schema["additionalProperties"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            out[key] = [json_schema(s) for s in schema[key]]
    if schema.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def fetch_all(session: requests.Session, url: str, params: dict) -> list[dict]:
    """Every item of a list, following next_cursor or next_start."""
    items, params = [], dict(params)
    while True:
        r = session.get(url, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True
        if not isinstance(body["data"], list):
            return [body["data"]]
        items += body["data"]
        extra = body.get("additional_data") or {}
        if extra.get("next_cursor"):
            params["cursor"] = extra["next_cursor"]
        elif (extra.get("pagination") or {}).get("more_items_in_collection"):
            params["start"] = extra["pagination"]["next_start"]
        else:
            return items


class _Session(requests.Session):
    """A session that never waits forever on a broken fake."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(*args, **kwargs)


def bare_get(url: str, **kwargs) -> requests.Response:
    """A GET on a fresh connection, with only the headers given."""
    with _Session() as s:
        return s.get(url, **kwargs)


def token_request(url: str, form: dict | None = None, auth=BASIC, **kwargs) -> requests.Response:
    with _Session() as s:
        return s.post(url, auth=auth, data=form, **kwargs)


@pytest.fixture(scope="module")
def server():
    with FakePipedrive(Account(seed=7, size="small")) as srv:
        yield srv


@pytest.fixture
def session():
    with _Session() as s:
        s.headers.update(TOKEN)
        yield s


def include_variants(key: str) -> list[str]:
    enum = (ENDPOINTS[key]["params"].get("include_fields") or {}).get("enum", [])
    return ["", ",".join(sorted({p for v in enum for p in v.split(",")}))] if enum else [""]


def endpoint_records(server, session, key: str, include: str = "") -> list[dict]:
    """Every record an endpoint of ``LISTS`` returns, with ``include_fields=include``."""
    path, params = LISTS[key]
    query = {**params, "limit": 500 if key.startswith("v2") else 50}
    if include:
        query["include_fields"] = include
    if key in ("v2 /deals/products", "v2 /deals/installments"):
        deal_ids = server.account.ids("deals") + server.account.ids("archived_deals")
        records = []
        for i in range(0, len(deal_ids), 100):
            ids = ",".join(map(str, deal_ids[i : i + 100]))
            records += fetch_all(session, server.url + path, {**query, "deal_ids": ids})
        entity = "deal_products" if key == "v2 /deals/products" else "deal_installments"
        assert sorted(r["id"] for r in records) == server.account.ids(entity)
        return records
    if key in VARIANTS:
        if "limit" not in ENDPOINTS[key]["params"]:
            del query["limit"]
        return [
            record
            for variant in VARIANTS[key](server.account)
            for record in fetch_all(session, server.url + path, {**query, **variant})
        ]
    if key in PATH_IDS:
        if "limit" not in ENDPOINTS[key]["params"]:
            del query["limit"]
        return [
            record
            for rid in PATH_IDS[key](server.account)
            for record in fetch_all(session, server.url + path.format(id=rid), query)
        ]
    return fetch_all(session, server.url + path, query)


def missing_example_keys(example: dict, record: dict, where: str = "") -> set[str]:
    """Keys of the spec's example absent from ``record``, looking into the nested objects (and
    arrays of objects) the record has too; custom fields differ per account by design."""
    missing = set()
    for name, sample in example.items():
        if name not in record:
            missing.add(where + name)
            continue
        value = record[name]
        if name == "custom_fields":
            continue
        if isinstance(sample, dict) and isinstance(value, dict) and value:
            missing |= missing_example_keys(sample, value, f"{where}{name}.")
        elif isinstance(sample, list) and sample and isinstance(sample[0], dict) and isinstance(value, list):
            for element in value:
                if isinstance(element, dict):
                    missing |= missing_example_keys(sample[0], element, f"{where}{name}[].")
    return missing


@pytest.mark.parametrize("key", list(LISTS))
def test_every_record_matches_its_item_schema(server, session, key):
    item = ENDPOINTS[key]["item"]
    validator = jsonschema.Draft7Validator(json_schema(item, REAL_NULLS.get(key, frozenset())))
    only_on_request = {"attendees", "ui_visibility", "important_fields", "required_fields"}
    for include in include_variants(key):
        records = endpoint_records(server, session, key, include)
        assert records, f"{key} returned nothing"
        documented = set(item.get("properties", {})) - (set() if include else only_on_request)
        for record in records:
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(record)]
            assert not errors, (key, record.get("id"), errors[:5])
            assert documented <= set(record), (key, documented - set(record))


@pytest.mark.parametrize("key", [k for k in LISTS if ENDPOINTS[k].get("example")])
def test_every_record_carries_every_key_of_the_specs_example(server, session, key):
    """The spec's examples are real responses: they show keys the schemas omit (a deal's
    ``archive_time``, a file's ``file_type``...), and a record must carry those too."""
    example = ENDPOINTS[key]["example"]
    records = endpoint_records(server, session, key, include_variants(key)[-1])
    assert records, f"{key} returned nothing"
    missing = set()
    for record in records:
        missing |= missing_example_keys(example, record)
    assert not missing, (key, sorted(missing))


def test_account_is_deterministic_and_has_custom_fields():
    a, b = Account(seed=3), Account(seed=3)
    assert a.records("deals") == b.records("deals")
    assert a.records("leads") == b.records("leads")
    assert a.records("deals") != Account(seed=4).records("deals")
    fields = a.records("deal_fields")
    custom = [f for f in fields if f["is_custom_field"]]
    assert {f["field_type"] for f in custom} >= {
        "varchar",
        "varchar_auto",
        "text",
        "int",
        "double",
        "monetary",
        "date",
        "daterange",
        "time",
        "timerange",
        "enum",
        "set",
        "address",
        "phone",
        "user",
        "people",
        "org",
        "deal",
        "boolean",
    }
    assert all(len(f["field_code"]) == 40 for f in custom)
    assert [f["field_name"] for f in custom].count("Source") == 2
    assert "Größe / Taille" in {f["field_name"] for f in custom}
    builtin_names = {f["field_name"] for f in fields if not f["is_custom_field"]}
    assert builtin_names & {f["field_name"] for f in custom} == {"Value"}
    assert len(Account(counts={"deals": 501}).ids("deals")) == 501
    assert Account(counts={"deals": 0}).ids("deals") == []


@pytest.mark.parametrize("sort_direction", ["asc", "desc"])
def test_cursor_paging_by_update_time_is_exact_under_ties(session, sort_direction):
    account = Account(seed=11, counts={"deals": 700})
    tied = account.ids("deals")[150:450]
    account.set_update_time("deals", tied, "2025-03-01T12:00:00Z")
    with FakePipedrive(account) as srv:
        params = {
            "limit": 100,
            "sort_by": "update_time",
            "sort_direction": sort_direction,
            "status": "open,won,lost,deleted",
        }
        records = fetch_all(session, f"{srv.url}/api/v2/deals", params)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 700
    assert sorted(ids) == account.ids("deals")
    keys = [(r["update_time"], r["id"]) for r in records]
    assert keys == sorted(keys, reverse=sort_direction == "desc")
    assert sum(r["update_time"] == "2025-03-01T12:00:00Z" for r in records) >= 300


def test_a_list_walk_sees_a_change_made_between_its_pages(session):
    # the fake keeps a query's rows in page order between pages: a change must still show
    with FakePipedrive(Account(seed=7, size="small")) as srv:
        url = f"{srv.url}/api/v2/persons"
        params = {"limit": 10, "sort_by": "update_time"}
        first = session.get(url, params=params).json()
        oldest = first["data"][0]["id"]
        srv.account.update("persons", oldest, name="Renamed, so now the newest")
        rest = fetch_all(session, url, {**params, "cursor": first["additional_data"]["next_cursor"]})
        assert rest[-1]["id"] == oldest
        assert rest[-1]["name"] == "Renamed, so now the newest"
        again = fetch_all(session, url, params)
        assert [r["id"] for r in again][-1] == oldest
        assert len(again) == len(srv.account.ids("persons"))


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/api/v2/deals", 501),
        ("/api/v2/deals", 0),
        ("/api/v2/dealFields", 501),
        ("/api/v1/notes", 501),
        ("/api/v1/files", 101),
        ("/api/v1/callLogs", 51),
    ],
)
def test_limit_over_max_is_rejected(server, session, path, limit):
    r = session.get(server.url + path, params={"limit": limit})
    assert r.status_code == 400
    assert r.json()["success"] is False
    assert "limit" in r.json()["error"]


@pytest.mark.parametrize("path", ["/api/v2/deals", "/api/v2/persons", "/api/v1/notes", "/api/v1/leads"])
@pytest.mark.parametrize("value", ["2024-01-01T10:00:00.5Z", "2024-01-01T10:00:00.000Z", "yesterday"])
def test_bad_updated_since_is_rejected(server, session, path, value):
    r = session.get(server.url + path, params={"updated_since": value})
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False
    assert "updated_since" in body["error"]
    assert body["error_info"] == "Please check developers.pipedrive.com"


def test_time_filters_are_rejected_where_not_supported(server, session):
    since = "2024-01-01T00:00:00Z"
    for path, name in [
        ("/api/v2/pipelines", "updated_since"),
        ("/api/v2/stages", "updated_until"),
        ("/api/v2/products", "updated_until"),
    ]:
        assert session.get(server.url + path, params={name: since}).status_code == 400
    assert session.get(f"{server.url}/api/v2/products", params={"updated_since": since}).ok


def test_updated_since_is_inclusive_and_updated_until_exclusive(session):
    account = Account(seed=5)
    ids = account.ids("deals")[:3]
    account.set_update_time("deals", ids, "2030-01-01T00:00:00Z")
    with FakePipedrive(account) as srv:

        def listed(**params):
            params["status"] = "open,won,lost,deleted"
            return {r["id"] for r in fetch_all(session, f"{srv.url}/api/v2/deals", params)}

        assert listed(updated_since="2030-01-01T00:00:00Z") == set(ids)
        assert listed(updated_since="2030-01-01T00:00:01Z") == set()
        assert not listed(updated_until="2030-01-01T00:00:00Z") & set(ids)
        assert listed(updated_since="2030-01-01T00:00:00Z", updated_until="2030-01-01T00:00:01Z") == set(ids)
        assert listed(updated_since="2030-01-01T01:00:00+01:00") == set(ids)  # offsets are honoured


def test_unauthorized_is_the_gateway_401(server, session):
    for headers in ({}, {"x-api-token": "wrong"}, {"Authorization": "Bearer not-issued"}):
        r = bare_get(f"{server.url}/api/v2/deals", headers=headers)
        assert r.status_code == 401
        assert r.text == GATEWAY_401
        assert r.headers["x-401-by-gw"] == "true"
    assert bare_get(f"{server.url}/api/v2/no-such-thing").status_code == 401
    r = session.get(f"{server.url}/api/v2/no-such-thing")
    assert r.status_code == 404
    assert r.json()["error"] == "Entity was not found"
    assert session.post(f"{server.url}/api/v2/deals").status_code == 405


def test_oauth_refresh_with_rotation():
    first_refresh = "first-refresh"
    with FakePipedrive(rotate_refresh_tokens=True, refresh_token=first_refresh) as srv:
        url = f"{srv.url}/oauth/token"
        r = token_request(url, {"grant_type": "refresh_token", "refresh_token": first_refresh})
        assert r.status_code == 200, r.text
        tok = r.json()
        assert tok["token_type"] == "Bearer"
        assert (tok["expires_in"], tok["api_domain"]) == (3599, srv.url)
        assert "deals:read" in tok["scope"].split(",")
        assert tok["refresh_token"] not in (first_refresh, "")
        assert srv.oauth_requests[-1]["basic_auth"] is True
        assert srv.oauth_requests[-1]["form"] == {
            "grant_type": "refresh_token",
            "refresh_token": first_refresh,
        }

        def message(resp: requests.Response) -> tuple[int, str]:
            return resp.status_code, resp.json()["message"]

        reused = token_request(url, {"grant_type": "refresh_token", "refresh_token": first_refresh})
        assert message(reused) == (400, "Invalid grant: refresh_token is invalid")
        wrong_client = token_request(
            url,
            {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]},
            auth=("demo-client-id", "nope"),
        )
        assert message(wrong_client) == (401, "Invalid client: client is invalid")
        as_json = token_request(url, json={"grant_type": "refresh_token"})
        assert message(as_json) == (400, "Invalid request: content must be application/x-www-form-urlencoded")
        no_grant = token_request(f"{url}/", {"refresh_token": tok["refresh_token"]})
        assert message(no_grant) == (400, "Missing parameter: grant_type")

        bearer = {"Authorization": f"Bearer {tok['access_token']}"}
        assert bare_get(f"{srv.url}/api/v2/deals", headers=bearer).status_code == 200
        assert srv.requests[-1]["auth"] == "bearer"
        srv.expire_access_tokens()
        expired = bare_get(f"{srv.url}/api/v2/deals", headers=bearer)
        assert (expired.status_code, expired.text) == (401, GATEWAY_401)
        second = token_request(url, {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]})
        assert second.status_code == 200
        assert srv.refresh_tokens == {second.json()["refresh_token"]}


def test_token_accounting(session):
    with FakePipedrive() as srv:
        session.get(f"{srv.url}/api/v2/deals")  # 10
        session.get(f"{srv.url}/api/v2/pipelines")  # 5
        session.get(f"{srv.url}/api/v2/deals/archived")  # 20
        session.get(f"{srv.url}/v1/users/me")  # 2
        session.get(f"{srv.url}/api/v1/notes", params={"limit": 9999})  # 400: free
        bare_get(f"{srv.url}/api/v2/deals", params={"api_token": "demo-token"})  # 10, via query
        assert srv.tokens_spent == 47
        assert sum(r["tokens_charged"] for r in srv.requests) == 47
        assert [r["status"] for r in srv.requests] == [200, 200, 200, 200, 400, 200]
        assert [r["auth"] for r in srv.requests][-1] == "query"
        assert len(srv.query_token_requests) == 1

        srv.set_daily_budget(25)
        r = session.get(f"{srv.url}/api/v2/deals")
        assert r.headers["x-daily-ratelimit-token-limit"] == "25"
        assert r.headers["x-daily-ratelimit-token-remaining"] == "15"
        session.get(f"{srv.url}/api/v2/deals")
        over = session.get(f"{srv.url}/api/v2/deals")
        assert over.status_code == 429
        assert over.json()["error"] == "Daily API token budget exceeded"
        assert over.headers["x-daily-ratelimit-token-remaining"] == "0"
        assert session.get(f"{srv.url}/v1/users/me").status_code == 200  # 2 tokens still fit
        srv.reset_counters()
        assert (srv.tokens_spent, srv.requests) == (0, [])


def test_latency_delays_each_request_and_concurrent_requests_wait_together():
    latency = 0.3
    with FakePipedrive(latency=latency) as srv:
        url = f"{srv.url}/api/v2/pipelines"
        started = time.monotonic()
        assert bare_get(url, headers=TOKEN).status_code == 200
        assert time.monotonic() - started >= latency

        def timed_get(_: int) -> float:
            begin = time.monotonic()
            assert bare_get(url, headers=TOKEN).status_code == 200
            return time.monotonic() - begin

        with ThreadPoolExecutor(max_workers=2) as pool:
            started = time.monotonic()
            each = list(pool.map(timed_get, range(2)))
            both = time.monotonic() - started
        assert min(each) >= latency
        # one latency, not two (the margin is for a busy machine)
        assert both < 1.6 * latency, f"two concurrent requests took {both:.2f}s"


def test_burst_limit_answers_429_then_cloudflare(session):
    with FakePipedrive(burst_limit=3, cloudflare_after=2) as srv:
        url = f"{srv.url}/api/v2/pipelines"
        first = session.get(url)
        assert first.headers["x-ratelimit-limit"] == "3"
        assert first.headers["x-ratelimit-remaining"] == "2"
        session.get(url)
        session.get(url)
        over = session.get(url)
        assert over.status_code == 429
        assert over.json() == {
            "success": False,
            "error": "Request over limit",
            "error_info": "Please check developers.pipedrive.com",
            "data": None,
            "additional_data": None,
        }
        reset = int(over.headers["x-ratelimit-reset"])
        assert over.headers["x-ratelimit-remaining"] == "0"
        assert 1 <= reset <= 2
        assert over.headers["Retry-After"] == str(reset)
        assert (srv.count_429, srv.early_requests_after_429) == (1, 0)
        time.sleep(reset)
        assert session.get(url).status_code == 200  # waited as told: fine
        assert srv.early_requests_after_429 == 0

        session.get(url)
        session.get(url)
        assert session.get(url).status_code == 429
        statuses = [session.get(url).status_code for _ in range(3)]  # ignoring the reset
        assert statuses == [429, 429, 403]
        assert srv.early_requests_after_429 == 3
        blocked = session.get(url)
        assert blocked.status_code == 403
        assert blocked.headers["Content-Type"].startswith("text/html")
        assert "Sorry, you have been blocked" in blocked.text
        assert "Cloudflare" in blocked.text
        assert srv.count_429 == 4
        assert srv.tokens_spent == 6 * 5


def test_faults_are_deterministic_and_free(session):
    with FakePipedrive() as srv:
        srv.add_fault(Fault(503, path_pattern=r"/api/v2/persons$", times=2, after=1))
        statuses = [session.get(f"{srv.url}/api/v2/persons").status_code for _ in range(4)]
        assert statuses == [200, 503, 503, 200]
        assert srv.faults_served == 2
        assert srv.tokens_spent == 20
        assert session.get(f"{srv.url}/api/v2/deals").status_code == 200  # other paths untouched

        srv.clear_faults()
        srv.add_fault(Fault("reset", times=1))
        with pytest.raises(requests.ConnectionError):
            session.get(f"{srv.url}/api/v2/deals")
        srv.add_fault(Fault("truncated_json", times=1))
        with pytest.raises(json.JSONDecodeError):
            json.loads(session.get(f"{srv.url}/api/v2/deals").text)
        srv.add_fault(Fault("cut", times=1))
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            session.get(f"{srv.url}/api/v2/deals")
        assert session.get(f"{srv.url}/api/v2/deals").status_code == 200
        assert srv.faults_served == 5


def test_cursor_is_opaque_base64url_json(server, session):
    r = session.get(f"{server.url}/api/v2/deals", params={"limit": 2})
    cursor = r.json()["additional_data"]["next_cursor"]
    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert decoded == {
        "field": "id",
        "fieldValue": r.json()["data"][-1]["id"],
        "sortDirection": "asc",
        "id": r.json()["data"][-1]["id"],
    }
    garbage = session.get(f"{server.url}/api/v2/deals", params={"cursor": "garbage!"})
    assert garbage.status_code == 400


def test_mutations_show_up_in_the_api(session):
    account = Account(seed=9)
    t0 = account.now
    with FakePipedrive(account) as srv:

        def deal_ids(path: str = "/api/v2/deals", **params) -> set[int]:
            return {r["id"] for r in fetch_all(session, srv.url + path, params)}

        everything = "open,won,lost,deleted"
        deal = account.ids("deals", status="open")[0]
        account.update("deals", deal, title="Renamed")
        updated = account.record("deals", deal)
        assert updated["title"] == "Renamed"
        assert updated["update_time"] == t0.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (account.now - t0).total_seconds() == 1
        since = {"updated_since": updated["update_time"], "status": everything}
        assert deal_ids(**since) == {deal}

        account.delete("deals", deal)
        assert deal not in deal_ids()
        assert deal in deal_ids(status="deleted")
        other = account.ids("deals", status="won")[0]
        account.archive("deals", other)
        assert other not in deal_ids(status=everything)
        assert other in deal_ids("/api/v2/deals/archived", status=everything)

        person = account.ids("persons")[0]
        account.delete("persons", person)
        assert person not in {r["id"] for r in fetch_all(session, f"{srv.url}/api/v2/persons", {})}

        code = account.add_field("deals", "Renewal risk", "enum", options=["Low", "High"])
        account.rename_field("deals", code, "Churn risk")
        listed = fetch_all(session, f"{srv.url}/api/v2/dealFields", {"limit": 7})
        fields = {f["field_code"]: f for f in listed}
        assert len(fields) == len(listed) == len(account.ids("deal_fields"))
        assert fields[code]["field_name"] == "Churn risk"
        assert [o["label"] for o in fields[code]["options"]] == ["Low", "High"]
        lead_fields = fetch_all(session, f"{srv.url}/api/v1/leadFields", {})
        assert {f["key"]: f["name"] for f in lead_fields}[code] == "Churn risk"
        fresh = account.ids("deals", status="open")[0]
        assert account.record("deals", fresh)["custom_fields"][code] is None
        account.update("deals", fresh, value=10)
        option_ids = {o["id"] for o in fields[code]["options"]}
        assert account.record("deals", fresh)["custom_fields"][code] in option_ids

        lead = account.ids("leads")[0]
        account.archive("leads", lead)
        archived = fetch_all(session, f"{srv.url}/api/v1/leads/archived", {})
        assert lead in {r["id"] for r in archived}
        assert lead not in {r["id"] for r in fetch_all(session, f"{srv.url}/api/v1/leads", {})}

        account.advance(31 * 86400)  # deleted deals are listed for 30 days only
        assert deal not in deal_ids(status="deleted")


def test_command_line_server_runs_until_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_pipedrive", "--port", "0", "--size", "small"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = proc.stderr.readline().strip()
        assert first.startswith("fake pipedrive listening on http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1]
        assert "demo-token" in proc.stderr.readline()
        assert bare_get(f"{url}/v1/users/me", headers=TOKEN).json()["data"]["is_you"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


# ---- deletes and visibility ------------------------------------------------------------------

V2_SINGLE = {
    "deals": "deals",
    "persons": "persons",
    "organizations": "organizations",
    "activities": "activities",
    "products": "products",
}
NOT_FOUND_BODY = {
    "success": False,
    "error": "Entity was not found",
    "error_info": "Object was not found.",
    "data": None,
    "additional_data": None,
}
DAY = 86400


def listed_ids(session, url: str, **params) -> set:
    return {r["id"] for r in fetch_all(session, url, params)}


@pytest.mark.parametrize("entity", list(V2_SINGLE))
def test_a_deleted_record_leaves_its_list_and_its_single_get_answers_it_for_30_days(session, entity):
    account = Account(seed=9)
    rid = account.ids(entity, **({"status": "open"} if entity == "deals" else {}))[0]
    with FakePipedrive(account) as srv:
        list_url, single_url = f"{srv.url}/api/v2/{entity}", f"{srv.url}/api/v2/{entity}/{rid}"
        before = session.get(single_url).json()["data"]
        assert before["is_deleted"] is False
        deleted_at = account.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        account.delete(entity, rid)
        assert rid not in listed_ids(session, list_url)
        assert rid not in account.ids(entity) or entity == "deals"
        if entity == "deals":  # deleted deals stay listable with status=deleted
            assert rid in listed_ids(session, list_url, status="deleted")
        r = session.get(single_url)
        assert r.status_code == 200
        assert (r.json()["data"]["is_deleted"], r.json()["data"]["update_time"]) == (True, deleted_at)
        assert account.get(entity, rid)["is_deleted"] is True
        assert srv.requests[-1]["tokens_charged"] == 1
        account.advance(30 * DAY - 5)
        assert session.get(single_url).status_code == 200
        account.advance(10)  # purged for good 30 days after the delete
        gone = session.get(single_url)
        assert (gone.status_code, gone.json()) == (404, NOT_FOUND_BODY)
        assert rid not in listed_ids(
            session, list_url, **({"status": "deleted"} if entity == "deals" else {})
        )
        with pytest.raises(KeyError):
            account.get(entity, rid)


def test_deleted_notes_are_gone_and_deleted_files_answer_inactive_for_30_days(session):
    account = Account(seed=9)
    note, file_id = account.ids("notes")[0], account.ids("files")[0]
    with FakePipedrive(account) as srv:
        assert session.get(f"{srv.url}/api/v1/notes/{note}").json()["data"]["id"] == note
        assert srv.requests[-1]["tokens_charged"] == 2
        account.delete("notes", note)  # v1: "Deletes a specific note"
        assert note not in listed_ids(session, f"{srv.url}/api/v1/notes")
        assert session.get(f"{srv.url}/api/v1/notes/{note}").status_code == 404
        account.delete("files", file_id)  # v1: "Marks a file as deleted. After 30 days ... permanently"
        assert file_id not in listed_ids(session, f"{srv.url}/api/v1/files")
        r = session.get(f"{srv.url}/api/v1/files/{file_id}")
        assert r.status_code == 200
        assert r.json()["data"]["active_flag"] is False
        account.advance(31 * DAY)
        assert session.get(f"{srv.url}/api/v1/files/{file_id}").status_code == 404


@pytest.mark.parametrize(
    ("entity", "base"),
    [
        ("deals", "/api/v2/deals"),
        ("persons", "/api/v2/persons"),
        ("organizations", "/api/v2/organizations"),
        ("activities", "/api/v2/activities"),
        ("products", "/api/v2/products"),
        ("notes", "/api/v1/notes"),
        ("files", "/api/v1/files"),
    ],
)
def test_a_hidden_record_is_in_no_list_and_its_single_get_answers_404(session, entity, base):
    account = Account(seed=9)
    rid = account.ids(entity, **({"status": "open"} if entity == "deals" else {}))[0]
    with FakePipedrive(account) as srv:
        params = {"status": "open,won,lost,deleted"} if entity == "deals" else {}
        update_time = account.record(entity, rid)["update_time"]
        account.hide(entity, rid)
        assert rid not in listed_ids(session, srv.url + base, **params)
        assert rid not in account.ids(entity)
        r = session.get(f"{srv.url}{base}/{rid}")
        assert (r.status_code, r.json()) == (404, NOT_FOUND_BODY)
        account.unhide(entity, rid)
        assert rid in listed_ids(session, srv.url + base, **params)
        assert session.get(f"{srv.url}{base}/{rid}").json()["data"]["update_time"] == update_time


def test_purge_removes_a_deleted_record_before_its_30_days(session):
    account = Account(seed=9)
    person = account.ids("persons")[0]
    account.delete("persons", person)
    with FakePipedrive(account) as srv:
        assert session.get(f"{srv.url}/api/v2/persons/{person}").status_code == 200
        account.purge("persons", person)
        assert session.get(f"{srv.url}/api/v2/persons/{person}").status_code == 404
        with pytest.raises(KeyError):
            account.purge("persons", person)


def test_single_gets_validate_their_id_and_options(server, session):
    deal = server.account.ids("deals")[0]
    assert session.get(f"{server.url}/api/v2/deals/not-a-number").status_code == 400
    assert session.get(f"{server.url}/api/v2/deals/999999").status_code == 404
    assert (
        session.get(f"{server.url}/api/v2/deals/{deal}", params={"include_fields": "nope"}).status_code == 400
    )
    r = session.get(f"{server.url}/api/v2/deals/{deal}", params={"include_fields": "products_count"})
    assert r.json()["data"]["products_count"] == sum(
        1 for p in server.account.records("deal_products") if p["deal_id"] == deal
    )
    assert r.json()["data"] == {
        **server.account.record("deals", deal),
        "products_count": r.json()["data"]["products_count"],
    }


# ---- several companies -----------------------------------------------------------------------


def test_two_companies_with_one_seed_share_record_ids_but_not_the_company(session):
    with FakePipedrive(seed=7) as first, FakePipedrive(seed=7, company_id=1234567) as second:
        me = [session.get(f"{srv.url}/api/v1/users/me").json()["data"] for srv in (first, second)]
        assert [m["company_id"] for m in me] == [7654321, 1234567]
        assert me[0]["company_domain"] != me[1]["company_domain"]
        assert (second.company_id, second.company_domain) == (1234567, me[1]["company_domain"])
        assert first.account.ids("deals") == second.account.ids("deals")  # overlapping ids
        logs = [fetch_all(session, f"{srv.url}/api/v1/callLogs", {}) for srv in (first, second)]
        assert {r["company_id"] for r in logs[0]} == {7654321}
        assert {r["company_id"] for r in logs[1]} == {1234567}
        files = fetch_all(session, f"{second.url}/api/v1/files", {})
        assert all(f"//{me[1]['company_domain']}.pipedrive.com/" in f["url"] for f in files)
    # an account handed to the fake moves to the company asked for
    account = Account(seed=7)
    with FakePipedrive(account, company_id=42, company_domain="acme") as third:
        data = session.get(f"{third.url}/api/v1/users/me").json()["data"]
        assert (data["company_id"], data["company_domain"]) == (42, "acme")
        assert {r["company_id"] for r in account.records("call_logs")} == {42}
        assert all(r["email"].endswith("@acme.com") for r in account.records("users"))


# ---- the rest of Pipedrive -------------------------------------------------------------------


def test_every_endpoint_of_the_extract_is_walked_by_the_schema_tests():
    assert set(LISTS) == set(ENDPOINTS)


def test_new_entities_are_deterministic_and_every_record_is_listed_once(server, session):
    a, b = Account(seed=3), Account(seed=3)
    for entity in ENTITY_OF.values():
        assert a.records(entity) == b.records(entity), entity
        assert a.ids(entity), f"the small account has no {entity}"
    for key, entity in ENTITY_OF.items():
        records = endpoint_records(server, session, key)
        account = server.account
        if entity.endswith("_fields"):
            got = [r["field_code"] for r in records]
        elif entity == "deal_changes":
            got = [r["data"]["id"] for r in records]
        elif entity == "deal_followers":  # walked deal by deal, in the order of PATH_IDS
            deals = PATH_IDS[key](account)
            got = sorted(
                (d, f["user_id"])
                for d in deals
                for f in fetch_all(session, f"{server.url}/api/v2/deals/{d}/followers", {})
            )
        elif entity == "role_assignments":
            got = [(r["role_id"], r["user_id"]) for r in records]
        elif entity == "permission_set_assignments":
            got = [(r["permission_set_id"], r["user_id"]) for r in records]
        elif entity == "lead_sources":
            got = [r["name"] for r in records]
        elif entity == "mail_threads":  # one thread is in two folders
            got = list(dict.fromkeys(r["id"] for r in records))
        else:
            got = [r["id"] for r in records]
        assert len(got) == len(set(got)), (key, "listed twice")
        assert sorted(got, key=str) == sorted(account.ids(entity), key=str), key
    goals = endpoint_records(server, session, "v1 /goals/find")
    assert sorted(g["id"] for page in goals for g in page["goals"]) == sorted(server.account.ids("goals"))


# (endpoint key, path, params) of every paged new list, walked one record a page
PAGED_NEW = [
    ("v1 /deals/{id}/flow", {"all_changes": "1"}),
    ("v1 /deals/{id}/participants", {}),
    ("v2 /deals/{id}/followers", {}),
    ("v2 /products/{id}/variations", {}),
    ("v1 /roles/{id}/assignments", {}),
    ("v1 /permissionSets/{id}/assignments", {}),
    ("v2 /deals/installments", {}),
    ("v2 /projects", {}),
    ("v2 /projects/archived", {}),
    ("v2 /projectFields", {}),
    ("v2 /tasks", {}),
    ("v2 /projectTemplates", {}),
    ("v1 /roles", {}),
    ("v1 /mailbox/mailThreads", {"folder": "inbox"}),
]


@pytest.mark.parametrize(("key", "params"), PAGED_NEW, ids=[k for k, _ in PAGED_NEW])
def test_new_lists_page_as_their_spec_documents(server, session, key, params):
    path = LISTS[key][0]
    account = server.account
    if key in PATH_IDS:  # the parent with the most children

        def children(pid):
            return fetch_all(session, server.url + path.format(id=pid), params)

        parent = max(PATH_IDS[key](account), key=lambda pid: len(children(pid)))
        url, whole = server.url + path.format(id=parent), children(parent)
    else:
        url = server.url + path
        if key == "v2 /deals/installments":
            params = {"deal_ids": ",".join(str(r["deal_id"]) for r in account.records("deal_installments"))}
        whole = fetch_all(session, url, params)
    assert len(whole) >= 2, f"{key}: too few records to page"
    paged, pages, query = [], 0, {**params, "limit": 1}
    while True:
        body = session.get(url, params=query).json()
        pages += 1
        paged += body["data"]
        extra = body["additional_data"]
        if key.startswith("v2"):
            assert set(extra) == {"next_cursor"}
            if extra["next_cursor"] is None:
                break
            query["cursor"] = extra["next_cursor"]
        else:
            pagination = extra["pagination"]
            assert pagination["limit"] == 1
            if not pagination["more_items_in_collection"]:
                assert "next_start" not in pagination
                break
            query["start"] = pagination["next_start"]
    assert paged == whole
    assert pages == len(whole)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/deals/{deal}/flow",
        "/api/v1/deals/{deal}/participants",
        "/api/v2/deals/{deal}/followers",
        "/api/v2/products/{product}/variations",
        "/api/v1/roles/{role}/assignments",
        "/api/v1/permissionSets/{permission_set}/assignments",
        "/api/v1/mailbox/mailThreads/{thread}/mailMessages",
    ],
)
def test_unknown_parents_answer_404(server, session, path):
    unknown = {
        "deal": 987654,
        "product": 987654,
        "role": 987654,
        "thread": 987654,
        "permission_set": "00000000-0000-4000-8000-000000000000",
    }
    r = session.get(server.url + path.format(**unknown))
    assert (r.status_code, r.json()) == (404, NOT_FOUND_BODY)
    assert server.requests[-1]["tokens_charged"] == 0


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v2/phases", {}, "board_id"),
        ("/api/v2/phases", {"board_id": "x"}, "board_id"),
        ("/api/v1/mailbox/mailThreads", {}, "folder"),
        ("/api/v1/mailbox/mailThreads", {"folder": "spam"}, "folder"),
        ("/api/v1/mailbox/mailThreads", {"folder": "inbox", "limit": 501}, "limit"),
        ("/api/v2/projects", {"status": "open,lost"}, "status"),
        ("/api/v2/projects", {"updated_since": "2025-01-01T00:00:00Z"}, "updated_since"),
        ("/api/v2/projects/archived", {"phase_id": "x"}, "phase_id"),
        ("/api/v2/tasks", {"updated_since": "2025-01-01T00:00:00Z"}, "updated_since"),
        ("/api/v2/tasks", {"is_done": "maybe"}, "is_done"),
        ("/api/v2/tasks", {"limit": 0}, "limit"),
        ("/api/v2/deals/installments", {}, "deal_ids"),
        ("/api/v2/deals/installments", {"deal_ids": ",".join(map(str, range(1, 102)))}, "deal_ids"),
        ("/api/v2/deals/installments", {"deal_ids": "1", "sort_by": "amount"}, "sort_by"),
        ("/api/v2/projectFields", {"include_fields": "ui_visibility"}, "include_fields"),
        ("/api/v1/deals/1/flow", {"items": "dealChange,gossip"}, "items"),
        ("/api/v1/deals/abc/flow", {}, "id"),
        ("/api/v2/deals/1/followers", {"limit": 501}, "limit"),
        ("/api/v2/products/1/variations", {"cursor": "nonsense"}, "cursor"),
        ("/api/v1/roles", {"start": -1}, "start"),
        ("/api/v1/permissionSets", {"app": "crm"}, "app"),
        ("/api/v1/goals/find", {"type.name": "deals_lost"}, "type.name"),
        ("/api/v1/goals/find", {"assignee.type": "robot"}, "assignee.type"),
        ("/api/v1/goals/find", {"is_active": "sometimes"}, "is_active"),
        ("/api/v1/goals/find", {"period.start": "2025-01-01"}, "period.end"),
        ("/api/v1/goals/find", {"period.start": "01/01/2025", "period.end": "2025-12-31"}, "period.start"),
        ("/api/v1/goals/find", {"assignee.id": "me"}, "assignee.id"),
    ],
)
def test_new_endpoints_reject_bad_parameters_with_400(server, session, path, params, message):
    r = session.get(server.url + path, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["success"], body["error_info"]) == (False, "Please check developers.pipedrive.com")
    assert message in body["error"]
    assert server.requests[-1]["tokens_charged"] == 0


@pytest.mark.parametrize(
    ("path", "cost"),
    [
        ("/api/v1/deals/{deal}/flow", 40),
        ("/api/v1/deals/{deal}/participants", 10),
        ("/api/v2/deals/{deal}/followers", 10),
        ("/api/v2/projects", 10),
        ("/api/v2/boards", 10),
        ("/api/v1/goals/find", 20),
        ("/api/v1/roles", 20),
        ("/api/v1/leadSources", 2),
        ("/api/v1/permissionSets", 20),
        ("/api/v1/mailbox/mailThreads?folder=sent", 20),
    ],
)
def test_new_endpoints_cost_their_x_token_cost(server, session, path, cost):
    r = session.get(server.url + path.format(deal=server.account.ids("deals")[0]))
    assert r.status_code == 200
    assert server.requests[-1]["tokens_charged"] == cost


def test_goals_find_defaults_to_the_token_users_active_goals(session):
    account = Account(seed=7, size="demo")
    with FakePipedrive(account) as srv:
        every = account.records("goals")
        me = account.me_id
        assert {g["is_active"] for g in every} == {True, False}
        assert len({g["type"]["name"] for g in every}) == 5
        assert {g["assignee"]["type"] for g in every} == {"person", "company", "team"}
        assert len({g["assignee"]["id"] for g in every if g["assignee"]["type"] == "person"}) > 1

        def find(**params) -> list[str]:
            r = session.get(f"{srv.url}/api/v1/goals/find", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["statusCode"], body["service"]) == (20000, "statistics-goals-api")
            return sorted(g["id"] for g in body["data"]["goals"])

        def expect(match) -> list[str]:
            return sorted(g["id"] for g in every if match(g))

        mine = expect(lambda g: g["assignee"] == {"type": "person", "id": me} and g["is_active"])
        assert mine
        assert find() == mine
        assert find(is_active="false") == expect(
            lambda g: g["assignee"] == {"type": "person", "id": me} and not g["is_active"]
        )
        # filters the spec says widen the search to everyone's goals
        assert find(**{"type.name": "deals_won"}) == expect(
            lambda g: g["type"]["name"] == "deals_won" and g["is_active"]
        )
        assert find(**{"assignee.type": "company"}) == expect(
            lambda g: g["assignee"]["type"] == "company" and g["is_active"]
        )
        assert find(**{"expected_outcome.tracking_metric": "sum", "is_active": "false"}) == expect(
            lambda g: g["expected_outcome"]["tracking_metric"] == "sum" and not g["is_active"]
        )
        other = next(
            g["assignee"]["id"]
            for g in every
            if g["assignee"]["type"] == "person" and g["assignee"]["id"] != me and g["is_active"]
        )
        assert find(**{"assignee.id": other}) == expect(
            lambda g: g["assignee"]["id"] == other and g["is_active"]
        )
        assert find(**{"period.start": "2000-01-01", "period.end": "2000-12-31"}) == []
        today = account.now.strftime("%Y-%m-%d")
        assert find(**{"period.start": today, "period.end": today}) == mine  # active ones run today
        title = next(g["title"] for g in every if g["id"] in mine)
        assert find(title=title) == expect(lambda g: g["id"] in mine and g["title"] == title)


def test_a_deal_update_appends_one_deal_change_per_field_newest_first(session):
    account = Account(seed=9)
    deal = account.ids("deals", status="open")[0]
    code = next(
        f["field_code"]
        for f in account.records("deal_fields")
        if f["is_custom_field"] and f["field_type"] == "varchar"
    )
    with FakePipedrive(account) as srv:
        url = f"{srv.url}/api/v1/deals/{deal}/flow"

        def flow(**params) -> list[dict]:
            return fetch_all(session, url, {"items": "dealChange", **params})

        before = flow(all_changes="1")
        assert all(r["object"] == "dealChange" for r in before)
        stamp = account.now.strftime("%Y-%m-%d %H:%M:%S")
        old = account.record("deals", deal)
        account.update(
            "deals",
            deal,
            title="Renamed",
            value=old["value"] + 100,
            owner_id=old["owner_id"],
            custom_fields={code: "Changed"},
        )
        after = flow(all_changes="1")
        new = after[:3]
        assert after[3:] == before
        assert {r["data"]["field_key"]: (r["data"]["old_value"], r["data"]["new_value"]) for r in new} == {
            "title": (old["title"], "Renamed"),
            "value": (old["value"], old["value"] + 100),
            code: (old["custom_fields"][code], "Changed"),
        }
        assert {
            (r["timestamp"], r["data"]["log_time"], r["data"]["item_id"], r["data"]["user_id"]) for r in new
        } == {(stamp, stamp, deal, account.me_id)}
        assert len({r["data"]["id"] for r in after}) == len(after)
        # custom-field changes only with all_changes=1
        assert [r["data"]["field_key"] for r in flow()[:2]] == [
            k for k in (r["data"]["field_key"] for r in new) if k != code
        ]
        assert account.record("deals", deal)["update_time"] == account.get("deals", deal)["update_time"]
        account.delete("deals", deal)
        latest = flow()[0]["data"]
        assert (latest["field_key"], latest["old_value"], latest["new_value"]) == (
            "status",
            "open",
            "deleted",
        )
        assert set(account.ids("deal_changes")) >= {r["data"]["id"] for r in after}
        times = [r["timestamp"] for r in fetch_all(session, url, {})]
        assert times == sorted(times, reverse=True)


def test_every_deal_has_a_history_that_ends_in_its_current_values():
    account = Account(seed=7)
    history: dict[int, dict] = {}
    for row in sorted(account.records("deal_changes"), key=lambda r: (r["timestamp"], r["data"]["id"])):
        data = row["data"]
        history.setdefault(data["item_id"], {})[data["field_key"]] = data["new_value"]
        assert row["timestamp"] == data["log_time"]
    assert set(history) == set(account.ids("deals") + account.ids("archived_deals"))
    key = {"user_id": "owner_id"}
    for deal_id, last in history.items():
        deal = account.get("deals", deal_id)
        assert last.pop("add_time") == deal["add_time"].replace("T", " ").rstrip("Z")  # it starts there
        for field, value in last.items():
            current = deal["custom_fields"].get(field) if len(field) == 40 else deal[key.get(field, field)]
            assert current == value, (deal_id, field)
        if deal["status"] in ("won", "lost") and deal["update_time"] != deal["add_time"]:
            assert last.get("status") == deal["status"]  # (one never edited was created closed)


def test_participants_and_followers_agree_with_the_deals_counts(server, session):
    account = server.account
    counts = {
        r["id"]: r
        for path in ("/api/v2/deals", "/api/v2/deals/archived")
        for r in fetch_all(
            session,
            server.url + path,
            {
                "status": "open,won,lost,deleted",
                "limit": 500,
                "include_fields": "participants_count,followers_count",
            },
        )
    }
    followers, participants = [], []
    for deal_id, deal in counts.items():
        f = fetch_all(session, f"{server.url}/api/v2/deals/{deal_id}/followers", {})
        p = fetch_all(session, f"{server.url}/api/v1/deals/{deal_id}/participants", {})
        assert deal["followers_count"] == len(f)
        assert deal["participants_count"] == len(p)
        followers.append(len(f))
        participants.append(len(p))
        assert all(
            x["related_item_id"] == deal_id and x["person"]["id"] == x["person_id"]["value"] for x in p
        )
        if deal["person_id"] is not None and p:
            assert deal["person_id"] in {x["person_id"]["value"] for x in p}
    assert 0 in followers
    assert max(followers) >= 2
    assert 0 in participants
    assert max(participants) >= 2
    single = session.get(
        f"{server.url}/api/v2/deals/{next(iter(counts))}", params={"include_fields": "followers_count"}
    ).json()["data"]
    assert single["followers_count"] == counts[single["id"]]["followers_count"]
    assert sum(followers) == len(account.ids("deal_followers"))
    assert sum(participants) == len(account.ids("deal_participants"))


def test_installments_and_deal_products_change_without_moving_their_deal(session):
    account = Account(seed=9)
    deals_with = {r["deal_id"] for r in account.records("deal_installments")}
    assert 0 < len(deals_with) < len(account.ids("deals")) / 2  # most deals have none
    deal = min(deals_with)
    with FakePipedrive(account) as srv:

        def listed(path: str) -> list[dict]:
            return fetch_all(session, f"{srv.url}/api/v2/deals/{path}", {"deal_ids": str(deal)})

        deal_time = account.get("deals", deal)["update_time"]
        first = listed("installments")[0]["id"]
        account.update("deal_installments", first, amount=99.5)
        added = account.add("deal_installments", deal_id=deal, amount=10, description="Extra")
        assert {r["id"]: r["amount"] for r in listed("installments")}[first] == 99.5
        assert added in {r["id"] for r in listed("installments")}
        account.delete("deal_installments", added)
        assert added not in {r["id"] for r in listed("installments")}
        product = account.add("deal_products", deal_id=deal)
        account.update("deal_products", product, quantity=3)
        assert {r["id"]: r["quantity"] for r in listed("products")}[product] == 3
        account.delete("deal_products", product)
        assert account.get("deals", deal)["update_time"] == deal_time
        by_date = fetch_all(
            session,
            f"{srv.url}/api/v2/deals/installments",
            {"deal_ids": ",".join(map(str, deals_with)), "sort_by": "billing_date", "sort_direction": "desc"},
        )
        dates = [r["billing_date"] for r in by_date]
        assert dates == sorted(dates, reverse=True)


def test_some_products_have_variations_and_deal_products_use_them():
    account = Account(seed=7)
    variations = account.records("product_variations")
    with_variations = {v["product_id"] for v in variations}
    assert 0 < len(with_variations) < len(account.ids("products"))
    assert all(p["product_variation_id"] == v["id"] for v in variations for p in v["prices"])
    used = {p["product_variation_id"] for p in account.records("deal_products")} - {None}
    assert used
    assert used <= {v["id"] for v in variations}


def test_projects_statuses_archive_and_delete(session):
    account = Account(seed=7)
    with FakePipedrive(account) as srv:

        def listed(path: str = "/api/v2/projects", **params) -> dict[int, dict]:
            return {r["id"]: r for r in fetch_all(session, srv.url + path, params)}

        everything = "open,completed,canceled,deleted"
        default = listed()
        assert default
        assert all(r["status"] != "deleted" for r in default.values())
        assert all(r["archive_time"] is None for r in default.values())
        deleted = listed(status="deleted")
        assert deleted
        assert set(deleted) <= set(account.ids("projects"))
        archived = listed("/api/v2/projects/archived", status=everything)
        assert archived
        assert all(r["archive_time"] for r in archived.values())
        assert not set(archived) & set(listed(status=everything))
        assert set(listed(status=everything)) == set(account.ids("projects"))
        fields = {f["field_code"]: f for f in fetch_all(session, f"{srv.url}/api/v2/projectFields", {})}
        custom = {c for c, f in fields.items() if f["is_custom_field"]}
        assert custom
        assert all(set(r["custom_fields"]) == custom for r in default.values())
        assert {o["id"] for o in fields["status"]["options"]} == set(everything.split(","))
        assert all(
            {"ui_visibility", "important_fields", "required_fields"} <= set(f) for f in fields.values()
        )
        # filters
        project = next(r for r in default.values() if r["deal_ids"])
        assert project["id"] in listed(deal_id=project["deal_ids"][0])
        assert set(listed(phase_id=project["phase_id"])) == {
            r["id"] for r in default.values() if r["phase_id"] == project["phase_id"]
        }
        # mutations, stamped with the clock
        now = account.now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        account.archive("projects", project["id"])
        moved = listed("/api/v2/projects/archived")[project["id"]]
        assert moved["archive_time"] == moved["update_time"] == now
        new = account.add("projects", title="Fresh project")
        account.delete("projects", new)
        assert new not in listed()
        assert listed(status="deleted")[new]["status"] == "deleted"
        # boards, phases and tasks hang together
        boards = {b["id"] for b in fetch_all(session, f"{srv.url}/api/v2/boards", {})}
        assert {r["board_id"] for r in account.records("projects")} <= boards
        for board in boards:
            phases = fetch_all(session, f"{srv.url}/api/v2/phases", {"board_id": board})
            assert [p["order_nr"] for p in phases] == list(range(1, len(phases) + 1))
        tasks = fetch_all(session, f"{srv.url}/api/v2/tasks", {})
        roots = fetch_all(session, f"{srv.url}/api/v2/tasks", {"parent_task_id": "null"})
        assert 0 < len(roots) < len(tasks)
        assert {t["project_id"] for t in tasks} <= set(account.ids("projects")) | set(
            account.ids("archived_projects")
        )
        done = fetch_all(session, f"{srv.url}/api/v2/tasks", {"is_done": "true"})
        assert done
        assert all(t["is_done"] and t["marked_as_done_time"] for t in done)
        parent = next(t["parent_task_id"] for t in tasks if t["parent_task_id"])
        account.delete("tasks", parent)  # "If the task has subtasks, those will also be deleted"
        left = fetch_all(session, f"{srv.url}/api/v2/tasks", {})
        assert not {t["id"] for t in left} & (
            {parent} | {t["id"] for t in tasks if t["parent_task_id"] == parent}
        )
        templates = fetch_all(session, f"{srv.url}/api/v2/projectTemplates", {})
        assert {t["projects_board_id"] for t in templates} <= boards


def test_mail_threads_live_in_folders_and_hold_their_messages(server, session):
    account = server.account
    by_folder = {
        f: fetch_all(session, f"{server.url}/api/v1/mailbox/mailThreads", {"folder": f})
        for f in ("inbox", "drafts", "sent", "archive")
    }
    seen = [t["id"] for threads in by_folder.values() for t in threads]
    assert set(seen) == set(account.ids("mail_threads"))
    assert len(seen) > len(set(seen))  # a conversation is in two folders
    assert len(account.ids("mail_threads")) == len(set(account.ids("mail_threads")))
    for folder, threads in by_folder.items():
        assert all(folder in t["folders"] for t in threads)
        stamps = [t["last_message_timestamp"] for t in threads]
        assert stamps == sorted(stamps, reverse=True)
    messages = 0
    for thread in account.records("mail_threads"):
        listed = fetch_all(
            session, f"{server.url}/api/v1/mailbox/mailThreads/{thread['id']}/mailMessages", {}
        )
        assert len(listed) == thread["message_count"] >= 1
        assert {m["mail_thread_id"] for m in listed} == {thread["id"]}
        assert listed[-1]["message_time"] == thread["last_message_timestamp"]
        messages += len(listed)
    assert messages == len(account.ids("mail_messages"))


def test_roles_permission_sets_and_users_agree(server, session):
    account = server.account
    users = {u["id"]: u for u in account.records("users")}
    roles = fetch_all(session, f"{server.url}/api/v1/roles", {})
    held = 0
    for role in roles:
        assigned = fetch_all(session, f"{server.url}/api/v1/roles/{role['id']}/assignments", {})
        assert role["assignment_count"] == str(len(assigned))
        assert all(users[a["user_id"]]["role_id"] == role["id"] for a in assigned)
        assert role["sub_role_count"] == str(sum(r["parent_role_id"] == role["id"] for r in roles))
        held += len(assigned)
    assert held == len(users)
    sets = fetch_all(session, f"{server.url}/api/v1/permissionSets", {})
    sales = fetch_all(session, f"{server.url}/api/v1/permissionSets", {"app": "sales"})
    assert sales
    assert {s["app"] for s in sales} == {"sales"}
    assert len(sales) < len(sets)
    for s in sets:
        assigned = fetch_all(session, f"{server.url}/api/v1/permissionSets/{s['id']}/assignments", {})
        assert s["assignment_count"] == len(assigned)
        assert all(
            s["id"] in {a["permission_set_id"] for a in users[x["user_id"]]["access"]} for x in assigned
        )
    sources = [s["name"] for s in fetch_all(session, f"{server.url}/api/v1/leadSources", {})]
    assert {lead["source_name"] for lead in account.records("leads")} <= set(sources)


def test_what_hangs_off_a_hidden_deal_is_hidden_too(session):
    account = Account(seed=9)
    deal = next(
        d for d in account.ids("deals") if any(p["deal_id"] == d for p in account.records("deal_products"))
    )
    with FakePipedrive(account) as srv:
        account.hide("deals", deal)
        for path in ("/api/v1/deals/{}/flow", "/api/v1/deals/{}/participants", "/api/v2/deals/{}/followers"):
            assert session.get(srv.url + path.format(deal)).status_code == 404
        assert fetch_all(session, f"{srv.url}/api/v2/deals/products", {"deal_ids": str(deal)}) == []
        assert not {r["data"]["item_id"] for r in account.records("deal_changes")} & {deal}
        account.unhide("deals", deal)
        assert fetch_all(session, f"{srv.url}/api/v2/deals/products", {"deal_ids": str(deal)})


def test_mutations_of_the_new_entities_show_up_in_the_api(session):  # noqa: PLR0915 - each entity in turn
    account = Account(seed=9)
    ms = "%Y-%m-%dT%H:%M:%S.000Z"
    with FakePipedrive(account) as srv:

        def get(path: str, **params) -> list[dict]:
            return fetch_all(session, srv.url + path, params)

        deal = account.ids("deals", status="open")[0]
        deal_time = account.get("deals", deal)["update_time"]
        user = next(u for u in account.ids("users") if (deal, u) not in set(account.ids("deal_followers")))
        assert account.add("deal_followers", deal_id=deal, user_id=user) == (deal, user)
        assert user in {f["user_id"] for f in get(f"/api/v2/deals/{deal}/followers")}
        person = account.ids("persons")[-1]
        participant = account.add("deal_participants", deal_id=deal, person_id=person)
        listed = get(f"/api/v1/deals/{deal}/participants")
        assert {p["id"]: p["person_id"]["value"] for p in listed}[participant] == person
        counts = session.get(
            f"{srv.url}/api/v2/deals/{deal}", params={"include_fields": "followers_count,participants_count"}
        ).json()["data"]
        assert (counts["followers_count"], counts["participants_count"]) == (
            len(get(f"/api/v2/deals/{deal}/followers")),
            len(listed),
        )
        account.delete("deal_followers", (deal, user))
        account.delete("deal_participants", participant)
        assert user not in {f["user_id"] for f in get(f"/api/v2/deals/{deal}/followers")}
        assert account.get("deals", deal)["update_time"] == deal_time

        product = account.ids("products")[0]
        variation = account.add("product_variations", product_id=product, name="Gold edition")
        account.update("product_variations", variation, name="Platinum edition")
        assert {v["id"]: v["name"] for v in get(f"/api/v2/products/{product}/variations")}[variation] == (
            "Platinum edition"
        )
        account.delete("product_variations", variation)
        assert variation not in {v["id"] for v in get(f"/api/v2/products/{product}/variations")}

        goal = account.add(
            "goals", title="Close ten deals", assignee={"type": "person", "id": account.me_id}, is_active=True
        )
        assert goal in {g["id"] for g in get("/api/v1/goals/find")[0]["goals"]}
        account.update("goals", goal, is_active=False)
        assert goal not in {g["id"] for g in get("/api/v1/goals/find")[0]["goals"]}
        account.delete("goals", goal)
        assert goal not in account.ids("goals")

        now = account.now.strftime(ms)
        board = account.add("boards", name="Launches")
        phase = account.add("phases", board_id=board, name="Ideas", order_nr=1)
        assert [p["id"] for p in get("/api/v2/phases", board_id=board)] == [phase]
        account.update("boards", board, name="Product launches")
        assert {b["id"]: b["name"] for b in get("/api/v2/boards")}[board] == "Product launches"
        assert account.record("boards", board)["add_time"] == now
        task = account.ids("tasks")[0]
        stamp = account.now.strftime(ms)
        account.update("tasks", task, is_done=True)
        assert {t["id"]: t["update_time"] for t in get("/api/v2/tasks", is_done="true")}[task] == stamp

        thread = next(t["id"] for t in account.records("mail_threads") if "inbox" in t["folders"])
        account.update("mail_threads", thread, archived_flag=1)
        assert thread in {t["id"] for t in get("/api/v1/mailbox/mailThreads", folder="archive")}
        assert thread not in {t["id"] for t in get("/api/v1/mailbox/mailThreads", folder="inbox")}
        account.delete("mail_threads", thread)
        assert session.get(f"{srv.url}/api/v1/mailbox/mailThreads/{thread}/mailMessages").status_code == 404

        role = account.ids("roles")[-1]
        mover = account.ids("users")[-1]
        account.add("role_assignments", role_id=role, user_id=mover)
        assert [r for r in account.ids("role_assignments") if r[1] == mover] == [(role, mover)]
        assert mover in {a["user_id"] for a in get(f"/api/v1/roles/{role}/assignments")}
        assert account.record("users", mover)["role_id"] == role
        with pytest.raises(ValueError, match="cannot add"):
            account.add("lead_sources", name="Carrier pigeon")


def test_counts_of_the_new_entities_are_exact_and_may_be_zero():
    exact = Account(
        counts={
            "projects": 3,
            "goals": 5,
            "mail_threads": 4,
            "mail_messages": 9,
            "tasks": 7,
            "deal_installments": 6,
            "deal_followers": 8,
            "product_variations": 2,
        }
    )
    assert [
        len(exact.ids(e))
        for e in (
            "projects",
            "goals",
            "mail_threads",
            "mail_messages",
            "tasks",
            "deal_installments",
            "deal_followers",
            "product_variations",
        )
    ] == [3, 5, 4, 9, 7, 6, 8, 2]
    empty = Account(
        counts=dict.fromkeys(
            (
                "projects",
                "archived_projects",
                "deleted_projects",
                "boards",
                "phases",
                "project_templates",
                "goals",
                "roles",
                "permission_sets",
                "lead_sources",
                "mail_threads",
            ),
            0,
        )
    )
    for entity in (
        "projects",
        "tasks",
        "goals",
        "roles",
        "role_assignments",
        "permission_set_assignments",
        "lead_sources",
        "mail_threads",
        "mail_messages",
    ):
        assert empty.records(entity) == [], entity
    with pytest.raises(ValueError, match="unknown counts"):
        Account(counts={"deal_changes": 3})  # they follow the deals' histories
