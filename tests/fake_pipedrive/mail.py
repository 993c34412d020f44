"""The token user's mailbox (v1): mail threads in folders and the messages in each thread.

A mixin of ``Account``. A thread lists the folders it is in (a conversation with replies is in
both ``inbox`` and ``sent``); its counters, snippets and timestamps come from its messages.
"""

from __future__ import annotations

from .values import LEAD_TIME, Gen, fmt_time

SUBJECTS = ("Proposal for {org}", "Re: Pricing question", "Follow-up on our call",
            "Contract draft", "Onboarding next steps", "Invoice {n}", "Meeting notes",
            "Quick question about the API", "Renewal {year}")
# what a thread is: its folders, how many messages, which of them the user sent
THREAD_KINDS = (("conversation", ("inbox", "sent"), 0.25), ("received", ("inbox",), 0.45),
                ("sent", ("sent",), 0.1), ("draft", ("drafts",), 0.08),
                ("archived", ("archive",), 0.12))
MAIL_ACCOUNT = "ao5gpry0zykr1fa3xk8k2q1c"


class Mailbox:
    """Mail threads and messages."""

    _tables: dict[str, dict]

    def _generate_mail(self) -> None:
        gen = self._rng("mail_threads")
        rng = gen.rng
        names, folders, weights = zip(*THREAD_KINDS, strict=True)
        wanted = self.counts["mail_messages"]
        n = self.counts["mail_threads"]
        extra = [0] * n
        if wanted is not None:  # one message a thread, the rest spread over them
            for _ in range(max(0, wanted - n) if n else 0):
                extra[rng.randrange(n)] += 1
        self._invalidate()
        deals_of: dict = {}
        for d in self._tables["deals"].values():
            deals_of.setdefault(d["person_id"], []).append(d["id"])
        for i, (at, ut) in enumerate(self._timeline(gen, "mail_threads", n)):
            # the first thread is a conversation: one thread listed in two folders
            kind = 0 if i == 0 else names.index(rng.choices(names, weights)[0])
            if wanted is None:
                count = rng.randint(2, 5) if kind == 0 else rng.randint(1, 3)
            else:
                count = 1 + extra[i]
            self._build_thread(gen, i + 1, (at, ut), shape=(names[kind], folders[kind], count),
                               deals_of=deals_of)

    def _party(self, gen: Gen, person_id: int | None, when: int, *, user: bool = False) -> dict:
        self._party_serial += 1
        if user:
            u = self._tables["users"][self.me_id]
            name, email, linked, org = u["name"], u["email"], None, None
        elif person_id is not None:
            p = self._tables["persons"][person_id]
            name, email, linked, org = p["name"], p["emails"][0]["value"], person_id, p["org_id"]
        else:
            name, email, linked, org = "", f"info@{gen.hexid(6)}.example.com", None, None
        return {"id": self._party_serial, "name": name, "latest_sent": False,
                "email_address": email, "message_time": when * 1000, "linked_person_id": linked,
                "linked_person_name": name if linked else "", "linked_organization_id": org,
                "mail_message_party_id": self._party_serial}

    def _build_thread(self, gen: Gen, tid: int, span: tuple[int, int], *, shape: tuple,
                      deals_of: dict) -> None:
        """One thread and its messages between ``span`` (add, update time); ``shape`` is
        (kind, folders, number of messages)."""
        at, ut = span
        kind, folders, count = shape
        rng = gen.rng
        person_id = self._pick(gen, "persons")
        person = self._tables["persons"].get(person_id)
        deal_ids = deals_of.get(person_id) if person_id is not None else None
        deal = self._tables["deals"][rng.choice(deal_ids)] if deal_ids and rng.random() < 0.6 else None
        org = self._tables["organizations"].get(person["org_id"]) if person else None
        subject = rng.choice(SUBJECTS).format(org=org["name"] if org else "you",
                                              n=rng.randint(1000, 9999), year=2026)
        times = sorted(gen.between(at, ut) for _ in range(count))
        messages = []
        for n, when in enumerate(times):
            sent = kind in ("sent", "draft") or (kind == "conversation" and n % 2 == 1)
            draft = kind == "draft" and n == count - 1
            mine, theirs = self._party(gen, None, when, user=True), self._party(gen, person_id, when)
            mid = len(self._tables["mail_messages"]) + 1
            snippet = gen.sentence()
            messages.append({
                "id": mid, "from": [mine if sent else theirs], "to": [theirs if sent else mine],
                "cc": [], "bcc": [], "body_url": f"https://mail.example.com/bodies/{gen.hexid(16)}",
                "account_id": MAIL_ACCOUNT, "user_id": self.me_id, "mail_thread_id": tid,
                "subject": subject if n == 0 else f"Re: {subject}", "snippet": snippet,
                "mail_tracking_status": rng.choice((None, "opened")) if sent else None,
                "mail_link_tracking_enabled_flag": 0, "read_flag": 1 if sent or n < count - 1 or
                rng.random() < 0.7 else 0,
                "draft": f"<p>{snippet}</p>" if draft else None, "draft_flag": int(draft),
                "synced_flag": 1, "deleted_flag": 0, "has_body_flag": 1,
                "sent_flag": int(sent and not draft), "sent_from_pipedrive_flag": int(sent and not
                                                                                     draft),
                "smart_bcc_flag": 0, "message_time": fmt_time(when, LEAD_TIME),
                "add_time": fmt_time(when + 5, LEAD_TIME),
                "update_time": fmt_time(when + 60, LEAD_TIME),
                "has_attachments_flag": 0, "has_inline_attachments_flag": 0,
                "has_real_attachments_flag": 0,
            })
            self._tables["mail_messages"][mid] = messages[-1]
        last = messages[-1]
        sent_times = [t for t, m in zip(times, messages, strict=True) if m["sent_flag"]]
        received = [t for t, m in zip(times, messages, strict=True)
                    if not m["sent_flag"] and not m["draft_flag"]]
        self._tables["mail_threads"][tid] = {
            "id": tid, "account_id": MAIL_ACCOUNT, "user_id": self.me_id, "subject": subject,
            "snippet": last["snippet"], "read_flag": last["read_flag"],
            "mail_tracking_status": last["mail_tracking_status"], "has_attachments_flag": 0,
            "has_inline_attachments_flag": 0, "has_real_attachments_flag": 0,
            "deleted_flag": 0, "synced_flag": 1, "smart_bcc_flag": 0,
            "mail_link_tracking_enabled_flag": 0,
            "parties": {"to": last["to"], "from": last["from"]},
            "drafts_parties": last["to"] if last["draft_flag"] else [],
            "folders": list(folders), "version": count, "snippet_draft": last["draft"] and
            last["snippet"], "snippet_sent": next((m["snippet"] for m in reversed(messages)
                                                   if m["sent_flag"]), ""),
            "message_count": count, "has_draft_flag": last["draft_flag"],
            "has_sent_flag": int(bool(sent_times)), "archived_flag": int(kind == "archived"),
            "shared_flag": int(rng.random() < 0.3), "external_deleted_flag": 0,
            "first_message_to_me_flag": int(not messages[0]["sent_flag"]),
            "last_message_timestamp": last["message_time"],
            "first_message_timestamp": messages[0]["message_time"],
            "last_message_sent_timestamp": fmt_time(sent_times[-1], LEAD_TIME) if sent_times
            else None,
            "last_message_received_timestamp": fmt_time((received or times)[-1], LEAD_TIME),
            "add_time": messages[0]["add_time"], "update_time": last["update_time"],
            "deal_id": deal["id"] if deal else None,
            "deal_status": deal["status"] if deal else None,
            "lead_id": self._pick(gen, "leads", 0.1) if not deal else None,
            "all_messages_sent_flag": int(len(sent_times) == count),
        }
