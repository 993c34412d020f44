"""Custom-field column names: snake_case, unique within a stream, stable, pinnable."""

from __future__ import annotations

import re

import pytest

from tap_pipedrive.custom_fields import CustomField, ValueMapper, column_names, extend_schema, snake_case
from tests.contract.test_custom_fields import code_columns, types


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("Deal tier", "deal_tier"),
        ("Größe / Taille", "grosse_taille"),
        ("GROSSE", "grosse"),
        ("Straße", "strasse"),
        ("Café crème", "cafe_creme"),
        ("Númer de teléfono", "numer_de_telefono"),
        ("  Deal -- source!! ", "deal_source"),
        ("Revenue (€) / month", "revenue_month"),
        ("Q3 target", "q3_target"),
        ("e-mail #2", "e_mail_2"),
        ("already_snake_case", "already_snake_case"),
        ("dealSource", "dealsource"),  # case alone never splits a word
        ("客户等级", ""),
        ("🚀", ""),
        ("", ""),
    ],
)
def test_snake_case(name: str, column: str) -> None:
    assert snake_case(name) == column


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("Første kontakt", "forste_kontakt"),
        ("Łódź office", "lodz_office"),
        ("Æble ID", "aeble_id"),
    ],
)
def test_snake_case_transliterates_letters_without_a_decomposition(name: str, column: str) -> None:
    """ø, ł, æ… have no NFKD decomposition; like ß they must be transliterated, not dropped."""
    assert snake_case(name) == column


def _cf(code: str, name: str, field_type: str = "varchar") -> CustomField:
    return CustomField(code=code, name=name, field_type=field_type)


IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def test_column_names_duplicates_and_standard_collisions() -> None:
    fields = [
        _cf("a" * 40, "Source"),
        _cf("b" * 40, "Source"),
        _cf("c" * 40, "source"),
        _cf("d" * 40, "Value"),
        _cf("e" * 40, "Value"),
        _cf("f" * 40, "Title"),
    ]
    names = column_names(fields, reserved={"id", "value", "title"})
    assert names == {
        "a" * 40: "source",
        "b" * 40: "source_2",
        "c" * 40: "source_3",
        "d" * 40: "value_custom",
        "e" * 40: "value_custom_2",
        "f" * 40: "title_custom",
    }


def test_column_names_never_reuse_a_standard_or_taken_name() -> None:
    fields = [
        _cf("a" * 40, "Source"),
        _cf("b" * 40, "Source"),
        _cf("c" * 40, "Value custom"),
        _cf("d" * 40, "Value"),
    ]
    names = column_names(fields, reserved={"source_2", "value"})
    assert names["a" * 40] == "source"
    assert names["b" * 40] not in {"source", "source_2"}
    assert names["c" * 40] == "value_custom"
    assert names["d" * 40] not in {"value", "value_custom"}
    assert len(set(names.values())) == len(fields)


def test_column_names_of_cjk_only_and_leading_digit_names() -> None:
    fields = [
        _cf("0a1b2c3d" + "0" * 32, "客户等级"),
        _cf("9f8e7d6c" + "0" * 32, "客户来源"),
        _cf("1" * 40, "2nd contact"),
        _cf("2" * 40, "2024 budget"),
    ]
    names = column_names(fields, reserved={"id"})
    assert names["0a1b2c3d" + "0" * 32] == "custom_0a1b2c3d"
    assert names["9f8e7d6c" + "0" * 32] == "custom_9f8e7d6c"
    assert names["1" * 40].endswith("2nd_contact")
    assert names["2" * 40].endswith("2024_budget")
    for column in names.values():
        assert IDENT.match(column), column
    assert len(set(names.values())) == len(fields)


def test_column_names_pins_win_and_are_not_reused() -> None:
    fields = [_cf("a" * 40, "Deal tier"), _cf("b" * 40, "Service level"), _cf("c" * 40, "Tier")]
    pins = {"b" * 40: "deal_tier", "c" * 40: "my tier column"}
    names = column_names(fields, reserved={"id"}, pins=pins)
    assert names["b" * 40] == "deal_tier"
    assert names["c" * 40] == "my tier column", "a pin is used verbatim"
    assert names["a" * 40] == "deal_tier_2"
    # pins for fields that do not exist change nothing else
    assert column_names(fields[:1], reserved=set(), pins={"z" * 40: "x"}) == {"a" * 40: "deal_tier"}


def test_column_names_are_stable_when_a_field_with_the_same_name_is_added() -> None:
    first = [_cf("a" * 40, "Source"), _cf("b" * 40, "Value"), _cf("c" * 40, "客户")]
    before = column_names(first, reserved={"value"})
    later = [
        *first,
        _cf("d" * 40, "Source"),
        _cf("e" * 40, "Value"),
        _cf("f" * 40, "客户"),
        _cf("0" * 40, "Source 2"),
    ]
    after = column_names(later, reserved={"value"})
    assert {code: after[code] for code in before} == before
    assert after["d" * 40] == "source_2"
    assert after["e" * 40] == "value_custom_2"
    assert len(set(after.values())) == len(later)


def test_a_field_named_custom_fields_keeps_its_own_column() -> None:
    """``custom_fields`` is the tap's own column (uncataloged values): a custom field named
    "Custom fields" must get another column, and its values must land there, typed."""
    code = "c" * 40
    schema = {"properties": {"id": {"type": "integer"}, "custom_fields": {"type": "object"}}}
    fields = [CustomField(code=code, name="Custom fields", field_type="int")]
    extend_schema(schema, fields, mode="named", style="v2", pins={})
    columns = code_columns(schema["properties"])
    assert code in columns, "the field lost its column to the tap's custom_fields object"
    assert columns[code] != "custom_fields"
    assert types(schema["properties"][columns[code]]) == {"integer"}
    assert "not in the catalog" in schema["properties"]["custom_fields"]["description"]

    warned = []
    mapper = ValueMapper(
        fields=fields, schema=schema, mode="named", style="v2", pins={}, warn=lambda *a: warned.append(a)
    )
    row = mapper.apply({"id": 1, "custom_fields": {code: "5"}})
    assert row[columns[code]] == 5
    assert not row["custom_fields"]
    assert not warned
