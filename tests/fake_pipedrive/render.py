"""Turn stored records and field definitions into what an endpoint returns.

Stored records already have their API shape; rendering only applies the request's options:
``include_fields`` (extra keys computed from the account), ``custom_fields`` (a subset of custom
values) and the activity ``attendees`` that appear only on request.
"""

from __future__ import annotations

import copy as copy_mod
from collections import Counter
from typing import TYPE_CHECKING

from . import fields as fdefs
from . import spec
from .values import V1_TIME, V2_TIME

if TYPE_CHECKING:
    from .account import Account

V2_FIELD_ENDPOINT = {
    "deal_fields": "v2 /dealFields", "person_fields": "v2 /personFields",
    "organization_fields": "v2 /organizationFields", "product_fields": "v2 /productFields",
    "activity_fields": "v2 /activityFields", "project_fields": "v2 /projectFields",
}
V1_FIELD_ENDPOINT = {"note_fields": "v1 /noteFields", "lead_fields": "v1 /leadFields"}
OWNER_KEY = {"deals": "deal_id", "archived_deals": "deal_id", "persons": "person_id",
             "organizations": "org_id"}


def field_item(entity: str, f: fdefs.Field, include: set[str]) -> dict:
    """One field definition in the shape of the entity's fields endpoint."""
    if entity in V2_FIELD_ENDPOINT:
        return fdefs.v2_item(f, include, spec.ENDPOINTS[V2_FIELD_ENDPOINT[entity]]["item"], V2_TIME)
    return fdefs.v1_item(f, spec.ENDPOINTS[V1_FIELD_ENDPOINT[entity]]["item"], V1_TIME)


def records(account: Account, entity: str, rows: list[dict], include: set[str], *,
            custom_keys: set[str] | None = None, copy: bool = False) -> list[dict]:
    """Render rows of one entity. Only top-level keys change, so shallow copies are enough
    while the caller holds the account lock; ``copy=True`` returns independent deep copies."""
    extras = _Extras(account, entity) if include and entity in OWNER_KEY else None
    shape = SHAPES.get(entity)
    context = shape[1](account) if shape else None
    out = []
    for row in rows:
        rec = shape[0](account, row, context) if shape else dict(row)
        if entity == "activities" and "attendees" not in include:
            rec.pop("attendees", None)
        if custom_keys is not None and "custom_fields" in rec:
            values = rec["custom_fields"]
            rec["custom_fields"] = {k: v for k, v in values.items() if k in custom_keys}
        if extras:
            for name in include:
                rec[name] = extras.value(name, row)
        out.append(copy_mod.deepcopy(rec) if copy else rec)
    return out


# ---- records stored compactly and shaped on the way out --------------------------------------


def v1_user(account: Account, user_id: int | None) -> dict | None:
    """A user as v1 embeds one (``owner_id``, ``added_by_user_id``, ...)."""
    u = account.row_of("users", user_id)
    if u is None:
        return None
    pic = u["icon_url"] is not None
    return {"id": u["id"], "name": u["name"], "email": u["email"], "has_pic": int(pic),
            "pic_hash": fdefs.field_code(account.seed, "pic", u["name"], u["id"])[:32] if pic
            else None, "active_flag": u["active_flag"], "value": u["id"]}


def v1_person(account: Account, person: dict, counts: _Extras) -> dict:
    """A v2 person in the v1 shape (as ``/deals/{id}/participants`` embeds it)."""
    org = account.row_of("organizations", person["org_id"])
    owner = v1_user(account, person["owner_id"])
    contacts = {k: [{"label": c["label"], "value": c["value"], "primary": c["primary"]}
                    for c in person[k + "s"]] for k in ("email", "phone")}
    labels = person["label_ids"]

    def acts(table: str, rid: object, key: str) -> object:
        row = account.row_of(table, rid)
        return row[key] if row else None

    nxt, last = counts.value("next_activity_id", person), counts.value("last_activity_id", person)
    return {
        "id": person["id"], "company_id": account.company_id, "owner_id": owner,
        "org_id": None if org is None else {
            "name": org["name"], "people_count": counts.people_of(org["id"]),
            "owner_id": org["owner_id"], "address": (org["address"] or {}).get("value"),
            "active_flag": not org["is_deleted"], "cc_email": f"{account.company_domain}+org"
            f"{org['id']}@pipedrivemail.com", "value": org["id"]},
        "name": person["name"], "first_name": person["first_name"],
        "last_name": person["last_name"],
        **{name: counts.value(name, person) for name in V1_PERSON_COUNTS},
        "active_flag": not person["is_deleted"], "phone": contacts["phone"],
        "email": contacts["email"], "first_char": person["name"][:1].lower(),
        "update_time": _v1(person["update_time"]), "add_time": _v1(person["add_time"]),
        "visible_to": str(person["visible_to"]),
        "picture_id": None if person["picture_id"] is None else {
            "id": person["picture_id"], "item_type": "person", "item_id": person["id"],
            "active_flag": True, "add_time": _v1(person["add_time"]),
            "update_time": _v1(person["add_time"]), "added_by_user_id": person["owner_id"],
            "pictures": {"128": f"https://cdn.example.com/p/{person['picture_id']}_128.jpg",
                         "512": f"https://cdn.example.com/p/{person['picture_id']}_512.jpg"}},
        "sync_needed": False,
        "next_activity_date": acts("activities", nxt, "due_date"),
        "next_activity_time": acts("activities", nxt, "due_time") or None,
        "next_activity_id": nxt, "last_activity_id": last,
        "last_activity_date": acts("activities", last, "due_date"),
        "last_incoming_mail_time": None, "last_outgoing_mail_time": None,
        "label": labels[0] if labels else None, "label_ids": labels,
        "org_name": org["name"] if org else None, "owner_name": owner["name"] if owner else "",
        "cc_email": f"{account.company_domain}+person{person['id']}@pipedrivemail.com",
    }


V1_PERSON_COUNTS = (
    "open_deals_count", "related_open_deals_count", "closed_deals_count",
    "related_closed_deals_count", "participant_open_deals_count",
    "participant_closed_deals_count", "email_messages_count", "activities_count",
    "done_activities_count", "undone_activities_count", "files_count", "notes_count",
    "followers_count", "won_deals_count", "related_won_deals_count", "lost_deals_count",
    "related_lost_deals_count")


def _v1(stamp: str) -> str:
    """A v2 timestamp (``2025-01-31T10:20:00Z``) in v1's ``2025-01-31 10:20:00``."""
    return stamp[:10] + " " + stamp[11:19]


def _participant(account: Account, row: dict, counts: _Extras) -> dict:
    person = account.row_of("persons", row["person_id"])
    deal = account.row_of("deals", row["deal_id"])
    return {
        "id": row["id"],
        "person_id": {"active_flag": not person["is_deleted"], "name": person["name"],
                      "email": [{"label": e["label"], "value": e["value"], "primary": e["primary"]}
                                for e in person["emails"]],
                      "phone": [{"label": p["label"], "value": p["value"], "primary": p["primary"]}
                                for p in person["phones"]],
                      "owner_id": person["owner_id"], "company_id": account.company_id,
                      "value": person["id"]},
        "add_time": row["add_time"], "active_flag": row["active_flag"],
        "related_item_data": {"deal_id": deal["id"], "title": deal["title"]},
        "person": v1_person(account, person, counts),
        "added_by_user_id": v1_user(account, row["added_by_user_id"]),
        "related_item_type": "deal", "related_item_id": deal["id"],
    }


def _role(account: Account, row: dict, context: tuple[Counter, Counter]) -> dict:
    held, children = context
    return {**row, "assignment_count": str(held[row["id"]]), "sub_role_count": str(children[row["id"]])}


def _permission_set(account: Account, row: dict, held: Counter) -> dict:
    return {**row, "assignment_count": held[row["id"]]}


# entity -> (shape(account, row, context), context(account) computed once per call)
SHAPES = {
    "deal_participants": (_participant, lambda a: _Extras(a, "persons")),
    "roles": (_role, lambda a: (Counter(r["role_id"] for r in a.view("role_assignments")),
                                Counter(r["parent_role_id"] for r in a.view("roles")))),
    "permission_sets": (_permission_set, lambda a: Counter(
        r["permission_set_id"] for r in a.view("permission_set_assignments"))),
}


class _Extras:
    """Plausible values for ``include_fields`` keys, computed from the account's other tables."""

    def __init__(self, account: Account, entity: str) -> None:
        self.account = account
        self.entity = entity
        self.key = OWNER_KEY[entity]
        # shared by the pages of one sync until the data changes: counting is the slow part
        self._cache: dict = account.derived().setdefault(("extras", entity), {})

    def _count(self, table: str, key: str | None = None, **where: object) -> Counter:
        name = (table, key, tuple(sorted(where.items())))
        if name not in self._cache:
            key = key or self.key
            self._cache[name] = Counter(
                r.get(key) for r in self.account.view(table)
                if all(r.get(k) in v for k, v in where.items()))  # where: name -> allowed values
        return self._cache[name]

    def people_of(self, org_id: int) -> int:
        return self._count("persons", "org_id")[org_id]

    def _mail_counts(self) -> Counter:
        """Messages per deal, from the threads linked to it."""
        if "mail" not in self._cache:
            counts: Counter = Counter()
            for t in self.account.view("mail_threads"):
                if t["deal_id"] is not None:
                    counts[t["deal_id"]] += t["message_count"]
            self._cache["mail"] = counts
        return self._cache["mail"]

    def _participant_counts(self) -> Counter:
        """(person id, "open" | "closed") -> deals the person takes part in."""
        if "participants" not in self._cache:
            status = {d["id"]: d["status"] for d in self.account.view("deals")}
            counts: Counter = Counter()
            for p in self.account.view("deal_participants"):
                s = status.get(p["deal_id"])
                if s in ("open", "won", "lost"):
                    counts[p["person_id"], "open" if s == "open" else "closed"] += 1
            self._cache["participants"] = counts
        return self._cache["participants"]

    def _activity_ids(self) -> tuple[dict, dict]:
        if "acts" not in self._cache:
            nxt, last = {}, {}
            activities = self.account.view("activities")
            for a in sorted(activities, key=lambda a: (a["due_date"], a["id"])):
                owner = a.get(self.key)
                if owner is None:
                    continue
                if a["done"]:
                    last[owner] = a["id"]
                else:
                    nxt.setdefault(owner, a["id"])
            self._cache["acts"] = (nxt, last)
        return self._cache["acts"]

    def value(self, name: str, row: dict) -> object:  # noqa: PLR0911 - one branch per key family
        rid = row["id"]
        if name == "next_activity_id":
            return self._activity_ids()[0].get(rid)
        if name == "last_activity_id":
            return self._activity_ids()[1].get(rid)
        if name == "first_won_time":
            return row.get("won_time")
        if name == "smart_bcc_email":
            return f"{self.account.company_domain}+{self.key.split('_')[0]}{rid}@pipedrivemail.com"
        if name in ("marketing_status", "doi_status"):
            return "no_consent" if name == "marketing_status" else None
        if name.endswith("_time"):
            return None  # no mail history in the fake
        if self.key == "deal_id" and name in ("participants_count", "followers_count"):
            return self._count(f"deal_{name.removesuffix('_count')}")[rid]
        if self.key == "deal_id" and name == "email_messages_count":
            return self._mail_counts()[rid]
        if name.startswith("participant_") and self.key == "person_id":
            return self._participant_counts()[rid, "closed" if "closed" in name else "open"]
        if name in ("email_messages_count", "participants_count", "followers_count"):
            return {"followers_count": 1}.get(name, rid % 3)
        if name == "products_count":
            return self._count("deal_products")[rid]
        if name == "people_count":
            return self._count("persons")[rid]
        if name in ("files_count", "notes_count"):
            return self._count(name.removesuffix("_count"))[rid]
        if name.endswith("activities_count"):
            done = {"done_activities_count": True, "undone_activities_count": False}.get(name)
            return self._count("activities", **({} if done is None else {"done": (done,)}))[rid]
        if name.endswith("deals_count"):
            if name.startswith("participant_"):
                return 0
            status = name.removeprefix("related_").removesuffix("_deals_count")
            statuses = ("won", "lost") if status == "closed" else (status,)
            return self._count("deals", status=statuses)[rid]
        return row.get(name)
