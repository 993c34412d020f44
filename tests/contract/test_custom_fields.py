"""Custom fields become named, typed columns with option labels (``named`` mode), or stay in
Pipedrive's raw form (``raw`` mode); renames and new fields never lose data.

The fake account gives deals one custom field of every type plus the naming traps (two fields
named "Source", "Größe / Taille", and "Value", which collides with the standard ``value``);
leads carry the deal fields as v1 top-level hash keys. Expected values are computed here from
the fake's raw records and field options, independently of ``tap_pipedrive.custom_fields``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import basic_config, make_fake
from tests.helpers import catalog_selecting, run_pipeline, run_tap, target_config

CODE_IN_DESCRIPTION = re.compile(r"Pipedrive field code ([0-9A-Za-z_]+)")
HASH_KEY = re.compile(r"^[0-9a-f]{40}")

# The fake's deal custom fields, in Pipedrive's (creation) order, and the column each must get.
DEAL_COLUMNS = [
    ("Lead source detail", "varchar", "lead_source_detail"),
    ("Campaign code", "varchar_auto", "campaign_code"),
    ("Internal notes", "text", "internal_notes"),
    ("Seats", "int", "seats"),
    ("Discount rate", "double", "discount_rate"),
    ("Contract value", "monetary", "contract_value"),
    ("Decision date", "date", "decision_date"),
    ("Contract period", "daterange", "contract_period"),
    ("Preferred call time", "time", "preferred_call_time"),
    ("Meeting window", "timerange", "meeting_window"),
    ("Deal tier", "enum", "deal_tier"),
    ("Product interest", "set", "product_interest"),
    ("Billing address", "address", "billing_address"),
    ("Direct line", "phone", "direct_line"),
    ("Account manager", "user", "account_manager"),
    ("Champion", "people", "champion"),
    ("Partner organization", "org", "partner_organization"),
    ("Related deal", "deal", "related_deal"),
    ("Requires legal review", "boolean", "requires_legal_review"),
    ("Source", "enum", "source"),
    ("Source", "varchar", "source_2"),
    ("Größe / Taille", "enum", "grosse_taille"),
    ("Value", "double", "value_custom"),
]
ADDRESS_KEYS = {
    "value", "street_number", "route", "subpremise", "sublocality", "locality",
    "admin_area_level_1", "admin_area_level_2", "country", "postal_code", "formatted_address",
}
REFERENCE_TYPES = {"user", "people", "org", "deal"}
V2_STREAMS = {
    "deals": "deal", "archived_deals": "deal", "persons": "person",
    "organizations": "organization", "products": "product", "activities": "activity",
    "projects": "project",
}
V1_STREAMS = {"leads": "deal", "archived_leads": "deal"}


# --- helpers ----------------------------------------------------------------------------------


def types(schema: dict) -> set[str]:
    """The non-null JSON types of a schema."""
    kind = schema.get("type")
    return set(kind if isinstance(kind, list) else [kind]) - {"null"}


def props_of(catalog: dict, stream: str) -> dict:
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == stream)
    return entry["schema"]["properties"]


def code_columns(properties: dict) -> dict[str, str]:
    """Field code → column, read off the column descriptions."""
    out = {}
    for column, spec in properties.items():
        match = CODE_IN_DESCRIPTION.search(spec.get("description") or "")
        if match:
            out[match.group(1)] = column
    return out


def custom_defs(account, entity: str) -> list:
    return [f for f in account.fields(entity) if f.custom]


def discover(fake, tmp_path: Path, **config) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    run = run_tap("--discover", config=basic_config(fake, **config), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def sync(fake, tmp_path: Path, catalog: dict, streams: set[str], *, state: dict | None = None,
         **config):
    tmp_path.mkdir(parents=True, exist_ok=True)
    run = run_tap(config=basic_config(fake, **config), tmp_path=tmp_path, state=state,
                  catalog=catalog_selecting(json.loads(json.dumps(catalog)), streams))
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def warnings(stderr: str, *needles: str) -> list[str]:
    """The WARNING lines of a run's log that contain every needle."""
    return [line for line in stderr.splitlines()
            if "WARNING" in line and all(n in line for n in needles)]


def expected_v2(f, value: object) -> object:
    """A v2 raw value as the tap must write it in ``named`` mode."""
    if value is None:
        return None
    if f.type == "enum":
        return {"id": value, "label": f.option_label(value)}
    if f.type == "set":
        return {"ids": list(value), "labels": [f.option_label(i) for i in value]}
    return value


_ABSENT = object()


def expected_v1(f, rec: dict) -> object:  # noqa: PLR0911 - one return per format
    """A lead's v1 hash keys for field ``f`` as the tap must write them in ``named`` mode."""
    k = f.code
    if k not in rec:
        return _ABSENT
    raw = rec[k]
    kind = f.type
    if raw is None:
        return None
    if kind == "enum":
        return {"id": int(raw), "label": f.option_label(int(raw))}
    if kind == "set":
        ids = [int(x) for x in str(raw).split(",")]
        return {"ids": ids, "labels": [f.option_label(i) for i in ids]}
    if kind == "monetary":
        return {"value": float(raw), "currency": rec.get(f"{k}_currency")}
    if kind == "daterange":
        return {"value": raw, "until": rec.get(f"{k}_until")}
    if kind in ("time", "timerange"):
        out = {"value": raw, "timezone_id": rec.get(f"{k}_timezone_id"),
               "timezone_name": rec.get(f"{k}_timezone_name")}
        if kind == "timerange":
            out["until"] = rec.get(f"{k}_until")
        return out
    if kind == "address":
        return {"value": raw, **{p: rec.get(f"{k}_{p}") for p in ADDRESS_KEYS - {"value"}}}
    return raw


def check_column_type(column: str, spec: dict, field_type: str) -> None:  # noqa: C901, PLR0912, PLR0915
    """Assert the JSON schema of a custom column matches its Pipedrive field type."""
    where = f"{column} ({field_type}): {spec}"
    props = spec.get("properties", {})
    if field_type == "int" or field_type in REFERENCE_TYPES:
        assert types(spec) == {"integer"}, where
    elif field_type == "double":
        assert types(spec) == {"number"}, where
    elif field_type == "boolean":
        assert types(spec) == {"boolean"}, where
    elif field_type in ("varchar", "varchar_auto", "text", "phone"):
        assert types(spec) == {"string"}, where
        assert "format" not in spec, where
    elif field_type == "date":
        assert types(spec) == {"string"}, where
        assert spec.get("format") == "date", where
    elif field_type == "monetary":
        assert types(spec) == {"object"}, where
        assert set(props) == {"value", "currency"}, where
        assert types(props["value"]) == {"number"}, where
        assert types(props["currency"]) == {"string"}, where
    elif field_type == "daterange":
        assert types(spec) == {"object"}, where
        assert set(props) == {"value", "until"}, where
        for part in ("value", "until"):
            assert types(props[part]) == {"string"}, where
            assert props[part].get("format") == "date", where
    elif field_type in ("time", "timerange"):
        expected = {"value", "timezone_id", "timezone_name"}
        if field_type == "timerange":
            expected.add("until")
        assert types(spec) == {"object"}, where
        assert set(props) == expected, where
        assert types(props["timezone_id"]) == {"integer"}, where
        for part in expected - {"timezone_id"}:
            assert types(props[part]) == {"string"}, where
    elif field_type == "enum":
        assert types(spec) == {"object"}, where
        assert set(props) == {"id", "label"}, where
        assert types(props["id"]) == {"integer"}, where
        assert types(props["label"]) == {"string"}, where
    elif field_type == "set":
        assert types(spec) == {"object"}, where
        assert set(props) == {"ids", "labels"}, where
        assert types(props["ids"]) == {"array"}, where
        assert types(props["ids"]["items"]) == {"integer"}, where
        assert types(props["labels"]) == {"array"}, where
        assert types(props["labels"]["items"]) == {"string"}, where
    elif field_type == "address":
        assert types(spec) == {"object"}, where
        assert set(props) >= ADDRESS_KEYS, where
        for part in ADDRESS_KEYS:
            assert types(props[part]) == {"string"}, where
    else:  # pragma: no cover - the fake has no other types
        pytest.fail(f"no expectation for {where}")


# --- one account, discovered and synced once for the read-only tests -------------------------

NOTE_FIELD = "Meeting minutes"
NOTE_TEXT = "Agreed on a pilot in Q3."


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A small fake account (plus one note custom field, and projects enough for every project
    field to have a value somewhere), its catalog and one named sync."""
    with make_fake(counts={"projects": 25}) as fake:
        account = fake.account
        note_code = account.add_field("note", NOTE_FIELD, "text")
        note_id = account.ids("notes")[0]
        account.update("notes", note_id, **{note_code: NOTE_TEXT})
        catalog = discover(fake, tmp_path_factory.mktemp("discover"))
        streams = set(V2_STREAMS) | set(V1_STREAMS) | {"notes"}
        run = sync(fake, tmp_path_factory.mktemp("sync"), catalog, streams)
        yield SimpleNamespace(fake=fake, account=account, catalog=catalog, run=run,
                              note_code=note_code, note_id=note_id,
                              tmp=tmp_path_factory)


# --- discovery --------------------------------------------------------------------------------


def test_discovered_deal_schema_names_and_types_every_custom_field(world) -> None:
    fields = custom_defs(world.account, "deal")
    assert [(f.name, f.type) for f in fields] == [(n, t) for n, t, _ in DEAL_COLUMNS]
    props = props_of(world.catalog, "deals")
    by_code = code_columns(props)
    pairs = zip(fields, DEAL_COLUMNS, strict=True)
    assert by_code == {f.code: column for f, (_, _, column) in pairs}
    for f, (_, field_type, column) in zip(fields, DEAL_COLUMNS, strict=True):
        assert f"Pipedrive field code {f.code}" in props[column]["description"]
        check_column_type(column, props[column], field_type)
    # the standard "value" stays the deal's amount; the custom "Value" is value_custom
    assert "Pipedrive field code" not in (props["value"].get("description") or "")
    assert types(props["value"]) == {"number"}
    # no raw hash keys as columns; uncataloged values have their object
    assert not [c for c in props if HASH_KEY.match(c)]
    assert types(props["custom_fields"]) == {"object"}
    assert props["custom_fields"].get("additionalProperties") is True


@pytest.mark.parametrize("stream", ["archived_deals", "leads", "archived_leads"])
def test_archived_deals_and_leads_get_the_deal_columns(world, stream: str) -> None:
    deals = props_of(world.catalog, "deals")
    props = props_of(world.catalog, stream)
    expected = code_columns(deals)
    assert code_columns(props) == expected
    for column in expected.values():
        assert props[column] == deals[column], column
    assert not [c for c in props if HASH_KEY.match(c)], "named mode must not declare hash keys"


def test_archived_projects_get_the_project_columns(world) -> None:
    projects = props_of(world.catalog, "projects")
    props = props_of(world.catalog, "archived_projects")
    expected = code_columns(projects)
    assert expected, "projects have custom fields"
    assert code_columns(props) == expected
    for column in expected.values():
        assert props[column] == projects[column], column


@pytest.mark.parametrize(("stream", "entity"), [
    ("persons", "person"), ("organizations", "organization"), ("products", "product"),
    ("activities", "activity"), ("projects", "project"),
])
def test_other_entities_get_named_typed_columns(world, stream: str, entity: str) -> None:
    props = props_of(world.catalog, stream)
    fields = custom_defs(world.account, entity)
    assert fields, "the fake gives every entity custom fields"
    assert code_columns(props) == {f.code: snake_case_expected(f.name) for f in fields}
    for f in fields:
        check_column_type(snake_case_expected(f.name), props[snake_case_expected(f.name)], f.type)


def test_notes_get_their_custom_columns(world) -> None:
    props = props_of(world.catalog, "notes")
    assert code_columns(props) == {world.note_code: "meeting_minutes"}
    assert types(props["meeting_minutes"]) == {"string"}


def snake_case_expected(name: str) -> str:
    """Column names of the simple (ASCII, unique) field names of the other entities."""
    return {
        "LinkedIn profile": "linkedin_profile",  # case alone never splits a word
        "NPS score": "nps_score",
        "Follow-up date": "follow_up_date",
        "Tax ID": "tax_id",
        "SKU family": "sku_family",
        "Go-live date": "go_live_date",
    }.get(name, name.lower().replace(" ", "_"))


# --- records ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", sorted(V2_STREAMS))
def test_v2_records_carry_named_typed_values_with_labels(world, stream: str) -> None:
    account = world.account
    fields = custom_defs(account, V2_STREAMS[stream])
    columns = code_columns(props_of(world.catalog, stream))
    raw = {r["id"]: r for r in account.records(stream)}
    records = world.run.records(stream)
    assert sorted(r["id"] for r in records) == sorted(raw)
    checked = {f.code: 0 for f in fields}
    for rec in records:
        source = raw[rec["id"]]
        for f in fields:
            value = source["custom_fields"].get(f.code)
            assert rec.get(columns[f.code]) == expected_v2(f, value), (stream, rec["id"], f.name)
            checked[f.code] += value is not None
        assert rec.get("custom_fields") is None, "every field is in the catalog"
        assert not [k for k in rec if HASH_KEY.match(k)]
        if stream in ("deals", "archived_deals"):
            assert rec["value"] == source["value"], "the standard value must not be overwritten"
    assert all(checked.values()), f"some fields never had a value: {checked}"


def test_option_labels_of_deals_are_the_account_labels(world) -> None:
    """Spot check with readable labels: enum and set options, including non-ASCII ones."""
    account = world.account
    fields = {f.name: f for f in custom_defs(account, "deal") if f.type in ("enum", "set")}
    records = world.run.records("deals")
    tiers = {r["deal_tier"]["label"] for r in records if r.get("deal_tier")}
    assert tiers <= {"Bronze", "Silver", "Gold", "Platinum"}
    assert tiers
    sizes = {r["grosse_taille"]["label"] for r in records if r.get("grosse_taille")}
    assert sizes <= {"Klein / Petit", "Mittel / Moyen", "Groß / Grand"}
    assert sizes
    for rec in records:
        interest = rec.get("product_interest")
        if interest:
            labels = [fields["Product interest"].option_label(i) for i in interest["ids"]]
            assert interest["labels"] == labels
            assert None not in labels


@pytest.mark.parametrize("stream", sorted(V1_STREAMS))
def test_v1_lead_hash_keys_become_named_typed_columns(world, stream: str) -> None:
    account = world.account
    fields = custom_defs(account, "deal")
    columns = code_columns(props_of(world.catalog, stream))
    raw = {r["id"]: r for r in account.records(stream)}
    records = world.run.records(stream)
    assert sorted(r["id"] for r in records) == sorted(raw)
    seen_types = set()
    for rec in records:
        source = raw[rec["id"]]
        assert not [k for k in rec if HASH_KEY.match(k)], "hash keys must be gone in named mode"
        for f in fields:
            expected = expected_v1(f, source)
            if expected is _ABSENT:
                assert rec.get(columns[f.code]) is None, (rec["id"], f.name)
                continue
            seen_types.add(f.type)
            assert rec.get(columns[f.code]) == expected, (stream, rec["id"], f.name)
        assert not rec.get("custom_fields")
    if stream == "leads":
        assert {"enum", "set", "monetary", "address", "timerange"} <= seen_types


def test_note_custom_value_arrives_in_its_column(world) -> None:
    notes = {r["id"]: r for r in world.run.records("notes")}
    assert notes[world.note_id]["meeting_minutes"] == NOTE_TEXT
    assert world.note_code not in notes[world.note_id]
    assert all(r.get("meeting_minutes") is None for i, r in notes.items() if i != world.note_id)


def test_raw_mode_keeps_codes_and_option_ids(world) -> None:
    account = world.account
    tmp = world.tmp
    catalog = discover(world.fake, tmp.mktemp("raw-discover"), custom_fields_mode="raw")
    deal_props = props_of(catalog, "deals")
    assert "deal_tier" not in deal_props
    assert types(deal_props["custom_fields"]) == {"object"}
    lead_props = props_of(catalog, "leads")
    for f in custom_defs(account, "deal"):
        assert f.code in lead_props, f"leads must declare the hash key of {f.name!r}"
    run = sync(world.fake, tmp.mktemp("raw-sync"), catalog, {"deals", "leads"},
               custom_fields_mode="raw")

    raw_deals = {r["id"]: r for r in account.records("deals")}
    tier = next(f for f in custom_defs(account, "deal") if f.name == "Deal tier")
    saw_tier = False
    for rec in run.records("deals"):
        assert rec["custom_fields"] == raw_deals[rec["id"]]["custom_fields"]
        assert "deal_tier" not in rec
        assert "value_custom" not in rec
        value = rec["custom_fields"][tier.code]
        if value is not None:
            assert isinstance(value, int), "raw mode keeps the option id"
            saw_tier = True
    assert saw_tier

    raw_leads = {r["id"]: r for r in account.records("leads")}
    saw_key = False
    for rec in run.records("leads"):
        keys = {k: v for k, v in raw_leads[rec["id"]].items() if HASH_KEY.match(k)}
        for key, value in keys.items():
            assert rec.get(key) == value, (rec["id"], key)
            saw_key = True
        assert "deal_tier" not in rec
        assert "source" not in rec
    assert saw_key


# --- renames ----------------------------------------------------------------------------------


def _field(account, name: str):
    return next(f for f in custom_defs(account, "deal") if f.name == name)


def test_pinned_column_survives_a_rename_and_rediscovery(fake, tmp_path: Path) -> None:
    account = fake.account
    tier = _field(account, "Deal tier")
    pins = {"custom_field_names": {tier.code: "tier"}}
    before = props_of(discover(fake, tmp_path / "d1", **pins), "deals")
    assert code_columns(before)[tier.code] == "tier"
    assert "deal_tier" not in before

    account.rename_field("deal", tier.code, "Service level")
    catalog = discover(fake, tmp_path / "d2", **pins)
    after = props_of(catalog, "deals")
    assert code_columns(after)[tier.code] == "tier"
    assert "service_level" not in after
    assert "deal_tier" not in after
    check_column_type("tier", after["tier"], "enum")

    run = sync(fake, tmp_path, catalog, {"deals"}, **pins)
    raw = {r["id"]: r for r in account.records("deals")}
    with_value = 0
    for rec in run.records("deals"):
        expected = expected_v2(tier, raw[rec["id"]]["custom_fields"][tier.code])
        assert rec.get("tier") == expected
        assert "service_level" not in rec
        assert "deal_tier" not in rec
        with_value += expected is not None
    assert with_value
    assert not warnings(run.stderr, tier.code), "a pinned column needs no warning"


def test_rename_with_old_catalog_keeps_the_old_column_and_warns(fake, tmp_path: Path) -> None:
    account = fake.account
    tier = _field(account, "Deal tier")
    old_catalog = discover(fake, tmp_path / "d1")
    account.rename_field("deal", tier.code, "Service level")

    run = sync(fake, tmp_path, old_catalog, {"deals"})
    raw = {r["id"]: r for r in account.records("deals")}
    with_value = 0
    for rec in run.records("deals"):
        expected = expected_v2(tier, raw[rec["id"]]["custom_fields"][tier.code])
        assert rec.get("deal_tier") == expected
        assert "service_level" not in rec
        assert not rec.get("custom_fields")
        with_value += expected is not None
    assert with_value
    lines = warnings(run.stderr, "deal_tier", "service_level")
    assert len(lines) == 1, run.stderr[-3000:]
    assert tier.code in lines[0]
    assert "custom_field_names" in lines[0], "the warning must say how to keep the column"

    # A fresh discovery (no pin) follows the new name.
    fresh = props_of(discover(fake, tmp_path / "d2"), "deals")
    assert code_columns(fresh)[tier.code] == "service_level"


# --- a field added after discovery ------------------------------------------------------------


def test_field_added_after_discovery_arrives_untyped_with_one_warning(fake, tmp_path: Path) -> None:
    account = fake.account
    old_catalog = discover(fake, tmp_path / "d1")
    first = sync(fake, tmp_path / "s1", old_catalog, {"deals"})
    state = first.final_state
    assert state

    code = account.add_field("deal", "Renewal probability", "double")
    ids = account.ids("deals")[:3]
    values = {ids[0]: 42.5, ids[1]: 7.25, ids[2]: 99.0}
    for rid, value in values.items():
        account.update("deals", rid, custom_fields={code: value})

    run = sync(fake, tmp_path / "s2", old_catalog, {"deals"}, state=state)
    records = run.records("deals")
    assert sorted(r["id"] for r in records) == sorted(ids)
    for rec in records:
        assert rec["custom_fields"] == {code: values[rec["id"]]}
        assert "renewal_probability" not in rec
        assert rec["seats"] == account.record("deals", rec["id"])["custom_fields"][
            _field(account, "Seats").code], "the cataloged fields stay typed columns"
    lines = warnings(run.stderr, code)
    assert len(lines) == 1, "\n".join(lines) or run.stderr[-3000:]
    assert "catalog" in lines[0].lower()
    assert "discover" in lines[0].lower() or "refresh" in lines[0].lower()

    # Discovering again makes it a typed column, and the values move there.
    new_catalog = discover(fake, tmp_path / "d2")
    props = props_of(new_catalog, "deals")
    assert code_columns(props)[code] == "renewal_probability"
    assert types(props["renewal_probability"]) == {"number"}
    again = sync(fake, tmp_path / "s3", new_catalog, {"deals"}, state=state)
    for rec in again.records("deals"):
        assert rec["renewal_probability"] == values[rec["id"]]
        assert not rec.get("custom_fields")
    assert not warnings(again.stderr, code)


# --- loading into target-duckdb ---------------------------------------------------------------

TARGET_DUCKDB = os.environ.get("TAP_PIPEDRIVE_TARGET_DUCKDB")
DUCKDB_COLUMNS = r"""
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
catalog = con.execute("select current_database()").fetchone()[0]
cols = con.execute(
    "select column_name, data_type from information_schema.columns "
    "where table_schema = 'pipedrive' and table_name = 'deals' order by column_name").fetchall()
rows = con.execute(
    f'select id, seats, deal_tier__id, deal_tier__label, contract_value__value, '
    f'contract_value__currency, cast(decision_date as varchar), requires_legal_review '
    f'from "{catalog}".pipedrive.deals').fetchall()
print(json.dumps({"columns": dict(cols), "rows": [list(r) for r in rows]}))
"""
INTEGER_TYPES = {"HUGEINT", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER"}


@pytest.mark.skipif(
    not TARGET_DUCKDB,
    reason="TAP_PIPEDRIVE_TARGET_DUCKDB (path of a target-duckdb executable) is unset; "
    "`python3 scripts/dev.py test` installs target-duckdb==0.8.0 and sets it",
)
def test_flattened_deals_load_into_duckdb_with_one_typed_column_per_field(
    world, tmp_path: Path,
) -> None:
    account = world.account
    config = basic_config(world.fake, flattening_enabled=True, flattening_max_depth=3)
    catalog = catalog_selecting(json.loads(json.dumps(world.catalog)), {"deals"})
    db = tmp_path / "x.duckdb"
    settings = target_config("target-duckdb", filepath=str(db), default_target_schema="pipedrive")
    run_pipeline(
        tmp_path, config, settings, target=TARGET_DUCKDB, catalog=catalog, timeout=120
    ).assert_ok()
    out = json.loads(subprocess.run(
        [str(Path(TARGET_DUCKDB).with_name("python")), "-c", DUCKDB_COLUMNS, str(db)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout)
    columns: dict[str, str] = out["columns"]
    print("DuckDB pipedrive.deals columns:", json.dumps(columns, indent=1))  # noqa: T201 - shown with -s

    # one column (or one column per part) per custom field, never a hash key
    assert not [c for c in columns if HASH_KEY.match(c)]
    for _, _, column in DEAL_COLUMNS:
        assert column in columns or any(c.startswith(f"{column}__") for c in columns), column
    expect = {
        "seats": INTEGER_TYPES, "account_manager": INTEGER_TYPES, "related_deal": INTEGER_TYPES,
        "discount_rate": {"DOUBLE"}, "value_custom": {"DOUBLE"}, "value": {"DOUBLE"},
        "contract_value__value": {"DOUBLE"}, "contract_value__currency": {"VARCHAR"},
        "deal_tier__id": INTEGER_TYPES, "deal_tier__label": {"VARCHAR"},
        "source__label": {"VARCHAR"}, "source_2": {"VARCHAR"},
        "grosse_taille__label": {"VARCHAR"},
        "decision_date": {"DATE", "VARCHAR"},
        "contract_period__value": {"DATE", "VARCHAR"},
        "contract_period__until": {"DATE", "VARCHAR"},
        "preferred_call_time__value": {"VARCHAR"},
        "preferred_call_time__timezone_id": INTEGER_TYPES,
        "meeting_window__until": {"VARCHAR"},
        "product_interest__ids": {"VARCHAR", "JSON"},
        "product_interest__labels": {"VARCHAR", "JSON"},
        "billing_address__locality": {"VARCHAR"}, "billing_address__postal_code": {"VARCHAR"},
        "requires_legal_review": {"BOOLEAN"}, "direct_line": {"VARCHAR"},
    }
    wrong = {c: columns.get(c) for c, ok in expect.items() if columns.get(c) not in ok}
    assert not wrong, f"missing or mistyped columns: {wrong}"

    # and the values are the account's
    fields = {f.name: f for f in custom_defs(account, "deal")}
    raw = {r["id"]: r["custom_fields"] for r in account.records("deals")}
    assert sorted(r[0] for r in out["rows"]) == sorted(raw)
    for rid, seats, tier_id, tier_label, amount, currency, decided, legal in out["rows"]:
        values = raw[rid]
        assert seats == values[fields["Seats"].code]
        assert tier_id == values[fields["Deal tier"].code]
        assert tier_label == fields["Deal tier"].option_label(tier_id)
        money = values[fields["Contract value"].code] or {}
        assert (amount, currency) == (money.get("value"), money.get("currency"))
        assert decided == values[fields["Decision date"].code]
        assert legal == values[fields["Requires legal review"].code]
