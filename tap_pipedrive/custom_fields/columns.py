"""Custom fields in a stream: declared as named, typed columns, and moved into them.

A column's description carries its field code, so a sync maps values to the columns its
catalog declares even after a field is renamed in Pipedrive (see :class:`ValueMapper`).
"""

from __future__ import annotations

import re
import typing as t

from tap_pipedrive.custom_fields.names import column_names
from tap_pipedrive.errors import ConfigError
from tap_pipedrive.settings import CustomFieldsMode

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tap_pipedrive.custom_fields.definition import CustomField

#: The description marker that ties a column to its Pipedrive field code.
CODE_MARKER = re.compile(r"Pipedrive field code ([0-9A-Za-z_]+)")
_HASH_KEY = re.compile(r"^[0-9a-f]{40}(?:_[a-z0-9_]+)?$")
_HASH_LENGTH = 40

#: Where a record carries its custom-field values: ``v2`` in a ``custom_fields`` object,
#: ``v1`` as top-level hash keys with companions (``<hash>_currency``).
Style = t.Literal["v1", "v2"]
Schema = dict[str, t.Any]

UNCATALOGED: Schema = {
    "type": ["object", "null"],
    "additionalProperties": True,
    "description": "Custom fields that are not in the catalog (yet), in Pipedrive's raw form: "
    "field code → value. Discover the catalog again to get them as typed columns.",
}
RAW_OBJECT: Schema = {
    "type": ["object", "null"],
    "additionalProperties": True,
    "description": "Custom fields in Pipedrive's raw form: field code → value (option ids).",
}


def columns_in_schema(schema: Mapping[str, t.Any]) -> dict[str, str]:
    """Field code → column, read off a (catalog) schema's column descriptions."""
    out = {}
    for column, spec in (schema.get("properties") or {}).items():
        match = CODE_MARKER.search(spec.get("description") or "")
        if match:
            out[match.group(1)] = column
    return out


def extend_schema(
    schema: Schema,
    fields: list[CustomField],
    *,
    mode: CustomFieldsMode | str,
    style: Style,
    pins: Mapping[str, str],
) -> None:
    """Declare ``fields`` in a stream's ``schema`` (in place)."""
    props = schema["properties"]
    if mode == CustomFieldsMode.RAW:
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
        schema: Mapping[str, t.Any],
        mode: CustomFieldsMode | str,
        style: Style,
        pins: Mapping[str, str],
        warn: Callable[..., None],
        warned: set[str] | None = None,
    ) -> None:
        """Read the code → column map off the (catalog) schema; note renames once.

        ``warned`` is shared by the streams of a run, so that a field the catalog lacks is
        reported once, not once per stream that carries it.
        """
        self.mode = mode
        self.style = style
        self.fields = {f.code: f for f in fields}
        self._converters = {f.code: f.converter() for f in fields}
        self._code_lengths = sorted({len(code) for code in self.fields})
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

    def _v1_values(self, row: dict[str, t.Any]) -> dict[str, t.Any]:
        """A v1 record's custom-field values by code, taken off it in one pass over its keys.

        A known field's value sits under its code and companion keys (``<code>_currency``, …);
        a key that looks like a field code the catalog does not know is kept as it is.
        """
        fields = self.fields
        companions: dict[str, list[str]] = {}
        strangers: list[str] = []
        for key in row:
            if key in fields:
                companions.setdefault(key, [])
                continue
            for n in self._code_lengths:
                if len(key) > n and key[n] == "_" and key[:n] in fields:
                    companions.setdefault(key[:n], []).append(key)
                    break
            else:
                if len(key) >= _HASH_LENGTH and _HASH_KEY.match(key):
                    strangers.append(key)
        raw = {code: fields[code].from_v1_keys(row, keys) for code, keys in companions.items()}
        for key in strangers:
            raw[key] = row.pop(key)
        return raw

    def apply(self, row: dict[str, t.Any]) -> dict[str, t.Any]:
        """Rewrite ``row`` in place (named mode) and return it."""
        if self.mode == CustomFieldsMode.RAW:
            return row
        raw = (row.pop("custom_fields", None) or {}) if self.style == "v2" else self._v1_values(row)
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
            convert = self._converters.get(code)
            row[column] = convert(value) if convert else value
        row["custom_fields"] = unknown or None
        return row
