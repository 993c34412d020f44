"""The endpoints beyond the core lists: a deal's flow, participants and followers, product
variations, project boards and phases, goals, roles, permission sets, lead sources, the mailbox.

A mixin of ``FakePipedrive``: each handler gets the endpoint key and the request, validates the
query like Pipedrive (400 in its error envelope), answers 404 for an unknown or invisible parent,
and pages the way the endpoint's spec documents (v1 ``start``/``limit``, v2 ``cursor``/``limit``,
or not at all).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import render, spec
from .admin import GOAL_TYPES
from .deal_extras import FLOW_ITEMS
from .paging import (
    ApiError,
    bool_query,
    cursor_page,
    enum_query,
    int_param,
    int_query,
    path_id,
    v1_page,
)

if TYPE_CHECKING:
    from .account import Account

CUSTOM_KEY = re.compile(r"^[0-9a-f]{40}$")  # a custom field's code
# the filters of /goals/find that widen it from the token user's goals to everyone's
GOAL_WIDENING = ("type.name", "assignee.type", "expected_outcome.target",
                 "expected_outcome.tracking_metric", "expected_outcome.currency_id",
                 "type.params.pipeline_id", "type.params.stage_id", "type.params.activity_type_id")
GOALS_ENVELOPE = {"success": True, "statusCode": 20000, "statusText": "OK",
                  "service": "statistics-goals-api"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parent(account: Account, table: str, rid: object) -> dict:
    """The row a sub-resource hangs off, if its single GET would answer it; else 404."""
    try:
        return account.single(table, rid)
    except KeyError:
        raise ApiError(404, "") from None


def _related(account: Account, users: set, deals: set = frozenset(), persons: set = frozenset()) -> dict:
    """v1 ``related_objects``: the users, deals and persons a page mentions, keyed by id."""
    out: dict = {"user": {}}
    for uid in sorted(u for u in users if u is not None):
        user = render.v1_user(account, uid)
        if user:
            out["user"][str(uid)] = {k: v for k, v in user.items() if k != "value"}
    if deals:
        out["deal"] = {}
        for did in sorted(deals):
            d = account.row_of("deals", did)
            if d:
                out["deal"][str(did)] = {k: d[k] for k in ("id", "title", "status", "value",
                                                          "currency", "stage_id", "pipeline_id")}
    if persons:
        out["person"] = {}
        for pid in sorted(persons):
            p = account.row_of("persons", pid)
            if p:
                out["person"][str(pid)] = {
                    "active_flag": not p["is_deleted"], "id": p["id"], "name": p["name"],
                    "email": [{k: e[k] for k in ("label", "value", "primary")} for e in p["emails"]],
                    "phone": [{k: e[k] for k in ("label", "value", "primary")} for e in p["phones"]],
                    "owner_id": p["owner_id"]}
    return out


def _id_values(q: dict, multi: dict, name: str) -> set[int] | None:
    """An array-of-integers query parameter (``a=1,2`` or repeated), else 400."""
    raw = [p for v in multi.get(name, []) + multi.get(f"{name}[]", []) for p in v.split(",") if p]
    if not raw:
        return None
    if not all(x.strip().isdigit() for x in raw):
        raise ApiError(400, f"Validation failed: {name}: Expected number, received string")
    return {int(x) for x in raw}


class MoreEndpoints:
    """Handlers for the endpoints in ``MORE``; ``self.account`` is the account served."""

    account: Account

    def _more(self, key: str, req: object) -> dict | None:
        handler = MORE.get(key)
        return None if handler is None else getattr(self, handler)(key, req)

    # ---- deals ---------------------------------------------------------------------------

    def _flow(self, key: str, req: object) -> dict:
        """The deal's updates, newest first: its field changes (custom fields only with
        ``all_changes=1``), notes and files; ``items`` picks kinds."""
        account, q = self.account, req.query
        deal_id = path_id(key, req.path_params, "id")
        _parent(account, "deals", deal_id)
        kinds = None
        if q.get("items"):
            kinds = {x.strip() for x in q["items"].split(",") if x.strip()}
            bad = ",".join(sorted(kinds - FLOW_ITEMS))
            if bad:
                raise ApiError(400, f"Validation failed: items: Invalid value(s): {bad}")
        custom = q.get("all_changes") == "1"
        rows = []
        if kinds is None or "dealChange" in kinds:
            rows += [r for r in account.deal_changes(deal_id)
                     if custom or not CUSTOM_KEY.match(r["data"]["field_key"])]
        for kind, table in (("note", "notes"), ("file", "files")):
            if kinds is None or kind in kinds:
                rows += [{"object": kind, "timestamp": r["add_time"], "data": r}
                         for r in account.view(table) if r["deal_id"] == deal_id]
        rows.sort(key=lambda r: (r["timestamp"], r["object"], r["data"]["id"]), reverse=True)
        page, additional = v1_page(rows, q)
        users = {r["data"].get("user_id") for r in page}
        return {"success": True, "data": page, "additional_data": additional,
                "related_objects": _related(account, users, {deal_id})}

    def _participants(self, key: str, req: object) -> dict:
        account = self.account
        deal_id = path_id(key, req.path_params, "id")
        _parent(account, "deals", deal_id)
        rows = [r for r in account.view("deal_participants") if r["deal_id"] == deal_id]
        page, additional = v1_page(rows, req.query)
        data = render.records(account, "deal_participants", page, set())
        return {"success": True, "data": data, "additional_data": additional,
                "related_objects": _related(account, {r["added_by_user_id"] for r in page},
                                            persons={r["person_id"] for r in page})}

    def _followers(self, key: str, req: object) -> dict:
        account, q = self.account, req.query
        deal_id = path_id(key, req.path_params, "id")
        _parent(account, "deals", deal_id)
        rows = [r for r in account.view("deal_followers") if r["deal_id"] == deal_id]
        limit = int_param(q, "limit", 100, 1, 500)
        page, cursor = cursor_page(rows, "user_id", "asc", q.get("cursor"), limit, id_key="user_id")
        return {"success": True, "data": [{"user_id": r["user_id"], "add_time": r["add_time"]}
                                          for r in page],
                "additional_data": {"next_cursor": cursor}}

    def _variations(self, key: str, req: object) -> dict:
        account, q = self.account, req.query
        product_id = path_id(key, req.path_params, "id")
        _parent(account, "products", product_id)
        rows = [r for r in account.view("product_variations") if r["product_id"] == product_id]
        limit = int_param(q, "limit", 100, 1, 500)
        page, cursor = cursor_page(rows, "id", "asc", q.get("cursor"), limit)
        return {"success": True, "data": render.records(account, "product_variations", page, set()),
                "additional_data": {"next_cursor": cursor}}

    # ---- projects: boards and phases (not paged) ---------------------------------------------

    def _boards(self, key: str, req: object) -> dict:  # noqa: ARG002 - one signature for all
        rows = sorted(self.account.view("boards"), key=lambda r: (r["order_nr"], r["id"]))
        return {"success": True, "data": render.records(self.account, "boards", rows, set()),
                "additional_data": None}

    def _phases(self, key: str, req: object) -> dict:  # noqa: ARG002
        board_id = int_query(req.query, "board_id")
        if board_id is None:
            raise ApiError(400, "Validation failed: board_id: Required")
        _parent(self.account, "boards", board_id)
        rows = sorted((r for r in self.account.view("phases") if r["board_id"] == board_id),
                      key=lambda r: (r["order_nr"], r["id"]))
        return {"success": True, "data": render.records(self.account, "phases", rows, set()),
                "additional_data": None}

    # ---- goals ---------------------------------------------------------------------------------

    def _goals(self, key: str, req: object) -> dict:  # noqa: ARG002
        """``/goals/find``: the token user's active goals, unless the filters widen it."""
        q, multi, account = req.query, req.multi, self.account
        name = enum_query(q, "type.name", GOAL_TYPES)
        kind = enum_query(q, "assignee.type", ("person", "company", "team"))
        metric = enum_query(q, "expected_outcome.tracking_metric", ("quantity", "sum"))
        assignee = int_query(q, "assignee.id")
        currency = int_query(q, "expected_outcome.currency_id")
        stage = int_query(q, "type.params.stage_id")
        target = q.get("expected_outcome.target")
        if target:
            try:
                target = float(target)
            except ValueError:
                msg = "Validation failed: expected_outcome.target: Expected number, received string"
                raise ApiError(400, msg) from None
        pipelines = _id_values(q, multi, "type.params.pipeline_id")
        types = _id_values(q, multi, "type.params.activity_type_id")
        active = bool_query(q, "is_active")
        active = True if active is None else active
        start, end = q.get("period.start"), q.get("period.end")
        if bool(start) != bool(end):
            missing = "period.end" if start else "period.start"
            raise ApiError(400, f"Validation failed: {missing}: Required when the other period "
                                "bound is given")
        for bound, value in (("period.start", start), ("period.end", end)):
            if value and not DATE.match(value):
                raise ApiError(400, f"Validation failed: {bound}: Invalid date, expected YYYY-MM-DD")
        everyone = any(q.get(p) for p in GOAL_WIDENING)
        out = []
        for g in account.view("goals"):
            who, outcome, params = g["assignee"], g["expected_outcome"], g["type"]["params"]
            checks = (
                g["is_active"] == active,
                assignee is None or who["id"] == assignee,
                assignee is not None or everyone or who == {"type": "person", "id": account.me_id},
                name is None or g["type"]["name"] == name,
                kind is None or who["type"] == kind,
                metric is None or outcome["tracking_metric"] == metric,
                currency is None or outcome.get("currency_id") == currency,
                not target or outcome["target"] == target,
                stage is None or params.get("stage_id") == stage,
                pipelines is None or set(params.get("pipeline_id") or ()) == pipelines,
                types is None or set(params.get("activity_type_id") or ()) == types,
                not q.get("title") or g["title"] == q["title"],
                not start or _overlaps(g["duration"], start, end),
            )
            if all(checks):
                out.append(g)
        data = render.records(account, "goals", out, set())
        return {**GOALS_ENVELOPE, "data": {"goals": data}}

    # ---- roles, permission sets, lead sources ------------------------------------------------

    def _roles(self, key: str, req: object) -> dict:  # noqa: ARG002
        page, additional = v1_page(self.account.view("roles"), req.query)
        return {"success": True, "data": render.records(self.account, "roles", page, set()),
                "additional_data": additional}

    def _role_assignments(self, key: str, req: object) -> dict:
        role_id = path_id(key, req.path_params, "id")
        _parent(self.account, "roles", role_id)
        rows = [r for r in self.account.view("role_assignments") if r["role_id"] == role_id]
        page, additional = v1_page(rows, req.query)
        return {"success": True, "data": render.records(self.account, "role_assignments", page,
                                                        set()),
                "additional_data": additional}

    def _permission_sets(self, key: str, req: object) -> dict:
        app = enum_query(req.query, "app", spec.ENDPOINTS[key]["params"]["app"]["enum"])
        rows = [r for r in self.account.view("permission_sets") if app is None or r["app"] == app]
        return {"success": True, "data": render.records(self.account, "permission_sets", rows,
                                                        set())}

    def _permission_set_assignments(self, key: str, req: object) -> dict:
        set_id = path_id(key, req.path_params, "id")
        _parent(self.account, "permission_sets", set_id)
        rows = [r for r in self.account.view("permission_set_assignments")
                if r["permission_set_id"] == set_id]
        page, additional = v1_page(rows, req.query)
        return {"success": True, "data": render.records(
            self.account, "permission_set_assignments", page, set()), "additional_data": additional}

    def _lead_sources(self, key: str, req: object) -> dict:  # noqa: ARG002
        return {"success": True, "data": render.records(self.account, "lead_sources",
                                                        self.account.view("lead_sources"), set())}

    # ---- the mailbox ---------------------------------------------------------------------------

    def _mail_threads(self, key: str, req: object) -> dict:
        """Threads of one folder, the most recent message first."""
        folder = enum_query(req.query, "folder", spec.ENDPOINTS[key]["params"]["folder"]["enum"])
        if folder is None:
            raise ApiError(400, "Validation failed: folder: Required")
        rows = sorted((t for t in self.account.view("mail_threads") if folder in t["folders"]),
                      key=lambda t: (t["last_message_timestamp"], t["id"]), reverse=True)
        page, additional = v1_page(rows, req.query)
        return {"success": True, "data": render.records(self.account, "mail_threads", page, set()),
                "additional_data": additional}

    def _mail_messages(self, key: str, req: object) -> dict:
        thread_id = path_id(key, req.path_params, "id")
        _parent(self.account, "mail_threads", thread_id)
        rows = sorted((m for m in self.account.view("mail_messages")
                       if m["mail_thread_id"] == thread_id),
                      key=lambda m: (m["message_time"], m["id"]))
        return {"success": True, "data": render.records(self.account, "mail_messages", rows, set())}


def _overlaps(duration: dict, start: str, end: str) -> bool:
    """Whether a goal's duration (``end`` null = open-ended) overlaps ``start``..``end``."""
    ends = duration["end"]  # YYYY-MM-DD strings compare in date order
    return duration["start"] <= end and (ends is None or ends >= start)


# endpoint key -> handler method
MORE = {
    "v1 /deals/{id}/flow": "_flow", "v1 /deals/{id}/participants": "_participants",
    "v2 /deals/{id}/followers": "_followers", "v2 /products/{id}/variations": "_variations",
    "v2 /boards": "_boards", "v2 /phases": "_phases", "v1 /goals/find": "_goals",
    "v1 /roles": "_roles", "v1 /roles/{id}/assignments": "_role_assignments",
    "v1 /permissionSets": "_permission_sets",
    "v1 /permissionSets/{id}/assignments": "_permission_set_assignments",
    "v1 /leadSources": "_lead_sources", "v1 /mailbox/mailThreads": "_mail_threads",
    "v1 /mailbox/mailThreads/{id}/mailMessages": "_mail_messages",
}
