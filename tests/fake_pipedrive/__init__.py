"""A fake Pipedrive API (v1, v2 and the OAuth token endpoint) for tap-pipedrive's tests and demo.

    from tests.fake_pipedrive import Account, FakePipedrive, Fault

    with FakePipedrive(Account(seed=7, size="small"), burst_limit=20) as server:
        requests.get(f"{server.url}/api/v2/deals", headers={"x-api-token": server.api_token})
        server.account.update("deals", 1, title="Renamed")  # stamps update_time with the clock
        server.add_fault(Fault(503, path_pattern=r"/api/v2/persons", times=2))
        assert server.tokens_spent == sum(r["tokens_charged"] for r in server.requests)

Everything is deterministic for a seed. ``FakePipedrive(..., company_id=1234567)`` (or
``Account(company_id=...)``) makes another company: the same seed gives the same record ids, but
``/users/me`` (``company_id``, ``company_domain``) and every record naming the company differ. Entity names are the tap's stream names (``deals``,
``archived_deals``, ``persons``, ..., ``deal_fields``, ``lead_fields``); ``Account.ids(entity)``
and ``Account.records(entity)`` are what the entity's list endpoint returns.

Modules: ``account`` (generated data, clock, mutations), ``fields`` (field definitions and
custom-field value formats), ``render`` (response shapes and ``include_fields``), ``server``
(HTTP, auth, OAuth, pagination, accounting), ``limits`` (burst window, daily budget, faults),
``spec`` (what is read from tap_pipedrive/openapi.json, and ``REAL_NULLS``), ``values``
(realistic values and the schema filler).
Standalone: ``python -m tests.fake_pipedrive --port 8765``.
"""

from .account import Account
from .limits import Fault
from .server import FakePipedrive

__all__ = ["Account", "FakePipedrive", "Fault"]
