"""What hangs off deals and products: each deal's history (``/deals/{id}/flow``), its
participants and followers, installments, and product variations.

A mixin of ``Account``: it reads and writes the account's tables. A deal's history is generated
the first time anything needs it (its flow is read, the deal changes, every change is listed), from
the deal as it was generated and its own random stream, so the account is as fast to build as
before and the history is the same whenever it is made.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

from .values import DATE, DAY, V1_TIME, V2_TIME, FastRandom, Gen, epoch_of, fmt_time

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

APP_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
             "Gecko) Chrome/124.0.0.0 Safari/537.36")
# (change_source, change_source_user_agent) of a change, weighted by repetition
CHANGE_SOURCES = (("app", APP_AGENT), ("app", APP_AGENT), ("app", APP_AGENT),
                  ("mobile", "Pipedrive/10.4.1 (iPhone; iOS 17.5; Scale/3.00)"),
                  ("api", "python-requests/2.32.3"))
# v2 key -> the key a dealChange names it by (the flow speaks v1)
FLOW_KEY = {"owner_id": "user_id"}
NOT_LOGGED = frozenset({"update_time", "add_time", "stage_change_time"})  # follow other changes
HISTORY_SLOTS = 100  # generated change ids are deal_id * 100 + n
FLOW_ITEMS = frozenset({
    "call", "activity", "plannedActivity", "change", "note", "deal", "file", "dealChange",
    "personChange", "organizationChange", "follower", "dealFollower", "personFollower",
    "organizationFollower", "participant", "comment", "mailMessage", "mailMessageWithAttachment",
    "invoice", "document", "marketing_campaign_stat", "marketing_status_change",
})  # the values GET /v1/deals/{id}/flow documents for ``items``
VARIANTS = (("Basic", 0.8), ("Pro", 1.25), ("Enterprise", 1.9), ("Starter", 0.6))
INSTALLMENT_NAMES = ("Setup fee", "Delivery Fee", "Onboarding", "Licence")


class DealExtras:
    """Deal history, participants, followers, installments; product variations."""

    _tables: dict[str, dict]

    # ---- spreading children over their parents ------------------------------------------

    @staticmethod
    def _spread(gen: Gen, parents: list, wanted: int | None,
                natural: Callable[[object], int]) -> Iterable[tuple[object, int]]:
        """(parent, number of children): ``natural(parent)`` each, or exactly ``wanted`` in all."""
        if wanted is None:
            return [(p, natural(p)) for p in parents]
        per = [0] * len(parents)
        for _ in range(wanted if parents else 0):
            per[gen.rng.randrange(len(parents))] += 1
        return zip(parents, per, strict=True)

    # ---- history (the dealChange rows of /deals/{id}/flow) --------------------------------

    def _history(self, deal_id: int) -> None:
        """Make a deal's generated history, once; call it before the deal first changes."""
        if deal_id in self._history_done:
            return
        self._history_done.add(deal_id)
        deal = self._tables["deals"].get(deal_id)
        if deal is None or deal_id > self._generated_deals:
            return  # a deal added by a test starts without history
        gen = Gen(FastRandom(f"{self.seed}:deal_changes:{deal_id}"))
        story = sorted(self._deal_story(gen, deal), key=lambda c: c[0])
        created = epoch_of(deal["add_time"])
        self._log_change(deal_id * HISTORY_SLOTS, deal_id, self._creation(created),
                         user_id=deal["creator_user_id"], source=gen.rng.choice(CHANGE_SOURCES))
        for n, (when, key, old, new, bulk) in enumerate(story[:HISTORY_SLOTS - 1], start=1):
            user = deal["owner_id"] if gen.rng.random() < 0.7 else gen.rng.choice(self._ids("users"))
            source = gen.rng.choice(CHANGE_SOURCES)
            self._log_change(deal_id * HISTORY_SLOTS + n, deal_id, (when, key, old, new),
                             user_id=user, source=source, bulk=bulk)

    @staticmethod
    def _creation(when: int) -> tuple:
        """The change that opens every deal's history: its creation (``add_time`` set)."""
        return when, "add_time", None, fmt_time(when, V1_TIME)

    def _all_histories(self) -> None:
        for deal_id in list(self._tables["deals"]):
            self._history(deal_id)

    def _deal_story(self, gen: Gen, deal: dict) -> list[tuple]:
        """(time, field key, old, new, bulk?) of every change a generated deal went through,
        ending in its current values."""
        rng = gen.rng
        at, ut = epoch_of(deal["add_time"]), epoch_of(deal["update_time"])
        if ut <= at:
            return []  # never edited
        story = []
        users = self._ids("users")
        # stage moves, one stage at a time, the last at stage_change_time
        stages = sorted((s for s in self._tables["stages"].values()
                         if s["pipeline_id"] == deal["pipeline_id"]), key=lambda s: s["order_nr"])
        ids = [s["id"] for s in stages]
        here, moved = ids.index(deal["stage_id"]), epoch_of(deal["stage_change_time"])
        if here > 0 and moved > at:
            start = 0 if rng.random() < 0.7 else rng.randrange(here)
            path = ids[start:here + 1]
            times = [*sorted(gen.between(at + 1, moved) for _ in path[2:]), moved]
            story += [(t, "stage_id", a, b, False) for (a, b), t in zip(pairwise(path), times,
                                                                       strict=True)]
        if len(users) > 1 and rng.random() < 0.15:
            old = rng.choice([u for u in users if u != deal["owner_id"]])
            story.append((gen.between(at, ut), "user_id", old, deal["owner_id"], False))
        if deal["value"] and rng.random() < 0.35:
            old = round(deal["value"] * rng.uniform(0.5, 1.5) / 50) * 50 or 50
            story.append((gen.between(at, ut), "value", old, deal["value"], False))
        if rng.random() < 0.2:
            new = deal["expected_close_date"]
            old = fmt_time(epoch_of(new) - rng.randint(7, 60) * DAY, DATE)
            story.append((gen.between(at, ut), "expected_close_date", old, new, False))
        if rng.random() < 0.1:
            story.append((gen.between(at, ut), "title", deal["title"].split(" - ")[0],
                          deal["title"], False))
        simple = [f for f in self._fields["deal"] if f.custom
                  and f.type in ("varchar", "int", "double", "enum", "date", "text")
                  and deal["custom_fields"].get(f.code) is not None]
        if simple and rng.random() < 0.3:  # only with all_changes=1
            f = rng.choice(simple)
            story.append((gen.between(at, ut), f.code, None, deal["custom_fields"][f.code], False))
        closed = deal["won_time"] or deal["lost_time"]
        if closed:
            status = "won" if deal["won_time"] else "lost"
            t = min(epoch_of(closed), ut)
            story.append((t, "status", "open", status, False))
            if deal["lost_reason"] and status == "lost":
                story.append((t, "lost_reason", None, deal["lost_reason"], False))
        if deal["status"] == "deleted":
            before = "won" if deal["won_time"] else "lost" if deal["lost_time"] else "open"
            story.append((ut, "status", before, "deleted", False))
        if deal["is_archived"] and deal.get("archive_time"):
            story.append((epoch_of(deal["archive_time"]), "is_archived", False, True, False))
        if deal["update_time"] == self._bulk_second("deals"):  # a bulk edit touched it
            old = 7 if deal["visible_to"] != 7 else 3
            story.append((ut, "visible_to", old, deal["visible_to"], True))
        return story

    def _log_change(self, cid: int, deal_id: int, change: tuple, *, user_id: int,
                    source: tuple[str, str], bulk: bool = False) -> None:
        """Store one dealChange row; ``change`` is (epoch, field key, old value, new value)."""
        when, key, old, new = change
        stamp = fmt_time(when, V1_TIME)
        row = {"object": "dealChange", "timestamp": stamp, "data": {
            "id": cid, "item_id": deal_id, "user_id": user_id, "field_key": key,
            "old_value": old, "new_value": new, "is_bulk_update_flag": True if bulk else None,
            "log_time": stamp, "change_source": source[0], "change_source_user_agent": source[1],
            "additional_data": [],
        }}
        self._tables["deal_changes"][cid] = row
        self._changes_of.setdefault(deal_id, []).append(row)

    def _log_creation(self, deal: dict) -> None:
        """The history of a deal added now starts with its creation."""
        self._change_serial += 1
        self._log_change(self._change_serial, deal["id"], self._creation(self._now),
                         user_id=self.me_id, source=CHANGE_SOURCES[0])

    def _log_changes(self, deal_id: int, changes: list[tuple[str, object, object]]) -> None:
        """dealChange rows for a change made now by the token's user in the web app."""
        for key, old, new in changes:
            self._change_serial += 1
            self._log_change(self._change_serial, deal_id,
                             (self._now, FLOW_KEY.get(key, key), old, new), user_id=self.me_id,
                             source=CHANGE_SOURCES[0])

    @staticmethod
    def _diff(row: dict, fields: dict) -> list[tuple[str, object, object]]:
        """(key, old, new) of each field ``fields`` changes (custom fields one by one)."""
        out = []
        for key, value in fields.items():
            if key == "custom_fields" and isinstance(value, dict):
                current = row.get("custom_fields") or {}
                out += [(code, current.get(code), v) for code, v in value.items()
                        if current.get(code) != v]
            elif key not in NOT_LOGGED and row.get(key) != value:
                out.append((key, row.get(key), value))
        return out

    def deal_changes(self, deal_id: int) -> list[dict]:
        """The live dealChange rows of one deal (caller holds ``lock``)."""
        self._history(deal_id)
        return self._changes_of.get(deal_id, [])

    # ---- followers, participants, installments, variations ---------------------------------

    def _generate_deal_extras(self) -> None:
        self._invalidate()
        deals = list(self._tables["deals"].values())
        users = self._ids("users")
        c = self.counts

        gen = self._rng("deal_followers")
        rng = gen.rng
        for deal, k in self._spread(gen, deals, c["deal_followers"],
                                    lambda _: (rng.random() < 0.85) + (rng.random() < 0.25)):
            chosen = [deal["owner_id"]] + [u for u in rng.sample(users, len(users))
                                          if u != deal["owner_id"]]
            for user_id in chosen[:k]:
                self._add_follower(gen, deal, user_id)

        gen = self._rng("deal_participants")
        rng = gen.rng
        persons = self._ids("persons")
        for deal, k in self._spread(gen, deals, c["deal_participants"], lambda d: (
                (d["person_id"] is not None and rng.random() < 0.85) + (rng.random() < 0.2))):
            chosen = ([deal["person_id"]] if deal["person_id"] else []) + rng.sample(
                persons, min(len(persons), 3))
            for person_id in list(dict.fromkeys(chosen))[:k]:
                rid = len(self._tables["deal_participants"]) + 1
                self._add_row("deal_participants", self._build_deal_participants(
                    gen, rid, 0, 0, deal=deal, person_id=person_id))

        gen = self._rng("deal_installments")
        rng = gen.rng
        for deal, k in self._spread(gen, deals, c["deal_installments"], lambda d: (
                rng.randint(2, 6) if d["value"] and rng.random() < 0.12 else 0)):
            for n in range(1, k + 1):
                rid = len(self._tables["deal_installments"]) + 1
                self._add_row("deal_installments", self._build_deal_installments(
                    gen, rid, 0, 0, deal=deal, n=n, of=k))

        gen = self._rng("product_variations")
        rng = gen.rng
        products = list(self._tables["products"].values())
        for product, k in self._spread(gen, products, c["product_variations"], lambda _: (
                rng.randint(2, 4) if rng.random() < 0.25 else 0)):
            for n in range(k):
                rid = len(self._tables["product_variations"]) + 1
                self._add_row("product_variations", self._build_product_variations(
                    gen, rid, 0, 0, product=product, n=n))
        # some deal products are sold as one of their product's variations
        by_product: dict[int, list[int]] = {}
        for v in self._tables["product_variations"].values():
            by_product.setdefault(v["product_id"], []).append(v["id"])
        rng = self._rng("deal_products:variations").rng
        for row in self._tables["deal_products"].values():
            variations = by_product.get(row["product_id"])
            if variations and rng.random() < 0.5:
                row["product_variation_id"] = rng.choice(variations)

    def _add_row(self, table: str, row: dict) -> None:
        self._tables[table][self._key(table, row)] = row

    def _add_follower(self, gen: Gen, deal: dict, user_id: int) -> None:
        self._add_row("deal_followers", self._build_deal_followers(gen, 0, 0, 0, deal=deal,
                                                                   user_id=user_id))

    def _build_deal_followers(self, gen: Gen, rid: int, at: int, ut: int, *,  # noqa: ARG002
                              deal: dict | None = None, user_id: int | None = None) -> dict:
        deal = deal or self._tables["deals"][gen.rng.choice(self._ids("deals"))]
        user_id = user_id or gen.rng.choice(self._ids("users"))
        d_at, d_ut = epoch_of(deal["add_time"]), epoch_of(deal["update_time"])
        since = d_at if user_id == deal["owner_id"] else gen.between(d_at, d_ut)
        return {"deal_id": deal["id"], "user_id": user_id,
                "add_time": fmt_time(at or since, V2_TIME)}

    def _build_deal_participants(self, gen: Gen, rid: int, at: int, ut: int, *,  # noqa: ARG002
                                 deal: dict | None = None, person_id: int | None = None) -> dict:
        deal = deal or self._tables["deals"][gen.rng.choice(self._ids("deals"))]
        person_id = person_id or gen.rng.choice(self._ids("persons"))
        d_at, d_ut = epoch_of(deal["add_time"]), epoch_of(deal["update_time"])
        since = d_at if person_id == deal["person_id"] else gen.between(d_at, d_ut)
        return {"id": rid, "deal_id": deal["id"],
                "person_id": person_id, "add_time": fmt_time(at or since, V1_TIME),
                "added_by_user_id": deal["owner_id"], "active_flag": True}

    def _build_deal_installments(self, gen: Gen, rid: int, at: int, ut: int, *,  # noqa: ARG002
                                 deal: dict | None = None, n: int = 1, of: int = 1) -> dict:
        rng = gen.rng
        deal = deal or self._tables["deals"][rng.choice(self._ids("deals"))]
        start = epoch_of(deal["expected_close_date"])
        amount = round((deal["value"] or rng.randint(1, 40) * 250) / of, 2)
        name = rng.choice(INSTALLMENT_NAMES) if n == 1 else f"Installment {n} of {of}"
        return {"id": rid, "amount": amount,
                "billing_date": fmt_time(start + (n - 1) * 30 * DAY, DATE), "description": name,
                "deal_id": deal["id"]}

    def _build_product_variations(self, gen: Gen, rid: int, at: int, ut: int, *,  # noqa: ARG002
                                  product: dict | None = None, n: int | None = None) -> dict:
        rng = gen.rng
        product = product or self._tables["products"][rng.choice(self._ids("products"))]
        label, factor = VARIANTS[n % len(VARIANTS)] if n is not None else rng.choice(VARIANTS)
        prices = [{"product_variation_id": rid, "price": round(p["price"] * factor, 2),
                   "currency": p["currency"], "cost": round(p["cost"] * factor, 2),
                   "direct_cost": round(p["cost"] * factor * 0.5, 2), "notes": ""}
                  for p in product["prices"]]
        return {"id": rid, "name": f"{product['name']} {label}", "product_id": product["id"],
                "prices": prices}
