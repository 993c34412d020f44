"""The fake Pipedrive behaves like the real API where the tap depends on it."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import requests

from tests.fake_pipedrive import Account, FakePipedrive, Fault
from tests.fake_pipedrive.spec import ENDPOINTS, REAL_NULLS

TOKEN = {"x-api-token": "demo-token"}
BASIC = ("demo-client-id", "demo-client-secret")
TIMEOUT = 30
ROOT = Path(__file__).resolve().parent.parent
GATEWAY_401 = ('{"success":false,"error":"unauthorized access","errorCode":401,'
               '"error_info":"Please check developers.pipedrive.com"}')

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
        out["properties"] = {k: json_schema(v, frozenset(nested.get(k, ())))
                             for k, v in schema["properties"].items()}
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
    if key == "v2 /deals/products":
        deal_ids = server.account.ids("deals") + server.account.ids("archived_deals")
        records = []
        for i in range(0, len(deal_ids), 100):
            ids = ",".join(map(str, deal_ids[i:i + 100]))
            records += fetch_all(session, server.url + path, {**query, "deal_ids": ids})
        assert sorted(r["id"] for r in records) == server.account.ids("deal_products")
        return records
    if key in PATH_IDS:
        if "limit" not in ENDPOINTS[key]["params"]:
            del query["limit"]
        return [record for rid in PATH_IDS[key](server.account)
                for record in fetch_all(session, server.url + path.format(id=rid), query)]
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
        "varchar", "varchar_auto", "text", "int", "double", "monetary", "date", "daterange",
        "time", "timerange", "enum", "set", "address", "phone", "user", "people", "org", "deal",
        "boolean"}
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
        params = {"limit": 100, "sort_by": "update_time", "sort_direction": sort_direction,
                  "status": "open,won,lost,deleted"}
        records = fetch_all(session, f"{srv.url}/api/v2/deals", params)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 700
    assert sorted(ids) == account.ids("deals")
    keys = [(r["update_time"], r["id"]) for r in records]
    assert keys == sorted(keys, reverse=sort_direction == "desc")
    assert sum(r["update_time"] == "2025-03-01T12:00:00Z" for r in records) >= 300


@pytest.mark.parametrize(("path", "limit"), [
    ("/api/v2/deals", 501), ("/api/v2/deals", 0), ("/api/v2/dealFields", 501),
    ("/api/v1/notes", 501), ("/api/v1/files", 101), ("/api/v1/callLogs", 51),
])
def test_limit_over_max_is_rejected(server, session, path, limit):
    r = session.get(server.url + path, params={"limit": limit})
    assert r.status_code == 400
    assert r.json()["success"] is False
    assert "limit" in r.json()["error"]


@pytest.mark.parametrize("path", ["/api/v2/deals", "/api/v2/persons", "/api/v1/notes",
                                  "/api/v1/leads"])
@pytest.mark.parametrize("value", ["2024-01-01T10:00:00.5Z", "2024-01-01T10:00:00.000Z",
                                   "yesterday"])
def test_bad_updated_since_is_rejected(server, session, path, value):
    r = session.get(server.url + path, params={"updated_since": value})
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False
    assert "updated_since" in body["error"]
    assert body["error_info"] == "Please check developers.pipedrive.com"


def test_time_filters_are_rejected_where_not_supported(server, session):
    since = "2024-01-01T00:00:00Z"
    for path, name in [("/api/v2/pipelines", "updated_since"), ("/api/v2/stages", "updated_until"),
                       ("/api/v2/products", "updated_until")]:
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
        assert listed(updated_since="2030-01-01T00:00:00Z",
                      updated_until="2030-01-01T00:00:01Z") == set(ids)
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
        assert srv.oauth_requests[-1]["form"] == {"grant_type": "refresh_token",
                                                 "refresh_token": first_refresh}

        def message(resp: requests.Response) -> tuple[int, str]:
            return resp.status_code, resp.json()["message"]

        reused = token_request(url, {"grant_type": "refresh_token", "refresh_token": first_refresh})
        assert message(reused) == (400, "Invalid grant: refresh_token is invalid")
        wrong_client = token_request(url, {"grant_type": "refresh_token",
                                           "refresh_token": tok["refresh_token"]},
                                     auth=("demo-client-id", "nope"))
        assert message(wrong_client) == (401, "Invalid client: client is invalid")
        as_json = token_request(url, json={"grant_type": "refresh_token"})
        assert message(as_json) == (
            400, "Invalid request: content must be application/x-www-form-urlencoded")
        no_grant = token_request(f"{url}/", {"refresh_token": tok["refresh_token"]})
        assert message(no_grant) == (400, "Missing parameter: grant_type")

        bearer = {"Authorization": f"Bearer {tok['access_token']}"}
        assert bare_get(f"{srv.url}/api/v2/deals", headers=bearer).status_code == 200
        assert srv.requests[-1]["auth"] == "bearer"
        srv.expire_access_tokens()
        expired = bare_get(f"{srv.url}/api/v2/deals", headers=bearer)
        assert (expired.status_code, expired.text) == (401, GATEWAY_401)
        second = token_request(url, {"grant_type": "refresh_token",
                                     "refresh_token": tok["refresh_token"]})
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
        assert over.json() == {"success": False, "error": "Request over limit",
                               "error_info": "Please check developers.pipedrive.com",
                               "data": None, "additional_data": None}
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
    assert decoded == {"field": "id", "fieldValue": r.json()["data"][-1]["id"],
                       "sortDirection": "asc", "id": r.json()["data"][-1]["id"]}
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
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
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

V2_SINGLE = {"deals": "deals", "persons": "persons", "organizations": "organizations",
             "activities": "activities", "products": "products"}
NOT_FOUND_BODY = {"success": False, "error": "Entity was not found",
                  "error_info": "Object was not found.", "data": None, "additional_data": None}
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
        assert rid not in listed_ids(session, list_url, **({"status": "deleted"} if entity == "deals" else {}))
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


@pytest.mark.parametrize(("entity", "base"), [
    ("deals", "/api/v2/deals"), ("persons", "/api/v2/persons"), ("organizations", "/api/v2/organizations"),
    ("activities", "/api/v2/activities"), ("products", "/api/v2/products"), ("notes", "/api/v1/notes"),
    ("files", "/api/v1/files"),
])
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
    assert session.get(f"{server.url}/api/v2/deals/{deal}", params={"include_fields": "nope"}).status_code == 400
    r = session.get(f"{server.url}/api/v2/deals/{deal}", params={"include_fields": "products_count"})
    assert r.json()["data"]["products_count"] == sum(
        1 for p in server.account.records("deal_products") if p["deal_id"] == deal)
    assert r.json()["data"] == {**server.account.record("deals", deal), "products_count": r.json()["data"]["products_count"]}


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
