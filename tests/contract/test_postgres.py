"""tap-pipedrive | target-postgres into a real PostgreSQL: tables, ids, column types, upserts.

Every pipeline here is the tap (a subprocess, against a small fake account) piped into
target-postgres (``TAP_PIPEDRIVE_TARGET_POSTGRES``, installed by ``scripts/dev.py``), loading
one schema of a fresh database on a throw-away server (``tests/postgres.py``). The server's
TimeZone is deliberately not UTC, like many warehouses': target-postgres 0.8.1 stores
``format: date-time`` as ``timestamp without time zone``, converted to the *session's* time
zone, so the pipelines run target-postgres with ``PGTZ=UTC``, as meltano.yml does, and the
tests check the columns hold Pipedrive's UTC times.

Without PostgreSQL or target-postgres these tests skip with the reason; with ``CI`` set they
fail instead (CI always has both).
"""

# The SQL below is built from the tests' own schema, table and column names only.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.conftest import basic_config, make_fake
from tests.fake_pipedrive.account import to_epoch
from tests.helpers import ROOT, Pipeline, run_pipeline, unavailable
from tests.postgres import PostgresServer, missing_requirements

if TYPE_CHECKING:
    from tests.fake_pipedrive import Account

TARGET_POSTGRES = os.environ.get("TAP_PIPEDRIVE_TARGET_POSTGRES")
MELTANO = os.environ.get("TAP_PIPEDRIVE_MELTANO")
SCHEMA = "pipedrive"
#: A warehouse whose own TimeZone is not UTC (+05:30, no DST, so every date shifts the same).
SERVER_TIMEZONE = "Asia/Kolkata"
#: What meltano.yml's target-postgres sets in its environment: sessions in UTC, so the
#: ``timestamp without time zone`` columns hold UTC wall-clock times.
TARGET_ENV = {"PGTZ": "UTC"}
#: What target-postgres 0.8.1 makes of ``{"type": "string", "format": "date-time"}``.
TIMESTAMP = "timestamp without time zone"
#: Key columns that are not ``id``.
KEYS = {
    **dict.fromkeys(("deal_fields", "person_fields", "organization_fields", "product_fields",
                     "activity_fields"), "field_code"),
    "note_fields": "key",
    "lead_fields": "key",
    "project_fields": "field_code",
    "lead_sources": "name",
    "role_assignments": ("role_id", "user_id"),
    "permission_set_assignments": ("permission_set_id", "user_id"),
}
#: Streams a full run of the small account must emit at least (so no check passes on nothing).
CORE_STREAMS = {"deals", "archived_deals", "persons", "organizations", "activities", "products",
                "pipelines", "stages", "deal_products", "deal_fields", "notes", "leads",
                "lead_fields", "note_fields", "users"}


@pytest.fixture(scope="session")
def postgres():
    """One throw-away server for the session, stopped at its end whatever happened."""
    reason = missing_requirements()
    if reason:
        unavailable(reason)
    server = PostgresServer(timezone=SERVER_TIMEZONE)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def target_postgres() -> Path:
    """The target-postgres executable scripts/dev.py installed."""
    if not TARGET_POSTGRES:
        unavailable("TAP_PIPEDRIVE_TARGET_POSTGRES (path of a target-postgres executable) is unset; "
                    "`python3 scripts/dev.py test` installs target-postgres and sets it")
    path = Path(TARGET_POSTGRES)
    if not path.exists():
        unavailable(f"TAP_PIPEDRIVE_TARGET_POSTGRES={TARGET_POSTGRES} does not exist")
    return path


_database_numbers = itertools.count(1)


def new_database(postgres: PostgresServer, label: str) -> str:
    """A fresh, empty database for one pipeline."""
    return postgres.create_database(f"{label}_{next(_database_numbers)}")


# ---- reading the warehouse -------------------------------------------------------------------


def key_of(stream: str) -> tuple[str, ...]:
    """The key columns of a stream's table."""
    key = KEYS.get(stream, "id")
    return key if isinstance(key, tuple) else (key,)


def landed_keys(load: Load, stream: str) -> list:
    """The key of every row of a stream's table (a tuple where the key has several columns),
    as ``Account.ids`` gives them."""
    columns = key_of(stream)
    select = ", ".join(f'"{c}" as k{i}' for i, c in enumerate(columns))
    rows = load.rows(f"select {select} from {SCHEMA}.{stream}")
    if len(columns) == 1:
        return [r["k0"] for r in rows]
    return [tuple(r[f"k{i}"] for i in range(len(columns))) for r in rows]


def utc(value: str | None) -> str | None:
    """A Pipedrive timestamp (any API format, UTC) as the ISO text of its UTC wall-clock time."""
    if value is None:
        return None
    return dt.datetime.fromtimestamp(to_epoch(value), tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Load:
    """A finished load: the fake account it read, the database it wrote, the pipeline."""

    postgres: PostgresServer
    database: str
    account: Account
    pipeline: Pipeline | None

    def rows(self, sql: str) -> list[dict]:
        return self.postgres.query(self.database, sql)

    def column(self, table: str, column: str) -> dict:
        """``{id: value}`` of one column (timestamps as ISO text of their stored wall clock)."""
        rows = self.rows(f'select id as k, "{column}" as v from {SCHEMA}.{table}')
        return {r["k"]: r["v"] for r in rows}

    def types(self, table: str) -> dict[str, str]:
        return self.postgres.columns(self.database, SCHEMA, table)


def load_account(tmp_path_factory, postgres, target, label: str, **tap_extra) -> Load:
    """A fresh small account, loaded whole into a fresh database."""
    database = new_database(postgres, label)
    folder = tmp_path_factory.mktemp(label)
    with make_fake() as server:
        pipeline = run_pipeline(folder, basic_config(server, **tap_extra),
                                postgres.target_config(database, SCHEMA), target=target,
                                target_env=TARGET_ENV)
    pipeline.assert_ok()
    return Load(postgres, database, server.account, pipeline)


@pytest.fixture(scope="module")
def named(tmp_path_factory, postgres, target_postgres) -> Load:
    """The small account with the tap's defaults: custom fields as named, typed columns."""
    return load_account(tmp_path_factory, postgres, target_postgres, "named")


@pytest.fixture(scope="module")
def flattened(tmp_path_factory, postgres, target_postgres) -> Load:
    """The same with the SDK's flattening, as the README recommends for a warehouse."""
    return load_account(tmp_path_factory, postgres, target_postgres, "flattened",
                        flattening_enabled=True, flattening_max_depth=3)


def custom_code(account, name: str, kind: str = "deals") -> str:
    (code,) = [f.code for f in account.fields(kind) if f.custom and f.name == name]
    return code


# ---- one full load ---------------------------------------------------------------------------


@pytest.mark.parametrize("load_name", ["named", "flattened"])
def test_every_stream_the_tap_emitted_is_a_table_holding_exactly_the_accounts_ids(load_name, request):
    load: Load = request.getfixturevalue(load_name)
    emitted = set(load.pipeline.keys)
    assert emitted >= CORE_STREAMS, f"the tap emitted no SCHEMA for {CORE_STREAMS - emitted}"
    assert load.postgres.tables(load.database, SCHEMA) == emitted
    primary_keys = load.postgres.primary_keys(load.database, SCHEMA)

    for stream in sorted(emitted):
        key = list(key_of(stream))
        assert load.pipeline.keys[stream] == key, stream
        assert primary_keys.get(stream) == key, f"{stream}: primary key"
        landed = landed_keys(load, stream)
        expected = load.account.ids(stream)
        assert len(landed) == len(set(landed)), f"{stream}: a {key} landed twice"
        assert sorted(landed, key=str) == sorted(expected, key=str), stream
    assert sum(len(load.account.ids(s)) for s in emitted) > 300  # a real account, not an empty one


def test_columns_have_the_types_a_sql_user_expects(named):
    deals = named.types("deals")
    expected = {
        # timestamps: target-postgres maps format date-time to timestamp WITHOUT time zone
        "update_time": TIMESTAMP, "add_time": TIMESTAMP, "won_time": TIMESTAMP,
        "close_time": TIMESTAMP,
        "expected_close_date": "date",
        "id": "bigint", "stage_id": "bigint", "owner_id": "bigint", "pipeline_id": "bigint",
        "value": "numeric", "probability": "numeric",
        "is_deleted": "boolean", "is_archived": "boolean",
        "title": "text", "status": "text", "currency": "text",
        # custom fields, named after the field and typed by its Pipedrive field type
        "seats": "bigint",                      # int
        "discount_rate": "numeric",             # double
        "value_custom": "numeric",              # double named "Value" (collides with value)
        "requires_legal_review": "boolean",     # boolean
        "decision_date": "date",                # date
        "lead_source_detail": "text",           # varchar
        "account_manager": "bigint",            # user: the user's id
        "deal_tier": "jsonb",                   # enum: {id, label}
        "contract_value": "jsonb",              # monetary: {value, currency}
        "product_interest": "jsonb",            # set: {ids, labels}
        "custom_fields": "jsonb",               # fields created after discovery land here
    }
    assert {name: deals.get(name) for name in expected} == expected

    for table in ("persons", "organizations", "activities", "products", "notes", "leads", "files"):
        types = named.types(table)
        assert types.get("update_time") == TIMESTAMP, table
        assert types.get("add_time") == TIMESTAMP, table
    assert named.types("users")["modified"] == TIMESTAMP
    assert named.types("activities")["done"] == "boolean"
    assert named.types("persons")["nps_score"] == "bigint"
    assert named.types("leads")["id"] == "text"  # uuids, declared as plain strings
    assert named.types("deal_fields")["field_code"] == "text"


def test_timestamps_hold_pipedrives_utc_times_on_a_server_that_is_not_in_utc(named):
    assert named.rows("select current_setting('TimeZone') as tz") == [{"tz": SERVER_TIMEZONE}]
    for stream in ("deals", "notes", "leads", "activities"):  # v2 RFC 3339, v1 "Y-m-d H:M:S", leads
        for column in ("update_time", "add_time"):
            landed = named.column(stream, column)
            expected = {r["id"]: utc(r[column]) for r in named.account.records(stream)}
            assert landed == expected, f"{stream}.{column}"


def test_named_custom_field_columns_hold_the_accounts_values(named):
    account = named.account
    codes = {name: custom_code(account, name) for name in
             ("Seats", "Discount rate", "Requires legal review", "Decision date", "Deal tier")}
    (tier_field,) = [f for f in account.fields("deals") if f.code == codes["Deal tier"]]
    records = {r["id"]: r["custom_fields"] for r in account.records("deals")}
    rows = {r["id"]: r for r in named.rows(
        f"select id, seats, discount_rate, requires_legal_review, decision_date::text as decision_date, "
        f"deal_tier from {SCHEMA}.deals"
    )}
    assert rows.keys() == records.keys()
    for rid, custom in records.items():
        row = rows[rid]
        assert row["seats"] == custom[codes["Seats"]], rid
        assert row["discount_rate"] == custom[codes["Discount rate"]], rid
        assert row["requires_legal_review"] == custom[codes["Requires legal review"]], rid
        assert row["decision_date"] == custom[codes["Decision date"]], rid
        option = custom[codes["Deal tier"]]
        assert row["deal_tier"] == (None if option is None else
                                    {"id": option, "label": tier_field.option_label(option)}), rid
    # the values are really there (the fake fills about half of each custom field)
    assert sum(row["seats"] is not None for row in rows.values()) > 5
    assert sum(row["deal_tier"] is not None for row in rows.values()) > 5


def test_flattened_option_and_money_fields_are_typed_columns(flattened):
    account = flattened.account
    deals = flattened.types("deals")
    expected = {
        "deal_tier__id": "bigint", "deal_tier__label": "text",
        "contract_value__value": "numeric", "contract_value__currency": "text",
        "seats": "bigint", "update_time": TIMESTAMP,
    }
    assert {name: deals.get(name) for name in expected} == expected
    assert "deal_tier" not in deals
    assert "contract_value" not in deals

    tier = custom_code(account, "Deal tier")
    money = custom_code(account, "Contract value")
    (tier_field,) = [f for f in account.fields("deals") if f.code == tier]
    rows = {r["id"]: r for r in flattened.rows(
        f"select id, deal_tier__id, deal_tier__label, contract_value__value, contract_value__currency "
        f"from {SCHEMA}.deals"
    )}
    for record in account.records("deals"):
        row, custom = rows[record["id"]], record["custom_fields"]
        assert row["deal_tier__id"] == custom[tier], record["id"]
        assert row["deal_tier__label"] == tier_field.option_label(custom[tier]), record["id"]
        value = custom[money] or {}
        assert row["contract_value__value"] == value.get("value"), record["id"]
        assert row["contract_value__currency"] == value.get("currency"), record["id"]
    labels = {row["deal_tier__label"] for row in rows.values()} - {None}
    assert labels
    assert labels <= {"Bronze", "Silver", "Gold", "Platinum"}


# ---- a second, incremental run after edits, adds and deletes -----------------------------


@dataclass
class Resync:
    load: Load
    first: Pipeline
    second: Pipeline
    edited: dict[int, dict]
    added: int
    deleted: int
    seats_code: str


def resync(tmp_path_factory, postgres, target, *, hard_delete: bool) -> Resync:
    """Load a small account; edit, add and delete deals; run again from the final STATE."""
    label = f"resync_hard_delete_{'on' if hard_delete else 'off'}"
    database = new_database(postgres, label)
    target_config = postgres.target_config(database, SCHEMA, hard_delete=hard_delete)
    folder = tmp_path_factory.mktemp(label)
    with make_fake() as server:
        account = server.account
        first = run_pipeline(folder / "run1", basic_config(server), target_config, target=target,
                             target_env=TARGET_ENV)
        first.assert_ok()
        seats = custom_code(account, "Seats")
        open_deals = account.ids("deals", status="open")
        edited = {
            open_deals[1]: {"title": "Renamed between runs", "value": 1234.5},
            open_deals[4]: {"title": "Renamed too", "value": 0, "custom_fields": {seats: 999}},
        }
        for rid, changes in edited.items():
            account.update("deals", rid, **changes)
        added = account.add("deals", title="Added between runs", value=42.0)
        deleted = open_deals[6]
        account.delete("deals", deleted)
        second = run_pipeline(folder / "run2", basic_config(server), target_config, target=target,
                              state=first.final_state, target_env=TARGET_ENV)
    second.assert_ok()
    return Resync(Load(postgres, database, account, second), first, second, edited, added,
                  deleted, seats)


@pytest.fixture(scope="module")
def resync_soft(tmp_path_factory, postgres, target_postgres) -> Resync:
    return resync(tmp_path_factory, postgres, target_postgres, hard_delete=False)


@pytest.fixture(scope="module")
def resync_hard(tmp_path_factory, postgres, target_postgres) -> Resync:
    return resync(tmp_path_factory, postgres, target_postgres, hard_delete=True)


@pytest.mark.parametrize("resync_name", ["resync_soft", "resync_hard"],
                         ids=["hard_delete_off", "hard_delete_on"])
def test_a_second_run_from_the_state_upserts_edits_adds_and_deletes(resync_name, request):
    sync: Resync = request.getfixturevalue(resync_name)
    load, account = sync.load, sync.load.account
    # The second run was incremental: the deals it sent are exactly the changed ones.
    assert sync.first.final_state, "target-postgres emitted no STATE after the first run"
    assert sorted(sync.second.emitted["deals"]) == sorted([*sync.edited, sync.added, sync.deleted])

    for stream in sorted(load.postgres.tables(load.database, SCHEMA)):
        landed = landed_keys(load, stream)
        assert len(landed) == len(set(landed)), f"{stream}: ids landed more than once"
        assert sorted(landed, key=str) == sorted(account.ids(stream), key=str), stream

    rows = {r["id"]: r for r in load.rows(
        f"select id, title, value, seats, status, is_deleted, update_time from {SCHEMA}.deals"
    )}
    for rid, changes in sync.edited.items():
        record = account.record("deals", rid)
        assert rows[rid]["title"] == changes["title"]
        assert rows[rid]["value"] == changes["value"]
        assert rows[rid]["seats"] == record["custom_fields"][sync.seats_code]
        assert rows[rid]["update_time"] == utc(record["update_time"])
        assert rows[rid]["is_deleted"] is False
    assert rows[next(iter(sync.edited))]["seats"] != 999
    assert rows[list(sync.edited)[1]]["seats"] == 999
    assert rows[sync.added]["title"] == "Added between runs"
    assert rows[sync.added]["value"] == 42.0

    # A deal deleted in Pipedrive keeps its row, flagged, with either hard_delete: the tap sends
    # it as a record with is_deleted (Pipedrive lists deleted deals for 30 days), and
    # target-postgres 0.8.1's hard_delete acts only on ACTIVATE_VERSION, which the tap does not
    # send for incremental streams.
    assert sync.second.message_types["ACTIVATE_VERSION"] == 0
    deleted = rows[sync.deleted]
    assert (deleted["is_deleted"], deleted["status"]) == (True, "deleted")
    assert deleted["update_time"] == utc(account.record("deals", sync.deleted)["update_time"])
    flagged = {rid for rid, row in rows.items() if row["is_deleted"]}
    assert flagged == set(account.ids("deals", is_deleted=True))
    assert len(flagged) >= 2  # the account's own deleted deals and the one deleted here


def test_with_hard_delete_on_deals_deleted_in_pipedrive_carry_sdc_deleted_at(resync_hard):
    # target-postgres 0.8.1 keeps a row whose record carries _sdc_deleted_at, even with
    # hard_delete on, and stores the time in its _sdc_deleted_at column (checked with records
    # that carry it); so "deleted" for a SQL user is `_sdc_deleted_at is not null`.
    load = resync_hard.load
    rows = load.rows(f"select id, _sdc_deleted_at from {SCHEMA}.deals")
    assert len(rows) == len(load.account.ids("deals"))
    marked = {r["id"] for r in rows if r["_sdc_deleted_at"] is not None}
    assert marked == set(load.account.ids("deals", is_deleted=True))


# ---- the Meltano pipeline ------------------------------------------------------------------


# ---- two Pipedrive companies in one schema ----------------------------------------------------

SECOND_COMPANY = 1_234_567


def test_two_companies_with_overlapping_ids_land_in_one_schema_with_include_company_id(
    tmp_path, postgres, target_postgres
):
    """Agencies load many companies into the same tables: with ``include_company_id`` every row
    of both companies lands, keyed by (company_id, id), none overwritten."""
    database = new_database(postgres, "two_companies")
    target_config = postgres.target_config(database, SCHEMA)
    loads = []
    for n, company in enumerate((None, SECOND_COMPANY)):
        with make_fake(**({} if company is None else {"company_id": company})) as server:
            pipeline = run_pipeline(tmp_path / f"company{n}", basic_config(server, include_company_id=True),
                                    target_config, target=target_postgres, target_env=TARGET_ENV)
        pipeline.assert_ok()
        loads.append((server.account, pipeline))
    (first, first_run), (second, second_run) = loads
    assert first.company_id != second.company_id
    shared = set(first.ids("deals")) & set(second.ids("deals"))
    assert len(shared) > 10, "the two companies' deal ids must overlap for this test to mean anything"

    streams = set(first_run.keys) & set(second_run.keys)
    assert streams >= CORE_STREAMS
    primary_keys = postgres.primary_keys(database, SCHEMA)
    total = 0
    for stream in sorted(streams):
        key = ["company_id", *key_of(stream)]
        assert first_run.keys[stream] == key, stream
        # (target-postgres orders a key's columns as the table's, company_id last)
        assert sorted(primary_keys.get(stream, [])) == sorted(key), f"{stream}: primary key"
        select = ", ".join(f'"{c}" as k{i}' for i, c in enumerate(key))
        rows = postgres.query(database, f"select {select} from {SCHEMA}.{stream}")
        landed = sorted((tuple(r[f"k{i}"] for i in range(len(key))) for r in rows), key=str)
        expected = sorted(
            ((account.company_id, *(k if isinstance(k, tuple) else (k,))) for account in (first, second)
             for k in account.ids(stream)),
            key=str,
        )
        assert landed == expected, stream
        total += len(landed)
    assert total > 600  # two real accounts, not two empty ones


def _loader(project: dict, name: str) -> dict:
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == name]
    return loader


def _dev_pin() -> str:
    source = (ROOT / "scripts" / "dev.py").read_text(encoding="utf-8")
    (line,) = [ln for ln in source.splitlines() if ln.startswith("TARGET_POSTGRES = ")]
    return line.split("=", 1)[1].strip().strip('"')


def test_meltano_yml_declares_the_target_postgres_the_tests_load_with() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    loader = _loader(project, "target-postgres")
    assert loader["pip_url"] == _dev_pin()
    assert (loader["namespace"], loader["executable"]) == ("target_postgres", "target-postgres")
    settings = {s["name"]: s for s in loader["settings"]}
    assert {n for n, s in settings.items() if s.get("sensitive")} == {"password", "sqlalchemy_url"}
    assert settings["port"]["kind"] == "integer"
    assert settings["hard_delete"]["kind"] == "boolean"
    assert loader["env"] == TARGET_ENV


@pytest.mark.meltano
def test_meltano_run_tap_pipedrive_target_postgres_lands_the_account(tmp_path, postgres, target_postgres):
    if not MELTANO:
        unavailable("TAP_PIPEDRIVE_MELTANO (path of a meltano 4.4.1 executable) is unset; "
                    "`python3 scripts/dev.py test` installs Meltano and sets it")
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    project["plugins"]["loaders"] = [_loader(project, "target-postgres")]
    # The tap and target-postgres as installed for the tests (test_meltano.py installs from
    # the pip_urls; the pin is the one dev.py installs), so this run installs nothing.
    (extractor,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-pipedrive"]
    extractor.pop("pip_url")
    extractor["executable"] = str(Path(sys.executable).with_name("tap-pipedrive"))
    loader = project["plugins"]["loaders"][0]
    loader.pop("pip_url")
    loader["executable"] = str(target_postgres)
    (project_dir / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False), "utf-8")

    database = new_database(postgres, "meltano")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MELTANO_", "TAP_PIPEDRIVE_", "TARGET_POSTGRES_", "PG"))}
    with make_fake() as server:
        env |= {
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
            "TAP_PIPEDRIVE_API_TOKEN": basic_config(server)["api_token"],
            "TAP_PIPEDRIVE_API_URL": server.url,
            # the README's variables
            "PGHOST": "127.0.0.1", "PGPORT": str(postgres.port), "PGUSER": "postgres",
            "PGPASSWORD": "unused", "PGDATABASE": database,
        }
        result = subprocess.run(
            [MELTANO, "run", "tap-pipedrive", "target-postgres"], cwd=project_dir, env=env,
            capture_output=True, text=True, timeout=600, check=False,
        )
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        account = server.account
    load = Load(postgres, database, account, pipeline=None)
    for stream in ("deals", "users", "notes"):
        landed = load.rows(f"select id from {SCHEMA}.{stream}")
        assert sorted(r["id"] for r in landed) == sorted(account.ids(stream)), stream
    assert load.column("deals", "update_time") == {r["id"]: utc(r["update_time"])
                                                   for r in account.records("deals")}
