"""Checking a ``--state`` before the first request: this tap's bookmarks, or one clear line.

The tap writes ``{"bookmarks": {stream: {"replication_key": "update_time",
"replication_key_value": "<RFC 3339>", "bookmark_ids": [...]}}}``. The keys checked here are
those; whatever else a stream's state holds (the SDK's progress markers, keys other parts of
the tap add) is left as it is. Two wrappers are unwrapped: a whole STATE message
(``{"type": "STATE", "value": …}``) and Meltano's ``{"singer_state": …}`` (what
``meltano state get`` prints).
"""

from __future__ import annotations

import copy
import logging
import typing as t
from datetime import datetime, timedelta, timezone

from tap_pipedrive.errors import InputError, did_you_mean, json_kind, one_line
from tap_pipedrive.streams import STREAMS
from tap_pipedrive.timestamps import normalize_timestamp

if t.TYPE_CHECKING:
    from collections.abc import Sequence

    from tap_pipedrive.streams import StreamDef

LOGGER = logging.getLogger("tap-pipedrive")

#: Clock skew between the machine that wrote a bookmark and this one stays far below this; a
#: bookmark further ahead is a mistake (and would hold its stream back until then).
FUTURE_TOLERANCE = timedelta(days=1)
#: The field singer-io's tap-pipedrive keeps its bookmarks under (``{stream: {"update_time": …}}``).
_FOREIGN_KEYS = ("update_time", "add_time")


def checked_state(
    value: object,
    source: str,
    *,
    streams: Sequence[StreamDef] = STREAMS,
    now: datetime | None = None,
) -> dict[str, t.Any]:
    """The state to start from; ``source`` names the file in messages (``state file 'x'``).

    Returns a checked copy: unwrapped, bookmarks normalised to RFC 3339 UTC, unknown streams
    dropped (with a warning). A state another tap wrote is ignored with a warning.

    Raises:
        InputError: the state cannot be this tap's, or a known stream's bookmark is wrong;
            the message names the stream and the value.
    """
    state = copy.deepcopy(_unwrapped(value, source))
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        others = sorted(str(k) for k in state if k != "currently_syncing")
        if others:
            listed = one_line(", ".join(others), 60)
            raise InputError(f"{source} has no 'bookmarks' object (it has {listed}): not this tap's state")
        return state
    if not isinstance(bookmarks, dict):
        kind = json_kind(bookmarks)
        raise InputError(f"{source}: 'bookmarks' must be an object of stream name → bookmark, not {kind}")
    filled = [b for b in bookmarks.values() if b is not None and b != {}]
    if filled and all(_is_foreign(b) for b in filled):
        LOGGER.warning(
            "%s was written by another tap (its bookmarks look like {'update_time': …}, as singer-io's "
            "tap-pipedrive writes them): it is ignored, every stream starts from start_date",
            source,
        )
        return {}
    known = {d.name: d for d in streams}
    for name in [n for n in bookmarks if n not in known]:
        LOGGER.warning(
            "%s: tap-pipedrive has no stream '%s'%s; its bookmark is ignored",
            source, one_line(str(name), 60), did_you_mean(str(name), known),
        )
        del bookmarks[name]
    errors = [
        message
        for name, bookmark in bookmarks.items()
        for message in _bookmark_errors(name, bookmark, known[name].replication_key, now)
    ]
    if errors:
        raise InputError(f"{source}: {'; '.join(errors)}")
    return state


def _unwrapped(value: object, source: str) -> dict[str, t.Any]:
    if isinstance(value, dict) and value.get("type") == "STATE" and "value" in value:
        LOGGER.info("%s holds a STATE message: starting from its value", source)
        value = value["value"]
    elif isinstance(value, dict) and "singer_state" in value and "bookmarks" not in value:
        LOGGER.info("%s holds Meltano's {'singer_state': …}: starting from its value", source)
        value = value["singer_state"]
    if not isinstance(value, dict):
        raise InputError(
            f"{source} must hold a JSON object (the value of the last STATE message, "
            f'{{"bookmarks": …}}), not {json_kind(value)}'
        )
    return value


def _is_foreign(bookmark: object) -> bool:
    """Whether a bookmark has another tap's form: a bare time, or ``{"update_time": …}``."""
    if not isinstance(bookmark, dict):
        return isinstance(bookmark, (str, int, float)) and not isinstance(bookmark, bool)
    return "replication_key_value" not in bookmark and any(k in bookmark for k in _FOREIGN_KEYS)


def _bookmark_errors(
    name: str, bookmark: object, replication_key: str | None, now: datetime | None
) -> list[str]:
    """What is wrong with one known stream's bookmark (normalising its time in place)."""
    if bookmark is None:
        return []
    if not isinstance(bookmark, dict):
        return [f"the bookmark of '{name}' must be an object, not {json_kind(bookmark)}"]
    if _is_foreign(bookmark):
        return [f"the bookmark of '{name}' is another tap's ({{'update_time': …}}), not this tap's"]
    if replication_key is None:
        return []  # read whole on every run: the tap reads no bookmark for it
    errors = []
    key = bookmark.get("replication_key")
    if key is not None and key != replication_key:
        errors.append(f"the bookmark of '{name}' is on {one_line(repr(key), 40)}, not '{replication_key}'")
    value = bookmark.get("replication_key_value")
    if value is not None:
        moment = _moment(value)
        if moment is None:
            errors.append(
                f"the bookmark of '{name}' is not a time: replication_key_value {one_line(repr(value), 40)} "
                "(expected RFC 3339, e.g. 2025-01-31T10:20:00Z)"
            )
        elif moment > (now or datetime.now(timezone.utc)) + FUTURE_TOLERANCE:
            shown = one_line(repr(value), 40)
            errors.append(f"the bookmark of '{name}' is in the future: replication_key_value {shown}")
        else:
            bookmark["replication_key_value"] = normalize_timestamp(value)
            bookmark.setdefault("replication_key", replication_key)
    ids = bookmark.get("bookmark_ids")
    if ids is not None and not (
        isinstance(ids, list) and all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in ids)
    ):
        errors.append(f"the bookmark of '{name}': bookmark_ids must be a list of record ids")
    return errors


def _moment(value: object) -> datetime | None:
    """A bookmark's time (UTC), or None when it is not one."""
    text = normalize_timestamp(value)
    if not isinstance(text, str) or not text.endswith("Z"):
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
