"""Projects (v2): boards and their phases, project templates, projects and their tasks.

A mixin of ``Account``. Projects are one table shown by two lists (``projects``: not archived,
``archived_projects``: archived), like deals; a deleted project keeps ``status: deleted`` and
is listed only when ``status`` asks for it.
"""

from __future__ import annotations

from .values import DATE, DAY, Gen, epoch_of, fmt_time

BOARDS = ("Customer onboarding", "Implementation", "Internal projects", "Renewals",
          "Partner launches")
PHASES = ("Backlog", "Planning", "In progress", "Review", "Done")
TEMPLATES = (("Standard onboarding", "Kick-off, data import, training and go-live"),
             ("Enterprise rollout", "Phased rollout with a pilot team and security review"),
             ("Office renovation", "Template for office renovation projects"),
             ("Data migration", "Mapping, test import, sign-off and final import"),
             ("Partner launch", "Contract, enablement and joint marketing"))
PROJECT_KINDS = ("onboarding", "implementation", "migration", "rollout", "training")
TASKS = ("Kick-off call", "Collect requirements", "Configure pipelines", "Import data",
         "Set up integrations", "Train the sales team", "Security review", "Go-live",
         "Hypercare check-in", "Send welcome pack")
PROJECT_STATUSES = ("open", "completed", "canceled", "deleted")  # what `status` takes
HEALTH = (None, None, 10, 20, 30)  # the example shows 10


class Projects:
    """Boards, phases, templates, projects and tasks."""

    _tables: dict[str, dict]

    def _generate_projects(self) -> None:
        c = self.counts
        for name in ("boards", "phases", "project_templates"):
            self._generate_simple(name, c[name])
        gen = self._rng("projects")
        rng = gen.rng
        total = c["projects"] + c["archived_projects"] + c["deleted_projects"]
        order = list(range(total))
        rng.shuffle(order)
        deleted = set(order[:c["deleted_projects"]])
        archived = set(order[c["deleted_projects"]:c["deleted_projects"] + c["archived_projects"]])
        self._invalidate()
        for i, (at, ut) in enumerate(self._timeline(gen, "projects", total)):
            rec = self._build_projects(gen, i + 1, at, ut, deleted=i in deleted,
                                       archived=i in archived)
            self._tables["projects"][rec["id"]] = rec
        gen = self._rng("tasks")
        rng = gen.rng
        projects = list(self._tables["projects"].values())
        for project, k in self._spread(gen, projects, c["tasks"], lambda _: rng.randint(0, 5)):
            roots: list[int] = []
            for _ in range(k):
                rid = len(self._tables["tasks"]) + 1
                parent = rng.choice(roots) if roots and rng.random() < 0.25 else None
                task = self._build_tasks(gen, rid, 0, 0, project=project, parent_task_id=parent)
                self._tables["tasks"][rid] = task
                if parent is None:
                    roots.append(rid)

    def _build_boards(self, gen: Gen, rid: int, at: int, ut: int) -> dict:  # noqa: ARG002
        name = BOARDS[(rid - 1) % len(BOARDS)] + ("" if rid <= len(BOARDS) else f" {rid}")
        return {"id": rid, "name": name, "order_nr": rid, "add_time": self._t("boards", at),
                "update_time": self._t("boards", ut)}

    def _build_phases(self, gen: Gen, rid: int, at: int, ut: int) -> dict:  # noqa: ARG002
        boards = self._ids("boards")
        per = max(1, self.counts["phases"] // max(1, len(boards)))
        board_id = boards[min((rid - 1) // per, len(boards) - 1)] if boards else None
        siblings = sum(p["board_id"] == board_id for p in self._tables["phases"].values())
        return {"id": rid, "name": PHASES[siblings % len(PHASES)], "board_id": board_id,
                "order_nr": siblings + 1, "add_time": self._t("phases", at),
                "update_time": self._t("phases", ut)}

    def _build_project_templates(self, gen: Gen, rid: int, at: int, ut: int) -> dict:
        title, description = TEMPLATES[(rid - 1) % len(TEMPLATES)]
        return {"id": rid, "title": title if rid <= len(TEMPLATES) else f"{title} {rid}",
                "description": description, "projects_board_id": self._pick(gen, "boards"),
                "owner_id": gen.rng.choice(self._ids("users")),
                "add_time": self._t("project_templates", at),
                "update_time": self._t("project_templates", ut)}

    def _build_projects(self, gen: Gen, rid: int, at: int, ut: int, *,
                        deleted: bool = False, archived: bool = False) -> dict:
        rng = gen.rng
        deals = self._tables["deals"]
        won = self._id_cache.get("won_deals")
        if won is None:
            won = self._id_cache["won_deals"] = [d["id"] for d in deals.values()
                                                 if d["status"] == "won"] or list(deals)
        deal = deals[rng.choice(won)] if won and rng.random() < 0.7 else None
        org_id = deal["org_id"] if deal else self._pick(gen, "organizations", 0.5)
        person_id = deal["person_id"] if deal else self._pick(gen, "persons", 0.5)
        who = _org_name(self._tables["organizations"], org_id) or "Internal"
        board_id = self._pick(gen, "boards")
        phases = [p["id"] for p in self._tables["phases"].values() if p["board_id"] == board_id]
        status = "deleted" if deleted else rng.choices(("open", "completed", "canceled"),
                                                       (0.6, 0.3, 0.1))[0]
        if archived and status == "open":
            status = "completed"  # archived projects are mostly finished ones
        changed = gen.between(at, ut) if status != "open" else at
        start = at + rng.randint(0, 14) * DAY
        return {
            "id": rid, "title": f"{who} {rng.choice(PROJECT_KINDS)}",
            "description": gen.sentence(), "status": status, "board_id": board_id,
            "phase_id": rng.choice(phases) if phases else None,
            "owner_id": rng.choice(self._ids("users")),
            "start_date": fmt_time(start, DATE),
            "end_date": fmt_time(start + rng.randint(14, 120) * DAY, DATE),
            "deal_ids": [deal["id"]] if deal else [],
            "person_ids": [person_id] if person_id else [],
            "org_ids": [org_id] if org_id else [], "label_ids": self._labels(gen, "project"),
            "health_status": rng.choice(HEALTH), "add_time": self._t("projects", at),
            "update_time": self._t("projects", ut),
            "status_change_time": self._t("projects", changed),
            "archive_time": self._t("projects", gen.between(changed, ut)) if archived else None,
            "custom_fields": self._custom_values(gen, "project", at),
        }

    def _build_tasks(self, gen: Gen, rid: int, at: int, ut: int, *,
                     project: dict | None = None, parent_task_id: int | None = None) -> dict:
        rng = gen.rng
        projects = self._tables["projects"]
        project = project or projects[rng.choice(self._ids("projects"))]
        p_at, p_ut = epoch_of(project["add_time"]), epoch_of(project["update_time"])
        at = at or gen.between(p_at, p_ut)
        ut = ut or gen.between(at, p_ut)
        done = project["status"] == "completed" or rng.random() < 0.4
        users = self._ids("users")
        due = at + rng.randint(3, 60) * DAY
        return {
            "id": rid, "title": rng.choice(TASKS), "creator_id": project["owner_id"],
            "description": rng.choice((None, gen.sentence())), "project_id": project["id"],
            "is_done": done, "is_milestone": rng.random() < 0.1,
            "due_date": rng.choice((None, fmt_time(due, DATE))),
            "start_date": rng.choice((None, fmt_time(at, DATE))),
            "parent_task_id": parent_task_id,
            "assignee_ids": sorted(rng.sample(users, min(len(users), rng.randint(0, 2)))),
            "priority": rng.choice((None, None, 1, 2, 3)), "add_time": self._t("tasks", at),
            "update_time": self._t("tasks", ut),
            "marked_as_done_time": self._t("tasks", ut) if done else None,
        }


def _org_name(orgs: dict, org_id: object) -> str | None:
    return orgs[org_id]["name"] if org_id in orgs else None
