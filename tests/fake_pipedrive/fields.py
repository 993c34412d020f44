"""Field definitions (built-in and custom) and custom-field values in the v2 and v1 formats.

Built-in fields are derived from the entity's item schema in openapi.json (plus the optional
``include_fields`` of its list endpoint); custom fields are the hand-picked set below, which
covers every field type and the awkward names a tap must cope with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import spec
from .values import DATE, TIMEZONES, Gen, blank, fmt_time

# entity kind -> (list endpoint whose item schema gives the built-in fields, v2 fields endpoint)
KINDS = {
    "deal": ("v2 /deals", "v2 /dealFields"),
    "person": ("v2 /persons", "v2 /personFields"),
    "organization": ("v2 /organizations", "v2 /organizationFields"),
    "product": ("v2 /products", "v2 /productFields"),
    "activity": ("v2 /activities", "v2 /activityFields"),
    "note": ("v1 /notes", None),
    "lead": ("v1 /leads", None),
    "project": ("v2 /projects", "v2 /projectFields"),  # last: the others keep their ids
}

OPTION_COLORS = ("green", "blue", "red", "yellow", "purple", "gray")

# (name, field_type, option labels). Deals get every type plus the naming traps.
CUSTOM_FIELDS: dict[str, list[tuple]] = {
    "deal": [
        ("Lead source detail", "varchar", None),
        ("Campaign code", "varchar_auto", None),
        ("Internal notes", "text", None),
        ("Seats", "int", None),
        ("Discount rate", "double", None),
        ("Contract value", "monetary", None),
        ("Decision date", "date", None),
        ("Contract period", "daterange", None),
        ("Preferred call time", "time", None),
        ("Meeting window", "timerange", None),
        ("Deal tier", "enum", ("Bronze", "Silver", "Gold", "Platinum")),
        ("Product interest", "set", ("CRM", "Analytics", "Support", "Training", "API access")),
        ("Billing address", "address", None),
        ("Direct line", "phone", None),
        ("Account manager", "user", None),
        ("Champion", "people", None),
        ("Partner organization", "org", None),
        ("Related deal", "deal", None),
        ("Requires legal review", "boolean", None),
        ("Source", "enum", ("Website", "Referral", "Trade show", "Cold call")),
        ("Source", "varchar", None),  # same name as the field above
        ("Größe / Taille", "enum", ("Klein / Petit", "Mittel / Moyen", "Groß / Grand")),
        ("Value", "double", None),  # collides with the built-in "Value"
    ],
    "person": [
        ("LinkedIn profile", "varchar", None),
        ("Customer tier", "enum", ("A", "B", "C")),
        ("Interests", "set", ("Newsletter", "Webinars", "Events", "Product updates")),
        ("Lifetime value", "monetary", None),
        ("Last contacted", "date", None),
        ("NPS score", "int", None),
    ],
    "organization": [
        ("Tax ID", "varchar", None),
        ("Segment", "enum", ("SMB", "Mid-market", "Enterprise")),
        ("Regions", "set", ("EMEA", "Americas", "APAC")),
        ("Credit limit", "monetary", None),
        ("Contract renewal", "date", None),
        ("Locations", "int", None),
        ("Headquarters", "address", None),
    ],
    "product": [
        ("SKU family", "varchar", None),
        ("Product line", "enum", ("Software", "Services", "Hardware")),
        ("Compliance", "set", ("GDPR", "SOC 2", "ISO 27001", "HIPAA")),
        ("List price", "monetary", None),
        ("Launch date", "date", None),
        ("Warranty months", "int", None),
    ],
    "activity": [
        ("Meeting outcome", "enum", ("Positive", "Neutral", "Negative")),
        ("Topics", "set", ("Pricing", "Roadmap", "Support", "Legal")),
        ("Agenda", "varchar", None),
        ("Budget discussed", "monetary", None),
        ("Follow-up date", "date", None),
        ("Attendee count", "int", None),
    ],
    "project": [
        ("Go-live date", "date", None),
        ("Project type", "enum", ("Onboarding", "Migration", "Custom integration")),
        ("Budget", "monetary", None),
        ("Implementation partner", "org", None),
        ("Sites", "int", None),
        ("Risks", "text", None),
    ],
}

ADDRESS_PARTS = (
    ("value", "Address value"), ("street_number", "House number"), ("route", "Street/road name"),
    ("subpremise", "Apartment/suite"), ("sublocality", "District/sublocality"),
    ("locality", "City/town/village/locality"), ("admin_area_level_1", "State/county"),
    ("admin_area_level_2", "Region"), ("country", "Country"), ("postal_code", "ZIP/Postal code"),
    ("formatted_address", "Full/combined address"),
)
# v2 option ids of built-in option fields are strings; label options are ints (label_ids are ints)
BUILTIN_OPTIONS = {  # option id -> label
    "status": {"open": "Open", "won": "Won", "lost": "Lost", "deleted": "Deleted"},
    "visible_to": {"1": "Owner & followers", "3": "Entire company", "5": "Owner's visibility group",
                   "7": "Owner's visibility group and sub-groups"},
}
KIND_OPTIONS = {  # built-in option fields whose options differ for one kind
    ("project", "status"): {"open": "Open", "completed": "Completed", "canceled": "Canceled",
                            "deleted": "Deleted"},
}
LABELS = {
    "deal": ("Hot", "Warm", "Cold", "Upsell", "Renewal"),
    "person": ("Customer", "Prospect", "Partner", "Decision maker"),
    "organization": ("Customer", "Prospect", "Competitor", "Reseller"),
    "project": ("Strategic", "Internal", "Fast track"),
}
REF_TYPES = {
    "owner_id": "user", "creator_user_id": "user", "user_id": "user", "creator_id": "user",
    "last_update_user_id": "user", "person_id": "people", "org_id": "org",
    "organization_id": "org", "deal_id": "deal", "lead_id": "lead", "stage_id": "stage",
    "project_id": "project", "activity_id": "activity", "source_lead_id": "lead",
    "source_deal_id": "deal", "status": "status", "visible_to": "visible_to",
    "board_id": "projects_board", "phase_id": "projects_phase", "deal_ids": "deals",
}


@dataclass
class Field:
    """One field definition; rendered in the v2 or v1 shape on demand."""

    kind: str
    id: int
    code: str
    name: str
    type: str
    custom: bool
    order: int
    add_time: int
    update_time: int
    optional: bool = False
    options: list[dict] | None = None  # [{id, label, color, add_time, update_time}]
    subfields: list[tuple[str, str, str]] | None = None  # (code, name, type)
    description: str = ""
    values_on_update: bool = False  # added by a test: values appear when a record changes

    def option_ids(self) -> list:
        return [o["id"] for o in self.options or ()]

    def option_label(self, option_id: object) -> str | None:
        return next((o["label"] for o in self.options or () if o["id"] == option_id), None)


def field_code(seed: int, kind: str, name: str, n: int) -> str:
    """A 40-char lowercase hex key, stable for the seed (Pipedrive's are random per account)."""
    return hashlib.sha1(f"{seed}:{kind}:{n}:{name}".encode()).hexdigest()  # noqa: S324 - not security


def _subfields(code_type: str, label: str) -> list[tuple[str, str, str]] | None:
    if code_type == "monetary":
        return [("value", f"Amount of {label}", "double"),
                ("currency", f"Currency of {label}", "varchar")]
    if code_type == "address":
        return [(c, f"{n} of {label}", "varchar") for c, n in ADDRESS_PARTS]
    return None


def _builtin_type(name: str, schema: dict) -> str:  # noqa: PLR0911 - a lookup, read top-down
    if name == "value" and schema.get("type") in ("number", "object"):
        return "monetary"
    if name == "label_ids":
        return "set"
    if name in REF_TYPES:
        return REF_TYPES[name]
    if name.endswith(("_time", "_date")) or name == "birthday":
        return "date"
    if name == "phones":
        return "phone"
    if name == "billing_frequency":
        return "billing_frequency"
    if "enum" in schema:
        return "enum"
    kind = schema.get("type")
    if kind == "object" and "route" in schema.get("properties", {}):
        return "address"
    return {"boolean": "boolean", "integer": "int", "number": "double",
            "array": "json", "object": "json"}.get(kind, "varchar")


def _label(code: str) -> str:
    base = code.removesuffix("_ids").removesuffix("_id")
    return base.replace("_", " ").capitalize()


class FieldFactory:
    """Builds the field definitions of one account; option ids are unique across the account."""

    def __init__(self, seed: int, created: int) -> None:
        self.seed = seed
        self.created = created  # when the built-in fields "were created"
        self.next_option_id = 1
        self.next_field_id = 1

    def _options(self, labels: list[str] | dict[str, str], when: int, *,
                 int_ids: bool = True) -> list[dict]:
        """Options with fresh int ids, or (built-in, ``int_ids=False``) string ids: a dict
        maps id -> label, a list uses each label as its own id."""
        out = []
        pairs = labels.items() if isinstance(labels, dict) else zip(labels, labels, strict=True)
        for i, (key, label) in enumerate(pairs):
            oid = self.next_option_id if int_ids else key
            if int_ids:
                self.next_option_id += 1
            out.append({"id": oid, "label": label,
                        "color": OPTION_COLORS[i % len(OPTION_COLORS)] if int_ids else None,
                        "add_time": when if int_ids else None,
                        "update_time": when if int_ids else None})
        return out

    def _field(self, kind: str, code: str, name: str, ftype: str, *, custom: bool,
               when: int, order: int, optional: bool = False, options=None) -> Field:
        fid = self.next_field_id
        self.next_field_id += 1
        return Field(kind=kind, id=fid, code=code, name=name, type=ftype, custom=custom,
                     order=order, add_time=when, update_time=when, optional=optional,
                     options=options, subfields=_subfields(ftype, name),
                     description=f"{name} of the {kind}")

    def builtin(self, kind: str) -> list[Field]:
        """Built-in fields from the item schema (and include_fields) of the entity's list."""
        key = KINDS[kind][0]
        props = dict(spec.props(key))
        props.pop("custom_fields", None)
        include = (spec.param(key, "include_fields") or {}).get("enum", [])
        names = list(props) + [n for n in include if n not in props]
        fields = []
        for order, name in enumerate(names):
            guess = "integer" if name.endswith(("_id", "_count")) else "string"
            schema = props.get(name, {"type": guess})
            ftype = _builtin_type(name, schema)
            options = None
            if (kind, name) in KIND_OPTIONS:
                options = self._options(KIND_OPTIONS[kind, name], self.created, int_ids=False)
            elif name in BUILTIN_OPTIONS and kind != "lead":
                options = self._options(BUILTIN_OPTIONS[name], self.created, int_ids=False)
            elif name == "label_ids" and kind in LABELS:
                options = self._options(LABELS[kind], self.created)
            elif ftype in ("enum", "billing_frequency") and "enum" in schema:
                labels = [str(v) for v in schema["enum"]]
                options = self._options(labels, self.created, int_ids=False)
            fields.append(self._field(kind, name, _label(name) if name != "id" else "ID", ftype,
                                      custom=False, when=self.created, order=order,
                                      optional=name in include, options=options))
        return fields

    def custom(self, kind: str, name: str, ftype: str, labels: list[str] | None = None, *,
               when: int, order: int) -> Field:
        code = field_code(self.seed, kind, name, order)
        options = self._options(labels, when) if labels else None
        return self._field(kind, code, name, ftype, custom=True, when=when, order=order,
                           options=options)

    def for_kind(self, kind: str, when: int) -> list[Field]:
        fields = self.builtin(kind)
        for name, ftype, labels in CUSTOM_FIELDS.get(kind, ()):
            fields.append(self.custom(kind, name, ftype, labels, when=when, order=len(fields)))
        return fields


# ---- rendering -------------------------------------------------------------------------------

def v2_item(f: Field, include: set[str], item_schema: dict, time_fmt: str) -> dict:
    """A field in the v2 ``/{entity}Fields`` shape; settings objects only when requested."""
    out = {
        "field_code": f.code,
        "field_name": f.name,
        "description": f.description,
        "field_type": f.type,
        "options": None if f.options is None else [
            {**o, "add_time": o["add_time"] and fmt_time(o["add_time"], time_fmt),
             "update_time": o["update_time"] and fmt_time(o["update_time"], time_fmt)}
            for o in f.options],
        "subfields": None if f.subfields is None else [
            {"field_code": c, "field_name": n, "field_type": t} for c, n, t in f.subfields],
        "is_custom_field": f.custom,
        "is_optional_response_field": f.optional,
    }
    props = item_schema.get("properties", {})
    for key in ("ui_visibility", "important_fields", "required_fields"):
        if key in include and key in props:
            out[key] = blank(props[key])
            if key == "important_fields":
                out[key]["enabled"] = False
    return out


V1_FLAGS = ("active_flag", "index_visible_flag", "details_visible_flag", "add_visible_flag",
            "bulk_edit_allowed", "filtering_allowed", "sortable_flag")


def v1_item(f: Field, item_schema: dict, time_fmt: str) -> dict:
    """A field in the v1 ``/leadFields`` / ``/noteFields`` shape (key, name, edit_flag, ...)."""
    props = item_schema.get("properties", {})
    out = {
        "id": f.id, "key": f.code, "name": f.name, "order_nr": f.order, "field_type": f.type,
        "add_time": fmt_time(f.add_time, time_fmt),
        "update_time": fmt_time(f.update_time, time_fmt),
        "last_updated_by_user_id": 1, "created_by_user_id": 1, "edit_flag": f.custom,
        "important_flag": False, "searchable_flag": f.type in ("varchar", "text", "phone"),
        "mandatory_flag": f.code == "title", "options_deleted": [], "is_subfield": False,
        **dict.fromkeys(V1_FLAGS, True),
        "options": None if f.options is None else [{"id": o["id"], "label": o["label"]}
                                                   for o in f.options],
    }
    if out["options"] is None and not props.get("options", {}).get("nullable"):
        out["options"] = []  # /noteFields declares a non-nullable options array
    # v1 names a subfield by its own key (k_currency, k_route, ...); simple fields get []
    out["subfields"] = [{"key": f"{f.code}_{c}", "name": n, "field_type": t}
                        for c, n, t in f.subfields or () if c != "value"]
    # keep only documented keys; drop nulls the schema does not allow
    return {k: v for k, v in out.items()
            if k in props and (v is not None or props[k].get("nullable"))}


# ---- values ----------------------------------------------------------------------------------

def _time_value(f: Field, gen: Gen) -> dict:
    rng = gen.rng
    tz_id, tz_name = rng.choice(TIMEZONES)
    hour = rng.randint(7, 16)
    out = {"value": f"{hour:02d}:{rng.choice((0, 15, 30, 45)):02d}:00"}
    if f.type == "timerange":
        out["until"] = f"{hour + 1:02d}:00:00"
    return {**out, "timezone_id": tz_id, "timezone_name": tz_name}


def _daterange_value(gen: Gen, ref: int) -> dict:
    start = ref + gen.rng.randint(-30, 180) * 86400
    end = start + gen.rng.randint(30, 720) * 86400
    return {"value": fmt_time(start, DATE), "until": fmt_time(end, DATE)}


def _set_value(f: Field, gen: Gen) -> list[int]:
    ids = f.option_ids()
    return sorted(gen.rng.sample(ids, gen.rng.randint(1, min(3, len(ids)))))


_REF_POOL = {"user": "users", "people": "persons", "org": "organizations", "deal": "deals"}
# field_type -> value maker(gen, field=, ctx=, ref=); the v2 formats of FACTS §5
_VALUE_MAKERS = {
    "varchar": lambda g, **_: g.words(2).title(),
    "varchar_auto": lambda g, **_: f"CMP-{g.rng.randint(2021, 2026)}-{g.rng.randint(1, 999):03d}",
    "text": lambda g, **_: g.sentence(),
    "phone": lambda g, **_: g.phone(),
    "int": lambda g, **_: g.rng.randint(1, 500),
    "double": lambda g, **_: round(g.rng.uniform(0, 100), 2),
    "boolean": lambda g, **_: g.rng.random() < 0.5,
    "enum": lambda g, field, **_: g.rng.choice(field.option_ids()),
    "set": lambda g, field, **_: _set_value(field, g),
    "monetary": lambda g, ctx, **_: {"value": round(g.rng.uniform(100, 50000), 2),
                                     "currency": g.rng.choice(ctx["currencies"])},
    "date": lambda g, ref, **_: g.date_near(ref, 180),
    "daterange": lambda g, ref, **_: _daterange_value(g, ref),
    "time": lambda g, field, **_: _time_value(field, g),
    "timerange": lambda g, field, **_: _time_value(field, g),
    "address": lambda g, **_: g.address(),
    **{t: (lambda g, ctx, pool=pool, **_: g.rng.choice(ctx[pool]) if ctx[pool] else None)
       for t, pool in _REF_POOL.items()},
}


def random_value(f: Field, gen: Gen, ctx: dict, ref: int) -> object:
    """A custom-field value in the v2 format (FACTS §5). ``ctx`` holds ids to reference."""
    make = _VALUE_MAKERS.get(f.type)
    return make(gen, field=f, ctx=ctx, ref=ref) if make else gen.words(1)


def v1_keys(f: Field, value: object) -> dict:  # noqa: PLR0911 - one return per format
    """The top-level hash keys a v1 object (a lead) carries for one set custom-field value."""
    k, t = f.code, f.type
    if value is None:
        return {}
    if t == "enum":
        return {k: str(value)}
    if t == "set":
        return {k: ",".join(str(v) for v in value)}
    if t == "monetary":
        return {k: value["value"], f"{k}_currency": value["currency"]}
    if t in ("daterange", "timerange"):
        return {k: value["value"], f"{k}_until": value["until"]}
    if t == "time":
        return {k: value["value"]}
    if t == "address":
        parts = {f"{k}_{c}": value[c] for c, _ in ADDRESS_PARTS if c != "value"}
        return {k: value["value"], **parts}
    return {k: value}
