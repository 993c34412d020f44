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
        delta, previous = value - previous, value
        while delta >= 0x80:  # noqa: PLR2004 - seven bits a byte, the high bit says "more"
            out.append((delta & 0x7F) | 0x80)
            delta >>= 7
        out.append(delta)
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
    """A set of ids kept in one STATE entry: cheap to add to, encoded when STATE is written."""

    #: re-encode once the ids added since the last encoding are this share of the base
    REENCODE_SHARE = 4

    def __init__(self, state: dict[str, t.Any], key: str) -> None:
        """Read the set under ``state[key]`` (and ``state[key + "_new"]``, not yet encoded)."""
        self._state = state
        self._key = key
        self._new_key = f"{key}_new"
        self.ids = decode(state.setdefault(key, [])) | set(state.get(self._new_key, ()))
        self._base = len(self.ids)
        self._new: list[object] = state.setdefault(self._new_key, [])

    def __contains__(self, value: object) -> bool:
        """Whether ``value`` is in the set."""
        return value in self.ids

    def __len__(self) -> int:
        """How many ids the set holds."""
        return len(self.ids)

    def add(self, value: object) -> None:
        """Add ``value`` (STATE knows at once, as a plain id beside the encoded ones)."""
        if value not in self.ids:
            self.ids.add(value)
            self._new.append(value)

    def discard(self, value: object) -> None:
        """Remove ``value`` (STATE knows at once: the set is encoded again)."""
        if value in self.ids:
            self.ids.discard(value)
            self.flush(force=True)

    def replace(self, values: t.Iterable[object]) -> None:
        """Make the set exactly ``values``."""
        self.ids = set(values)
        self.flush(force=True)

    def flush(self, *, force: bool = False) -> None:
        """Encode the set into STATE when enough was added since the last time (or ``force``)."""
        if not force and len(self._new) * self.REENCODE_SHARE < max(self._base, 500):
            return
        self._state[self._key] = encode(self.ids)
        self._new.clear()
        self._base = len(self.ids)

    def add_all(self, values: t.Iterable[object]) -> None:
        """Add every value of ``values``."""
        for value in values:
            self.add(value)
