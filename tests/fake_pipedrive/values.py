"""Deterministic realistic values: names, companies, addresses, timestamps, and a schema filler.

Record builders in ``account.py`` set the fields that carry meaning (ids, relations, times,
status); ``complete()`` then fills every other documented field from the item schema in
``openapi.json``, by field name where the name is known and by type otherwise. That keeps every
documented field present without hand-typed field lists.
"""

from __future__ import annotations

import calendar
import copy
import random
import time
import unicodedata
import uuid

FIRST_NAMES = (
    "Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hannah", "Isabel", "Jonas",
    "Kai", "Laura", "Mateo", "Nina", "Oliver", "Priya", "Quentin", "Rosa", "Søren", "Tomás",
    "Ursula", "Viktor", "Wen", "Xavier", "Yuki", "Zoë", "Łukasz", "Aïcha", "Björn", "Carmen",
)
LAST_NAMES = (
    "Andersen", "Brown", "Castillo", "Dubois", "Eriksson", "Fischer", "García", "Hughes",
    "Ivanova", "Jensen", "Kowalski", "Lambert", "Müller", "Nakamura", "O'Brien", "Patel",
    "Rossi", "Schmidt", "Tamm", "Ušakov", "Virtanen", "Weber", "Yilmaz", "Zhang", "Kask",
)
COMPANY_STEMS = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Wonka", "Tyrell",
    "Cyberdyne", "Aperture", "Nordwind", "Bäckerei Köhler", "Blue Harbor", "Stellar", "Polaris",
    "Greenfield", "Redwood", "Silverline", "Brightwave", "Northstar", "Evergreen", "Falcon",
    "Quantum", "Summit", "Pinecrest", "Ironclad", "Lumen", "Orbital", "Tallinn Tech",
)
COMPANY_SUFFIXES = (
    "Inc", "GmbH", "Ltd", "Labs", "Systems", "Logistics", "Foods", "Consulting", "AS", "Oy",
    "SARL", "Group", "Partners", "Holdings", "Studio",
)
CITIES = (  # locality, admin area, country, postal code pattern
    ("Tallinn", "Harju maakond", "Estonia", "1{:04d}"),
    ("Berlin", "Berlin", "Germany", "1{:04d}"),
    ("Paris", "Île-de-France", "France", "75{:03d}"),
    ("London", "England", "United Kingdom", "EC{:d}A 1BB"),
    ("New York", "New York", "United States", "10{:03d}"),
    ("Austin", "Texas", "United States", "78{:03d}"),
    ("Lisbon", "Lisboa", "Portugal", "1{:03d}-001"),
    ("Zürich", "Zürich", "Switzerland", "8{:03d}"),
    ("São Paulo", "São Paulo", "Brazil", "01{:03d}-000"),
    ("Tokyo", "Tokyo", "Japan", "100-{:04d}"),
)
STREETS = (
    "Main Street", "Market Street", "Narva mnt", "Friedrichstraße", "Rue de Rivoli",
    "Baker Street", "Avenida da Liberdade", "Bahnhofstrasse", "Oak Avenue", "Harbour Road",
)
PRODUCT_NAMES = (
    "CRM Seat", "Analytics Add-on", "Onboarding Package", "Premium Support", "API Access",
    "Training Workshop", "Data Migration", "Mobile License", "Integration Kit", "Consulting Day",
    "Hardware Bundle", "Cloud Storage 1 TB", "Security Audit", "Custom Report", "SLA Upgrade",
)
WORDS = (
    "quarterly", "renewal", "pilot", "expansion", "enterprise", "follow-up", "pricing", "demo",
    "contract", "proposal", "budget", "integration", "rollout", "feedback", "kickoff", "review",
    "migration", "workshop", "upsell", "onboarding", "security", "timeline", "stakeholder",
)
TIMEZONES = ((318, "Europe/London"), (372, "Europe/Tallinn"), (355, "Europe/Berlin"),
             (139, "America/New_York"), (269, "Asia/Tokyo"))

V2_TIME = "%Y-%m-%dT%H:%M:%SZ"
V1_TIME = "%Y-%m-%d %H:%M:%S"
LEAD_TIME = "%Y-%m-%dT%H:%M:%S.000Z"
DATE = "%Y-%m-%d"
DAY = 86400


_TIME_PARTS = {V2_TIME: ("T", "Z"), V1_TIME: (" ", ""), LEAD_TIME: ("T", ".000Z")}
_DAYS: dict[int, str] = {}
_TWO = [f"{i:02d}" for i in range(60)]


def fmt_time(epoch: int, pattern: str) -> str:
    """Format a UTC epoch second with one of the patterns above (or any strftime pattern).

    The API formats are assembled from a per-day cache: the demo account formats ~65k stamps.
    """
    epoch = int(epoch)
    day, sec = divmod(epoch, DAY)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = time.strftime(DATE, time.gmtime(day * DAY))
    if pattern == DATE:
        return date
    parts = _TIME_PARTS.get(pattern)
    if parts is None:
        return time.strftime(pattern, time.gmtime(epoch))
    hour, rest = divmod(sec, 3600)
    minute, second = divmod(rest, 60)
    return date + parts[0] + _TWO[hour] + ":" + _TWO[minute] + ":" + _TWO[second] + parts[1]


def epoch(*ymd_hms: int) -> int:
    """UTC epoch seconds of ``epoch(year, month, day[, hour, minute, second])``."""
    parts = (*ymd_hms, 0, 0, 0)[:6]
    return calendar.timegm((*parts, 0, 0, 0))


def epoch_of(text: str) -> int:
    """Epoch seconds of an account timestamp in any API format (``2025-01-31T10:20:00Z``,
    ``2025-01-31 10:20:00``, ``….000Z``) or of a date (its midnight)."""
    return epoch(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13] or 0),
                 int(text[14:16] or 0), int(text[17:19] or 0))


def ascii_fold(text: str) -> str:
    """Drop accents so names can go into e-mail addresses and URLs."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


class FastRandom(random.Random):
    """``random.Random`` with float-based choice/randint: 3-4x faster, still seeded and stable.

    Generating the demo account makes a few hundred thousand such calls; the stdlib versions
    draw exact unbiased integers, which nobody needs for fake CRM data.
    """

    def choice(self, seq):
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))


class Gen:
    """Realistic values drawn from one seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def person(self) -> tuple[str, str]:
        return self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)

    def company(self) -> str:
        return f"{self.rng.choice(COMPANY_STEMS)} {self.rng.choice(COMPANY_SUFFIXES)}"

    def domain(self, company: str) -> str:
        first_word = ascii_fold(company.split(maxsplit=1)[0])
        stem = "".join(c for c in first_word if c.isalnum()) or "example"
        return f"{stem}.example.com"

    def email(self, first: str, last: str, domain: str = "example.com") -> str:
        local = "".join(c for c in ascii_fold(f"{first}.{last}") if c.isalnum() or c == ".")
        return f"{local}@{domain}"

    def phone(self) -> str:
        rng = self.rng
        country = rng.choice((1, 33, 44, 49, 372))
        return f"+{country} {rng.randint(200, 999)} {rng.randint(1000, 9999)}"

    def words(self, n: int = 3) -> str:
        return " ".join(self.rng.choices(WORDS, k=n))

    def sentence(self) -> str:
        return f"{self.words(self.rng.randint(4, 9)).capitalize()}."

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hexid(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def address(self) -> dict:
        """A v2 address object (the same keys as a Pipedrive address field's subfields)."""
        locality, area, country, postal = self.rng.choice(CITIES)
        number = str(self.rng.randint(1, 180))
        route = self.rng.choice(STREETS)
        postal_code = postal.format(self.rng.randint(1, 999))
        formatted = f"{route} {number}, {postal_code} {locality}, {country}"
        return {
            "value": formatted, "street_number": number, "route": route, "subpremise": "",
            "sublocality": "", "locality": locality, "admin_area_level_1": area,
            "admin_area_level_2": "", "country": country, "postal_code": postal_code,
            "formatted_address": formatted,
        }

    def date_near(self, ref: int, days: int = 365) -> str:
        return fmt_time(ref + self.rng.randint(-days, days) * DAY, DATE)

    def between(self, lo: int, hi: int) -> int:
        return lo if hi <= lo else self.rng.randint(lo, hi)


# Values for documented fields that no builder sets, chosen by field name.
_BY_NAME = {
    "cc_email": lambda g: f"demo-company+{g.hexid(6)}@pipedrivemail.com",
    "origin": lambda g: g.rng.choice(("ManuallyCreated", "Import", "API", "WebForms")),
    "origin_id": lambda _: None,
    "channel": lambda g: g.rng.choice((None, None, 1, 52)),
    "channel_id": lambda g: g.rng.choice((None, None, "Jun23 Billboards")),
    "description": lambda g: g.sentence(),
    "note": lambda g: g.sentence(),
    "notes": lambda g: g.sentence(),
    "public_description": lambda g: g.sentence(),
    "comments": lambda g: g.sentence(),
    "url": lambda g: f"https://files.example.com/{g.hexid(12)}",
    "icon_url": lambda g: f"https://cdn.example.com/avatars/{g.hexid(10)}.png",
    "website": lambda g: f"https://www.{g.hexid(6)}.example.com",
    "linkedin": lambda g: f"https://www.linkedin.com/company/{g.hexid(6)}",
    "job_title": lambda g: g.rng.choice(("CEO", "CTO", "Head of Sales", "Buyer", "Engineer")),
    "birthday": lambda g: fmt_time(epoch(g.rng.randint(1960, 2000), 1, 1)
                                   + g.rng.randint(0, 364) * DAY, DATE),
    "color": lambda g: g.rng.choice(("blue", "green", "red", "yellow", "purple")),
    "currency": lambda _: "EUR",
    "lost_reason": lambda _: None,
    "probability": lambda _: None,
    "source_lead_id": lambda _: None,
    "project_id": lambda _: None,
    "priority": lambda g: g.rng.choice((0, 1, 2)),
    "acv": lambda _: None,
    "arr": lambda _: None,
    "mrr": lambda _: None,
}


def blank(schema: dict) -> object:
    """A neutral value of a schema (for settings objects such as ``ui_visibility``)."""
    kind = schema.get("type")
    if schema.get("nullable") and kind not in ("object", "array", "boolean"):
        return None
    if kind == "object":
        return {k: blank(s) for k, s in schema.get("properties", {}).items()}
    return {"array": [], "boolean": True, "integer": 0, "number": 0, "string": ""}.get(kind)


def typed_value(  # noqa: PLR0911 - a flat type switch
    gen: Gen, name: str, schema: dict, ref: int, time_fmt: str = V1_TIME,
) -> object:
    """A type-correct value for one documented field, by name where known, else by type.

    ``ref`` is the record's add time and ``time_fmt`` its API's timestamp format.
    """
    if name in _BY_NAME:
        value = _BY_NAME[name](gen)
        if value is not None or schema.get("nullable"):
            return value
    if "enum" in schema:
        return gen.rng.choice(schema["enum"])
    if "oneOf" in schema or "anyOf" in schema:
        return typed_value(gen, name, (schema.get("oneOf") or schema["anyOf"])[0], ref, time_fmt)
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "string":
        if fmt == "date" or name.endswith("_date"):
            return gen.date_near(ref)
        if fmt == "uuid":
            return gen.uuid()
        if fmt == "date-time" or name.endswith("_time"):
            return fmt_time(ref, time_fmt)
        return gen.words(2)
    if kind == "integer":
        return gen.rng.randint(0, 20)
    if kind == "number":
        return round(gen.rng.uniform(0, 1000), 2)
    if kind == "boolean":
        return gen.rng.random() < 0.3
    if kind == "array":
        items = schema.get("items", {})
        if items.get("type") == "object":
            return [typed_value(gen, name, items, ref, time_fmt)]
        return []
    if kind == "object":
        return complete({}, schema.get("properties", {}), gen, ref, time_fmt)
    return None


def like_example(  # noqa: PLR0911 - a flat type switch
    gen: Gen, name: str, sample: object, ref: int, time_fmt: str = V1_TIME,
) -> object:
    """A value of the same type as ``sample`` (an example value for a key the schema omits)."""
    if sample is None or isinstance(sample, (dict, list)):
        return copy.deepcopy(sample)  # null stays null; objects keep the example's shape
    if isinstance(sample, bool):
        return gen.rng.random() < 0.3
    if isinstance(sample, int):
        return gen.rng.randint(1, 20)
    if isinstance(sample, float):
        return round(gen.rng.uniform(0, 1000), 2)
    text = str(sample)
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        return gen.date_near(ref)
    if text[:4].isdigit() and text[4:5] == "-" and len(text) >= 19:
        return fmt_time(ref, time_fmt)
    return typed_value(gen, name, {"type": "string"}, ref, time_fmt)


def complete(record: dict, properties: dict, gen: Gen, ref: int, time_fmt: str = V1_TIME) -> dict:
    """Add every documented field missing from ``record`` (in place) and return it."""
    for name, schema in properties.items():
        if name not in record:
            record[name] = typed_value(gen, name, schema, ref, time_fmt)
    return record
