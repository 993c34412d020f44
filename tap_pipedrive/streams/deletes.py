"""Finding what Pipedrive deleted, so the warehouse does not keep showing it as live.

Pipedrive lists deleted deals (for 30 days), but deleted persons, organizations, activities,
products, notes and files simply vanish from their lists. For those streams the tap keeps
the ids it has written in STATE (compactly: ``tap_pipedrive/idset.py``) and, every
``detect_deletes_every_hours``, lists the ids Pipedrive still has. An id written and no
longer listed is confirmed with the single GET that answers a deleted record for 30 days:
deleted → one tombstone record (the record as the GET answers it, ``_sdc_deleted_at`` set);
404 → hidden from the token's user by Pipedrive's visibility rules (or purged long ago):
counted and warned about, never flagged deleted. A full-table stream needs no listing: a
row missing from its latest complete read is a delete.
"""

from __future__ import annotations

import logging
import typing as t
from datetime import datetime, timedelta, timezone

from tap_pipedrive.errors import StreamUnavailableError
from tap_pipedrive.http.paging import ListRequest
from tap_pipedrive.idset import IdSet
from tap_pipedrive.timestamps import normalize_timestamp, second

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_pipedrive.http.paging import Record
    from tap_pipedrive.services import Services
    from tap_pipedrive.streams.definition import StreamDef

SDC_DELETED_AT = "_sdc_deleted_at"
#: Marks a record the tap made to say a record was deleted (taken off before it is written).
TOMBSTONE = "__tap_pipedrive_tombstone__"
DELETED_AT_SCHEMA = {
    "type": ["string", "null"],
    "format": "date-time",
    "description": "Set on the one record the tap emits for a deleted record: when it was "
    "deleted (or found deleted). A target's hard_delete, or a filter, removes the row.",
}
#: The STATE keys of a stream's delete detection.
SEEN, CHECKED_AT, KEYS = "seen", "deletes_checked_at", "keys"
#: How many hidden ids a warning names.
NAMED_IN_WARNING = 10

LOGGER = logging.getLogger("tap-pipedrive")


def take_tombstone_mark(record: Record) -> bool:
    """Whether ``record`` is the tap's record of a delete (removing the mark)."""
    return bool(record.pop(TOMBSTONE, False))


def utc_now() -> str:
    """Now, as the tap writes timestamps."""
    return second(datetime.now(timezone.utc))


def tombstone(definition: StreamDef, key: object) -> Record:
    """A delete of a record the API no longer answers for: its key, the flag, the time."""
    keys = key if isinstance(key, tuple) else (key,)
    record: Record = dict(zip(definition.keys, keys, strict=True))
    flag = definition.deleted_flag
    if flag is not None:
        record[flag] = flag != "active_flag"  # is_deleted: true; v1 active_flag: false
    record[SDC_DELETED_AT] = utc_now()
    record[TOMBSTONE] = True
    return record


class DeleteDetection:
    """The ids a stream has written, and the periodic pass that finds the deleted ones."""

    def __init__(self, definition: StreamDef, state: dict[str, t.Any], services: Services) -> None:
        """Read what STATE says the stream has written."""
        self.definition = definition
        self.state = state
        self.services = services
        #: a stream read before the tap kept its ids (an older STATE): a first pass lists them
        self.seeding = SEEN not in state and bool(state.get("replication_key_value"))
        self.seen = IdSet(state, SEEN)

    @property
    def due(self) -> bool:
        """Whether a pass is due (``detect_deletes_every_hours`` since the last one).

        Never on a stream's first read (it wrote everything there is); its clock starts then.
        """
        last = self.state.get(CHECKED_AT)
        if not last:
            return self.seeding
        if self.seeding:
            return True
        hours = self.services.settings.detect_deletes_every_hours
        checked = datetime.fromisoformat(str(last).replace("Z", "+00:00"))
        return datetime.now(timezone.utc) - checked >= timedelta(hours=hours)

    def start_clock(self) -> None:
        """A stream's first read: the next pass is due ``detect_deletes_every_hours`` from now."""
        self.state.setdefault(CHECKED_AT, utc_now())

    def find(self) -> Iterator[Record]:
        """List the stream's ids; yield one tombstone per id written before and deleted since."""
        d = self.definition
        listed: set[object] = set()
        request = ListRequest(d.version, d.endpoint, d.sort_params, d.page_size, d.name)
        for page in self.services.client.pages(request, d.paging):
            listed.update(r.get("id") for r in page)
        if self.seeding:  # nothing to compare with yet: what is listed now is what was written
            self.seen.add_all(listed)
            self.seeding = False
            self.state[CHECKED_AT] = utc_now()
            return
        hidden: list[object] = []
        for rid in self.seen.difference(listed):
            record = self._confirm(rid)
            if record is None:
                hidden.append(rid)
                self.seen.discard(rid)
            elif record:
                yield record
        if hidden:
            self.services.report.hidden[d.name] += len(hidden)
            LOGGER.warning(
                "%s: %d records vanished from Pipedrive's list but are not deleted: their single "
                "GET answers 404 (hidden from this user by Pipedrive's visibility rules, or purged "
                "long after a delete). Their rows stay as they were; ids: %s",
                d.name,
                len(hidden),
                ", ".join(map(str, hidden[:NAMED_IN_WARNING])) + (" …" * (len(hidden) > NAMED_IN_WARNING)),
            )
        self.state[CHECKED_AT] = utc_now()

    def _confirm(self, rid: object) -> Record | None:
        """The deleted record's tombstone; ``{}`` if it is not deleted; None if hidden."""
        d = self.definition
        deletes = d.deletes
        if deletes is None or deletes.confirm is None:
            return tombstone(d, rid)
        try:
            body = self.services.client.get(d.version, deletes.confirm.format(id=rid), stream=d.name)
        except StreamUnavailableError as exc:
            return tombstone(d, rid) if exc.status == 410 else None  # noqa: PLR2004 - gone for good
        record = body.get("data")
        if not isinstance(record, dict):
            return None
        deleted = record.get("is_deleted") is True or record.get("active_flag") is False
        if not deleted:
            return {}
        record[SDC_DELETED_AT] = normalize_timestamp(record.get("update_time")) or utc_now()
        record[TOMBSTONE] = True
        return record


class FullTableDeletes:
    """A full-table stream's keys: a key missing from the latest complete read is a delete."""

    def __init__(self, definition: StreamDef, state: dict[str, t.Any]) -> None:
        """Read the keys of the last complete read from STATE."""
        self.definition = definition
        self.keys = IdSet(state, KEYS)
        self.first = KEYS not in state
        self.read: set[object] = set()

    def written(self, record: Record) -> None:
        """Note a record of the read in progress."""
        self.read.add(self.key(record))

    def key(self, record: Record) -> object:
        """The record's primary key (a tuple when it has several parts)."""
        values = tuple(record.get(k) for k in self.definition.keys)
        return values if len(values) > 1 else values[0]

    def finish(self) -> Iterator[Record]:
        """The read is complete: yield a tombstone per key it no longer has; keep the new keys."""
        if not self.first:
            for key in self.keys.difference(self.read):
                yield tombstone(self.definition, key)
        self.keys.replace(self.read)
