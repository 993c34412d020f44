"""Lists without a time filter or a sort by time, read whole: projects, archived projects, tasks."""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.config_checks import parse_start_date
from tap_pipedrive.errors import APIError
from tap_pipedrive.streams.kinds import ListStream
from tap_pipedrive.timestamps import second, update_stamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

    from tap_pipedrive.errors import StreamUnavailableError
    from tap_pipedrive.http.paging import Record

#: STATE: the oldest ``update_time`` a change not yet written can have (see the class).
FLOOR = "floor"
#: STATE: the ids written at or after the floor, by ``update_time`` (``{stamp: [ids]}``).
WRITTEN = "written"
#: STATE, while a read is incomplete: its own floor, the last id it handled, what it wrote.
READING = "reading"


class WholeReadStream(ListStream):
    """A list that Pipedrive can neither filter nor sort by time: read whole, emit the changes.

    The list comes in id order, so the bookmark (the newest ``update_time`` written) cannot
    bound the read: a record updated during a read, on a page already read, gets an
    ``update_time`` older than records read after it. Instead STATE keeps a *floor*, a time
    no later than the moment the last complete read began, and the ids it wrote at or after
    the floor (``written``, by ``update_time``). A record is emitted when its ``update_time``
    is at or after the floor and it is not written at that ``update_time`` already. Any change
    the last read missed was made after the read began, so it is at or after the floor.

    The floor needs no clock: Pipedrive stamped every record of a read's first page before it
    served that page, so the newest ``update_time`` on the first page (or the bookmark of the
    read before, if newer) is a time at which the read had not begun yet. It is Pipedrive's
    own clock, so the tap's clock and any skew between the two do not matter.

    While a read is incomplete, STATE keeps it under ``reading``: its floor, the last id it
    handled (``through_id``) and the ids it wrote (or found written) at or after its floor. A
    run stopped part-way reads the list again and resumes the read past ``through_id``; up to
    it, only a record changed since it was handled is emitted (it is at or after the read's
    floor and not among its ids). When the read completes, its floor and ids replace the old
    ones and the bookmark (the newest ``update_time`` written) moves.
    """

    @override
    def read_records(self, context: Context | None) -> Iterable[Record]:
        """Read the whole list; yield the records that changed since they were last written."""
        state = self.get_context_state(context)
        floor, written = self._last_read(context)
        reading = state.get(READING)
        # Only the first page of a read's first attempt (one that handled any record) may raise
        # its floor: a resumed read's first page is served after records up to through_id were
        # handled, and a change to them since may be older than that page's newest record.
        self._raising = reading is None or reading["through_id"] is None
        if reading is None:
            start = max((s for s in (floor, state.get("replication_key_value")) if s), default=None)
            reading = state[READING] = {FLOOR: start, "through_id": None, WRITTEN: {}, "newest": None}
        self._reading = reading
        self._skipped = False
        through, last = reading["through_id"], None
        for record in super().read_records(context):
            rid, stamp = record.get("id"), str(update_stamp(record))
            if not isinstance(rid, int) or (last is not None and rid <= last):
                msg = f"{self.definition.name}: Pipedrive listed id {rid!r} after {last!r}, not in id order"
                raise APIError(msg)
            last = rid
            if through is not None and rid <= through:
                # Handled by this read before it was stopped: only a change since is new.
                if _is_new(stamp, rid, reading[FLOOR], reading[WRITTEN]):
                    yield record
                continue
            if self._raising and (reading[FLOOR] is None or stamp > reading[FLOOR]):
                reading[FLOOR] = stamp
                reading[WRITTEN] = {s: ids for s, ids in reading[WRITTEN].items() if s >= stamp}
            if _is_new(stamp, rid, floor, written):
                yield record  # record_written notes it
            else:
                self._handled(rid, stamp, written=rid in written.get(stamp, ()))
        if not self._skipped:
            self._complete(context)

    def _last_read(self, context: Context | None) -> tuple[str | None, dict[str, list[object]]]:
        """The last complete read's floor (``start_date`` if later) and what it wrote."""
        state = self.get_context_state(context)
        if FLOOR not in state:  # a first run, or a bookmark set by hand: start there
            start = self.get_starting_timestamp(context)
            return (second(start) if start is not None else None), {}
        floor = state[FLOOR]
        start_date = parse_start_date(str(self.config.get("start_date") or ""))
        if start_date is not None and (floor is None or second(start_date) > floor):
            floor = second(start_date)
        return floor, state.get(WRITTEN) or {}

    @override
    def record_written(self, record: Record, context: Context | None) -> None:
        """Note the record in the read's STATE (no bookmark moves until the read completes)."""
        stamp = str(update_stamp(record))
        self._handled(record["id"], stamp, written=True)
        newest = self._reading["newest"]
        if newest is None or stamp > newest:
            self._reading["newest"] = stamp

    def _handled(self, rid: int, stamp: str, *, written: bool) -> None:
        """The read has passed ``rid``; keep it among the written if it is at or after the floor."""
        reading = self._reading
        if reading["through_id"] is None or rid > reading["through_id"]:
            reading["through_id"] = rid
        if written and (reading[FLOOR] is None or stamp >= reading[FLOOR]):
            ids = reading[WRITTEN].setdefault(stamp, [])
            if rid not in ids:
                ids.append(rid)

    @override
    def settle_page(self) -> None:
        """The first page is done: later pages were served later, so they cannot raise the floor."""
        self._raising = False

    @override
    def skip(self, context: Context | None, exc: StreamUnavailableError) -> None:
        """Skip the stream; a read it had begun stays in STATE, to resume."""
        self._skipped = True
        super().skip(context, exc)

    def _complete(self, context: Context | None) -> None:
        """The read is complete: its floor and ids replace the last read's; the bookmark moves."""
        state = self.get_context_state(context)
        reading = state.pop(READING)
        newest = max((s for s in (state.get("replication_key_value"), reading["newest"]) if s), default=None)
        state[FLOOR] = reading[FLOOR]
        state[WRITTEN] = reading[WRITTEN]
        if newest is not None:
            state.update(replication_key=self.replication_key, replication_key_value=newest)
        self.write_state(force=True)


def _is_new(stamp: str, rid: int, floor: str | None, written: dict[str, list[object]]) -> bool:
    """Whether a record is a change not written yet: at or after the floor, and not written at it."""
    return (floor is None or stamp >= floor) and rid not in written.get(stamp, ())
