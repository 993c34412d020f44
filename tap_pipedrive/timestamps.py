"""Timestamps as Pipedrive's time filters take them: RFC 3339 UTC at second resolution.

Pipedrive v1 sends ``YYYY-MM-DD HH:MM:SS`` (UTC), v2 sends RFC 3339, some endpoints add
milliseconds. The tap writes every timestamp as ``2025-01-31T10:20:00Z``, so that bookmarks
compare correctly as strings, whatever the API version.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_TS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)
#: the tap's own form, exactly
_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_UTC_OFFSETS = (None, "Z", "z", "+00:00", "+0000", "-00:00")


def normalize_timestamp(value: object) -> object:
    """Return an RFC 3339 UTC timestamp (``2025-01-31T10:20:00Z``) at second resolution.

    Values that are not timestamps are returned unchanged.
    """
    if not isinstance(value, str):
        return value
    if len(value) == 20 and value[19] == "Z" and value[10] == "T" and _FORM.match(value):  # noqa: PLR2004
        return value  # already the tap's form (v2's usual one)
    match = _TS.match(value.strip())
    if not match:
        return value
    year, month, day, hour, minute, sec, offset = match.groups()
    if offset in _UTC_OFFSETS:
        return f"{year}-{month}-{day}T{hour or '00'}:{minute or '00'}:{sec or '00'}Z"
    moment = datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(sec or 0),
        tzinfo=timezone.utc,
    )
    sign = 1 if offset[0] == "+" else -1
    digits = offset[1:].replace(":", "")
    moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def looks_like_timestamp(value: str) -> bool:
    """Whether ``value`` is a date-time in one of Pipedrive's formats (not a date alone)."""
    match = _TS.match(value.strip())
    return bool(match and match.group(4))


def second(moment: datetime) -> str:
    """``moment`` in RFC 3339 UTC at second resolution (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def update_stamp(record: dict[str, object]) -> object:
    """A record's ``update_time``, normalised (None when it has none)."""
    return normalize_timestamp(record.get("update_time"))
