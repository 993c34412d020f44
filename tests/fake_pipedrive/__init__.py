"""A fake Pipedrive API (v1, v2 and the OAuth token endpoint) for tap-pipedrive's tests and demo.

    from tests.fake_pipedrive import Account, FakePipedrive, Fault

    with FakePipedrive(Account(seed=7, size="small"), burst_limit=20) as server:
        requests.get(f"{server.url}/api/v2/deals", headers={"x-api-token": server.api_token})
        server.account.update("deals", 1, title="Renamed")  # stamps update_time with the clock
        server.add_fault(Fault(503, path_pattern=r"/api/v2/persons", times=2))
        assert server.tokens_spent == sum(r["tokens_charged"] for r in server.requests)

``FakePipedrive(..., latency=0.08)`` adds that many seconds of network round trip to every
request (half before it is handled, half after; each request on its own thread, so concurrent
requests wait in parallel, not in turn).

Everything is deterministic for a seed. ``FakePipedrive(..., company_id=1234567)`` (or
``Account(company_id=...)``) makes another company: the same seed gives the same record ids, but
``/users/me`` (``company_id``, ``company_domain``) and every record naming the company differ.

Entity names are the tap's stream names (``deals``, ``archived_deals``, ``persons``, ...,
``deal_fields``, ``lead_fields``, and ``deal_changes``, ``deal_participants``,
``deal_followers``, ``deal_installments``, ``product_variations``, ``projects``,
``archived_projects``, ``tasks``, ``boards``, ``phases``, ``project_templates``,
``project_fields``, ``goals``, ``roles``, ``role_assignments``, ``permission_sets``,
``permission_set_assignments``, ``lead_sources``, ``mail_threads``, ``mail_messages``).
``Account.ids(entity)`` and ``Account.records(entity)`` are what the entity's list endpoint returns,
every filter widened (deleted deals and projects included, every goal, each mail thread once, the
children of every deal / product / thread); ``Account.get(entity, id)`` is what its single GET
answers. Records without an id are keyed ``(deal_id, user_id)`` (followers), ``(role_id,
user_id)`` / ``(permission_set_id, user_id)`` (assignments), by name (lead sources) or by
``data.id`` (deal changes).

Deletes and visibility follow Pipedrive: ``Account.delete`` takes a deleted person,
organization, activity, product or file out of its list while its single GET answers it
(``is_deleted`` / ``active_flag`` false, ``update_time`` the delete time) for 30 days, then 404;
``Account.purge`` ends that early; ``Account.hide`` makes a record (and what hangs off it)
invisible to the token's user. ``Account.update("deals", ...)`` logs one dealChange row per
changed field in the deal's ``/flow``.

Modules: ``account`` (generated data, clock, mutations, visibility), ``deal_extras`` (deal
history, participants, followers, installments, product variations), ``projects`` (boards,
phases, templates, projects, tasks), ``admin`` (goals, roles, permission sets, lead sources),
``mail`` (the mailbox), ``fields`` (field definitions and custom-field value formats), ``render``
(response shapes and ``include_fields``), ``server`` (HTTP, auth, OAuth, the core lists and
single GETs, accounting), ``endpoints`` (the other endpoints), ``paging`` (validation, cursors,
offsets), ``limits`` (burst window, daily budget, faults), ``spec`` (what is read from
tap_pipedrive/openapi.json, and ``REAL_NULLS``), ``values`` (realistic values and the schema
filler).
Standalone: ``python -m tests.fake_pipedrive --port 8765``.
"""

from .account import Account
from .limits import Fault
from .server import FakePipedrive

__all__ = ["Account", "FakePipedrive", "Fault"]
