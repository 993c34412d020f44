"""Id sets in STATE: exact, compact, flat in memory, and readable when written by older versions."""

from __future__ import annotations

import base64
import json
import random
import zlib

from tap_pipedrive.idset import IdSet, decode, encode


def _old_format(ids: list[int]) -> str:
    """What the tap wrote before roaring bitmaps: sorted varint differences (``z1:``)."""
    out, previous = bytearray(), 0
    for value in sorted(ids):
        number = value - previous
        while number >= 0x80:
            out.append((number & 0x7F) | 0x80)
            number >>= 7
        out.append(number)
        previous = value
    return "z1:" + base64.b85encode(zlib.compress(bytes(out), 9)).decode()


def test_a_set_survives_state_as_json_exactly():
    rng = random.Random(3)  # noqa: S311 - test data
    ids = set(rng.sample(range(1, 10**7), 5000)) | {0, 2**40 + 7}
    state: dict = {}
    written = IdSet(state, "seen")
    for value in ids:
        written.add(value)
    written.discard(0)
    back = IdSet(json.loads(json.dumps(state)), "seen")
    assert set(back) == ids - {0}
    assert len(back) == len(ids) - 1
    assert 2**40 + 7 in back
    assert 0 not in back


def test_uuids_and_composite_keys_stay_readable_lists():
    state: dict = {}
    keys = IdSet(state, "keys")
    keys.replace([(1, 2), (3, 4), "abc"])
    assert isinstance(state["keys"], list)
    back = IdSet(json.loads(json.dumps(state)), "keys")
    assert set(back) == {(1, 2), (3, 4), "abc"}
    assert back.difference([(1, 2)]) == [(3, 4), "abc"]  # in text order


def test_state_written_by_the_varint_format_is_read():
    ids = [5, 9, 10, 11, 500_000]
    state = {"seen": _old_format(ids), "seen_new": [12], "seen_gone": [9]}
    assert sorted(IdSet(state, "seen")) == [5, 10, 11, 12, 500_000]


def test_ids_in_sequence_cost_well_under_a_byte_each_and_scattered_ones_about_two():
    dense = list(range(1, 100_001))
    rng = random.Random(5)  # noqa: S311 - test data
    scattered = rng.sample(range(1, 2_000_000), 100_000)  # a twentieth of the id space
    assert len(encode(dense)) < 1000  # a hundredth of a byte an id
    assert len(encode(scattered)) < 1.2 * len(scattered)
    assert set(decode(encode(scattered))) == set(scattered)


def test_difference_is_what_was_written_and_is_no_longer_listed():
    state: dict = {}
    seen = IdSet(state, "seen")
    seen.add_all(range(1, 1001))
    assert seen.difference(range(2, 1000)) == [1, 1000]
