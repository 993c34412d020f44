"""Pipedrive custom-field types as a table: type → column schema → value conversion.

Each :class:`FieldType` row says what JSON schema the typed column has, how a v2 value (or a
v1 value with its companion keys, such as ``<code>_currency``) becomes the typed value, and
which companion keys a v1 record uses. A type the table does not know is kept as any JSON.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from tap_pipedrive.schemas import ANY_JSON

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

Schema = dict[str, t.Any]

ADDRESS_PARTS = (
    "street_number",
    "route",
    "subpremise",
    "sublocality",
    "locality",
    "admin_area_level_1",
    "admin_area_level_2",
    "country",
    "postal_code",
    "formatted_address",
)

_STRING: Schema = {"type": ["string", "null"]}
_INTEGER: Schema = {"type": ["integer", "null"]}
_NUMBER: Schema = {"type": ["number", "null"]}
_BOOLEAN: Schema = {"type": ["boolean", "null"]}
_DATE: Schema = {"type": ["string", "null"], "format": "date"}


def _object(**properties: Schema) -> Schema:
    return {"type": ["object", "null"], "properties": properties, "additionalProperties": True}


def _option_id(value: object) -> object:
    if isinstance(value, dict):  # include_option_labels=true form
        value = value.get("id")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _number(value: object, kind: type[int | float]) -> object:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return kind(value)
    try:
        number = float(t.cast("str", value))  # a numeric string; anything else fails below
    except (TypeError, ValueError):
        return None
    try:
        return kind(number)
    except (OverflowError, ValueError):
        return None


@dataclass(frozen=True)
class Options:
    """What a conversion may need of its field: option labels and address subfields."""

    labels: Mapping[object, object]
    subfields: tuple[str, ...] = ()


def _keep(value: object, _field: Options) -> object:
    return value


def _enum(value: object, field: Options) -> object:
    option = _option_id(value)
    return {"id": option, "label": field.labels.get(option)}


def _set(value: object, field: Options) -> object:
    items = value if isinstance(value, list) else str(value).split(",")
    ids = [i for i in (_option_id(v) for v in items) if i is not None]
    return {"ids": ids, "labels": [field.labels.get(i) for i in ids]}


def _integer(value: object, _field: Options) -> object:
    if isinstance(value, dict):  # v1 references can be objects with a "value"
        value = value.get("value", value.get("id"))
    return _number(value, int)


def _double(value: object, _field: Options) -> object:
    return _number(value, float)


def _integers(value: object, _field: Options) -> object:
    return [_number(v, int) for v in value] if isinstance(value, list) else value


def _boolean(value: object, _field: Options) -> object:
    return value.lower() in ("true", "1", "yes") if isinstance(value, str) else value


# v1 records keep parts of a value in companion keys: "<code>_currency", "<code>_until", ...
def _v1_plain(raw: object, _companions: Mapping[str, object]) -> object:
    return raw


def _v1_monetary(raw: object, companions: Mapping[str, object]) -> object:
    return {"value": _number(raw, float), "currency": companions.get("currency")}


def _v1_range(raw: object, companions: Mapping[str, object]) -> object:
    return {"value": raw, "until": companions.get("until")}


def _v1_time(raw: object, companions: Mapping[str, object]) -> object:
    return {
        "value": raw,
        "timezone_id": companions.get("timezone_id"),
        "timezone_name": companions.get("timezone_name"),
    }


def _v1_timerange(raw: object, companions: Mapping[str, object]) -> object:
    return {**t.cast("dict[str, object]", _v1_time(raw, companions)), "until": companions.get("until")}


def _v1_address(raw: object, companions: Mapping[str, object]) -> object:
    return {"value": raw, **{part: companions.get(part) for part in ADDRESS_PARTS}}


@dataclass(frozen=True)
class FieldType:
    """One Pipedrive field type: its column schema and how its values are read."""

    schema: Callable[[Options], Schema]
    convert: Callable[[object, Options], object] = _keep
    from_v1: Callable[[object, Mapping[str, object]], object] = _v1_plain
    #: the suffixes of a v1 record's companion keys (``<code>_<suffix>``)
    v1_companions: tuple[str, ...] = ()


def _fixed(schema: Schema) -> Callable[[Options], Schema]:
    return lambda _field: schema


def _address_schema(field: Options) -> Schema:
    return _object(**dict.fromkeys(("value", *(field.subfields or ADDRESS_PARTS)), _STRING))


_TIME_PARTS = {"value": _STRING, "timezone_id": _INTEGER, "timezone_name": _STRING}
_INTEGER_TYPE = FieldType(_fixed(_INTEGER), _integer)
_STRING_TYPE = FieldType(_fixed(_STRING))

TYPES: dict[str, FieldType] = {
    "int": _INTEGER_TYPE,
    # references to another Pipedrive object: its id
    **dict.fromkeys(
        ("user", "people", "org", "deal", "stage", "project", "activity", "pipeline", "product"),
        _INTEGER_TYPE,
    ),
    "double": FieldType(_fixed(_NUMBER), _double),
    "boolean": FieldType(_fixed(_BOOLEAN), _boolean),
    "bool": FieldType(_fixed(_BOOLEAN), _boolean),
    "date": FieldType(_fixed(_DATE)),
    "monetary": FieldType(
        _fixed(_object(value=_NUMBER, currency=_STRING)), from_v1=_v1_monetary, v1_companions=("currency",)
    ),
    "daterange": FieldType(
        _fixed(_object(value=_DATE, until=_DATE)), from_v1=_v1_range, v1_companions=("until",)
    ),
    "time": FieldType(
        _fixed(_object(**_TIME_PARTS)), from_v1=_v1_time, v1_companions=("timezone_id", "timezone_name")
    ),
    "timerange": FieldType(
        _fixed(_object(**_TIME_PARTS, until=_STRING)),
        from_v1=_v1_timerange,
        v1_companions=("until", "timezone_id", "timezone_name"),
    ),
    "enum": FieldType(_fixed(_object(id=_INTEGER, label=_STRING)), _enum),
    "set": FieldType(
        _fixed(
            _object(
                ids={"type": ["array", "null"], "items": {"type": "integer"}},
                labels={"type": ["array", "null"], "items": {"type": ["string", "null"]}},
            )
        ),
        _set,
    ),
    "address": FieldType(_address_schema, from_v1=_v1_address, v1_companions=ADDRESS_PARTS),
    "deals": FieldType(_fixed({"type": ["array", "null"], "items": {"type": "integer"}}), _integers),
    **dict.fromkeys(("varchar", "varchar_auto", "varchar_options", "text", "phone", "lead"), _STRING_TYPE),
}

#: json, picture, …: any JSON value, kept as it is.
ANY_TYPE = FieldType(_fixed(dict(ANY_JSON)))


def field_type(name: str) -> FieldType:
    """The row of ``name`` (an unknown type is any JSON)."""
    return TYPES.get(name, ANY_TYPE)
