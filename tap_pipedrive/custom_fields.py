"""Custom fields an analyst can read: readable column names, real types, option labels.

Pipedrive keys custom-field values by 40-character hashes (v2: in a ``custom_fields`` object;
v1 leads: as top-level keys with companions such as ``<hash>_currency``) and gives option
fields as ids. This module turns a field's definition (from the Fields API) into a named,
typed column, and a raw value into its typed, labelled form.

Column names are snake_case versions of the field name (``Deal source`` → ``deal_source``),
made unique against the stream's standard fields and each other, and can be pinned with the
``custom_field_names`` setting. Each column's description carries the field code, so a sync
maps values to the columns its catalog declares even after a rename in Pipedrive.
"""

from __future__ import annotations

import re
import typing as t
import unicodedata
from dataclasses import dataclass, field

from tap_pipedrive.errors import ConfigError

#: The description marker that ties a column to its Pipedrive field code.
CODE_MARKER = re.compile(r"Pipedrive field code ([0-9A-Za-z_]+)")

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

_NULL_STR = {"type": ["string", "null"]}
_NULL_INT = {"type": ["integer", "null"]}

#: Field types whose value is the id of another Pipedrive object.
_REFERENCE_TYPES = {"user", "people", "org", "deal", "stage", "project", "activity", "pipeline", "product"}


@dataclass(frozen=True)
class CustomField:
    """One custom field's definition."""

    code: str
    name: str
    field_type: str
    options: dict = field(default_factory=dict)  # option id -> label
    subfields: tuple[str, ...] = ()

    @classmethod
    def from_v2(cls, definition: dict) -> CustomField:
        """From a v2 Fields API item."""
        return cls(
            code=definition["field_code"],
            name=definition.get("field_name") or definition["field_code"],
            field_type=definition.get("field_type") or "varchar",
            options={o.get("id"): o.get("label") for o in definition.get("options") or ()},
            subfields=tuple(
                s.get("field_code") for s in definition.get("subfields") or () if s.get("field_code")
            ),
        )

    @classmethod
    def from_v1(cls, definition: dict) -> CustomField:
        """From a v1 Fields API item (``key``, ``name``, ``field_type``)."""
        return cls(
            code=definition["key"],
            name=definition.get("name") or definition["key"],
            field_type=definition.get("field_type") or "varchar",
            options={o.get("id"): o.get("label") for o in definition.get("options") or ()},
        )

    def describe(self) -> str:
        """The column description (which also records the field code)."""
        return f"Custom field '{self.name}' ({self.field_type}); Pipedrive field code {self.code}"

    # --- schema ---------------------------------------------------------------------------

    def schema(self) -> dict:  # noqa: C901, PLR0911, PLR0912 - one branch per Pipedrive field type
        """The JSON schema of the typed value."""
        kind = self.field_type
        out: dict = {"description": self.describe()}
        if kind in ("int", *_REFERENCE_TYPES):
            return {**out, **_NULL_INT}
        if kind == "double":
            return {**out, "type": ["number", "null"]}
        if kind in ("boolean", "bool"):
            return {**out, "type": ["boolean", "null"]}
        if kind == "date":
            return {**out, "type": ["string", "null"], "format": "date"}
        if kind == "monetary":
            return {**out, **_object(value={"type": ["number", "null"]}, currency=_NULL_STR)}
        if kind == "daterange":
            date = {"type": ["string", "null"], "format": "date"}
            return {**out, **_object(value=date, until=date)}
        if kind in ("time", "timerange"):
            parts = {"value": _NULL_STR, "timezone_id": _NULL_INT, "timezone_name": _NULL_STR}
            if kind == "timerange":
                parts["until"] = _NULL_STR
            return {**out, **_object(**parts)}
        if kind == "enum":
            return {**out, **_object(id=_NULL_INT, label=_NULL_STR)}
        if kind == "set":
            return {
                **out,
                **_object(
                    ids={"type": ["array", "null"], "items": {"type": "integer"}},
                    labels={"type": ["array", "null"], "items": {"type": ["string", "null"]}},
                ),
            }
        if kind == "address":
            parts = dict.fromkeys(("value", *(self.subfields or ADDRESS_PARTS)), _NULL_STR)
            return {**out, **_object(**parts)}
        if kind == "deals":
            return {**out, "type": ["array", "null"], "items": {"type": "integer"}}
        if kind in ("varchar", "varchar_auto", "varchar_options", "text", "phone", "lead"):
            return {**out, **_NULL_STR}
        return out  # json, picture, …: any JSON value

    # --- values ---------------------------------------------------------------------------

    def convert(self, value: object) -> object:  # noqa: PLR0911
        """A v2-format value → its typed (and, for options, labelled) form."""
        if value is None:
            return None
        kind = self.field_type
        if kind == "enum":
            option = _option_id(value)
            return {"id": option, "label": self.options.get(option)}
        if kind == "set":
            items = value if isinstance(value, list) else str(value).split(",")
            ids = [i for i in (_option_id(v) for v in items) if i is not None]
            return {"ids": ids, "labels": [self.options.get(i) for i in ids]}
        if kind in ("int", *_REFERENCE_TYPES):
            if isinstance(value, dict):  # v1 references can be objects with a "value"
                value = value.get("value", value.get("id"))
            return _number(value, int)
        if kind == "double":
            return _number(value, float)
        if kind == "deals" and isinstance(value, list):
            return [_number(v, int) for v in value]
        if kind in ("boolean", "bool") and isinstance(value, str):
            return value.lower() in ("true", "1", "yes")
        return value

    def from_v1_record(self, record: dict) -> object:
        """Read this field's value (and its companion keys) off a v1 record, removing them."""
        raw = record.pop(self.code, None)
        companions = {
            key[len(self.code) + 1 :]: record.pop(key)
            for key in [k for k in record if k.startswith(self.code + "_")]
        }
        kind = self.field_type
        if raw is None and not any(v is not None for v in companions.values()):
            return None
        if kind == "monetary":
            return {"value": _number(raw, float), "currency": companions.get("currency")}
        if kind == "daterange":
            return {"value": raw, "until": companions.get("until")}
        if kind in ("time", "timerange"):
            value = {
                "value": raw,
                "timezone_id": companions.get("timezone_id"),
                "timezone_name": companions.get("timezone_name"),
            }
            if kind == "timerange":
                value["until"] = companions.get("until")
            return value
        if kind == "address":
            return {"value": raw, **{part: companions.get(part) for part in ADDRESS_PARTS}}
        return raw

    def v1_raw_keys(self) -> dict[str, dict]:
        """The top-level keys a v1 record uses for this field, for the raw schema."""
        keys: dict[str, dict] = {self.code: {"description": self.describe()}}
        suffixes = {
            "monetary": ("currency",),
            "daterange": ("until",),
            "time": ("timezone_id", "timezone_name"),
            "timerange": ("until", "timezone_id", "timezone_name"),
            "address": ADDRESS_PARTS,
        }.get(self.field_type, ())
        for suffix in suffixes:
            keys[f"{self.code}_{suffix}"] = {}
        return keys


def _object(**properties: dict) -> dict:
    return {"type": ["object", "null"], "properties": properties, "additionalProperties": True}


def _option_id(value: object) -> object:
    if isinstance(value, dict):  # include_option_labels=true form
        value = value.get("id")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _number(value: object, kind: type) -> object:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return kind(value)
    try:
        return kind(float(value)) if kind is int else kind(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


# --- names ------------------------------------------------------------------------------------


#: Latin letters that Unicode does not decompose into an ASCII letter plus accents.
_TRANSLITERATE = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
        "þ": "th",
        "Þ": "TH",
        "ð": "d",
        "Ð": "D",
        "ı": "i",  # noqa: RUF001 - the dotless i is the point
    }
)


def snake_case(name: str) -> str:
    """``Deal source`` → ``deal_source``; ``Größe / Taille`` → ``grosse_taille``.

    Letters are transliterated to ASCII where Unicode allows; a name with nothing left
    (e.g. only CJK characters) gives an empty string.
    """
    text = name.translate(_TRANSLITERATE)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def column_names(
    fields: list[CustomField],
    *,
    reserved: set[str],
    pins: dict[str, str] | None = None,
) -> dict[str, str]:
    """Field code → column name, unique within the stream.

    Pinned names win. A name equal to a standard field gets ``_custom``; fields that share a
    name get ``_2``, ``_3``… in the order Pipedrive lists them (creation order), so adding a
    field never renames an existing one.
    """
    pins = pins or {}
    taken = set(reserved)
    names: dict[str, str] = {}
    for f in fields:
        if f.code in pins:
            names[f.code] = pins[f.code]
            taken.add(pins[f.code])
    for f in fields:
        if f.code in names:
            continue
        base = snake_case(f.name) or f"custom_{f.code[:8]}"
        if base[0].isdigit():
            base = f"_{base}"
        if base in reserved:
            base = f"{base}_custom"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        names[f.code] = name
        taken.add(name)
    return names


def columns_in_schema(schema: dict) -> dict[str, str]:
    """Field code → column, read off a (catalog) schema's column descriptions."""
    out = {}
    for column, spec in (schema.get("properties") or {}).items():
        match = CODE_MARKER.search(spec.get("description") or "")
        if match:
            out[match.group(1)] = column
    return out


# --- streams: schema and records --------------------------------------------------------------

NAMED = "named"
RAW = "raw"
_HASH_KEY = re.compile(r"^[0-9a-f]{40}(?:_[a-z0-9_]+)?$")

UNCATALOGED = {
    "type": ["object", "null"],
    "additionalProperties": True,
    "description": "Custom fields that are not in the catalog (yet), in Pipedrive's raw form: "
    "field code → value. Discover the catalog again to get them as typed columns.",
}
RAW_OBJECT = {
    "type": ["object", "null"],
    "additionalProperties": True,
    "description": "Custom fields in Pipedrive's raw form: field code → value (option ids).",
}


def extend_schema(
    schema: dict,
    fields: list[CustomField],
    *,
    mode: str,
    style: str,
    pins: dict[str, str],
) -> None:
    """Declare ``fields`` in a stream's ``schema`` (in place)."""
    props = schema["properties"]
    if mode == RAW:
        if style == "v1":
            for f in fields:
                props.update(f.v1_raw_keys())
        props["custom_fields"] = RAW_OBJECT
        return
    by_code = {f.code: f for f in fields}
    reserved = set(props) | {"custom_fields"}
    for code, column in pins.items():
        if code in by_code and column in reserved:
            msg = f"config: 'custom_field_names' maps {code} to '{column}', a standard field"
            raise ConfigError(msg)
    for code, column in column_names(fields, reserved=reserved, pins=pins).items():
        props[column] = by_code[code].schema()
    props["custom_fields"] = UNCATALOGED


class ValueMapper:
    """Moves a record's custom-field values into the columns its catalog declares."""

    def __init__(
        self,
        *,
        fields: list[CustomField],
        schema: dict,
        mode: str,
        style: str,
        pins: dict[str, str],
        warn: t.Callable[..., None],
        warned: set[str] | None = None,
    ) -> None:
        """Read the code → column map off the (catalog) schema; note renames once.

        ``warned`` is shared by the streams of a run, so that a field the catalog lacks is
        reported once, not once per stream that carries it.
        """
        self.mode = mode
        self.style = style
        self.fields = {f.code: f for f in fields}
        self.columns = columns_in_schema(schema)
        self._warn = warn
        self._warned = warned if warned is not None else set()
        reserved = {c for c in schema.get("properties", {}) if c not in self.columns.values()}
        fresh = column_names(fields, reserved=reserved, pins=pins)
        for code, column in self.columns.items():
            if code in fresh and fresh[code] != column and code not in pins:
                warn(
                    "Custom field '%s' (%s) is now named so that it would be column '%s', but "
                    "the catalog calls it '%s': its values stay in '%s'. Pin the column with "
                    'custom_field_names {"%s": "%s"} to keep it after the next discovery',
                    self.fields[code].name,
                    code,
                    fresh[code],
                    column,
                    column,
                    code,
                    column,
                )

    def apply(self, row: dict) -> dict:
        """Rewrite ``row`` in place (named mode) and return it."""
        if self.mode == RAW:
            return row
        if self.style == "v2":
            raw = row.pop("custom_fields", None) or {}
        else:
            raw = {}
            for code, f in self.fields.items():
                if code in row or any(k.startswith(code + "_") for k in row):
                    raw[code] = f.from_v1_record(row)
            for key in [k for k in row if _HASH_KEY.match(k)]:
                raw[key] = row.pop(key)
        unknown = {}
        for code, value in raw.items():
            column = self.columns.get(code)
            if column is None:
                unknown[code] = value
                if code not in self._warned:
                    self._warned.add(code)
                    self._warn(
                        "Custom field %s is not in the catalog: its values arrive untyped in "
                        "'custom_fields'. Discover the catalog again (meltano: --refresh-catalog) "
                        "to get it as a typed column",
                        code,
                    )
                continue
            f = self.fields.get(code)
            row[column] = f.convert(value) if f else value
        row["custom_fields"] = unknown or None
        return row
