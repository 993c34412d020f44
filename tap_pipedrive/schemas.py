"""Stream schemas, declared from Pipedrive's OpenAPI specs (via ``openapi.json``).

``scripts/extract_openapi.py`` copies each endpoint's record schema out of the specs; this
module turns it into the JSON schema a stream declares, with the few rules the specs leave
implicit:

* Every field is nullable except the primary key: Pipedrive sends ``null`` for any unset
  field, whatever the spec says, and a target must not reject a record for it.
* Timestamps carry ``format: date-time``: the tap normalises them to RFC 3339 UTC, so that
  bookmarks compare correctly as strings and targets type the columns.
* ``enum`` constraints are dropped: Pipedrive adds values over time, and a new status must
  not make a target reject the record.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import typing as t
from pathlib import Path

from tap_pipedrive.timestamps import looks_like_timestamp

OPENAPI_FILE = Path(__file__).with_name("openapi.json")

Schema = dict[str, t.Any]

#: Any JSON value (a schema with no type at all trips the SDK's record conformance).
ANY_JSON: Schema = {"type": ["array", "boolean", "integer", "null", "number", "object", "string"]}

_STRING = {"type": "string"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP_NAMES = {"created", "modified", "last_login"}
_NOT_TIMESTAMPS = {"due_time", "next_activity_time", "last_activity_time"}  # "HH:MM", a time of day


@functools.cache
def openapi() -> Schema:
    """The extract of Pipedrive's OpenAPI specs."""
    return t.cast("Schema", json.loads(OPENAPI_FILE.read_text(encoding="utf-8")))


def endpoint(version: str, path: str) -> Schema:
    """One endpoint's entry in the extract."""
    return t.cast("Schema", openapi()["endpoints"][f"{version} {path}"])


def token_cost(version: str, path: str) -> int:
    """The ``x-token-cost`` of a GET on this endpoint (list costs when not in the extract).

    ``path`` may be concrete (``/roles/3/assignments``): it costs what its template does.
    """
    entry = openapi()["endpoints"].get(f"{version} {path}") or _template_of(version, path)
    if entry is None:
        return 10 if version == "v2" else 20
    return int(entry["token_cost"])


def _template_of(version: str, path: str) -> Schema | None:
    """The extract's entry whose path template (``/roles/{id}/assignments``) ``path`` fills in."""
    parts = path.strip("/").split("/")
    for template, entry in _templates().get((version, len(parts)), ()):
        if all(a == b or a.startswith("{") for a, b in zip(template, parts, strict=True)):
            return entry
    return None


@functools.cache
def _templates() -> dict[tuple[str, int], list[tuple[list[str], Schema]]]:
    """The extract's path templates by version and number of segments, in the extract's order."""
    found: dict[tuple[str, int], list[tuple[list[str], Schema]]] = {}
    for entry in openapi()["endpoints"].values():
        if "{" in entry["path"]:
            template = entry["path"].strip("/").split("/")
            found.setdefault((entry["version"], len(template)), []).append((template, entry))
    return found


def is_timestamp(name: str, spec: Schema) -> bool:
    """Whether a top-level field holds a point in time."""
    if spec.get("type") != "string" or name in _NOT_TIMESTAMPS:
        return False
    return spec.get("format") == "date-time" or name.endswith("_time") or name in _TIMESTAMP_NAMES


def _nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if kind is None:
        if "anyOf" in schema and {"type": "null"} not in schema["anyOf"]:
            schema["anyOf"].append({"type": "null"})
        return schema
    kinds = kind if isinstance(kind, list) else [kind]
    if "null" not in kinds:
        schema["type"] = [*kinds, "null"]
    return schema


def to_json_schema(spec: Schema, name: str = "") -> Schema:  # noqa: C901
    """Convert one (flattened OpenAPI 3.0) property schema into a nullable JSON schema."""
    out: Schema = {}
    if spec.get("description"):
        out["description"] = spec["description"]
    options = spec.get("oneOf") or spec.get("anyOf")
    if options:
        out["anyOf"] = [to_json_schema(o) for o in options]
        return _nullable(out)
    kind = spec.get("type") or ("object" if "properties" in spec else None)
    if kind is None:
        return {**out, **ANY_JSON}  # anything goes
    out["type"] = kind
    if kind == "object":
        props = spec.get("properties") or {}
        out["properties"] = {k: to_json_schema(v, k) for k, v in props.items()}
        extra = spec.get("additionalProperties")
        if extra is True or not props or name:
            # A nested object (an address, a price) keeps keys the spec does not list.
            out["additionalProperties"] = True
        elif isinstance(extra, dict):
            out["additionalProperties"] = to_json_schema(extra)
    elif kind == "array":
        out["items"] = to_json_schema(spec.get("items") or {})
    elif kind == "string":
        if is_timestamp(name, spec):
            out["format"] = "date-time"
        elif spec.get("format") == "date":
            out["format"] = "date"
    return _nullable(out)


def include_field_schema(name: str) -> Schema:
    """The schema of a field that Pipedrive returns only on request (``include_fields``)."""
    if name.endswith("_count") or name in {"next_activity_id", "last_activity_id"}:
        return {"type": ["integer", "null"]}
    if name.endswith("_time"):
        return {"type": ["string", "null"], "format": "date-time"}
    return {"type": ["string", "null"]}


def example_spec(name: str, value: object) -> Schema:  # noqa: PLR0911 - a flat type switch
    """A property schema, typed from the spec's example value, for a key the schema omits."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        if _DATE.match(value):
            return {"type": "string", "format": "date"}
        return {"type": "string", "format": "date-time"} if looks_like_timestamp(value) else _STRING
    if isinstance(value, dict):
        return {"type": "object", "additionalProperties": True}
    if isinstance(value, list):
        return {"type": "array"}
    # a null example: the key's name is all there is to go by
    if name.endswith(("_id", "_count")):
        return {"type": "integer"}
    return {"type": "boolean"} if name.endswith("_flag") else {"type": "string"}


def stream_schema(
    version: str,
    path: str,
    *,
    primary_keys: tuple[str, ...] = ("id",),
    include_fields: tuple[str, ...] = (),
    missing: Schema | None = None,
    under: str | None = None,
) -> Schema:
    """The JSON schema of a stream reading ``GET /api/{version}{path}``.

    Besides the item schema's fields it declares the top-level keys that only the spec's
    example shows (live responses carry them too), typed from the example's values. ``under``:
    the records are the list under this key of the answer's ``data`` object (``goals``).
    """
    entry = endpoint(version, path)
    item, example = entry["item"], entry.get("example") or {}
    if under:
        item = item["properties"][under]["items"]
        example = next(iter(example.get(under) or []), {})
    schema = to_json_schema(item)
    schema["type"] = "object"
    props = schema["properties"]
    for name, value in example.items():
        if name not in props:
            props[name] = to_json_schema(example_spec(name, value), name)
    for name in include_fields:
        props.setdefault(name, include_field_schema(name))
    for key, value in (missing or {}).items():  # fields the tap adds where Pipedrive does not
        props.setdefault(key, copy.deepcopy(value))
    for key in primary_keys:
        kinds = props[key]["type"]
        props[key]["type"] = [k for k in kinds if k != "null"] if isinstance(kinds, list) else kinds
    return schema
