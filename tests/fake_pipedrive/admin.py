"""Company set-up (v1): goals, roles and who holds them, permission sets and who has them, the
fixed list of lead sources.

A mixin of ``Account``. Users already carry ``role_id`` and ``access[].permission_set_id``;
roles and permission sets are generated to match them (and the users are pointed at them), so
assignments, ``assignment_count`` and the users agree.
"""

from __future__ import annotations

from .values import DATE, DAY, Gen, fmt_time

GOAL_TYPES = ("deals_won", "deals_progressed", "activities_completed", "activities_added",
              "deals_started")  # type.name of GET /v1/goals/find
GOAL_TITLES = {"deals_won": "Deals won", "deals_progressed": "Deals progressed",
               "activities_completed": "Activities completed",
               "activities_added": "Activities added", "deals_started": "Deals started"}
INTERVALS = {"weekly": 7, "monthly": 30, "quarterly": 91, "yearly": 365}
# whose goal the n-th goal is (cycling): the token's user, the company, a team, someone else
GOAL_ASSIGNEES = ("me", "company", "other", "me", "team", "other")
ROLES = (("Sales Director", None), ("Sales Managers", 1), ("Account Executives", 2),
         ("Customer Success", 1), ("SDR team", 2), ("Marketing", 1), ("Partnerships", 4),
         ("Support", 4))  # name, parent (1-based index)
PERMISSION_SETS = (  # name, app, type, description
    ("Global admin", "global", "admin", "Manage the company account, users and billing"),
    ("Regular user", "global", "regular", "Use Pipedrive without company-level settings"),
    ("Deals admin", "sales", "admin", ("See and edit all sales data (deals, leads), manage "
                                       "company-level sales setup (such as lost reasons and "
                                       "pipelines)")),
    ("Deals regular user", "sales", "regular", "See and edit the sales data they can access"),
    ("Projects admin", "projects", "admin", "Manage every project, board and template"),
    ("Projects regular user", "projects", "regular", "Work on the projects they can access"),
    ("Campaigns admin", "campaigns", "admin", "Manage campaigns and their settings"),
    ("Campaigns regular user", "campaigns", "regular", "Create and send campaigns"),
    ("Account settings admin", "account_settings", "admin", "Manage account settings"),
    ("Sales manager (custom)", "sales", "custom", "Deals regular user who may also export"),
)
LEAD_SOURCES = ("Manually created", "Deal", "Web forms", "Prospector", "Leadbooster", "Live chat",
                "Import", "Website visitors", "Workflow automation", "API")


class Admin:
    """Goals, roles, permission sets, lead sources."""

    _tables: dict[str, dict]

    def _generate_admin(self) -> None:
        c = self.counts
        self._generate_simple("goals", c["goals"])
        self._invalidate()
        gen = self._rng("roles")
        rng = gen.rng
        for rid in range(1, c["roles"] + 1):
            if rid > len(ROLES):
                self._tables["roles"][rid] = self._build_roles(gen, rid, 0, 0)
                continue
            name, parent = ROLES[rid - 1]
            self._tables["roles"][rid] = {"id": rid, "parent_role_id": parent, "name": name,
                                          "active_flag": True, "level": _level(rid)}
        self._invalidate()
        roles = self._ids("roles")
        for user in self._tables["users"].values() if roles else ():  # the admin heads the tree
            user["role_id"] = roles[0] if user["id"] == self.me_id or len(roles) == 1 else (
                rng.choice(roles[1:]))
            self._assign_role(user["id"], user["role_id"])
        gen = self._rng("permission_sets")
        for name, app, kind, description in PERMISSION_SETS[:c["permission_sets"]]:
            pid = gen.uuid()
            self._tables["permission_sets"][pid] = {
                "id": pid, "name": name, "description": description, "app": app, "type": kind}
        self._grant_permission_sets(gen)
        for name in LEAD_SOURCES[:c["lead_sources"]]:
            self._tables["lead_sources"][name] = {"name": name}

    def _assign_role(self, user_id: int, role_id: int) -> None:
        """A user holds one role: assigning another moves them."""
        assignments = self._tables["role_assignments"]
        for key in [k for k in assignments if k[1] == user_id]:
            del assignments[key]
        role = self._tables["roles"].get(role_id)
        if role is None:
            return
        user = self._tables["users"].get(user_id)
        assignments[(role_id, user_id)] = {
            "user_id": user_id, "role_id": role_id, "parent_role_id": role["parent_role_id"],
            "name": role["name"], "active_flag": bool(user and user["active_flag"]), "type": "1"}
        if user is not None:
            user["role_id"] = role_id

    def _grant_permission_sets(self, gen: Gen) -> None:
        """Point each user's ``access`` at the permission sets (admins get the admin ones)."""
        sets = list(self._tables["permission_sets"].values())
        for user in self._tables["users"].values():
            access = []
            for entry in user["access"]:
                wanted = "admin" if entry["admin"] else "regular"
                fits = [s for s in sets if s["app"] == entry["app"] and s["type"] == wanted] or [
                    s for s in sets if s["app"] == entry["app"]]
                if fits:
                    access.append({**entry, "permission_set_id": fits[0]["id"]})
            projects = [s for s in sets if s["app"] == "projects"]
            if projects and gen.rng.random() < 0.4:
                access.append({"app": "projects", "admin": user["id"] == self.me_id,
                               "permission_set_id": projects[user["id"] != self.me_id
                                                             and len(projects) > 1]["id"]})
            user["access"] = access
            for entry in access:
                s = self._tables["permission_sets"][entry["permission_set_id"]]
                self._tables["permission_set_assignments"][(s["id"], user["id"])] = {
                    "user_id": user["id"], "permission_set_id": s["id"], "name": s["name"]}

    def _build_goals(self, gen: Gen, rid: int, at: int, ut: int) -> dict:  # noqa: ARG002
        rng = gen.rng
        users = self._ids("users")
        whose = GOAL_ASSIGNEES[(rid - 1) % len(GOAL_ASSIGNEES)]
        others = [u for u in users if u != self.me_id] or users
        assignee = {"me": {"type": "person", "id": self.me_id},
                    "other": {"type": "person", "id": rng.choice(others)},
                    "company": {"type": "company", "id": self.company_id},
                    "team": {"type": "team", "id": rng.randint(1, 3)}}[whose]
        name = GOAL_TYPES[rng.randrange(len(GOAL_TYPES))]
        interval = rng.choice(tuple(INTERVALS))
        # the n-th goal of the token's user is active unless it is their second one
        active = rid != 4 and (rid == 1 or rng.random() < 0.75)
        now = self._now
        if active:
            start = now - rng.randint(1, 120) * DAY
            end = None if rng.random() < 0.15 else now + rng.randint(1, 300) * DAY
        else:
            end = now - rng.randint(1, 200) * DAY
            start = end - rng.randint(30, 365) * DAY
        pipelines = self._ids("pipelines")
        params: dict = {"pipeline_id": (sorted(rng.sample(pipelines, 1))
                                        if pipelines and rng.random() < 0.6 else None)}
        params["activity_type_id"] = None  # null: every activity type (the example shows it)
        if name.startswith("activities"):
            types = self._ids("activity_types")
            params["activity_type_id"] = sorted(rng.sample(types, min(2, len(types)))) if (
                types and rng.random() < 0.7) else None
        if name == "deals_progressed":
            stages = [s["id"] for s in self._tables["stages"].values()
                      if params["pipeline_id"] is None or s["pipeline_id"] in params["pipeline_id"]]
            params["stage_id"] = rng.choice(stages) if stages else None
        if name.startswith("deals") and rng.random() < 0.5:
            outcome = {"target": rng.randint(2, 100) * 1000, "tracking_metric": "sum",
                       "currency_id": self._pick(gen, "currencies") or 1}
        else:
            outcome = {"target": rng.randint(5, 120), "tracking_metric": "quantity"}
        return {
            "id": gen.hexid(32), "owner_id": self.me_id if rng.random() < 0.7 else rng.choice(users),
            "title": f"{GOAL_TITLES[name]} ({interval})", "type": {"name": name, "params": params},
            "assignee": assignee, "interval": interval,
            "duration": {"start": fmt_time(start, DATE),
                         "end": fmt_time(end, DATE) if end is not None else None},
            "expected_outcome": outcome, "is_active": active, "report_ids": [gen.hexid(32)],
        }

    def _build_roles(self, gen: Gen, rid: int, at: int, ut: int) -> dict:  # noqa: ARG002
        parent = gen.rng.choice(self._ids("roles")) if self._tables["roles"] else None
        return {"id": rid, "parent_role_id": parent, "name": f"Role {rid}", "active_flag": True,
                "level": self._tables["roles"][parent]["level"] + 1 if parent else 1}

    def _build_role_assignments(self, gen: Gen, rid: int, at: int, ut: int) -> dict:  # noqa: ARG002
        role_id, user_id = gen.rng.choice(self._ids("roles")), gen.rng.choice(self._ids("users"))
        role = self._tables["roles"][role_id]
        return {"user_id": user_id, "role_id": role_id, "parent_role_id": role["parent_role_id"],
                "name": role["name"], "active_flag": True, "type": "1"}


def _level(rid: int) -> int:
    level, parent = 1, ROLES[rid - 1][1]
    while parent is not None:
        level, parent = level + 1, ROLES[parent - 1][1]
    return level
