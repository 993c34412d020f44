"""Column names for custom fields: snake_case of the field's name, unique within a stream.

Names are stable: a new field never renames an old one, and ``custom_field_names`` pins a
column for good (see :func:`column_names`).
"""

from __future__ import annotations

import re
import typing as t
import unicodedata

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_pipedrive.custom_fields.definition import CustomField

#: Latin letters that Unicode does not decompose into an ASCII letter plus accents.
_TRANSLITERATE = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
        "þ": "th",
        "Þ": "TH",
        "ð": "d",
        "Ð": "D",
        "ı": "i",  # noqa: RUF001 - the dotless i is the point
    }
)


def snake_case(name: str) -> str:
    """``Deal source`` → ``deal_source``; ``Größe / Taille`` → ``grosse_taille``.

    Letters are transliterated to ASCII where Unicode allows; a name with nothing left
    (e.g. only CJK characters) gives an empty string.
    """
    text = name.translate(_TRANSLITERATE)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def column_names(
    fields: list[CustomField],
    *,
    reserved: set[str],
    pins: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Field code → column name, unique within the stream.

    Pinned names win. A name equal to a standard field gets ``_custom``; fields that share a
    name get ``_2``, ``_3``… in the order Pipedrive lists them (creation order), so adding a
    field never renames an existing one.
    """
    pins = pins or {}
    taken = set(reserved)
    names: dict[str, str] = {}
    for f in fields:
        if f.code in pins:
            names[f.code] = pins[f.code]
            taken.add(pins[f.code])
    for f in fields:
        if f.code in names:
            continue
        base = snake_case(f.name) or f"custom_{f.code[:8]}"
        if base[0].isdigit():
            base = f"_{base}"
        if base in reserved:
            base = f"{base}_custom"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        names[f.code] = name
        taken.add(name)
    return names
