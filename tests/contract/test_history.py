"""The streams read per parent (a deal's history, participants, followers; a product's
variations) and with the deals (installments): opt-in, incremental per parent, spread over
runs when the token budget is short, and exact across all of it."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import basic_config
from tests.fake_pipedrive import Fault
from tests.helpers import catalog_selecting, run_tap

PER_PARENT = ("deal_changes", "deal_participants", "deal_followers", "product_variations")
WITH_DEALS = ("deal_installments",)
PARENTS = ("deals", "archived_deals", "products")
STREAMS = {*PER_PARENT, *WITH_DEALS, *PARENTS}
FLOW = re.compile(r"^/api/v1/deals/(\d+)/flow$")


def key(stream: str, record: dict) -> object:
    return (record["deal_id"], record["user_id"]) if stream == "deal_followers" else record["id"]


def keys(run, stream: str) -> list:
    return [key(stream, r) for r in run.records(stream) if not r.get("_sdc_deleted_at")]


def flow_requests(server) -> list[int]:
    return [int(m.group(1)) for r in server.requests if (m := FLOW.match(r["path"]))]


@pytest.fixture
def catalog(fake, tmp_path):
    found = run_tap("--discover", config=basic_config(fake), tmp_path=tmp_path)
    assert found.returncode == 0, found.stderr[-2000:]
    return json.loads(found.stdout)


def test_the_per_parent_streams_are_opt_in(fake, catalog, tmp_path):
    by_name = {e["tap_stream_id"]: e for e in catalog["streams"]}
    for stream in PER_PARENT:
        (root,) = [m for m in by_name[stream]["metadata"] if not m["breadcrumb"]]
        assert root["metadata"]["selected-by-default"] is False, stream
    run = run_tap(config=basic_config(fake), tmp_path=tmp_path)  # no catalog: the defaults
    assert run.returncode == 0, run.stderr[-2000:]
    assert not run.streams_with_records() & set(PER_PARENT)
    assert flow_requests(fake) == []


def test_a_full_sync_emits_every_row_once_and_a_second_run_none(fake, catalog, tmp_path):
    selected = catalog_selecting(catalog, STREAMS)
    first = run_tap(config=basic_config(fake), catalog=selected, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    for stream in (*PER_PARENT, *WITH_DEALS):
        got = keys(first, stream)
        assert len(got) == len(set(got)), f"{stream}: written twice"
        assert set(got) == set(fake.account.ids(stream)), stream
    changes = first.records("deal_changes")
    assert all(re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", r["log_time"]) for r in changes)
    assert all(r["deal_id"] == r["item_id"] for r in changes)
    # every deal's history is read once (the small account's histories fit a page each)
    deals = {*fake.account.ids("deals"), *fake.account.ids("archived_deals")}
    assert sorted(flow_requests(fake)) == sorted(deals)

    fake.reset_counters()
    second = run_tap(config=basic_config(fake), catalog=selected, state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert not second.streams_with_records()
    assert flow_requests(fake) == []


def test_history_is_read_for_the_changed_deals_only_and_only_what_is_new(fake, catalog, tmp_path):
    selected = catalog_selecting(catalog, STREAMS)
    first = run_tap(config=basic_config(fake), catalog=selected, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    account = fake.account
    changed = account.ids("deals", status="open")[:2]
    account.update("deals", changed[0], title="Renamed", value=42)
    account.update("deals", changed[1], stage_id=account.records("deals")[0]["stage_id"])
    before = set(first.ids("deal_changes"))
    fake.reset_counters()

    second = run_tap(config=basic_config(fake), catalog=selected, state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert sorted(flow_requests(fake)) == sorted(changed)
    new = second.records("deal_changes")
    assert {r["id"] for r in new} == set(account.ids("deal_changes")) - before
    assert {(r["deal_id"], r["field_key"]) for r in new} >= {(changed[0], "title"), (changed[0], "value")}
    assert all(isinstance(r["new_value"], str) or r["new_value"] is None for r in new)


def test_a_backfill_larger_than_the_budget_spreads_over_runs_exactly(fake, catalog, tmp_path):
    selected = catalog_selecting(catalog, STREAMS)
    runs, state, exits = [], None, []
    for _ in range(20):
        config = basic_config(fake, max_tokens_per_run=400)
        run = run_tap(config=config, catalog=selected, state=state, tmp_path=tmp_path)
        runs.append(run)
        exits.append(run.returncode)
        state = run.final_state
        if run.returncode == 0:
            break
    assert exits[-1] == 0, exits
    assert exits[:-1], f"the budget should stop the first runs: {exits}"
    assert set(exits[:-1]) == {3}, exits
    for stream in (*PER_PARENT, *WITH_DEALS):
        got = [k for run in runs for k in keys(run, stream)]
        assert len(got) == len(set(got)), f"{stream}: written twice across the runs"
        assert set(got) == set(fake.account.ids(stream)), stream
    # no deal's history is read twice: a deal done and unchanged is not read again
    requested = flow_requests(fake)
    assert len(requested) == len(set(requested))
    # every other stream is complete before the per-parent ones spend the rest
    assert set(runs[0].ids("deals")) == set(fake.account.ids("deals"))


def test_a_deal_gone_before_its_history_is_read_is_skipped_and_the_rest_goes_on(fake, catalog, tmp_path):
    selected = catalog_selecting(catalog, {"deals", "deal_changes"})
    gone = fake.account.ids("deals")[3]
    fake.add_fault(Fault(404, path_pattern=rf"^/api/v1/deals/{gone}/flow$"))
    run = run_tap(config=basic_config(fake), catalog=selected, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert gone not in {r["deal_id"] for r in run.records("deal_changes")}
    assert {r["deal_id"] for r in run.records("deal_changes")} == set(fake.account.ids("deals")) - {gone}
    assert "1 parents were gone" in run.stderr


@pytest.mark.parametrize("status", [402, 403])
def test_installments_not_in_the_plan_skip_that_stream_only(fake, catalog, tmp_path, status):
    selected = catalog_selecting(catalog, {"deals", "deal_products", "deal_installments"})
    fake.add_fault(Fault(status, path_pattern=r"^/api/v2/deals/installments$"))
    run = run_tap(config=basic_config(fake), catalog=selected, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.records("deal_installments") == []
    assert set(run.ids("deal_products")) == set(fake.account.ids("deal_products"))
    assert len([r for r in fake.requests if r["path"] == "/api/v2/deals/installments"]) == 1
    assert "Skipping stream 'deal_installments'" in run.stderr


def test_a_removed_follower_gets_a_tombstone_once(fake, catalog, tmp_path):
    selected = catalog_selecting(catalog, {"deals", "deal_followers"})
    first = run_tap(config=basic_config(fake), catalog=selected, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    deal_id, user_id = fake.account.ids("deal_followers")[0]
    fake.account.delete("deal_followers", (deal_id, user_id))
    fake.account.update("deals", deal_id, title="touched")
    second = run_tap(config=basic_config(fake), catalog=selected, state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    gone = [r for r in second.records("deal_followers") if r.get("_sdc_deleted_at")]
    assert [(r["deal_id"], r["user_id"]) for r in gone] == [(deal_id, user_id)]
    fake.account.update("deals", deal_id, title="touched again")
    third = run_tap(config=basic_config(fake), catalog=selected, state=second.final_state, tmp_path=tmp_path)
    assert not [r for r in third.records("deal_followers") if r.get("_sdc_deleted_at")]
