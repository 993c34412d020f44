"""Request validation and pagination shared by every endpoint: Pipedrive's 400 messages, v2
cursors (opaque base64url JSON) and v1 offsets, v1 sort clauses, path and list parameters."""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_left, bisect_right

from . import spec
from .account import to_epoch


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


CURSOR_KEYS = frozenset({"field", "fieldValue", "sortDirection", "id"})


RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class ApiError(Exception):
    """Turns into ``{"success": false, "error": message, ...}`` with the given status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_rfc3339(name: str, text: str) -> int:
    """Epoch seconds of an RFC 3339 timestamp at second resolution, else ApiError(400)."""
    # a "+01:00" offset sent unencoded arrives as " 01:00"; read it the way it was meant
    m = RFC3339.match(text) or RFC3339.match(text.replace(" ", "+"))
    if not m:
        raise ApiError(400, f"Validation failed: {name}: Invalid date-time, expected RFC 3339 "
                            f"format like 2025-01-01T10:20:00Z")
    if m.group(3):
        raise ApiError(400, f"Validation failed: {name}: Fractional seconds are not supported, "
                            f"expected format YYYY-MM-DDTHH:MM:SSZ")
    return to_epoch(f"{m.group(1)}T{m.group(2)}{m.group(4).replace('Z', '+00:00')}")


def int_param(q: dict, name: str, default: int, lo: int, hi: int | None) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        msg = f"Validation failed: {name}: Expected number, received string"
        raise ApiError(400, msg) from None
    if value < lo or (hi is not None and value > hi):
        bound = f"greater than or equal to {lo}" if value < lo else f"less than or equal to {hi}"
        raise ApiError(400, f"Validation failed: {name}: Number must be {bound}")
    return value


def matches(value: object, text: str) -> bool:
    if isinstance(value, bool):
        return (text.lower() in ("1", "true")) == value
    return str(value) == text


def encode_cursor(sort_by: str, value: object, direction: str, rid: object) -> str:
    raw = _json({"field": sort_by, "fieldValue": value, "sortDirection": direction, "id": rid})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        data = None
    if not isinstance(data, dict) or not CURSOR_KEYS.issubset(data):
        raise ApiError(400, "Validation failed: cursor: Invalid cursor")
    return data


def sort_key(value: object) -> tuple:
    # None sorts first; the flag keeps None from being compared with a value
    return (value is not None, value if value is not None else 0)


def sort_rows(rows: list[dict], sort_by: str, *, id_key: str = "id") -> tuple[list[dict], list]:
    """``rows`` in (sort value, id) order, and those sort keys (what ``cursor_page`` bisects)."""
    rows = sorted(rows, key=lambda r: (sort_key(r.get(sort_by)), r[id_key]))
    return rows, [(sort_key(r.get(sort_by)), r[id_key]) for r in rows]


def cursor_page(rows: list[dict], sort_by: str, direction: str, cursor: str | None,
                 limit: int, *, id_key: str = "id",
                 ordered: tuple[list[dict], list] | None = None) -> tuple[list[dict], str | None]:
    """One page in (sort value, id) order, continuing strictly after the cursor's item
    (``id_key`` names the unique key of records without an ``id``, e.g. followers).
    ``ordered``: what ``sort_rows`` made of ``rows`` already (then ``rows`` is not read)."""
    rows, keys = ordered if ordered is not None else sort_rows(rows, sort_by, id_key=id_key)
    if direction == "asc":
        start = 0
        if cursor:
            c = decode_cursor(cursor)
            check_cursor(c, sort_by, direction)
            start = bisect_right(keys, (sort_key(c["fieldValue"]), c["id"]))
        page = rows[start:start + limit]
        more = start + limit < len(rows)
    else:
        end = len(rows)
        if cursor:
            c = decode_cursor(cursor)
            check_cursor(c, sort_by, direction)
            end = bisect_left(keys, (sort_key(c["fieldValue"]), c["id"]))
        page = rows[max(0, end - limit):end][::-1]
        more = end - limit > 0
    if not more or not page:
        return page, None
    last = page[-1]
    return page, encode_cursor(sort_by, last.get(sort_by), direction, last[id_key])


def v1_page(rows: list, q: dict, max_limit: int = 500) -> tuple[list, dict]:
    """One v1 offset page (``start``, ``limit``) and its ``additional_data.pagination``."""
    start = int_param(q, "start", 0, 0, None)
    limit = int_param(q, "limit", 100, 1, max_limit)
    page = rows[start:start + limit]
    more = start + limit < len(rows)
    pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    return page, {"pagination": pagination}


def int_query(q: dict, name: str) -> int | None:
    """An integer query parameter (None when absent), else 400."""
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"Validation failed: {name}: Expected number, received string") from None


def bool_query(q: dict, name: str) -> bool | None:
    """A boolean query parameter (``true``/``false``, ``1``/``0``; None when absent), else 400."""
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(400, f"Validation failed: {name}: Expected boolean, received string")


def enum_query(q: dict, name: str, allowed: tuple | list | frozenset) -> str | None:
    """A query parameter that must be one of ``allowed`` (None when absent), else 400."""
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise ApiError(400, f"Validation failed: {name}: Invalid enum value '{raw}'")
    return raw


def check_cursor(c: dict, sort_by: str, direction: str) -> None:
    if c["field"] != sort_by or c["sortDirection"] != direction:
        msg = "Validation failed: cursor: Cursor does not match sort_by/sort_direction"
        raise ApiError(400, msg)


def custom_fields_param(q: dict) -> set[str] | None:
    """The ``custom_fields`` subset asked for (at most 15 keys), or None for all of them."""
    if not q.get("custom_fields"):
        return None
    keys = {k.strip() for k in q["custom_fields"].split(",") if k.strip()}
    if len(keys) > 15:
        raise ApiError(400, "Validation failed: custom_fields: At most 15 custom fields allowed")
    return keys


def path_id(key: str, path_params: dict[str, str], name: str) -> object:
    """A path parameter as its declared type: an integer id must be digits (else 400)."""
    raw = path_params[name]
    declared = spec.ENDPOINTS[key].get("path_params", {}).get(name, {})
    if declared.get("type") != "integer":
        return raw
    if not raw.isdigit():
        raise ApiError(400, f"Validation failed: {name}: Expected number, received string")
    return int(raw)


def id_list(name: str, raw: list[str]) -> set[int]:
    if not raw:
        raise ApiError(400, f"Validation failed: {name}: Required")
    if len(raw) > 100:
        raise ApiError(400, f"Validation failed: {name}: Array must contain at most 100 element(s)")
    return {int(x) for x in raw if x.strip().isdigit()}


def v1_sort(rows: list[dict], sort: str | None, default: list[tuple[str, bool]]) -> list[dict]:
    """Sort by ``"field ASC, other DESC"`` (or the default); ties always end in id order."""
    clauses = default
    if sort:
        clauses = []
        for part in sort.split(","):
            bits = part.split()
            if not bits:
                continue
            if len(bits) > 2 or (len(bits) == 2 and bits[1].upper() not in ("ASC", "DESC")):
                raise ApiError(400, f"Invalid sort clause '{part.strip()}'")
            clauses.append((bits[0], len(bits) == 2 and bits[1].upper() == "DESC"))
    sample = rows[0] if rows else {}
    for name, _ in clauses:
        if rows and (name not in sample or isinstance(sample.get(name), (dict, list))):
            raise ApiError(400, f"Invalid sort field '{name}'")
    # without a sort the list keeps its natural (creation) order; with one, ties go by id
    out = sorted(rows, key=lambda r: r["id"]) if clauses else list(rows)
    for name, desc in reversed(clauses):  # stable multi-pass sort, least significant key first
        out.sort(key=lambda r, n=name: sort_key(r.get(n)), reverse=desc)
    return out
