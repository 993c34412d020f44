"""A stream's record normaliser, compiled once from its schema.

Every field the schema declares a ``date-time`` (at the top, inside objects, inside arrays of
objects) is normalised to RFC 3339 UTC at second resolution (``timestamps.py``), so a v1
``2025-01-31 10:20:00`` nested in a person reads like any other timestamp. Every field it
declares only ``boolean`` becomes true or false (v1 answers some flags as 0 and 1). The walk
visits only the paths that hold such fields.

This is the whole of the conformance a record needs: the SDK's own pass over every field of
every record (``TYPE_CONFORMANCE_LEVEL``) is switched off, since Pipedrive's JSON holds no
Python types to convert and undeclared fields are kept (``unlisted_fields``), not dropped.
"""

from __future__ import annotations

import typing as t

from tap_pipedrive.timestamps import normalize_timestamp

Convert = t.Callable[[t.Any], t.Any]
#: A compiled plan: field → how to convert its value, or the plan of the object (or array
#: items) it holds.
Plan = dict[str, "Plan | Convert"]

_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})


def to_bool(value: t.Any) -> t.Any:  # noqa: ANN401 - whatever Pipedrive sent
    """A flag as true or false (``1``/``0``, ``"true"``/``"false"``); anything else as it is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return value


def _kinds(schema: dict[str, t.Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind if isinstance(kind, list) else [kind] if kind else [])


def compile_plan(schema: dict[str, t.Any]) -> Plan:
    """The paths of ``schema``'s date-time and boolean fields."""
    plan: Plan = {}
    for name, spec in (schema.get("properties") or {}).items():
        kinds = _kinds(spec)
        if spec.get("format") == "date-time":
            plan[name] = normalize_timestamp
        elif kinds - {"null"} == {"boolean"}:
            plan[name] = to_bool
        elif "object" in kinds and spec.get("properties"):
            if sub := compile_plan(spec):
                plan[name] = sub
        elif "array" in kinds and isinstance(spec.get("items"), dict):
            items = spec["items"]
            if "object" in _kinds(items) and (sub := compile_plan(items)):
                plan[name] = sub
    return plan


def apply_plan(plan: Plan, row: dict[str, t.Any]) -> None:
    """Normalise ``row``'s timestamps and flags in place, following ``plan``."""
    for name, sub in plan.items():
        value = row.get(name)
        if value is None:
            continue
        if not isinstance(sub, dict):
            row[name] = sub(value)
        elif isinstance(value, dict):
            apply_plan(sub, value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    apply_plan(sub, item)
