"""Deletes of every entity, archived records in the live tables, children that change alone,
and fields the schema does not know: what the warehouse shows is what Pipedrive holds."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import basic_config
from tests.fake_pipedrive import Fault
from tests.helpers import Run, catalog_selecting, run_tap

DETECTED = ("persons", "organizations", "activities", "products", "notes", "files")
EVERY_RUN = {"detect_deletes_every_hours": 0}


def tombstones(run: Run, stream: str) -> dict:
    """The records of ``stream`` that say a record was deleted, by id."""
    key = "field_code" if stream.endswith("_fields") and stream != "note_fields" else "id"
    return {r[key]: r for r in run.records(stream) if r.get("_sdc_deleted_at")}


def listing_requests(server, stream_path: str) -> int:
    return sum(1 for r in server.requests if r["path"] == stream_path)


@pytest.fixture
def synced(fake, tmp_path):
    """A small account after its first full sync."""
    first = run_tap(config=basic_config(fake, **EVERY_RUN), tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    return fake, first


def test_each_deleted_record_arrives_once_in_its_own_stream_with_sdc_deleted_at(synced, tmp_path):
    server, first = synced
    account = server.account
    deleted = {stream: account.ids(stream)[:2] for stream in DETECTED}
    for stream, ids in deleted.items():
        for rid in ids:
            account.delete(stream, rid)

    second = run_tap(config=basic_config(server, **EVERY_RUN), state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    for stream, ids in deleted.items():
        found = tombstones(second, stream)
        assert set(found) == set(ids), stream
        for record in found.values():
            if stream in ("notes", "files"):  # v1 shapes say it with active_flag
                assert record["active_flag"] is False, stream
            else:
                assert record["is_deleted"] is True, stream
                assert record["_sdc_deleted_at"] == record["update_time"], stream  # the delete time
            assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", record["_sdc_deleted_at"])

    third = run_tap(config=basic_config(server, **EVERY_RUN), state=second.final_state, tmp_path=tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert not any(tombstones(third, stream) for stream in DETECTED), "a delete came twice"


def test_a_hidden_record_is_not_flagged_deleted_but_counted_and_warned_about(synced, tmp_path):
    server, first = synced
    hidden = server.account.ids("persons")[3]
    server.account.hide("persons", hidden)

    second = run_tap(config=basic_config(server, **EVERY_RUN), state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert tombstones(second, "persons") == {}
    warnings = [line for line in second.stderr.splitlines() if "vanished" in line and "WARNING" in line]
    assert len(warnings) == 1
    assert "not deleted" in warnings[0]
    assert f"ids: {hidden}" in warnings[0]
    assert re.search(r"persons: .*1 hidden \(not deleted\)", second.stderr)


def test_detection_runs_at_most_every_so_many_hours_and_can_be_turned_off(synced, tmp_path):
    server, first = synced
    server.account.delete("persons", server.account.ids("persons")[0])
    server.reset_counters()
    # The first sync listed the ids: within 24 hours no run lists them again.
    second = run_tap(config=basic_config(server), state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert tombstones(second, "persons") == {}
    assert not [r for r in server.requests if r["path"].startswith("/api/v2/persons/")]
    assert listing_requests(server, "/api/v2/persons") == 1  # the incremental read, no listing

    config = basic_config(server, detect_deletes=False, **EVERY_RUN)
    off = run_tap(config=config, state=first.final_state, tmp_path=tmp_path)
    assert off.returncode == 0, off.stderr[-2000:]
    assert tombstones(off, "persons") == {}

    server.reset_counters()
    due = run_tap(config=basic_config(server, **EVERY_RUN), state=second.final_state, tmp_path=tmp_path)
    assert len(tombstones(due, "persons")) == 1
    assert listing_requests(server, "/api/v2/persons") == 2  # the read, and the listing


def test_a_row_missing_from_a_full_table_read_is_flagged_deleted_at_no_extra_cost(synced, tmp_path):
    server, first = synced
    label = server.account.ids("lead_labels")[0]
    server.account.delete("lead_labels", label)
    server.reset_counters()
    second = run_tap(config=basic_config(server), state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert set(tombstones(second, "lead_labels")) == {label}
    assert listing_requests(server, "/api/v1/leadLabels") == 1
    third = run_tap(config=basic_config(server), state=second.final_state, tmp_path=tmp_path)
    assert tombstones(third, "lead_labels") == {}


def test_a_deal_or_lead_archived_since_the_last_run_is_archived_in_the_live_table_too(synced, tmp_path):
    server, first = synced
    deal = server.account.ids("deals", status="open")[0]
    lead = server.account.ids("leads")[0]
    server.account.archive("deals", deal)
    server.account.archive("leads", lead)
    second = run_tap(config=basic_config(server), state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert [r["id"] for r in second.records("archived_deals")] == [deal]
    assert [(r["id"], r["is_archived"]) for r in second.records("deals")] == [(deal, True)]
    assert [r["id"] for r in second.records("archived_leads")] == [lead]
    assert [(r["id"], r["is_archived"]) for r in second.records("leads")] == [(lead, True)]
    # the first read of the archived streams copies nothing: those were never live rows
    assert not {r["id"] for r in first.records("archived_deals")} & {r["id"] for r in first.records("deals")}


def test_a_first_read_of_archived_deals_stopped_part_way_copies_nothing_into_deals_on_resume(
    fake_factory, tmp_path
):
    # more archived deals than a page holds (500), and the second page fails for good
    server = fake_factory(counts={"deals": 20, "archived_deals": 520})
    server.add_fault(Fault(500, path_pattern=r"^/api/v2/deals/archived$", after=1))
    found = run_tap("--discover", config=basic_config(server), tmp_path=tmp_path)
    assert found.returncode == 0, found.stderr[-2000:]
    selected = catalog_selecting(json.loads(found.stdout), {"deals", "archived_deals"})
    first = run_tap(config=basic_config(server, max_retries=0), catalog=selected, tmp_path=tmp_path)
    assert first.returncode == 1, first.stderr[-2000:]
    assert len(first.records("archived_deals")) == 500
    assert first.final_state["bookmarks"]["archived_deals"]["replication_key_value"]

    server.clear_faults()
    config = basic_config(server)
    second = run_tap(config=config, catalog=selected, state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    archived = set(server.account.ids("archived_deals"))
    written = first.ids("archived_deals") + second.ids("archived_deals")
    assert sorted(written) == sorted(archived)  # all of them, none twice
    # the resume is still the first read: those deals were never live rows
    assert second.records("deals") == []

    # once that read is complete, a deal archived since is archived in deals too
    deal = server.account.ids("deals", status="open")[0]
    server.account.archive("deals", deal)
    third = run_tap(config=config, catalog=selected, state=second.final_state, tmp_path=tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert [(r["id"], r["is_archived"]) for r in third.records("deals")] == [(deal, True)]


def test_deal_products_changed_added_or_removed_without_their_deal_arrive_with_the_sweep(synced, tmp_path):
    server, first = synced
    account = server.account
    products = account.records("deal_products")
    deal_times = {d["id"]: d["update_time"] for d in account.records("deals")}
    edited = [p["id"] for p in products[:50]]
    for pid in edited:
        account.update("deal_products", pid, quantity=777)
    removed = products[50]["id"]
    account.delete("deal_products", removed)
    added = account.add("deal_products", deal_id=products[51]["deal_id"])
    assert {d["id"]: d["update_time"] for d in account.records("deals")} == deal_times  # no deal moved

    second = run_tap(config=basic_config(server, **EVERY_RUN), state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    written = {r["id"]: r for r in second.records("deal_products") if not r.get("_sdc_deleted_at")}
    assert set(written) == {*edited, added}  # all 50 edits, the new one, nothing else
    assert all(written[pid]["quantity"] == 777 for pid in edited)
    assert set(tombstones(second, "deal_products")) == {removed}
    third = run_tap(config=basic_config(server, **EVERY_RUN), state=second.final_state, tmp_path=tmp_path)
    assert third.records("deal_products") == []


def test_a_field_the_schema_does_not_declare_arrives_in_unlisted_fields_with_one_warning(synced, tmp_path):
    server, first = synced
    ids = server.account.ids("persons")[:2]
    for rid in ids:
        server.account.update("persons", rid, brand_new_field={"nested": [1, 2]})
    second = run_tap(config=basic_config(server), state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    records = {r["id"]: r for r in second.records("persons")}
    for rid in ids:
        assert records[rid]["unlisted_fields"] == {"brand_new_field": {"nested": [1, 2]}}
    warnings = [line for line in second.stderr.splitlines() if "brand_new_field" in line]
    assert len(warnings) == 1
    assert "not found in catalog schema" not in second.stderr


def test_every_key_the_fake_sends_reaches_the_emitted_record(synced):
    server, first = synced
    account = server.account
    for stream in sorted(first.streams_with_records()):
        emitted = set().union(*(r.keys() for r in first.records(stream)))
        sent = set().union(*(r.keys() for r in account.records(stream))) if account.records(stream) else set()
        # custom fields become named columns (their hash keys and the custom_fields object go)
        sent = {k for k in sent if not re.match(r"^[0-9a-f]{40}", k)} - {"custom_fields"}
        assert not sent - emitted, f"{stream}: {sorted(sent - emitted)} never reach a record"
        assert not any(r.get("unlisted_fields") for r in first.records(stream)), stream
    assert json.dumps(first.final_state)
