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
    "activity_fields": "v2 /activityFields",
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
    out = []
    for row in rows:
        rec = dict(row)
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
