"""A deterministic Pipedrive company account: generated data, a controllable clock, mutations.

Records are stored in the shape their API returns them (v2 objects for deals, persons, ...; v1
objects for notes, leads, ...), with timestamps already formatted. Within one table all
timestamps share a format whose string order is time order, so filters and sorts compare
strings. Entity names are the tap's stream names; ``deals``/``archived_deals`` and
``leads``/``archived_leads`` are two views of one table each.
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
from collections import Counter

from . import fields as fdefs
from . import render, spec
from .admin import Admin
from .deal_extras import HISTORY_SLOTS, DealExtras
from .fields import Field, FieldFactory
from .mail import Mailbox
from .projects import Projects
from .values import (
    DATE,
    DAY,
    LEAD_TIME,
    PRODUCT_NAMES,
    V1_TIME,
    V2_TIME,
    WORDS,
    FastRandom,
    Gen,
    complete,
    epoch,
    fmt_time,
    like_example,
)

# The company an account belongs to unless told otherwise (id, subdomain, name).
DEFAULT_COMPANY = (7_654_321, "demo-company", "Demo Company OÜ")
# The default clock: a fixed instant after all generated data.
NOW0 = epoch(2026, 1, 15, 12, 0, 0)
HISTORY = 3 * 365 * DAY
# Seconds shared by many records (a bulk edit / import touches them all in the same second).
SHARED_SECOND = {
    "deals": (epoch(2025, 7, 1, 9, 30, 0), 0.12),
    "persons": (epoch(2025, 3, 3, 8, 0, 0), 0.04),
    "organizations": (epoch(2024, 11, 12, 14, 0, 0), 0.05),
    "activities": (epoch(2025, 9, 9, 7, 15, 0), 0.02),
    "notes": (epoch(2025, 10, 1, 10, 0, 0), 0.03),
    "leads": (epoch(2025, 5, 5, 5, 5, 5), 0.05),
    "products": (epoch(2025, 1, 20, 16, 45, 0), 0.10),
}
# Pipedrive keeps a deleted deal, person, organization, activity, product or file for 30 days
# (then purges it for good): status=deleted lists deals deleted up to 30 days ago, and the
# single GET answers such records (is_deleted / active_flag false) until then, then 404.
DELETED_RETENTION = 30 * DAY
DELETED_DEAL_RETENTION = DELETED_RETENTION
SOFT_DELETED = frozenset({"persons", "organizations", "activities", "products"})  # is_deleted

SIZES = {
    "small": {
        "deals": 40, "deleted_deals": 4, "archived_deals": 6, "persons": 30, "organizations": 15,
        "activities": 50, "products": 12, "pipelines": 2, "stages": 10, "deal_products": None,
        "notes": 25, "leads": 15, "archived_leads": 4, "users": 4, "lead_labels": 4,
        "filters": 5, "activity_types": 6, "currencies": 8, "files": 12, "call_logs": 10,
        # None: the natural share of the parents (most deals without installments...)
        "deal_followers": None, "deal_participants": None, "deal_installments": None,
        "product_variations": None, "projects": 6, "archived_projects": 2, "deleted_projects": 1,
        "tasks": None, "boards": 2, "phases": 6, "project_templates": 2, "goals": 8, "roles": 4,
        "permission_sets": 8, "lead_sources": 10, "mail_threads": 8, "mail_messages": None,
    },
    "demo": {
        "deals": 3000, "deleted_deals": 60, "archived_deals": 150, "persons": 2500,
        "organizations": 800, "activities": 5000, "products": 200, "pipelines": 2, "stages": 10,
        "deal_products": None, "notes": 1500, "leads": 400, "archived_leads": 50, "users": 12,
        "lead_labels": 6, "filters": 20, "activity_types": 8, "currencies": 10, "files": 300,
        "call_logs": 200,
        "deal_followers": None, "deal_participants": None, "deal_installments": None,
        "product_variations": None, "projects": 60, "archived_projects": 15,
        "deleted_projects": 5, "tasks": None, "boards": 3, "phases": 12, "project_templates": 5,
        "goals": 30, "roles": 7, "permission_sets": 10, "lead_sources": 10, "mail_threads": 300,
        "mail_messages": None,
    },
}

# entity (stream name) -> storage table
TABLE_OF = {
    "deals": "deals", "archived_deals": "deals", "persons": "persons",
    "organizations": "organizations", "activities": "activities", "products": "products",
    "pipelines": "pipelines", "stages": "stages", "deal_products": "deal_products",
    "notes": "notes", "leads": "leads", "archived_leads": "leads", "users": "users",
    "lead_labels": "lead_labels", "filters": "filters", "activity_types": "activity_types",
    "currencies": "currencies", "files": "files", "call_logs": "call_logs",
    "deal_changes": "deal_changes", "deal_participants": "deal_participants",
    "deal_followers": "deal_followers", "deal_installments": "deal_installments",
    "product_variations": "product_variations", "projects": "projects",
    "archived_projects": "projects", "tasks": "tasks", "boards": "boards", "phases": "phases",
    "project_templates": "project_templates", "goals": "goals", "roles": "roles",
    "role_assignments": "role_assignments", "permission_sets": "permission_sets",
    "permission_set_assignments": "permission_set_assignments", "lead_sources": "lead_sources",
    "mail_threads": "mail_threads", "mail_messages": "mail_messages",
}
# table -> the endpoint whose item schema documents its records
SPEC_OF = {
    "deals": "v2 /deals", "persons": "v2 /persons", "organizations": "v2 /organizations",
    "activities": "v2 /activities", "products": "v2 /products", "pipelines": "v2 /pipelines",
    "stages": "v2 /stages", "deal_products": "v2 /deals/products", "notes": "v1 /notes",
    "leads": "v1 /leads", "users": "v1 /users", "lead_labels": "v1 /leadLabels",
    "filters": "v1 /filters", "activity_types": "v1 /activityTypes",
    "currencies": "v1 /currencies", "files": "v1 /files", "call_logs": "v1 /callLogs",
    "deal_changes": "v1 /deals/{id}/flow", "deal_participants": "v1 /deals/{id}/participants",
    "deal_followers": "v2 /deals/{id}/followers", "deal_installments": "v2 /deals/installments",
    "product_variations": "v2 /products/{id}/variations", "projects": "v2 /projects",
    "tasks": "v2 /tasks", "boards": "v2 /boards", "phases": "v2 /phases",
    "project_templates": "v2 /projectTemplates", "goals": "v1 /goals/find", "roles": "v1 /roles",
    "role_assignments": "v1 /roles/{id}/assignments", "permission_sets": "v1 /permissionSets",
    "permission_set_assignments": "v1 /permissionSets/{id}/assignments",
    "lead_sources": "v1 /leadSources", "mail_threads": "v1 /mailbox/mailThreads",
    "mail_messages": "v1 /mailbox/mailThreads/{id}/mailMessages",
}
V2_TABLES = {"deals", "persons", "organizations", "activities", "products", "pipelines",
             "stages", "deal_products"}
# v2 objects use RFC 3339; the leads API ISO 8601 with milliseconds; the rest of v1 "Y-m-d H:M:S"
TIME_FORMATS = {t: V2_TIME if t in V2_TABLES else LEAD_TIME if t in ("leads", "lead_labels")
                else V1_TIME for t in SPEC_OF}
# the projects API and the mailbox write milliseconds; the rest of v2 plain seconds
TIME_FORMATS.update(dict.fromkeys(("projects", "tasks", "boards", "phases", "project_templates",
                                   "mail_threads", "mail_messages"), LEAD_TIME))
TIME_FORMATS.update(dict.fromkeys(("deal_followers", "deal_installments", "product_variations"),
                                  V2_TIME))
# tables keyed by more than an id (what ids() returns for them)
ROW_KEYS = {"deal_followers": ("deal_id", "user_id"), "role_assignments": ("role_id", "user_id"),
            "permission_set_assignments": ("permission_set_id", "user_id")}
# table -> (the field naming its parent, the parent's table, the builder's argument)
PARENT_ARGS = {"deal_products": ("deal_id", "deals", "deal"),
               "deal_followers": ("deal_id", "deals", "deal"),
               "deal_participants": ("deal_id", "deals", "deal"),
               "deal_installments": ("deal_id", "deals", "deal"),
               "product_variations": ("product_id", "products", "product"),
               "tasks": ("project_id", "projects", "project")}
# records whose list shows them only while their deal / product / thread is answered
CHILD_OF = {"deal_changes": "deals", "deal_participants": "deals", "deal_followers": "deals",
            "deal_installments": "deals", "deal_products": "deals",
            "product_variations": "products"}
FIELD_KIND = {
    "deal_fields": "deal", "person_fields": "person", "organization_fields": "organization",
    "product_fields": "product", "activity_fields": "activity", "note_fields": "note",
    "lead_fields": "lead", "project_fields": "project",
}
CUSTOM_TABLE = {"deal": "deals", "person": "persons", "organization": "organizations",
                "product": "products", "activity": "activities", "lead": "leads",
                "project": "projects"}
UPDATE_KEY = {"users": "modified"}  # tables whose "last changed" key is not update_time
NO_UPDATE_KEY = {"currencies", "call_logs", "deal_changes", "deal_participants",
                 "deal_followers", "deal_installments", "product_variations", "goals", "roles",
                 "role_assignments", "permission_sets", "permission_set_assignments",
                 "lead_sources"}


def row_key(table: str, row: dict) -> object:
    """The key a table stores a record under: its id, a dealChange's ``data.id``, a lead
    source's name, or (parent id, user id) for followers and assignments."""
    names = ROW_KEYS.get(table)
    if names:
        return row[names[0]], row[names[1]]
    if table == "deal_changes":
        return row["data"]["id"]
    return row["name"] if table == "lead_sources" else row["id"]

CURRENCIES = (
    ("EUR", "Euro", "€", 2), ("USD", "US Dollar", "$", 2), ("GBP", "British Pound", "£", 2),
    ("SEK", "Swedish Krona", "kr", 2), ("JPY", "Japanese Yen", "¥", 0),
    ("CHF", "Swiss Franc", "CHF", 2), ("BRL", "Brazilian Real", "R$", 2),
    ("NOK", "Norwegian Krone", "kr", 2), ("PLN", "Polish Złoty", "zł", 2),
    ("CAD", "Canadian Dollar", "$", 2), ("AUD", "Australian Dollar", "$", 2),
    ("DKK", "Danish Krone", "kr", 2),
)
ACTIVITY_TYPES = (  # name, key_string, icon_key, is_custom
    ("Call", "call", "call", False), ("Meeting", "meeting", "meeting", False),
    ("Task", "task", "task", False), ("Deadline", "deadline", "deadline", False),
    ("Email", "email", "email", False), ("Lunch", "lunch", "lunch", False),
    ("Product demo", "product_demo", "presentation", True),
    ("Site visit", "site_visit", "car", True),
)
LEAD_LABELS = (("Hot", "red"), ("Warm", "orange"), ("Cold", "blue"), ("Partner", "purple"),
               ("Inbound", "green"), ("Event", "yellow"))
PIPELINES = ("Sales pipeline", "Partnerships", "Renewals", "Enterprise")
STAGES = ("Qualified", "Contact made", "Demo scheduled", "Proposal made", "Negotiations started",
          "Contract sent", "Verbal yes")
FILE_NAMES = ("Proposal.pdf", "Contract signed.pdf", "Pricing 2025.xlsx", "Meeting notes.docx",
              "Logo.png", "Angebot Müller.pdf", "NDA.pdf", "Requirements.docx")
FILE_TYPES = {"pdf": "pdf", "xlsx": "xls", "docx": "doc", "png": "img"}  # extension -> file_type
FILTER_TYPES = ("deals", "leads", "org", "people", "products", "activity")
LOST_REASONS = ("Price too high", "Went with competitor", "No budget")


class Account(DealExtras, Projects, Admin, Mailbox):
    """One company's data. Thread-safe: every public method holds ``self.lock``."""

    def __init__(self, seed: int = 7, size: str = "small", counts: dict | None = None, *,
                 company_id: int = DEFAULT_COMPANY[0], company_domain: str | None = None) -> None:
        if size not in SIZES:
            msg = f"size must be one of {sorted(SIZES)}"
            raise ValueError(msg)
        unknown = set(counts or ()) - set(SIZES[size])
        if unknown:
            msg = f"unknown counts keys: {sorted(unknown)}"
            raise ValueError(msg)
        self.seed = seed
        self.size = size
        # Accounts of several companies may share a seed (and so their record ids): what tells
        # them apart is the company, in /users/me and wherever a record names it.
        self.company_id, self.company_domain, self.company_name = DEFAULT_COMPANY
        self._rewrites: tuple = ()
        self._set_company_fields(company_id, company_domain)
        self.counts = dict(SIZES[size])
        if counts:
            # Overriding an entity's count means "exactly this many": its deleted sub-population
            # is then 0 unless also given, so ids("deals") has exactly counts["deals"] entries.
            if "deals" in counts and "deleted_deals" not in counts:
                self.counts["deleted_deals"] = 0
            if "projects" in counts and "deleted_projects" not in counts:
                self.counts["deleted_projects"] = 0
            self.counts.update(counts)
        self.counts["users"] = max(1, self.counts["users"])
        self.counts["pipelines"] = max(1, self.counts["pipelines"])
        self.counts["stages"] = max(self.counts["pipelines"], self.counts["stages"])
        self.lock = threading.RLock()
        self._now = NOW0
        self._tables: dict[str, dict] = {t: {} for t in SPEC_OF}
        self._fields: dict[str, list[Field]] = {}
        self._leftovers: dict[str, tuple[dict, dict]] = {}
        self._xgens: dict[str, Gen] = {}
        self._mut_gen = Gen(FastRandom(f"{seed}:mutations"))
        self._deal_ids_pool: list[int] = []
        self._hidden: dict[str, set] = {}  # table -> keys the token's user may not see
        self._history_done: set[int] = set()  # deals whose generated history exists
        self._changes_of: dict[int, list[dict]] = {}  # deal id -> its dealChange rows
        self._generated_deals = 0
        self._change_serial = 0  # ids of dealChange rows logged by mutations
        self._party_serial = 0  # ids of mail parties
        self._version = 0
        self._invalidate()
        # ~60k dicts with no reference cycles: the cyclic GC would only rescan them repeatedly
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._generate()
        finally:
            if gc_was_enabled:
                gc.enable()
        self._deal_ids_pool = []
        self._generated_deals = max(self._tables["deals"], default=0)
        self._change_serial = (self._generated_deals + 1) * HISTORY_SLOTS
        self._invalidate()

    @property
    def me_id(self) -> int:
        """The id of the token's user (``is_you``)."""
        return next((u["id"] for u in self._tables["users"].values() if u["is_you"]), 1)

    @staticmethod
    def _bulk_second(table: str) -> str | None:
        """The second a bulk edit stamped on many records of a table, formatted."""
        if table not in SHARED_SECOND:
            return None
        return fmt_time(SHARED_SECOND[table][0], TIME_FORMATS[table])

    @staticmethod
    def _key(table: str, row: dict) -> object:
        return row_key(table, row)

    # ---- company ---------------------------------------------------------------------------

    def _set_company_fields(self, company_id: int, company_domain: str | None) -> tuple[int, str]:
        domain = company_domain or (DEFAULT_COMPANY[1] if company_id == DEFAULT_COMPANY[0]
                                    else f"company-{company_id}")
        name = DEFAULT_COMPANY[2] if company_id == DEFAULT_COMPANY[0] else f"Company {company_id}"
        old = (self.company_id, self.company_domain)
        self.company_id, self.company_domain, self.company_name = company_id, domain, name
        # records are built for the default company, then rewritten if this one differs
        self._rewrites = () if (company_id, domain) == DEFAULT_COMPANY[:2] else (
            DEFAULT_COMPANY[0], company_id, DEFAULT_COMPANY[1], domain)
        return old

    def set_company(self, company_id: int, company_domain: str | None = None) -> None:
        """Move the account to another company: its id and subdomain in every record."""
        with self.lock:
            old_id, old_domain = self._set_company_fields(company_id, company_domain)
            if (old_id, old_domain) == (self.company_id, self.company_domain):
                return
            rewrite = (old_id, self.company_id, old_domain, self.company_domain)
            for rows in self._tables.values():
                for row in rows.values():
                    _rewrite_company(row, rewrite)
            self._changed()

    # ---- clock ---------------------------------------------------------------------------

    @property
    def now(self) -> dt.datetime:
        """The account's clock (UTC); mutations stamp update_time with it."""
        return dt.datetime.fromtimestamp(self._now, dt.timezone.utc)

    @now.setter
    def now(self, value: dt.datetime) -> None:
        with self.lock:
            self._now = to_epoch(value)

    @property
    def now_epoch(self) -> int:
        return self._now

    def advance(self, seconds: float = 1) -> dt.datetime:
        """Move the clock forward and return the new time."""
        with self.lock:
            self._now += int(seconds)
            return self.now

    # ---- generation ----------------------------------------------------------------------

    def _rng(self, name: str) -> Gen:
        # one stream per entity, so changing one entity's count leaves the others unchanged
        return Gen(FastRandom(f"{self.seed}:{name}"))

    def _timeline(self, gen: Gen, table: str, n: int) -> list[tuple[int, int]]:
        """(add_time, update_time) pairs, oldest first; a share of them in one shared second."""
        rng = gen.rng
        start = NOW0 - HISTORY
        adds = sorted(rng.randint(start, NOW0 - DAY) for _ in range(n))
        pairs = []
        for at in adds:
            roll = rng.random()
            if roll < 0.3:
                ut = at  # never edited
            elif roll < 0.45:
                ut = rng.randint(max(at, NOW0 - 30 * DAY), NOW0 - 60)  # edited recently
            else:  # edited some weeks later (never after the clock)
                ut = at + int(rng.expovariate(1 / (60 * DAY)))
                if ut > NOW0 - 60:
                    ut = rng.randint(at, NOW0 - 60)
            pairs.append((at, ut))
        if table in SHARED_SECOND:
            second, share = SHARED_SECOND[table]
            eligible = [i for i, (at, _) in enumerate(pairs) if at <= second]
            for i in rng.sample(eligible, min(len(eligible), max(1, round(n * share)) if n else 0)):
                pairs[i] = (pairs[i][0], second)
        return pairs

    def _generate(self) -> None:
        c = self.counts
        factory = FieldFactory(self.seed, NOW0 - HISTORY - 30 * DAY)
        self._factory = factory
        for kind in fdefs.KINDS:
            when = NOW0 - HISTORY + len(self._fields) * 7 * DAY
            self._fields[kind] = factory.for_kind(kind, when)
        for name in ("users", "currencies", "activity_types", "lead_labels", "pipelines",
                     "stages", "organizations", "persons", "products"):
            self._generate_simple(name, c[name])
        self._generate_deals()
        self._generate_deal_products()
        self._generate_leads()
        for name in ("activities", "notes", "files", "call_logs", "filters"):
            self._generate_simple(name, c[name])
        # each from its own random stream: the entities above are as they were without them
        self._generate_deal_extras()
        self._generate_projects()
        self._generate_admin()
        self._generate_mail()

    def _generate_simple(self, table: str, n: int) -> None:
        self._invalidate()
        gen = self._rng(table)
        build = getattr(self, f"_build_{table}")
        rows = self._tables[table]
        for i, (at, ut) in enumerate(self._timeline(gen, table, n), start=1):
            rec = build(gen, i, at, ut)
            rows[rec["id"]] = rec

    def _generate_deals(self) -> None:
        c = self.counts
        gen = self._rng("deals")
        rng = gen.rng
        total = c["deals"] + c["deleted_deals"] + c["archived_deals"]
        timeline = self._timeline(gen, "deals", total)
        order = list(range(total))
        rng.shuffle(order)
        deleted = set(order[: c["deleted_deals"]])
        archived = set(order[c["deleted_deals"]: c["deleted_deals"] + c["archived_deals"]])
        self._deal_ids_pool = list(range(1, total + 1))
        self._invalidate()
        for i, (at, updated) in enumerate(timeline):
            ut = updated
            if i in deleted:  # deleted within the retention window: update_time = delete time
                ut = rng.randint(max(at, NOW0 - 29 * DAY), NOW0 - 3600)
            rec = self._build_deals(gen, i + 1, at, ut, deleted=i in deleted,
                                    archived=i in archived)
            self._tables["deals"][rec["id"]] = rec

    def _generate_deal_products(self) -> None:
        self._invalidate()
        gen = self._rng("deal_products")
        rng = gen.rng
        # a deal product needs a product: none at all when the account sells nothing
        deals = list(self._tables["deals"].values()) if self._tables["products"] else []
        wanted = self.counts["deal_products"]
        if wanted is None:  # ~60 % of deals carry 1-4 products
            per_deal = [(d, rng.randint(1, 4)) for d in deals if rng.random() < 0.6]
        else:  # exactly `wanted`, spread over the deals
            per_deal = [(d, 0) for d in deals]
            for _ in range(wanted if deals else 0):
                j = rng.randrange(len(per_deal))
                per_deal[j] = (per_deal[j][0], per_deal[j][1] + 1)
        rows = self._tables["deal_products"]
        rid = 0
        for deal, k in per_deal:
            d_at = to_epoch(deal["add_time"])
            for order_nr in range(1, k + 1):
                rid += 1
                at = min(d_at + rng.randint(0, 3600), NOW0 - 120)
                ut = rng.choice((at, gen.between(at, NOW0 - 60)))
                rows[rid] = self._build_deal_products(gen, rid, at, ut, deal=deal,
                                                      order_nr=order_nr)

    def _generate_leads(self) -> None:
        self._invalidate()
        gen = self._rng("leads")
        live, archived = self.counts["leads"], self.counts["archived_leads"]
        timeline = self._timeline(gen, "leads", live + archived)
        arch = set(gen.rng.sample(range(len(timeline)), archived))
        for i, (at, ut) in enumerate(timeline):
            rec = self._build_leads(gen, i + 1, at, ut, archived=i in arch)
            self._tables["leads"][rec["id"]] = rec

    # ---- record builders (one per table; also used by add()) --------------------------------

    def _pick(self, gen: Gen, table: str, chance: float = 1.0) -> object:
        """A random id of ``table`` (None if it is empty, or with probability 1 - chance)."""
        ids = self._ids(table)
        return gen.rng.choice(ids) if ids and (chance >= 1 or gen.rng.random() < chance) else None

    def _ids(self, table: str) -> list:
        # cached: builders pick random related ids thousands of times during generation
        ids = self._id_cache.get(table)
        if ids is None:
            ids = self._id_cache[table] = list(self._tables[table])
        return ids

    def _invalidate(self) -> None:
        self._id_cache: dict[str, list] = {}
        self._ctx_cache: dict | None = None
        self._derived: dict = {}
        self._derived_at = None

    def derived(self) -> dict:
        """A scratch cache for values computed from the data (include_fields counts): it is
        emptied whenever a mutation or the clock changes what the lists show."""
        stamp = (self._version, self._now)
        if self._derived_at != stamp:
            self._derived, self._derived_at = {}, stamp
        return self._derived

    def _changed(self) -> None:
        self._version += 1

    def _ctx(self) -> dict:
        """Ids that custom-field values may reference."""
        if self._ctx_cache is None:
            self._ctx_cache = {
                "currencies": [r["code"] for r in self._tables["currencies"].values()] or ["EUR"],
                "users": self._ids("users"), "persons": self._ids("persons"),
                "organizations": self._ids("organizations"),
                "deals": self._deal_ids_pool or self._ids("deals"),
            }
        return self._ctx_cache

    def _custom_values(self, gen: Gen, kind: str, ref: int, fill: float = 0.55) -> dict:
        ctx, rnd, make = self._ctx(), gen.rng.random, fdefs.random_value
        return {f.code: (make(f, gen, ctx, ref) if rnd() < fill else None)
                for f in self._fields[kind] if f.custom}

    def _xgen(self, table: str) -> Gen:
        """The random stream for the keys a table's example shows beyond its schema: its own,
        so that adding such keys leaves every other value of the table as it was."""
        gen = self._xgens.get(table)
        if gen is None:
            gen = self._xgens[table] = self._rng(f"{table}:example")
        return gen

    def _finish(self, table: str, rec: dict, gen: Gen, at: int) -> dict:
        """Fill in the documented fields the builder left out: the schema's, then the keys only
        the spec's example shows (live responses carry them too)."""
        # builders always set the same keys, so the leftovers are found once per table
        leftovers = self._leftovers.get(table)
        if leftovers is None:
            key = SPEC_OF[table]
            props, shown = spec.props(key), spec.example_only(key)
            leftovers = self._leftovers[table] = (
                {k: v for k, v in props.items() if k not in rec},
                {k: v for k, v in shown.items() if k not in rec})
        fmt = TIME_FORMATS[table]
        complete(rec, leftovers[0], gen, at, fmt)
        if leftovers[1]:
            xgen = self._xgen(table)
            for name, sample in leftovers[1].items():
                rec[name] = like_example(xgen, name, sample, at, fmt)
        if self._rewrites:
            _rewrite_company(rec, self._rewrites)
        return rec

    @staticmethod
    def _t(table: str, epoch_s: int | None) -> str | None:
        return None if epoch_s is None else fmt_time(epoch_s, TIME_FORMATS[table])

    def _build_users(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        first, last = gen.person()
        tz_name = gen.rng.choice(("Europe/Tallinn", "Europe/Berlin", "America/New_York"))
        return self._finish("users", {
            "id": rid, "name": f"{first} {last}",
            "email": gen.email(first, last, f"{DEFAULT_COMPANY[1]}.com"),
            "phone": gen.rng.choice((None, gen.phone())), "default_currency": "EUR",
            "locale": "en_US", "lang": 1, "activated": True,
            "active_flag": rid == 1 or gen.rng.random() < 0.9,
            "created": self._t("users", at), "modified": self._t("users", ut),
            "last_login": self._t("users", gen.between(ut, NOW0 - 60)),
            "has_created_company": rid == 1, "is_you": rid == 1, "is_deleted": False,
            "access": [{"app": "sales", "admin": rid == 1, "permission_set_id": gen.uuid()},
                       {"app": "global", "admin": rid == 1, "permission_set_id": gen.uuid()}],
            "timezone_name": tz_name, "timezone_offset": "+02:00", "role_id": 1,
            "icon_url": gen.rng.choice((None, f"https://cdn.example.com/u/{rid}.png")),
        }, gen, at)

    def _build_currencies(self, gen: Gen, rid: int, at: int, ut: int) -> dict:  # noqa: ARG002
        if rid <= len(CURRENCIES):
            code, name, symbol, decimals = CURRENCIES[rid - 1]
            custom = False
        else:
            code, name, symbol, decimals = f"X{rid:02d}", f"Custom currency {rid}", "¤", 2
            custom = True
        return {"id": rid, "code": code, "name": name, "decimal_points": decimals,
                "symbol": symbol, "active_flag": True, "is_custom_flag": custom}

    def _build_activity_types(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        if rid <= len(ACTIVITY_TYPES):
            name, key, icon, custom = ACTIVITY_TYPES[rid - 1]
        else:
            name, key, icon, custom = f"Custom type {rid}", f"custom_type_{rid}", "bulb", True
        return self._finish("activity_types", {
            "id": rid, "name": name, "key_string": key, "icon_key": icon, "order_nr": rid,
            "color": f"{gen.rng.getrandbits(24):06X}", "active_flag": True,
            "is_custom_flag": custom, "add_time": self._t("activity_types", at),
            "update_time": self._t("activity_types", ut),
        }, gen, at)

    def _build_lead_labels(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        name, color = LEAD_LABELS[(rid - 1) % len(LEAD_LABELS)]
        if rid > len(LEAD_LABELS):
            name = f"{name} {rid}"
        return {"id": gen.uuid(), "name": name, "color": color,
                "add_time": self._t("lead_labels", at), "update_time": self._t("lead_labels", ut)}

    def _build_pipelines(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        name = PIPELINES[(rid - 1) % len(PIPELINES)] + ("" if rid <= len(PIPELINES) else f" {rid}")
        return self._finish("pipelines", {
            "id": rid, "name": name, "order_nr": rid, "is_deleted": False,
            "is_deal_probability_enabled": rid == 1, "is_selected": rid == 1,
            "add_time": self._t("pipelines", at),
            "update_time": self._t("pipelines", ut),
        }, gen, at)

    def _build_stages(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        pipelines = self._ids("pipelines")
        per = max(1, self.counts["stages"] // len(pipelines))
        pipeline_id = pipelines[min((rid - 1) // per, len(pipelines) - 1)]
        siblings = [s for s in self._tables["stages"].values() if s["pipeline_id"] == pipeline_id]
        order_nr = len(siblings) + 1
        days = gen.rng.choice((None, 14, 30))
        return self._finish("stages", {
            "id": rid, "order_nr": order_nr, "name": STAGES[(order_nr - 1) % len(STAGES)],
            "is_deleted": False, "deal_probability": min(100, order_nr * 20),
            "pipeline_id": pipeline_id, "is_deal_rot_enabled": days is not None,
            "days_to_rotten": days, "add_time": self._t("stages", at),
            "update_time": self._t("stages", ut),
        }, gen, at)

    def _labels(self, gen: Gen, kind: str) -> list[int]:
        ids = self._id_cache.get(f"labels:{kind}")
        if ids is None:
            field = next(f for f in self._fields[kind] if f.code == "label_ids")
            ids = self._id_cache[f"labels:{kind}"] = field.option_ids()
        return sorted(gen.rng.sample(ids, gen.rng.choice((0, 0, 1, 2)))) if ids else []

    def _build_organizations(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        rng = gen.rng
        name = gen.company()
        return self._finish("organizations", {
            "id": rid, "name": name, "owner_id": rng.choice(self._ids("users")),
            "org_id": rid,  # the spec's example shows an organization's own id under org_id too
            "add_time": self._t("organizations", at), "update_time": self._t("organizations", ut),
            "is_deleted": False, "visible_to": rng.choice((3, 3, 7)), "address": gen.address(),
            "label_ids": self._labels(gen, "organization"),
            "website": rng.choice((None, f"https://www.{gen.domain(name)}")),
            "linkedin": rng.choice((None, f"https://www.linkedin.com/company/{gen.domain(name).split('.')[0]}")),
            "industry": rng.choice((None, rng.randint(1, 30))),
            "annual_revenue": rng.choice((None, rng.randint(1, 500) * 100_000)),
            "employee_count": rng.choice((None, rng.randint(1, 5000))),
            "custom_fields": self._custom_values(gen, "organization", at),
        }, gen, at)

    def _build_persons(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        rng = gen.rng
        first, last = gen.person()
        orgs = self._tables["organizations"]
        org_id = rng.choice(self._ids("organizations")) if orgs and rng.random() < 0.85 else None
        domain = gen.domain(orgs[org_id]["name"]) if org_id else "mail.example.com"
        return self._finish("persons", {
            "id": rid, "name": f"{first} {last}", "first_name": first, "last_name": last,
            "owner_id": rng.choice(self._ids("users")), "org_id": org_id,
            "add_time": self._t("persons", at), "update_time": self._t("persons", ut),
            "emails": [{"value": gen.email(first, last, domain), "primary": True, "label": "work"}],
            "phones": [{"value": gen.phone(), "primary": True, "label": "work"}],
            "is_deleted": False, "visible_to": rng.choice((3, 3, 7)),
            "label_ids": self._labels(gen, "person"),
            "picture_id": rng.choice((None, None, rng.randint(1, 10_000))),
            "postal_address": gen.address(), "im": [],
            "custom_fields": self._custom_values(gen, "person", at),
        }, gen, at)

    def _build_products(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        rng = gen.rng
        base = PRODUCT_NAMES[(rid - 1) % len(PRODUCT_NAMES)]
        tier = (rid - 1) // len(PRODUCT_NAMES)
        price = rng.randint(1, 400) * 25
        currencies = [r["code"] for r in self._tables["currencies"].values()][:3] or ["EUR"]
        return self._finish("products", {
            "id": rid, "name": base if tier == 0 else f"{base} v{tier + 1}",
            "code": f"SKU-{rid:04d}", "unit": rng.choice(("seat", "pcs", "hour", "license")),
            "tax": rng.choice((0, 9, 20, 22)),
            "is_deleted": False, "is_linkable": True, "visible_to": rng.choice((3, 7)),
            "owner_id": rng.choice(self._ids("users")), "add_time": self._t("products", at),
            "update_time": self._t("products", ut), "description": gen.sentence(),
            "category": rng.choice((None, "Software", "Services", "Hardware")),
            "billing_frequency": rng.choice(("one-time", "monthly", "annually")),
            "billing_frequency_cycles": None,
            "prices": [{"product_id": rid, "price": price, "currency": cur,
                        "cost": round(price * 0.4, 2), "direct_cost": None, "notes": ""}
                       for cur in rng.sample(currencies, rng.randint(1, len(currencies)))],
            "custom_fields": self._custom_values(gen, "product", at),
        }, gen, at)

    def _build_deals(self, gen: Gen, rid: int, at: int, ut: int, *,
                     deleted: bool = False, archived: bool = False) -> dict:
        rng = gen.rng
        pipeline_id = rng.choice(self._ids("pipelines"))
        stages = [s for s in self._tables["stages"].values() if s["pipeline_id"] == pipeline_id]
        stage = rng.choice(stages)
        persons, orgs = self._tables["persons"], self._tables["organizations"]
        person_id = rng.choice(self._ids("persons")) if persons and rng.random() < 0.9 else None
        org_id = persons[person_id]["org_id"] if person_id else None
        if org_id is None and orgs and rng.random() < 0.7:
            org_id = rng.choice(self._ids("organizations"))
        status = rng.choices(("open", "won", "lost"), (0.6, 0.25, 0.15))[0]
        closed = gen.between(at, ut) if status in ("won", "lost") else None
        who = _name(orgs, org_id) or _name(persons, person_id) or "New customer"
        rec = {
            "id": rid, "title": f"{who} - {rng.choice(PRODUCT_NAMES)}",
            "owner_id": rng.choice(self._ids("users")), "person_id": person_id, "org_id": org_id,
            "pipeline_id": pipeline_id, "stage_id": stage["id"],
            "value": rng.choice((0, rng.randint(5, 2000) * 50, round(rng.uniform(100, 90000), 2))),
            "currency": rng.choice(("EUR", "EUR", "USD", "GBP")),
            "add_time": self._t("deals", at), "update_time": self._t("deals", ut),
            "stage_change_time": self._t("deals", gen.between(at, ut)),
            "is_deleted": deleted, "is_archived": archived,
            "status": "deleted" if deleted else status,
            "probability": rng.choice((None, stage["deal_probability"])),
            "lost_reason": rng.choice(LOST_REASONS) if status == "lost" else None,
            "visible_to": rng.choice((3, 3, 7)), "close_time": self._t("deals", closed),
            "won_time": self._t("deals", closed) if status == "won" else None,
            "lost_time": self._t("deals", closed) if status == "lost" else None,
            "expected_close_date": fmt_time(at + rng.randint(14, 180) * DAY, DATE),
            "label_ids": self._labels(gen, "deal"),
            "custom_fields": self._custom_values(gen, "deal", at),
        }
        # the keys the spec's example shows beyond the schema, from their own random stream
        xgen = self._xgen("deals")
        rec["creator_user_id"] = (rec["owner_id"] if xgen.rng.random() < 0.7
                                  else xgen.rng.choice(self._ids("users")))
        archived_at = ut if xgen.rng.random() < 0.6 else xgen.between(at, ut)
        rec["archive_time"] = self._t("deals", archived_at) if archived else None
        local = fmt_time(closed, DATE) if closed is not None else None
        rec["local_close_date"] = local
        rec["local_won_date"] = local if rec["won_time"] else None
        rec["local_lost_date"] = local if rec["lost_time"] else None
        return self._finish("deals", rec, gen, at)

    def _build_deal_products(self, gen: Gen, rid: int, at: int, ut: int, *,
                             deal: dict | None = None, order_nr: int = 1) -> dict:
        rng = gen.rng
        deal = deal or self._tables["deals"][rng.choice(self._ids("deals"))]
        products = self._tables["products"]
        product = products[rng.choice(self._ids("products"))]
        price = product["prices"][0]["price"] if product["prices"] else rng.randint(1, 100) * 10
        qty = rng.choice((1, 1, 2, 5, 10, 25))
        discount = rng.choice((0, 0, 5, 10))
        tax = product["tax"]
        net = price * qty * (1 - discount / 100)
        return self._finish("deal_products", {
            "id": rid, "deal_id": deal["id"], "product_id": product["id"], "name": product["name"],
            "item_price": price, "quantity": qty, "discount": discount,
            "discount_type": "percentage",
            "tax": tax, "tax_method": "exclusive", "sum": round(net * (1 + tax / 100), 2),
            "currency": deal["currency"], "order_nr": order_nr, "is_enabled": True,
            "product_variation_id": None, "billing_frequency": "one-time",
            "billing_frequency_cycles": None, "billing_start_date": None, "comments": "",
            "add_time": self._t("deal_products", at), "update_time": self._t("deal_products", ut),
        }, gen, at)

    def _build_leads(self, gen: Gen, rid: int, at: int, ut: int, *,  # noqa: ARG002 - uuid ids
                     archived: bool = False) -> dict:
        rng = gen.rng
        persons, orgs = self._tables["persons"], self._tables["organizations"]
        person_id = rng.choice(self._ids("persons")) if persons and rng.random() < 0.7 else None
        org_id = persons[person_id]["org_id"] if person_id else self._pick(gen, "organizations")
        who = _name(orgs, org_id) or _name(persons, person_id) or "Website visitor"
        labels = [r["id"] for r in self._tables["lead_labels"].values()]
        rec = {
            "id": gen.uuid(), "title": f"{who} lead", "owner_id": rng.choice(self._ids("users")),
            "creator_id": rng.choice(self._ids("users")),
            "label_ids": rng.sample(labels, rng.choice((0, 1, 1, 2))) if labels else [],
            "person_id": person_id, "organization_id": org_id,
            "source_name": rng.choice(("Manually created", "Web forms", "Prospector", "Import")),
            "origin": rng.choice(("ManuallyCreated", "WebForms", "Import")), "origin_id": None,
            "channel": None, "channel_id": None, "source_deal_id": None, "is_archived": archived,
            "was_seen": rng.random() < 0.7,
            "value": rng.choice((None, {"amount": rng.randint(1, 200) * 100, "currency": "EUR"})),
            "expected_close_date": rng.choice((None, fmt_time(at + rng.randint(7, 120) * DAY,
                                                              DATE))),
            "next_activity_id": None, "add_time": self._t("leads", at),
            "update_time": self._t("leads", ut), "visible_to": rng.choice(("3", "7")),
        }
        # v1 leads carry the deal custom fields as top-level keys, only those that are set
        for f in self._fields["deal"]:
            if f.custom and rng.random() < 0.35:
                rec.update(fdefs.v1_keys(f, fdefs.random_value(f, gen, self._ctx(), at)))
        return self._finish("leads", rec, gen, at)

    def _build_activities(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        rng = gen.rng
        deals, persons = self._tables["deals"], self._tables["persons"]
        atype = rng.choice(list(self._tables["activity_types"].values()))["key_string"]
        deal = deals[rng.choice(self._ids("deals"))] if deals and rng.random() < 0.5 else None
        lead_id = self._pick(gen, "leads", 0.15) if not deal else None
        person_id = deal["person_id"] if deal else self._pick(gen, "persons", 0.5)
        org_id = deal["org_id"] if deal else (persons[person_id]["org_id"] if person_id else None)
        due = at + rng.randint(-2, 30) * DAY
        done = due < NOW0 and rng.random() < 0.8
        meeting = atype in ("meeting", "product_demo", "site_visit", "lunch")
        online = atype == "meeting" and rng.random() < 0.5
        person = persons.get(person_id)
        owner = rng.choice(self._ids("users"))
        return self._finish("activities", {
            "id": rid, "subject": f"{atype.replace('_', ' ').capitalize()}: {gen.words(2)}",
            "type": atype, "owner_id": owner, "creator_user_id": rng.choice(self._ids("users")),
            "is_deleted": False, "add_time": self._t("activities", at),
            "update_time": self._t("activities", ut), "deal_id": deal["id"] if deal else None,
            "lead_id": lead_id, "person_id": person_id, "org_id": org_id, "project_id": None,
            "due_date": fmt_time(due, DATE),
            "due_time": rng.choice(("", f"{rng.randint(7, 17):02d}:{rng.choice((0, 30)):02d}")),
            "duration": rng.choice(("", "00:30", "01:00")), "busy": meeting, "done": done,
            "marked_as_done_time": (self._t("activities", min(max(due, at), NOW0 - 60))
                                    if done else None),
            "location": gen.address() if meeting and not online else None,
            "participants": [{"person_id": person_id, "primary": True}] if person_id else [],
            "attendees": [{"email": person["emails"][0]["value"], "name": person["name"],
                           "status": "accepted", "is_organizer": False, "person_id": person_id,
                           "user_id": None}] if person else [],
            "conference_meeting_client": "google_meet" if online else None,
            "conference_meeting_url": (f"https://meet.example.com/{gen.hexid(10)}"
                                       if online else None),
            "conference_meeting_id": gen.hexid(10) if online else None,
            "priority": rng.choice((0, 0, 1, 2)),
            "note": rng.choice(("", f"<p>{gen.sentence()}</p>")),
            "custom_fields": self._custom_values(gen, "activity", at, fill=0.3),
        }, gen, at)

    def _user_ref(self, user_id: int) -> dict:
        u = self._tables["users"][user_id]
        return {"email": u["email"], "icon_url": u["icon_url"] or "", "is_you": u["is_you"],
                "name": u["name"]}

    def _build_notes(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        rng = gen.rng
        deals, persons, orgs = (self._tables[t] for t in ("deals", "persons", "organizations"))
        leads = self._tables["leads"]
        target = rng.choices(("deal", "person", "org", "lead"), (0.5, 0.25, 0.15, 0.1))[0]
        deal = deals[rng.choice(self._ids("deals"))] if target == "deal" and deals else None
        lead_id = rng.choice(self._ids("leads")) if target == "lead" and leads else None
        if deal:
            person_id, org_id = deal["person_id"], deal["org_id"]
        else:
            person_id = self._pick(gen, "persons") if target == "person" else None
            org_id = (persons[person_id]["org_id"] if person_id
                      else self._pick(gen, "organizations") if target == "org" else None)
        user_id = rng.choice(self._ids("users"))
        return self._finish("notes", {
            "id": rid, "user_id": user_id,
            "content": f"<p>{gen.sentence()}</p><p>{gen.sentence()}</p>",
            "add_time": self._t("notes", at), "update_time": self._t("notes", ut),
            "deal_id": deal["id"] if deal else None, "lead_id": lead_id, "person_id": person_id,
            "org_id": org_id, "project_id": None, "task_id": None,
            "deal": {"title": deal["title"]} if deal else None,
            "person": {"name": persons[person_id]["name"]} if person_id else None,
            "organization": {"name": orgs[org_id]["name"]} if org_id else None,
            "project": None, "task": None, "active_flag": True, "last_update_user_id": user_id,
            "pinned_to_deal_flag": bool(deal) and rng.random() < 0.1,
            "pinned_to_lead_flag": bool(lead_id) and self._xgen("notes").rng.random() < 0.1,
            "pinned_to_organization_flag": False, "pinned_to_person_flag": False,
            "pinned_to_project_flag": False, "pinned_to_task_flag": False,
            "user": self._user_ref(user_id),
        }, gen, at)

    def _build_files(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        rng = gen.rng
        deals, persons, orgs = (self._tables[t] for t in ("deals", "persons", "organizations"))
        deal = deals[rng.choice(self._ids("deals"))] if deals and rng.random() < 0.6 else None
        person_id = deal["person_id"] if deal else self._pick(gen, "persons")
        org_id = deal["org_id"] if deal else (persons[person_id]["org_id"] if person_id else None)
        name = rng.choice(FILE_NAMES)
        return self._finish("files", {
            "id": rid, "user_id": rng.choice(self._ids("users")),
            "deal_id": deal["id"] if deal else None, "person_id": person_id, "org_id": org_id,
            "product_id": None, "activity_id": None, "lead_id": None, "project_id": None,
            "add_time": self._t("files", at), "update_time": self._t("files", ut),
            "file_name": f"{gen.hexid(8)}_{name}", "name": name,
            "file_type": FILE_TYPES.get(name.rsplit(".", 1)[-1], "other"), "log_id": None,
            "file_size": rng.randint(2_000, 8_000_000), "active_flag": True, "inline_flag": False,
            "remote_location": "s3", "remote_id": gen.hexid(24), "cid": None,
            "s3_bucket": "pipedrive-files", "mail_message_id": None, "mail_template_id": None,
            "deal_name": deal["title"] if deal else None,
            "person_name": persons[person_id]["name"] if person_id else None,
            "org_name": orgs[org_id]["name"] if org_id else None, "product_name": None,
            "lead_name": None, "project_name": None,
            "url": f"https://{DEFAULT_COMPANY[1]}.pipedrive.com/api/v1/files/{rid}/download",
            "description": rng.choice(("", gen.sentence())),
        }, gen, at)

    def _build_call_logs(self, gen: Gen, rid: int, at: int, ut: int) -> dict:  # noqa: ARG002
        rng = gen.rng
        calls = self._id_cache.get("call_activities")
        if calls is None:
            calls = self._id_cache["call_activities"] = [
                a for a in self._tables["activities"].values() if a["type"] == "call"]
        activity = rng.choice(calls) if calls and rng.random() < 0.5 else None
        persons = self._tables["persons"]
        person_id = activity["person_id"] if activity else self._pick(gen, "persons")
        seconds = rng.choice((0, rng.randint(20, 2400)))
        return self._finish("call_logs", {
            "id": f"CA{gen.hexid(30)}", "user_id": rng.choice(self._ids("users")),
            "activity_id": activity["id"] if activity else None,
            "person_id": person_id, "org_id": persons[person_id]["org_id"] if person_id else None,
            "deal_id": activity["deal_id"] if activity else None, "lead_id": None,
            "subject": f"Call with {persons[person_id]['name']}" if person_id else "Outbound call",
            "duration": str(seconds),
            "outcome": "connected" if seconds else rng.choice(("no_answer", "busy")),
            "from_phone_number": gen.phone(), "to_phone_number": gen.phone(),
            "has_recording": seconds > 0 and rng.random() < 0.3,
            "start_time": self._t("call_logs", at), "end_time": self._t("call_logs", at + seconds),
            "note": rng.choice((None, gen.sentence())), "company_id": DEFAULT_COMPANY[0],
        }, gen, at)

    def _build_filters(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        rng = gen.rng
        ftype = FILTER_TYPES[(rid - 1) % len(FILTER_TYPES)]
        return self._finish("filters", {
            "id": rid, "name": f"{rng.choice(WORDS).capitalize()} {ftype} ({rid})", "type": ftype,
            "active_flag": True, "temporary_flag": False, "user_id": rng.choice(self._ids("users")),
            "add_time": self._t("filters", at), "update_time": self._t("filters", ut),
            "visible_to": rng.choice(("1", "3", "7")), "custom_view_id": None, "filter_code": None,
            "is_editable": True, "last_used_time": rng.choice((None, self._t("filters", ut))),
        }, gen, at)

    # ---- lookup ----------------------------------------------------------------------------

    @staticmethod
    def time_format(table_or_entity: str) -> str:
        """The timestamp format of a table's records (its API's format)."""
        return TIME_FORMATS[TABLE_OF.get(table_or_entity, table_or_entity)]

    def _visible(self, entity: str) -> list[dict]:  # noqa: PLR0911 - one return per kind of list
        """The records an entity's list shows (deals, leads and projects split by archive
        state): never hidden ones, of deleted ones only deals deleted less than 30 days ago (and
        projects, which stay ``status: deleted``), and what hangs off a deal or product only
        while that deal or product's single GET answers."""
        table = TABLE_OF[entity]
        if table == "deal_changes":
            self._all_histories()
        rows = self._tables[table].values()
        hidden = self._hidden.get(table)
        if hidden:
            rows = [r for r in rows if row_key(table, r) not in hidden]
        if table in CHILD_OF:  # what hangs off a deal or product shows while it is answered
            parents = self._answered(CHILD_OF[table])
            parent_key = "product_id" if table == "product_variations" else "deal_id"
            if table == "deal_changes":
                return [r for r in rows if r["data"]["item_id"] in parents]
            if table == "deal_participants":  # a purged person takes part no more
                persons = self._tables["persons"]
                return [r for r in rows if r["deal_id"] in parents and r["person_id"] in persons]
            return [r for r in rows if r[parent_key] in parents]
        if entity in ("projects", "archived_projects"):
            archived = entity == "archived_projects"
            return [r for r in rows if (r["archive_time"] is not None) == archived]
        if table in SOFT_DELETED:
            return [r for r in rows if not r["is_deleted"]]
        if table == "files":
            return [r for r in rows if r["active_flag"]]
        if entity in ("deals", "archived_deals"):
            archived = entity == "archived_deals"
            cutoff = fmt_time(self._now - DELETED_DEAL_RETENTION, V2_TIME)
            return [r for r in rows if r["is_archived"] == archived
                    and (r["status"] != "deleted" or r["update_time"] >= cutoff)]
        if entity in ("leads", "archived_leads"):
            archived = entity == "archived_leads"
            return [r for r in rows if r["is_archived"] == archived]
        return list(rows)

    def _answered(self, table: str) -> set:
        """Ids of the records of ``table`` its single GET answers (cached until a change)."""
        cache = self.derived().setdefault("answered", {})
        ids = cache.get(table)
        if ids is None:
            ids = cache[table] = set()
            for rid in self._tables[table]:
                try:
                    self.single(table, rid)
                except KeyError:
                    continue
                ids.add(rid)
        return ids

    def row_of(self, table: str, rid: object) -> dict | None:
        """A live stored row by key, whatever its visibility (None if there is none)."""
        return None if rid is None else self._tables[table].get(rid)

    def view(self, entity: str) -> list[dict]:
        """Live records of an entity (not copies); callers must hold ``lock`` while using them."""
        return self._visible(entity)

    def fields(self, entity: str) -> list[Field]:
        """Field definitions of ``deal_fields``... in list order (lead fields add deal customs)."""
        kind = _kind(entity)
        if kind == "lead":
            return self._fields["lead"] + [f for f in self._fields["deal"] if f.custom]
        return list(self._fields[kind])

    def ids(self, entity: str, **filters: object) -> list:
        """Ids of what the entity's list returns (field codes for ``*_fields``), oldest first.

        Keys rather than ids where a record has none: ``(deal_id, user_id)`` for
        ``deal_followers``, ``(role_id, user_id)`` / ``(permission_set_id, user_id)`` for the
        assignments, the name for ``lead_sources``, ``data.id`` for ``deal_changes``.
        """
        with self.lock:
            if entity in FIELD_KIND:
                return [f.code for f in self.fields(entity)
                        if all(getattr(f, k, None) == v for k, v in filters.items())]
            table = TABLE_OF[entity]
            return [row_key(table, r) for r in self._visible(entity)
                    if all(r.get(k) == v for k, v in filters.items())]

    def records(self, entity: str) -> list[dict]:
        """Deep copies of the entity's records as its list endpoint returns them by default."""
        with self.lock:
            if entity in FIELD_KIND:
                return [render.field_item(entity, f, set()) for f in self.fields(entity)]
            return render.records(self, entity, self._visible(entity), set(), copy=True)

    def record(self, entity: str, rid: object) -> dict:
        """One record as its list shows it (raises KeyError if the list does not show it)."""
        with self.lock:
            table = TABLE_OF[entity]
            for r in self._visible(entity):
                if row_key(table, r) == rid:
                    return render.records(self, entity, [r], set(), copy=True)[0]
        raise KeyError(rid)

    def _deleted_at(self, table: str, row: dict) -> int | None:
        """When a record was deleted (its update_time then), or None if it is not deleted."""
        deleted = (row.get("status") == "deleted" if table == "deals"
                   else row["is_deleted"] if table in SOFT_DELETED
                   else not row["active_flag"] if table == "files" else False)
        return to_epoch(row["update_time"]) if deleted else None

    def single(self, entity: str, rid: object) -> dict:
        """The live row the entity's single GET answers with (caller holds ``lock``): deleted
        records too, for 30 days. KeyError (a 404) if unknown, hidden, purged or past that."""
        table = TABLE_OF[entity]
        row = self._tables[table].get(rid)
        if row is None or rid in self._hidden.get(table, ()):
            raise KeyError(rid)
        if table in CHILD_OF:
            parent = row["product_id" if table == "product_variations" else "deal_id"]
            if parent not in self._answered(CHILD_OF[table]):
                raise KeyError(rid)
        deleted_at = self._deleted_at(table, row)
        if deleted_at is not None and deleted_at < self._now - DELETED_RETENTION:
            raise KeyError(rid)
        return row

    def get(self, entity: str, rid: object) -> dict:
        """A deep copy of what the single GET (``/api/v2/deals/{id}``...) answers; KeyError if
        it answers 404."""
        with self.lock:
            return render.records(self, entity, [self.single(entity, rid)], set(), copy=True)[0]

    # ---- mutations --------------------------------------------------------------------------

    def _row(self, entity: str, rid: object) -> dict:
        row = self._tables[TABLE_OF[entity]].get(rid)
        if row is None:
            msg = f"{entity} {rid!r} not found"
            raise KeyError(msg)
        return row

    def _stamp(self, table: str, row: dict) -> None:
        if table not in NO_UPDATE_KEY:
            row[UPDATE_KEY.get(table, "update_time")] = self._t(table, self._now)

    def _tick(self, advance: float) -> None:
        self._changed()  # every mutation ends here
        if advance:
            self._now += int(advance)

    def add(self, entity: str, *, advance: float = 1, **fields: object) -> object:
        """Create a record stamped with the clock (add_time = update_time = now); returns its id
        (its key, see ``ids``). Children name their parent: ``add("deal_installments",
        deal_id=5)``, ``add("deal_followers", deal_id=5, user_id=2)``, ``add("tasks",
        project_id=3)``; adding to a deal leaves the deal's update_time as it was."""
        with self.lock:
            table = TABLE_OF[entity]
            rows = self._tables[table]
            gen = self._mut_gen
            self._invalidate()
            if table == "role_assignments":  # a user holds one role: this moves them
                self._assign_role(fields["user_id"], fields["role_id"])
                self._tick(advance)
                return fields["role_id"], fields["user_id"]
            build = getattr(self, f"_build_{table}", None)
            if build is None:
                msg = f"Pipedrive's API cannot add {entity}"
                raise ValueError(msg)
            next_id = max((r for r in rows if isinstance(r, int)), default=0) + 1
            extra: dict = {}
            if table in ("deals", "projects"):
                extra = {"archived": entity.startswith("archived_"),
                         "deleted": fields.get("status") == "deleted"}
            elif table == "leads":
                extra = {"archived": entity == "archived_leads"}
            elif table in PARENT_ARGS:
                key, parents, arg = PARENT_ARGS[table]
                if key in fields:
                    extra[arg] = self._row(parents, fields[key])
                for name in ("user_id", "person_id"):
                    if name in fields and table in ("deal_followers", "deal_participants"):
                        extra[name] = fields[name]
            rec = build(gen, next_id, self._now, self._now, **extra)
            _apply(rec, fields)
            rows[row_key(table, rec)] = rec
            if table == "deals":
                self._history_done.add(rec["id"])  # a new deal's flow starts now
                self._log_creation(rec)
            self._tick(advance)
            return row_key(table, rec)

    def update(self, entity: str, rid: object, *, advance: float = 1, **fields: object) -> None:
        """Change fields (``custom_fields={code: value}`` merges) and stamp update_time.

        A deal logs one dealChange row per changed field (its ``/flow``), stamped with the
        clock; a deal product or installment changes without touching its deal.
        """
        with self.lock:
            table = TABLE_OF[entity]
            row = self._row(entity, rid)
            changes = []
            if table == "deals":
                self._history(rid)
                changes = self._diff(row, fields)
            _apply(row, fields)
            if table == "mail_threads" and "archived_flag" in fields:
                row["folders"] = ["archive"] if fields["archived_flag"] else ["inbox"]
            self._fill_new_fields(table, row)
            self._stamp(table, row)
            if changes:
                self._log_changes(rid, changes)
            self._tick(advance)

    def delete(self, entity: str, rid: object, *, advance: float = 1) -> None:
        """Delete as Pipedrive does, stamping update_time with the delete time.

        Deals become status=deleted (still listed with status=deleted); persons,
        organizations, activities and products is_deleted, files active_flag false: gone from
        their lists, their single GET answers them for 30 days (see ``purge``). Notes and
        every other record (and fields) disappear at once.
        """
        with self.lock:
            table = TABLE_OF.get(entity)
            if entity in FIELD_KIND:
                kind = "deal" if _kind(entity) == "lead" else _kind(entity)
                self._fields[kind] = [f for f in self._fields[kind] if f.code != rid]
            elif table in ("deals", "files", "projects") or table in SOFT_DELETED:
                row = self._row(entity, rid)
                if table == "deals":
                    self._history(rid)
                    changes = self._diff(row, {"status": "deleted"})
                    row.update(status="deleted", is_deleted=True)
                    self._log_changes(rid, changes)
                elif table == "files":
                    row["active_flag"] = False
                elif table == "projects":  # "Marks a project as deleted": status=deleted lists it
                    row.update(status="deleted", status_change_time=self._t(table, self._now))
                else:
                    row["is_deleted"] = True
                self._stamp(table, row)
            else:
                self._row(entity, rid)
                doomed = [rid]
                if table == "tasks":  # "If the task has subtasks, those will also be deleted"
                    doomed += [k for k, t in self._tables["tasks"].items()
                               if t["parent_task_id"] == rid]
                elif table == "mail_threads":
                    messages = self._tables["mail_messages"]
                    for mid in [k for k, m in messages.items() if m["mail_thread_id"] == rid]:
                        del messages[mid]
                for key in doomed:
                    del self._tables[table][key]
                self._invalidate()
            self._tick(advance)

    def purge(self, entity: str, rid: object) -> None:
        """Remove a record for good, as Pipedrive does 30 days after a delete (the clock does
        that too: a record deleted longer ago answers 404): lists and single GET lose it."""
        with self.lock:
            table = TABLE_OF[entity]
            self._row(entity, rid)
            del self._tables[table][rid]
            self._hidden.get(table, set()).discard(rid)
            self._invalidate()
            self._changed()

    def hide(self, entity: str, rid: object) -> None:
        """Make a record invisible to the token's user, as Pipedrive's visibility rules do
        (``visible_to`` owner-only and someone else's): gone from every list, its single GET
        answers 404. Nothing about the record changes, so update_time stays."""
        with self.lock:
            self._row(entity, rid)
            self._hidden.setdefault(TABLE_OF[entity], set()).add(rid)
            self._changed()

    def unhide(self, entity: str, rid: object) -> None:
        """Make a hidden record visible again."""
        with self.lock:
            self._hidden.get(TABLE_OF[entity], set()).discard(rid)
            self._changed()

    def archive(self, entity: str, rid: object, *, advance: float = 1) -> None:
        """Archive a deal, lead or project: it moves to ``archived_deals`` /
        ``archived_leads`` / ``archived_projects``."""
        with self.lock:
            table = TABLE_OF[entity]
            if table not in ("deals", "leads", "projects"):
                msg = "only deals, leads and projects can be archived"
                raise ValueError(msg)
            row = self._row(entity, rid)
            if table == "deals":
                self._history(rid)
                self._log_changes(rid, self._diff(row, {"is_archived": True}))
            if table != "projects":
                row["is_archived"] = True
            self._stamp(table, row)
            if table in ("deals", "projects"):
                row["archive_time"] = row["update_time"]
            self._tick(advance)

    def set_update_time(self, entity: str, ids: object, ts: dt.datetime | int | str) -> None:
        """Force update_time of some records (e.g. hundreds into one second); clock unchanged."""
        with self.lock:
            table = TABLE_OF[entity]
            value = self._t(table, to_epoch(ts))
            for rid in ids if isinstance(ids, (list, tuple, set, range)) else [ids]:
                if table == "deals":
                    self._history(rid)  # its history was that of the deal as generated
                self._row(entity, rid)[UPDATE_KEY.get(table, "update_time")] = value
            self._changed()

    def rename_field(self, entity: str, field_code: str, new_name: str, *,
                     advance: float = 1) -> None:
        """Rename a field definition (its code stays)."""
        with self.lock:
            f = next((f for f in self.fields(entity) if f.code == field_code), None)
            if f is None:
                raise KeyError(field_code)
            f.name = new_name
            f.update_time = self._now
            self._tick(advance)

    def add_field(self, entity: str, name: str, field_type: str, options: list[str] | None = None,
                  *, advance: float = 1) -> str:
        """Add a custom field; records get values for it when they are next updated."""
        with self.lock:
            kind = _kind(entity)
            kind = "deal" if kind == "lead" else kind
            existing = self._fields[kind]
            f = self._factory.custom(kind, name, field_type, options, when=self._now,
                                     order=len(existing))
            f.values_on_update = True
            existing.append(f)
            table = CUSTOM_TABLE.get(kind)
            if table in V2_TABLES or table == "projects":
                for row in self._tables[table].values():
                    row["custom_fields"][f.code] = None
            self._tick(advance)
            return f.code

    def _fill_new_fields(self, table: str, row: dict) -> None:
        kind = {t: k for k, t in CUSTOM_TABLE.items()}.get(table)
        if kind is None:
            return
        kind = "deal" if kind == "lead" else kind  # leads carry the deal custom fields
        for f in self._fields[kind]:
            if not f.values_on_update:
                continue
            value = fdefs.random_value(f, self._mut_gen, self._ctx(), self._now)
            if table == "leads":
                if f.code not in row:
                    row.update(fdefs.v1_keys(f, value))
            elif row["custom_fields"].get(f.code) is None:
                row["custom_fields"][f.code] = value

    # ---- derived values for include_fields ------------------------------------------------

    def counter(self, table: str, key: str) -> Counter:
        return Counter(r.get(key) for r in self._tables[table].values())


def _kind(entity: str) -> str:
    if entity in FIELD_KIND:
        return FIELD_KIND[entity]
    for kind, table in CUSTOM_TABLE.items():
        if entity in (kind, table, f"archived_{table}"):
            return kind
    if entity in ("note", "notes"):
        return "note"
    msg = f"{entity!r} has no fields"
    raise KeyError(msg)


def _name(rows: dict, rid: object) -> str | None:
    return rows[rid]["name"] if rid is not None and rid in rows else None


def _rewrite_company(obj: object, rewrite: tuple) -> object:
    """Replace one company's id (under ``company_id`` keys) and subdomain (in strings such as
    URLs and e-mail addresses) by another's, in place; returns the new value of a string."""
    old_id, new_id, old_domain, new_domain = rewrite
    if isinstance(obj, str):
        return obj.replace(old_domain + ".", new_domain + ".").replace(
            old_domain + "+", new_domain + "+") if old_domain in obj else obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in list(items):
        if key == "company_id" and value == old_id:
            obj[key] = new_id
        elif isinstance(value, (str, dict, list)):
            obj[key] = _rewrite_company(value, rewrite)
    return obj


def _apply(row: dict, fields: dict) -> None:
    for key, value in fields.items():
        if key == "custom_fields" and isinstance(row.get("custom_fields"), dict):
            row["custom_fields"].update(value)
        else:
            row[key] = value


def to_epoch(value: dt.datetime | float | str) -> int:
    """Epoch seconds of a datetime (naive = UTC), a number, or a timestamp in any API format."""
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "T").replace("Z", "+00:00")
        value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())
