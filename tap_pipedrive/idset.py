"""Sets of record ids, kept in STATE compactly and in memory flat.

Integer ids (Pipedrive's persons, deals, activities, …) live in a 64-bit roaring bitmap
(``pyroaring``): a million ids handed out in sequence take a few hundred kilobytes, not the
60 MB of a Python set, so a tap's memory does not grow with the account. In STATE they are
the differences between neighbours, compressed (``d4:`` / ``d8:``): ids handed out in
sequence cost well under a byte each, ids scattered over twenty times their number about
one. Anything else (uuids, field codes, composite keys) stays a sorted list. STATE written
by earlier versions (``z1:``, sorted varint differences) is still read.
"""

from __future__ import annotations

import base64
import itertools
import operator
import typing as t
import zlib
from array import array

from pyroaring import BitMap64

Encoded = str | list[t.Any]
#: an encoded integer set: the differences between neighbours (the first: the smallest id) as
#: 4- or 8-byte integers, bytes regrouped by significance (the zero high bytes together),
#: zlib, base64 (every step runs in C)
_DELTAS = {4: "d4:", 8: "d8:"}
_VARINT = "z1:"  # the format before: zlib(sorted varint differences), base85
_LIMIT = 1 << 64
_WIDE = 1 << 32
_TYPECODE = {4: "I", 8: "Q"}


def _is_int_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _LIMIT


def encode(ids: t.Iterable[object]) -> Encoded:
    """``ids`` in their compact form (a string for integers, else a sorted list)."""
    if isinstance(ids, BitMap64):
        return _encode_ints(ids)
    values = set(ids)
    if not values:
        return []
    if not all(_is_int_id(v) for v in values):
        return sorted(values, key=str)
    return _encode_ints(BitMap64(t.cast("set[int]", values)))


def _encode_ints(ids: BitMap64) -> Encoded:
    if not ids:
        return []
    # the differences straight from the bitmap (ascending), without a copy of the ids: a
    # million of them is 4 MB here, not the 45 MB that copies of an array took at the peak
    width = 8 if ids.max() >= _WIDE else 4
    deltas = array(_TYPECODE[width], [ids.min()])
    deltas.extend(map(operator.sub, itertools.islice(ids, 1, None), ids))
    raw = deltas.tobytes()
    del deltas
    grouped = b"".join(raw[i::width] for i in range(width))
    del raw
    return _DELTAS[width] + base64.b64encode(zlib.compress(grouped, 6)).decode("ascii")


def _decode_ints(width: int, text: str) -> BitMap64:
    grouped = zlib.decompress(base64.b64decode(text))
    raw = bytearray(len(grouped))
    size = len(grouped) // width
    for i in range(width):
        raw[i::width] = grouped[i * size : (i + 1) * size]
    deltas = array(_TYPECODE[width])
    deltas.frombytes(bytes(raw))
    return BitMap64(itertools.accumulate(deltas))


def decode(value: Encoded | None) -> BitMap64 | set[object]:
    """The ids of :func:`encode`'s output (or of a plain list)."""
    if not value:
        return BitMap64()
    if isinstance(value, list):  # composite keys come back from JSON as lists
        return {tuple(v) if isinstance(v, list) else v for v in value}
    for width, mark in _DELTAS.items():
        if value.startswith(mark):
            return _decode_ints(width, value[len(mark) :])
    if value.startswith(_VARINT):
        return BitMap64(_varints(zlib.decompress(base64.b85decode(value[len(_VARINT) :])), running=True))
    msg = "not an encoded id set"
    raise ValueError(msg)


def _varints(raw: bytes, *, running: bool = False) -> list[int]:
    """The numbers of a varint stream (``running``: each a difference from the one before)."""
    numbers: list[int] = []
    current = shift = total = 0
    for byte in raw:
        current |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        total = total + current if running else current
        numbers.append(total)
        current = shift = 0
    return numbers


class IdSet:
    """A set of ids kept in one STATE entry, cheap to change, encoded from time to time.

    Additions and removals since the last encoding sit beside it as plain lists
    (``<key>_new``, ``<key>_gone``), so STATE is always exact, and the whole set is encoded
    again only once those lists have grown to a share of it. Integer ids are held in a
    bitmap, anything else in a set.
    """

    #: re-encode once the changes since the last encoding are this share of the set
    REENCODE_SHARE = 4
    #: or this many, whatever the set's size: memory and STATE stay bounded (an encoding of
    #: a million ids takes 0.4 s, so one every 100,000 changes costs about 1 % of a run)
    REENCODE_AT_MOST = 100_000

    def __init__(self, state: dict[str, t.Any], key: str) -> None:
        """Read the set under ``state[key]`` (with the changes not yet encoded into it)."""
        self._state = state
        self._key = key
        self._new: list[object] = state.setdefault(f"{key}_new", [])
        self._gone: list[object] = state.setdefault(f"{key}_gone", [])
        decoded = decode(state.setdefault(key, []))
        self._ints = decoded if isinstance(decoded, BitMap64) else BitMap64()
        self._other: set[object] = set()
        if not isinstance(decoded, BitMap64):
            for value in decoded:
                self._put(value)
        for value in _keys(self._new):
            self._put(value)
        for value in _keys(self._gone):
            self._take(value)
        self._base = len(self)

    def _put(self, value: object) -> bool:
        """Add ``value``; whether it was new."""
        if _is_int_id(value):
            value = t.cast("int", value)
            if value in self._ints:
                return False
            self._ints.add(value)
            return True
        if value in self._other:
            return False
        self._other.add(value)
        return True

    def _take(self, value: object) -> bool:
        """Remove ``value``; whether it was there."""
        if _is_int_id(value):
            value = t.cast("int", value)
            if value not in self._ints:
                return False
            self._ints.discard(value)
            return True
        if value not in self._other:
            return False
        self._other.discard(value)
        return True

    def __contains__(self, value: object) -> bool:
        """Whether ``value`` is in the set."""
        return t.cast("int", value) in self._ints if _is_int_id(value) else value in self._other

    def __len__(self) -> int:
        """How many ids the set holds."""
        return len(self._ints) + len(self._other)

    def __iter__(self) -> t.Iterator[object]:
        """The ids: the integers in ascending order, then the others."""
        yield from self._ints
        yield from self._other

    def difference(self, others: t.Iterable[object]) -> list[object]:
        """The ids of this set that are not in ``others``, in text order."""
        ints: list[int] = []
        rest: set[object] = set()
        for value in others:
            if _is_int_id(value):
                ints.append(t.cast("int", value))
            else:
                rest.add(value)
        left: list[object] = [*(self._ints - BitMap64(ints)), *(v for v in self._other if v not in rest)]
        return sorted(left, key=str)

    def add(self, value: object) -> None:
        """Add ``value`` (STATE knows at once)."""
        if self._put(value):
            self._new.append(value)
            self.flush()

    def add_all(self, values: t.Iterable[object]) -> None:
        """Add every value of ``values``."""
        for value in values:
            self.add(value)

    def discard(self, value: object) -> None:
        """Remove ``value`` (STATE knows at once)."""
        if self._take(value):
            self._gone.append(value)
            self.flush()

    def replace(self, values: t.Iterable[object]) -> None:
        """Make the set exactly ``values``."""
        self._ints, self._other = BitMap64(), set()
        for value in values:
            self._put(value)
        self.flush(force=True)

    def flush(self, *, force: bool = False) -> None:
        """Encode the set into STATE once enough has changed since the last time (or ``force``)."""
        changes = len(self._new) + len(self._gone)
        due = changes * self.REENCODE_SHARE >= max(self._base, 500) or changes >= self.REENCODE_AT_MOST
        if not force and not due:
            return
        if self._other:  # not only integer ids: a sorted list of them all
            self._state[self._key] = encode([*self._ints, *self._other])
        else:
            self._state[self._key] = _encode_ints(self._ints)
        self._new.clear()
        self._gone.clear()
        self._base = len(self)


def _keys(values: t.Iterable[object]) -> t.Iterator[object]:
    """Ids as a set holds them (composite keys come back from JSON as lists)."""
    return (tuple(v) if isinstance(v, list) else v for v in values)


class IdMap:
    """A map of integer ids to integers (e.g. a deal's newest change read), kept compactly.

    Encoded as two interleaved varint streams (key deltas, values); recent changes sit beside
    it as a plain object (``<key>_new``) until they are a share of the map.
    """

    def __init__(self, state: dict[str, t.Any], key: str) -> None:
        """Read the map under ``state[key]`` (with the changes not yet encoded into it)."""
        self._state = state
        self._key = key
        self._new: dict[str, int] = state.setdefault(f"{key}_new", {})
        self.values = _decode_map(state.setdefault(key, ""))
        self.values.update((int(k), int(v)) for k, v in self._new.items())
        self._base = len(self.values)

    def get(self, key: int) -> int | None:
        """The value of ``key``, if any."""
        return self.values.get(key)

    def put(self, key: int, value: int) -> None:
        """Set ``key`` to ``value`` (STATE knows at once)."""
        self.values[key] = value
        self._new[str(key)] = value
        if len(self._new) * IdSet.REENCODE_SHARE >= max(self._base, 500):
            self._state[self._key] = _encode_map(self.values)
            self._new.clear()
            self._base = len(self.values)


def _varint(out: bytearray, number: int) -> None:
    while number >= 0x80:  # noqa: PLR2004 - seven bits a byte, the high bit says "more"
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)


def _encode_map(values: dict[int, int]) -> str:
    out = bytearray()
    previous = 0
    for key in sorted(values):
        _varint(out, key - previous)
        _varint(out, values[key])
        previous = key
    return _VARINT + base64.b85encode(zlib.compress(bytes(out), 9)).decode("ascii")


def _decode_map(value: str) -> dict[int, int]:
    if not value:
        return {}
    numbers = _varints(zlib.decompress(base64.b85decode(value[len(_VARINT) :])))
    out: dict[int, int] = {}
    key = 0
    for delta, mapped in zip(numbers[::2], numbers[1::2], strict=True):
        key += delta
        out[key] = mapped
    return out
