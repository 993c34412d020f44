"""The custom-field type table: each Pipedrive field type's column schema and value conversion."""

from __future__ import annotations

import pytest

from tap_pipedrive.custom_fields import CustomField
from tap_pipedrive.custom_fields.types import ADDRESS_PARTS, TYPES

CODE = "f" * 40
OPTIONS = {1: "Gold", 2: "Silver"}


def field(field_type: str, **kwargs) -> CustomField:
    return CustomField(code=CODE, name="A field", field_type=field_type, options=OPTIONS, **kwargs)


def kinds(schema: dict) -> set[str]:
    kind = schema.get("type", [])
    return set(kind if isinstance(kind, list) else [kind]) - {"null"}


# field type, a v2 value, its typed form, the column's JSON types
V2_CASES = [
    ("int", "42", 42, {"integer"}),
    ("user", {"id": 7, "value": 7}, 7, {"integer"}),
    ("org", 12, 12, {"integer"}),
    ("double", "2.5", 2.5, {"number"}),
    ("boolean", "true", True, {"boolean"}),
    ("bool", False, False, {"boolean"}),
    ("date", "2025-01-31", "2025-01-31", {"string"}),
    ("monetary", {"value": 5, "currency": "EUR"}, {"value": 5, "currency": "EUR"}, {"object"}),
    (
        "daterange",
        {"value": "2025-01-01", "until": "2025-02-01"},
        {"value": "2025-01-01", "until": "2025-02-01"},
        {"object"},
    ),
    ("enum", "1", {"id": 1, "label": "Gold"}, {"object"}),
    ("enum", {"id": 2, "label": "Silver"}, {"id": 2, "label": "Silver"}, {"object"}),
    ("set", [1, 2], {"ids": [1, 2], "labels": ["Gold", "Silver"]}, {"object"}),
    ("set", "2,1", {"ids": [2, 1], "labels": ["Silver", "Gold"]}, {"object"}),
    ("deals", ["3", 4], [3, 4], {"array"}),
    ("varchar", "text", "text", {"string"}),
    ("phone", "+372 555", "+372 555", {"string"}),
    ("picture", {"any": "thing"}, {"any": "thing"}, {"array", "boolean", "integer", "number", "object", "string"}),  # noqa: E501
]


@pytest.mark.parametrize(("field_type", "value", "typed", "column"), V2_CASES)
def test_a_v2_value_becomes_its_typed_form_in_a_column_of_its_type(field_type, value, typed, column):
    f = field(field_type)
    assert f.convert(value) == typed
    assert kinds(f.schema()) == column
    assert f"Pipedrive field code {CODE}" in f.schema()["description"]


def test_a_number_that_is_not_one_is_null_not_an_error():
    assert field("int").convert("n/a") is None
    assert field("double").convert("inf") == float("inf")
    assert field("int").convert("inf") is None


# field type, the v1 record's keys, the typed value
V1_CASES = [
    ("monetary", {CODE: "12.5", f"{CODE}_currency": "USD"}, {"value": 12.5, "currency": "USD"}),
    (
        "daterange",
        {CODE: "2025-01-01", f"{CODE}_until": "2025-01-31"},
        {"value": "2025-01-01", "until": "2025-01-31"},
    ),
    (
        "timerange",
        {
            CODE: "09:00:00",
            f"{CODE}_until": "10:00:00",
            f"{CODE}_timezone_id": 318,
            f"{CODE}_timezone_name": "Europe/London",
        },
        {"value": "09:00:00", "until": "10:00:00", "timezone_id": 318, "timezone_name": "Europe/London"},
    ),
    (
        "address",
        {CODE: "Main St 1", f"{CODE}_locality": "Tallinn"},
        {"value": "Main St 1", **dict.fromkeys(ADDRESS_PARTS), "locality": "Tallinn"},
    ),
    ("varchar", {CODE: "plain"}, "plain"),
]


@pytest.mark.parametrize(("field_type", "keys", "value"), V1_CASES)
def test_a_v1_value_and_its_companion_keys_become_one_value_and_leave_the_record(field_type, keys, value):
    record = {"id": "lead-1", **keys}
    assert field(field_type).from_v1_record(record) == value
    assert record == {"id": "lead-1"}


@pytest.mark.parametrize("field_type", sorted(TYPES))
def test_every_type_declares_the_v1_keys_it_reads(field_type):
    keys = field(field_type).v1_raw_keys()
    assert CODE in keys
    assert set(keys) - {CODE} == {f"{CODE}_{s}" for s in TYPES[field_type].v1_companions}


def test_an_address_with_subfields_declares_exactly_them():
    schema = field("address", subfields=("route", "locality")).schema()
    assert set(schema["properties"]) == {"value", "route", "locality"}
