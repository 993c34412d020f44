"""A stream's record normaliser, compiled once from its schema.

Every field the schema declares a ``date-time`` (at the top, inside objects, inside arrays of
objects) is normalised to RFC 3339 UTC at second resolution (``timestamps.py``), so a v1
``2025-01-31 10:20:00`` nested in a person reads like any other timestamp. The walk visits
only the paths that hold timestamps.
"""

from __future__ import annotations

import typing as t

from tap_pipedrive.timestamps import normalize_timestamp

#: A compiled plan: field → None (a timestamp) or the plan of the object (or array items) it holds.
Plan = dict[str, "Plan | None"]


def _kinds(schema: dict[str, t.Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind if isinstance(kind, list) else [kind] if kind else [])


def compile_plan(schema: dict[str, t.Any]) -> Plan:
    """The paths of ``schema``'s date-time fields."""
    plan: Plan = {}
    for name, spec in (schema.get("properties") or {}).items():
        kinds = _kinds(spec)
        if spec.get("format") == "date-time":
            plan[name] = None
        elif "object" in kinds and spec.get("properties"):
            if sub := compile_plan(spec):
                plan[name] = sub
        elif "array" in kinds and isinstance(spec.get("items"), dict):
            items = spec["items"]
            if "object" in _kinds(items) and (sub := compile_plan(items)):
                plan[name] = sub
    return plan


def apply_plan(plan: Plan, row: dict[str, t.Any]) -> None:
    """Normalise ``row``'s timestamps in place, following ``plan``."""
    for name, sub in plan.items():
        value = row.get(name)
        if value is None:
            continue
        if sub is None:
            row[name] = normalize_timestamp(value)
        elif isinstance(value, dict):
            apply_plan(sub, value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    apply_plan(sub, item)
