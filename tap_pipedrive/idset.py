"""Sets of record ids, kept in STATE compactly.

Integer ids (Pipedrive's persons, deals, activities, …) are sorted, stored as the varint
differences between neighbours, compressed and base64-encoded: ids handed out in sequence
cost about a byte each, or much less. Anything else (uuids, field codes) stays a sorted list.
"""

from __future__ import annotations

import base64
import typing as t
import zlib

Encoded = str | list[t.Any]
_MARK = "z1:"  # the format of an encoded integer set


def encode(ids: t.Iterable[object]) -> Encoded:
    """``ids`` in their compact form (a string for integers, else a sorted list)."""
    values = set(ids)
    if not values:
        return []
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        return sorted(values, key=str)
    out = bytearray()
    previous = 0
    for value in sorted(t.cast("set[int]", values)):
        _varint(out, value - previous)
        previous = value
    return _MARK + base64.b85encode(zlib.compress(bytes(out), 9)).decode("ascii")


def decode(value: Encoded | None) -> set[object]:
    """The ids of :func:`encode`'s output (or of a plain list)."""
    if not value:
        return set()
    if isinstance(value, list):  # composite keys come back from JSON as lists
        return {tuple(v) if isinstance(v, list) else v for v in value}
    if not value.startswith(_MARK):
        msg = "not an encoded id set"
        raise ValueError(msg)
    raw = zlib.decompress(base64.b85decode(value[len(_MARK) :]))
    ids: set[object] = set()
    current = shift = total = 0
    for byte in raw:
        current |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        total += current
        ids.add(total)
        current = shift = 0
    return ids


class IdSet:
    """A set of ids kept in one STATE entry, cheap to change, encoded from time to time.

    Additions and removals since the last encoding sit beside it as plain lists
    (``<key>_new``, ``<key>_gone``), so STATE is always exact, and the whole set is encoded
    again only once those lists have grown to a share of it.
    """

    #: re-encode once the changes since the last encoding are this share of the set
    REENCODE_SHARE = 4

    def __init__(self, state: dict[str, t.Any], key: str) -> None:
        """Read the set under ``state[key]`` (with the changes not yet encoded into it)."""
        self._state = state
        self._key = key
        self._new: list[object] = state.setdefault(f"{key}_new", [])
        self._gone: list[object] = state.setdefault(f"{key}_gone", [])
        self.ids = (decode(state.setdefault(key, [])) | set(_keys(self._new))) - set(_keys(self._gone))
        self._base = len(self.ids)

    def __contains__(self, value: object) -> bool:
        """Whether ``value`` is in the set."""
        return value in self.ids

    def __len__(self) -> int:
        """How many ids the set holds."""
        return len(self.ids)

    def add(self, value: object) -> None:
        """Add ``value`` (STATE knows at once)."""
        if value not in self.ids:
            self.ids.add(value)
            self._new.append(value)
            self.flush()

    def add_all(self, values: t.Iterable[object]) -> None:
        """Add every value of ``values``."""
        for value in values:
            self.add(value)

    def discard(self, value: object) -> None:
        """Remove ``value`` (STATE knows at once)."""
        if value in self.ids:
            self.ids.discard(value)
            self._gone.append(value)
            self.flush()

    def replace(self, values: t.Iterable[object]) -> None:
        """Make the set exactly ``values``."""
        self.ids = set(values)
        self.flush(force=True)

    def flush(self, *, force: bool = False) -> None:
        """Encode the set into STATE once enough has changed since the last time (or ``force``)."""
        changes = len(self._new) + len(self._gone)
        if not force and changes * self.REENCODE_SHARE < max(self._base, 500):
            return
        self._state[self._key] = encode(self.ids)
        self._new.clear()
        self._gone.clear()
        self._base = len(self.ids)


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
    return _MARK + base64.b85encode(zlib.compress(bytes(out), 9)).decode("ascii")


def _decode_map(value: str) -> dict[int, int]:
    if not value:
        return {}
    numbers: list[int] = []
    current = shift = 0
    for byte in zlib.decompress(base64.b85decode(value[len(_MARK) :])):
        current |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        numbers.append(current)
        current = shift = 0
    out: dict[int, int] = {}
    key = 0
    for delta, mapped in zip(numbers[::2], numbers[1::2], strict=True):
        key += delta
        out[key] = mapped
    return out
