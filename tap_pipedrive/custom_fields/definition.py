"""One custom field's definition, read from Pipedrive's Fields API (v1 or v2)."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from tap_pipedrive.custom_fields.types import Options, Schema, field_type


@dataclass(frozen=True)
class CustomField:
    """A custom field: its code, name, type, option labels and subfields."""

    code: str
    name: str
    field_type: str
    options: dict[object, object] = field(default_factory=dict)  # option id -> label
    subfields: tuple[str, ...] = ()

    @classmethod
    def from_v2(cls, definition: t.Mapping[str, t.Any]) -> CustomField:
        """From a v2 Fields API item."""
        return cls(
            code=definition["field_code"],
            name=definition.get("field_name") or definition["field_code"],
            field_type=definition.get("field_type") or "varchar",
            options={o.get("id"): o.get("label") for o in definition.get("options") or ()},
            subfields=tuple(
                s.get("field_code") for s in definition.get("subfields") or () if s.get("field_code")
            ),
        )

    @classmethod
    def from_v1(cls, definition: t.Mapping[str, t.Any]) -> CustomField:
        """From a v1 Fields API item (``key``, ``name``, ``field_type``)."""
        return cls(
            code=definition["key"],
            name=definition.get("name") or definition["key"],
            field_type=definition.get("field_type") or "varchar",
            options={o.get("id"): o.get("label") for o in definition.get("options") or ()},
        )

    @property
    def _options(self) -> Options:
        return Options(labels=self.options, subfields=self.subfields)

    def describe(self) -> str:
        """The column description (which also records the field code)."""
        return f"Custom field '{self.name}' ({self.field_type}); Pipedrive field code {self.code}"

    def schema(self) -> Schema:
        """The JSON schema of the typed column."""
        return {"description": self.describe(), **field_type(self.field_type).schema(self._options)}

    def convert(self, value: object) -> object:
        """A v2-format value → its typed (and, for options, labelled) form."""
        return self.converter()(value)

    def converter(self) -> t.Callable[[object], object]:
        """:meth:`convert` with the type and options looked up once (for every record of a run)."""
        kind, options = field_type(self.field_type), self._options

        def convert(value: object) -> object:
            return None if value is None else kind.convert(value, options)

        return convert

    def from_v1_record(self, record: dict[str, t.Any]) -> object:
        """Read this field's value (and its companion keys) off a v1 record, removing them."""
        prefix = self.code + "_"
        return self.from_v1_keys(record, [k for k in record if k.startswith(prefix)])

    def from_v1_keys(self, record: dict[str, t.Any], keys: list[str]) -> object:
        """:meth:`from_v1_record` when the companion keys (``<code>_<suffix>``) are known."""
        raw = record.pop(self.code, None)
        start = len(self.code) + 1
        companions = {key[start:]: record.pop(key) for key in keys}
        if raw is None and not any(v is not None for v in companions.values()):
            return None
        return field_type(self.field_type).from_v1(raw, companions)

    def v1_raw_keys(self) -> dict[str, Schema]:
        """The top-level keys a v1 record uses for this field, for the raw schema."""
        keys: dict[str, Schema] = {self.code: {"description": self.describe()}}
        for suffix in field_type(self.field_type).v1_companions:
            keys[f"{self.code}_{suffix}"] = {}
        return keys
