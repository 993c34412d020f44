"""The Singer messages on stdout: encoded by msgspec, records buffered, every STATE flushed.

The SDK's writers flush stdout after every message, a system call per record into the pipe
to the target, and copy each STATE twice (``dataclasses.asdict``, then ``deepcopy`` to
compare it with the last one). Here records are gathered and reach the pipe about 64 KB at
a time; any other message (STATE, SCHEMA, ACTIVATE_VERSION) is flushed at once, with every
record before it. So a target never waits for a STATE, and a STATE never reaches
it before the records it covers: a stop at any point loses nothing that STATE says was
written.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import time
import typing as t

import msgspec
from singer_sdk.helpers._state import StateWriter
from singer_sdk.singerlib import RecordMessage, StateMessage
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from typing_extensions import override

if t.TYPE_CHECKING:
    from datetime import datetime

    from singer_sdk.helpers.types import TapState
    from singer_sdk.singerlib.encoding.simple import Message


def _fallback(value: object) -> object:
    """What JSON cannot hold natively (a Decimal, a date) goes out as its text."""
    return str(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_fallback, decimal_format="number")


#: records are handed to stdout in chunks of about this many bytes
RECORD_CHUNK = 1 << 16


class SingerWriter(GenericSingerWriter[bytes, "Message"]):
    """Writes Singer messages as JSON lines to stdout (records in chunks, the rest flushed).

    Records are gathered here and handed to stdout about 64 KB at a time, whatever stdout's
    own buffering: with ``PYTHONUNBUFFERED=1`` (set in many images) or ``python -u`` its
    bytes layer has no buffer, and each record would be a system call of its own. Any other
    message goes out at once, with every record before it; so does whatever is gathered
    when a STATE is asked for (even one not written, being unchanged) and at exit.
    """

    def __init__(self) -> None:
        """Nothing gathered yet."""
        self._pending = bytearray()
        atexit.register(self._flush_at_exit)

    @override
    def serialize_message(self, message: Message) -> bytes:
        """One line of JSON (a STATE's value is encoded as it is, not copied first)."""
        if isinstance(message, StateMessage):
            data: dict[str, t.Any] = {"type": "STATE", "value": message.value}
        else:
            data = message.to_dict()
        return _ENCODER.encode(data) + b"\n"

    @override
    def write_message(self, message: Message) -> None:
        """Gather a record (out once a chunk is full); write anything else at once."""
        self._pending += self.format_message(message)
        if not isinstance(message, RecordMessage) or len(self._pending) >= RECORD_CHUNK:
            self.flush()

    def write_record(
        self, stream: str, record: dict[str, t.Any], version: int | None, time_extracted: datetime | None
    ) -> None:
        """Gather the line the SDK's ``RecordMessage`` would give, without building one."""
        data: dict[str, t.Any] = {"type": "RECORD", "stream": stream, "record": record}
        if version is not None:
            data["version"] = version
        if time_extracted is not None:
            data["time_extracted"] = time_extracted
        pending = self._pending
        _ENCODER.encode_into(data, pending, -1)
        pending += b"\n"
        if len(pending) >= RECORD_CHUNK:
            self.flush()

    def write_line(self, line: bytes) -> None:
        """Write one encoded message (a STATE) after what is gathered, and flush."""
        self._pending += line
        self.flush()

    def flush(self) -> None:
        """Hand what is gathered to stdout and flush it."""
        out = sys.stdout.buffer
        if self._pending:
            data = memoryview(bytes(self._pending))
            self._pending.clear()
            # an unbuffered stdout writes what the pipe takes at once: a signal handled
            # part-way through a large write leaves the rest, which goes next
            while data:
                written = out.write(data)
                if written is None:  # a non-blocking stdout that is full: wait for the reader
                    time.sleep(0.01)
                    continue
                data = data[written:]
        out.flush()

    def _flush_at_exit(self) -> None:
        """What is gathered goes out at exit, unless the reader has gone (nothing to tell then)."""
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed, gone, replaced
            self.flush()


#: STATE bytes a second at most: after a STATE of n bytes the next one waits n / this seconds
STATE_BYTES_PER_SECOND = 2_000_000
#: and never longer than this
MAX_STATE_GAP = 5.0
#: a STATE up to this size never waits
SMALL_STATE = 100_000


class ChangedStateWriter(StateWriter):
    """Writes a STATE when it differs from the last one written, at a bounded rate of bytes.

    The streams ask for a STATE after every page. STATEs up to ``SMALL_STATE`` bytes all go
    out; a large one (the
    ids of a million records written, kept for delete detection) is written at most every
    ``size / STATE_BYTES_PER_SECOND`` seconds, so STATE does not grow into gigabytes of
    output over a long run. A STATE left out is no loss: every later one covers as much and
    more, and whatever ends the run writes a final STATE (``lifecycle.write_final_state``).
    """

    def __init__(
        self, message_writer: GenericSingerWriter[t.Any, t.Any], clock: t.Callable[[], float] = time.monotonic
    ) -> None:
        """Nothing written yet."""
        super().__init__(message_writer)
        self._last: bytes | None = None
        self._last_at = 0.0
        self._clock = clock

    @override
    def write_state(self, state: TapState) -> None:
        """Write ``state`` unless it is the one written last, or the last one was large and recent."""
        if isinstance(self._message_writer, SingerWriter):
            self._message_writer.flush()  # the records so far go out even if this STATE does not
        now = self._clock()
        last = self._last
        if (
            last is not None
            and len(last) > SMALL_STATE
            and now - self._last_at < min(MAX_STATE_GAP, len(last) / STATE_BYTES_PER_SECOND)
        ):
            return
        encoded = _ENCODER.encode(state)
        if encoded == self._last:
            return
        if isinstance(self._message_writer, SingerWriter):
            self._message_writer.write_line(b'{"type":"STATE","value":' + encoded + b"}\n")
        else:
            self._message_writer.write_message(StateMessage(value=state))
        self._last, self._last_at = encoded, now
