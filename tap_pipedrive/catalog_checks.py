"""Checking a ``--catalog`` before the first request: a Singer catalog that selects this tap's streams.

The SDK skips a catalog entry whose ``tap_stream_id`` the tap does not have, silently; here
each selected one is named (with the closest stream name), and a catalog that selects none
of the tap's streams stops the run.
"""

from __future__ import annotations

import logging
import typing as t

from singer_sdk.singerlib import Catalog

from tap_pipedrive.errors import InputError, did_you_mean, json_kind, one_line
from tap_pipedrive.streams import STREAMS

if t.TYPE_CHECKING:
    from collections.abc import Sequence

    from tap_pipedrive.streams import StreamDef

LOGGER = logging.getLogger("tap-pipedrive")


def checked_catalog(
    value: object, source: str, *, streams: Sequence[StreamDef] = STREAMS
) -> dict[str, t.Any]:
    """The catalog to sync with; ``source`` names the file in messages (``catalog file 'x'``).

    Raises:
        InputError: it is not a Singer catalog, or it selects streams but none of this tap's.
    """
    if not isinstance(value, dict):
        kind = json_kind(value)
        raise InputError(f"{source} is not a Singer catalog: it must be a JSON object, not {kind}")
    if not isinstance(value.get("streams"), list):
        what = f"'streams' as {json_kind(value['streams'])}" if "streams" in value else "no 'streams' list"
        raise InputError(
            f"{source} is not a Singer catalog: it has {what} (tap-pipedrive --discover prints a catalog)"
        )
    try:
        catalog = Catalog.from_dict(value)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        detail = f"an entry has no {exc}" if isinstance(exc, KeyError) else one_line(str(exc), 80)
        raise InputError(f"{source} is not a Singer catalog: {detail}") from None
    names = [d.name for d in streams]
    selected = [
        entry.tap_stream_id for entry in catalog.streams if entry.metadata.resolve_selection().get((), True)
    ]
    unknown = [name for name in selected if name not in names]
    for name in unknown:
        LOGGER.warning(
            "%s selects '%s', which tap-pipedrive does not have%s: it is skipped",
            source, one_line(str(name), 60), did_you_mean(str(name), names),
        )
    if unknown and len(unknown) == len(selected):
        listed = one_line(", ".join(map(str, unknown)), 80)
        raise InputError(f"{source} selects no stream of tap-pipedrive (only {listed})")
    if not selected:
        LOGGER.warning("%s selects no stream: nothing is synced", source)
    return value
