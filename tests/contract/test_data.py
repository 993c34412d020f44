"""The data: every core Pipedrive entity, full history then incremental, exact across runs.

Each test runs the tap as a subprocess against a fake Pipedrive on 127.0.0.1 and compares what
it emitted with the fake account: the exact set of primary keys (no more, no fewer, no
repeats), the shape of the timestamps, the number of list requests, and what a second or
third run emits after changes (exactly the changed records, once each).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.conftest import basic_config, make_fake
from tests.fake_pipedrive import Fault
from tests.helpers import SEEN_SECRETS, Run, assert_no_secret, catalog_selecting, run_tap

if TYPE_CHECKING:
    from pathlib import Path

ALL_STREAMS = (
    "deals",
    "archived_deals",
    "persons",
    "organizations",
    "activities",
    "products",
    "pipelines",
    "stages",
    "deal_products",
    "deal_fields",
    "person_fields",
    "organization_fields",
    "product_fields",
    "activity_fields",
    "notes",
    "leads",
    "archived_leads",
    "users",
    "lead_labels",
    "filters",
    "activity_types",
    "currencies",
    "files",
    "call_logs",
    "note_fields",
    "lead_fields",
    "projects",
    "archived_projects",
    "tasks",
    "boards",
    "phases",
    "project_templates",
    "project_fields",
    "goals",
    "roles",
    "role_assignments",
    "permission_sets",
    "permission_set_assignments",
    "lead_sources",
    "mail_threads",
)
INCREMENTAL = (
    "deals",
    "archived_deals",
    "persons",
    "organizations",
    "activities",
    "products",
    "notes",
    "leads",
    "archived_leads",  # newest first, down to the bookmark
    "files",  # newest first, down to the bookmark
    "projects",  # read whole, changes emitted
    "archived_projects",
    "tasks",
)
FULL_TABLE = tuple(s for s in ALL_STREAMS if s not in INCREMENTAL and s != "deal_products")
KEY = {
    "deal_fields": "field_code",
    "person_fields": "field_code",
    "organization_fields": "field_code",
    "product_fields": "field_code",
    "activity_fields": "field_code",
    "note_fields": "key",
    "lead_fields": "key",
    "project_fields": "field_code",
    "lead_sources": "name",
    "role_assignments": ("role_id", "user_id"),
    "permission_set_assignments": ("permission_set_id", "user_id"),
}
LIST_PATH = {"deals": "/api/v2/deals", "notes": "/api/v1/notes"}
PAGE_SIZE = 500
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_ACCOUNT_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.\d+)?Z?$")


# ---- helpers ------------------------------------------------------------------------------


def key_of(stream: str) -> str | tuple[str, ...]:
    """The primary key of a stream's records (a tuple of fields where it has several)."""
    return KEY.get(stream, "id")


def key_value(stream: str, record: dict) -> object:
    """A record's primary key: the key field's value, or a tuple of the key fields' values
    (as ``Account.ids`` gives them)."""
    key = key_of(stream)
    return tuple(record[k] for k in key) if isinstance(key, tuple) else record[key]


def ids(run: Run, stream: str) -> list:
    """The primary keys a run emitted for ``stream``, in order (with repeats)."""
    return [key_value(stream, r) for r in run.records(stream)]


def duplicates(values: list) -> list:
    return sorted((v for v, n in Counter(values).items() if n > 1), key=str)


def assert_exact(emitted: list, expected, what: str) -> None:
    """``emitted`` holds every expected key exactly once and nothing else."""
    expected = set(expected)
    got = set(emitted)
    assert not duplicates(emitted), f"{what}: emitted more than once: {duplicates(emitted)[:10]}"
    missing = sorted(expected - got, key=str)
    extra = sorted(got - expected, key=str)
    assert (missing, extra) == ([], []), (
        f"{what}: {len(missing)} missing {missing[:10]}, {len(extra)} unexpected {extra[:10]}"
    )


def rfc3339(value: str) -> str:
    """An account timestamp (v2 ``…Z``, v1 ``YYYY-MM-DD HH:MM:SS``, lead ``….000Z``) as RFC 3339."""
    m = _ACCOUNT_TS.match(value)
    assert m, f"not an account timestamp: {value!r}"
    return f"{m.group(1)}T{m.group(2)}Z"


def account_keys(server, stream: str) -> list:
    return server.account.ids(stream)


def list_requests(server, path: str) -> list[dict]:
    """The successful GETs of exactly ``path`` (not its sub-paths)."""
    return [r for r in server.requests if r["method"] == "GET" and r["path"] == path and r["status"] == 200]


def select(catalog: dict, streams: set[str]) -> dict:
    return catalog_selecting(copy.deepcopy(catalog), streams)


def discover(server, tmp_path: Path) -> dict:
    run = run_tap("--discover", config=basic_config(server), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def sync(
    server,
    tmp_path: Path,
    *,
    state: dict | None = None,
    catalog: dict | None = None,
    expect_ok: bool = True,
    **config,
) -> Run:
    run = run_tap(config=basic_config(server, **config), state=state, catalog=catalog, tmp_path=tmp_path)
    if expect_ok:
        assert run.returncode == 0, run.stderr[-3000:]
    return run


def bookmark(run_or_state, stream: str) -> dict:
    state = run_or_state.final_state if isinstance(run_or_state, Run) else run_or_state
    return state.get("bookmarks", {}).get(stream, {})


def sorted_by_update_time(server, stream: str) -> list[dict]:
    return sorted(server.account.records(stream), key=lambda r: (rfc3339(r["update_time"]), r["id"]))


def records_before_last_state(messages: list[dict]) -> list[dict]:
    """RECORD messages that precede the last STATE message."""
    last = max((i for i, m in enumerate(messages) if m.get("type") == "STATE"), default=0)
    return [m for m in messages[:last] if m.get("type") == "RECORD"]


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small account (seed 7), its catalog, a full sync and a second run with no change.

    Read-only: tests that change the account start their own fake.
    """
    server = make_fake()
    with server:
        tmp = tmp_path_factory.mktemp("small")
        catalog = discover(server, tmp)
        server.reset_counters()
        run1 = sync(server, tmp)
        requests1 = list(server.requests)
        server.reset_counters()
        run2 = sync(server, tmp, state=run1.final_state)
        yield {"server": server, "catalog": catalog, "run1": run1, "run2": run2, "requests1": requests1}
        SEEN_SECRETS.update(server.refresh_tokens)


@pytest.fixture(scope="module")
def catalog(small):
    """The catalog of seed 7 (custom fields do not depend on the record counts)."""
    return small["catalog"]


# ---- a full sync ----------------------------------------------------------------------------


def test_full_sync_drops_no_field_pipedrive_sends(small):
    # The SDK silently drops (with a warning) any key the schema does not declare.
    assert "not found in catalog schema" not in small["run1"].stderr


def test_field_definitions_are_read_once_per_entity_per_run(small):
    fields_requests = Counter(
        r["path"] for r in small["requests1"] if r["path"].endswith(("Fields", "Fields/"))
    )
    assert fields_requests, "the sync read no field definitions"
    assert set(fields_requests.values()) == {1}, fields_requests


@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_full_sync_emits_exactly_the_account_ids_once(small, stream):
    assert_exact(ids(small["run1"], stream), account_keys(small["server"], stream), stream)


def test_full_sync_emits_deleted_deals_in_deals_with_is_deleted_true(small):
    account = small["server"].account
    deleted = set(account.ids("deals", status="deleted"))
    assert deleted, "the small account has deleted deals"
    deals = {r["id"]: r for r in small["run1"].records("deals")}
    assert deleted <= set(deals)
    assert {i for i, r in deals.items() if r.get("is_deleted") is True} == deleted
    assert all(deals[i].get("status") == "deleted" for i in deleted)


def test_full_sync_emits_archived_deals_and_leads_only_in_their_archived_streams(small):
    run, account = small["run1"], small["server"].account
    archived_deals = set(account.ids("archived_deals"))
    archived_leads = set(account.ids("archived_leads"))
    assert archived_deals
    assert archived_leads
    assert not archived_deals & set(run.ids("deals"))
    assert set(run.ids("archived_deals")) == archived_deals
    assert all(r.get("is_archived") is True for r in run.records("archived_deals"))
    assert not archived_leads & set(run.ids("leads"))
    assert set(run.ids("archived_leads")) == archived_leads


@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_update_and_add_time_are_rfc3339_utc_seconds_equal_to_the_account(small, stream):
    """v2 ``…Z``, v1 ``YYYY-MM-DD HH:MM:SS``, lead ``….000Z``: all ``YYYY-MM-DDTHH:MM:SSZ``."""
    source = {key_value(stream, r): r for r in small["server"].account.records(stream)}
    checked = 0
    for record in small["run1"].records(stream):
        key = key_value(stream, record)
        for name in ("update_time", "add_time"):
            value = record.get(name)
            if value is None:
                continue
            assert isinstance(value, str), f"{stream} {key} {name}={value!r}"
            assert RFC3339_UTC.match(value), f"{stream} {key} {name}={value!r}"
            original = source[key].get(name)
            if original is not None:
                assert value == rfc3339(original), f"{stream} {key} {name}: {original!r} -> {value!r}"
            checked += 1
    if any(name in r for r in source.values() for name in ("update_time", "add_time")):
        assert checked, f"{stream}: no timestamps checked"


def test_bookmarks_are_rfc3339_utc_seconds(small):
    for stream in INCREMENTAL:
        value = bookmark(small["run1"], stream).get("replication_key_value")
        assert value, f"{stream}: no bookmark"
        assert RFC3339_UTC.match(value), f"{stream}: bookmark {value!r}"
        newest = max(rfc3339(r["update_time"]) for r in small["server"].account.records(stream))
        assert value == newest, f"{stream}: bookmark {value} but the newest update_time is {newest}"


def test_second_run_without_changes_emits_no_incremental_record(small):
    run2 = small["run2"]
    emitted = {s: len(run2.records(s)) for s in (*INCREMENTAL, "deal_products")}
    assert emitted == dict.fromkeys(emitted, 0)


def test_second_run_without_changes_still_emits_every_full_table_stream(small):
    for stream in FULL_TABLE:
        assert_exact(ids(small["run2"], stream), account_keys(small["server"], stream), stream)


# ---- paging edges ---------------------------------------------------------------------------


PAGED = ("deals", "notes")  # a v2 cursor list and a v1 offset list, read in the same run


@pytest.mark.parametrize("count", [0, 1, 499, 500, 501, 1000])
def test_paging_edges_emit_exact_ids_with_the_expected_number_of_requests(
    fake_factory, catalog, tmp_path, count
):
    server = fake_factory(counts=dict.fromkeys(PAGED, count))
    run = sync(server, tmp_path, catalog=select(catalog, set(PAGED)))
    for stream in PAGED:
        expected = account_keys(server, stream)
        assert len(expected) == count
        assert_exact(run.ids(stream), expected, stream)
        pages = len(list_requests(server, LIST_PATH[stream]))
        # v2 pages by cursor; v1 notes page by updated_since, each page re-reading the newest
        # second of the one before (one record here), so a page brings 499 new records.
        per_page = PAGE_SIZE if stream == "deals" else PAGE_SIZE - 1
        assert pages == max(
            1, math.ceil(max(count - 1, 0) / per_page) if stream == "notes" else math.ceil(count / per_page)
        ), f"{pages} requests to {LIST_PATH[stream]}"


def test_a_note_updated_while_the_run_pages_pushes_no_other_note_out_of_reach(
    fake_factory, catalog, tmp_path
):
    # With offset paging, an early note updated between page 1 and page 2 moves to the end of
    # the list, the note at the page boundary shifts onto page 1 (already read) and is lost.
    server = fake_factory(counts={"notes": 1000})
    early = sorted_by_update_time(server, "notes")[10]["id"]
    server.add_fault(Fault("timeout", path_pattern=r"^/api/v1/notes$", times=1, delay=1.0))

    def edit_once_page_one_is_served() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r["path"] == "/api/v1/notes" for r in list(server.requests)):
                server.account.update("notes", early, content="<p>edited mid-run</p>")
                return
            time.sleep(0.005)

    editor = threading.Thread(target=edit_once_page_one_is_served)
    editor.start()
    run = sync(server, tmp_path, catalog=select(catalog, {"notes"}))
    editor.join()
    assert run.returncode == 0, run.stderr
    assert set(run.ids("notes")) == set(server.account.ids("notes"))
    assert run.records("notes")[-1]["id"] == early  # the edit arrives too, at the end


def test_files_and_archived_leads_are_read_newest_first_down_to_the_bookmark(fake_factory, catalog, tmp_path):
    server = fake_factory(counts={"files": 250, "leads": 20, "archived_leads": 5})
    streams = {"files", "archived_leads"}
    run1 = sync(server, tmp_path, catalog=select(catalog, streams))
    assert_exact(run1.ids("files"), server.account.ids("files"), "files")
    assert len(list_requests(server, "/api/v1/files")) == 3  # 250 files, 100 a page

    # No change: one request each, nothing emitted.
    server.reset_counters()
    run2 = sync(server, tmp_path, catalog=select(catalog, streams), state=run1.final_state)
    assert run2.ids("files") == []
    assert run2.ids("archived_leads") == []
    assert len(list_requests(server, "/api/v1/files")) == 1
    assert len(list_requests(server, "/api/v1/leads/archived")) == 1

    # Changes: exactly the changed files and the newly archived lead, once each.
    oldest = sorted_by_update_time(server, "files")[0]["id"]
    server.account.update("files", oldest, description="edited")
    added = server.account.add("files", file_name="new.pdf")
    lead = server.account.ids("leads")[0]
    server.account.archive("leads", lead)
    run3 = sync(server, tmp_path, catalog=select(catalog, streams), state=run2.final_state)
    assert sorted(run3.ids("files")) == sorted([oldest, added])
    assert run3.ids("archived_leads") == [lead]
    run4 = sync(server, tmp_path, catalog=select(catalog, streams), state=run3.final_state)
    assert run4.ids("files") == []
    assert run4.ids("archived_leads") == []


def test_a_newest_first_read_that_stops_part_way_resumes_without_loss_or_repeat(
    fake_factory, catalog, tmp_path
):
    server = fake_factory(counts={"files": 250})
    run1 = sync(server, tmp_path, catalog=select(catalog, {"files"}))
    changed = [r["id"] for r in sorted_by_update_time(server, "files")[:150]]
    for file_id in changed:
        server.account.update("files", file_id, description="edited", advance=0)
    server.account.advance()
    # The second page fails for good: the run stops after writing the first 100 changes.
    server.add_fault(Fault(400, path_pattern=r"^/api/v1/files$", after=1, times=1))
    run2 = sync(server, tmp_path, catalog=select(catalog, {"files"}), state=run1.final_state, expect_ok=False)
    assert run2.returncode == 1
    assert len(run2.ids("files")) == 100
    # The bookmark did not move (the read is not complete); STATE says what it wrote.
    for key in ("replication_key_value", "bookmark_ids"):
        assert bookmark(run2, "files")[key] == bookmark(run1, "files")[key]
    assert bookmark(run2, "files")["read"], "the part read is not in STATE"
    run3 = sync(server, tmp_path, catalog=select(catalog, {"files"}), state=run2.final_state)
    # The next run writes the other 50 changes, and none of the 100 again.
    assert_exact(run2.ids("files") + run3.ids("files"), changed, "files across the stopped run")
    assert "read" not in bookmark(run3, "files")
    assert bookmark(run3, "files")["replication_key_value"] > bookmark(run1, "files")["replication_key_value"]
    run4 = sync(server, tmp_path, catalog=select(catalog, {"files"}), state=run3.final_state)
    assert run4.ids("files") == []


def test_300_records_in_one_second_across_a_page_boundary_are_emitted_once_and_not_again(
    fake_factory, catalog, tmp_path
):
    server = fake_factory(counts=dict.fromkeys(PAGED, 600))
    account = server.account
    shared = {}
    for stream in PAGED:
        second = account.now_epoch - 30  # after every other record: it becomes the bookmark
        shared[stream] = random.Random(stream).sample(  # noqa: S311 - a fixed sample, not a secret
            account.ids(stream), 300
        )  # not in id order
        account.set_update_time(stream, shared[stream], second)
        order = [r["id"] for r in sorted_by_update_time(server, stream)]
        positions = sorted(order.index(i) for i in shared[stream])
        assert positions[0] < PAGE_SIZE <= positions[-1], "the shared second spans the page boundary"

    cat = select(catalog, set(PAGED))
    run1 = sync(server, tmp_path, catalog=cat)
    for stream in PAGED:
        assert_exact(run1.ids(stream), account.ids(stream), f"{stream} run 1")
        assert len(list_requests(server, LIST_PATH[stream])) == 2
        assert sorted(bookmark(run1, stream).get("bookmark_ids", [])) == sorted(shared[stream])

    server.reset_counters()
    run2 = sync(server, tmp_path, catalog=cat, state=run1.final_state)
    for stream in PAGED:
        assert run2.ids(stream) == [], f"{stream}: run 2 emitted again"
        assert bookmark(run2, stream) == bookmark(run1, stream)


# ---- incremental runs -------------------------------------------------------------------------


def _changed_products(server, deal_ids: set) -> set:
    return {r["id"] for r in server.account.records("deal_products") if r["deal_id"] in deal_ids}


def _assert_run_emits_exactly(server, run: Run, expected: dict[str, set], label: str) -> None:
    for stream in INCREMENTAL:
        assert_exact(run.ids(stream), expected.get(stream, set()), f"{label}: {stream}")
    read = set(run.ids("deals")) | set(run.ids("archived_deals"))
    assert_exact(run.ids("deal_products"), _changed_products(server, read), f"{label}: deal_products")


def test_three_runs_with_changes_emit_exactly_the_changed_records_once(fake_factory, catalog, tmp_path):
    server = fake_factory()
    account = server.account
    cat = select(catalog, {*INCREMENTAL, "deal_products"})
    run1 = sync(server, tmp_path, catalog=cat)
    for stream in INCREMENTAL:
        assert_exact(run1.ids(stream), account.ids(stream), f"run 1: {stream}")

    deals = account.ids("deals", status="open")
    persons, notes = account.ids("persons"), account.ids("notes")
    d1, d2, d3, d4 = deals[3], deals[5], deals[7], deals[9]
    # between run 1 and run 2: update, delete, archive and insert deals; a person; a note
    account.update("deals", d1, title="Renamed once")
    account.delete("deals", d2)
    account.archive("deals", d3)
    n1 = account.add("deals", title="Inserted before run 2")
    account.update("persons", persons[2], name="Renamed Person")
    account.update("notes", notes[4], content="<p>edited</p>")

    run2 = sync(server, tmp_path, catalog=cat, state=run1.final_state)
    _assert_run_emits_exactly(
        server,
        run2,
        {
            # d3 is archived since run 1: its archived state goes to the live table too
            "deals": {d1, d2, n1, d3},
            "archived_deals": {d3},
            "persons": {persons[2]},
            "notes": {notes[4]},
        },
        "run 2",
    )
    by_id = {r["id"]: r for r in run2.records("deals")}
    assert by_id[d3]["is_archived"] is True
    assert by_id[d2]["is_deleted"] is True
    assert by_id[d1]["title"] == "Renamed once"
    assert by_id[d1]["is_deleted"] is False
    assert run2.records("archived_deals")[0]["is_archived"] is True
    assert run2.records("persons")[0]["name"] == "Renamed Person"

    # between run 2 and run 3: repeated updates, a delete of the new deal and of the archived
    # one, another archive, an insert that is then updated, a second person, a new note
    account.update("deals", d1, title="Renamed twice")
    account.update("deals", d1, value=1234)
    account.delete("deals", n1)
    account.delete("archived_deals", d3)
    account.archive("deals", d4)
    n2 = account.add("deals", title="Inserted before run 3")
    account.update("deals", n2, title="Inserted and edited")
    account.update("persons", persons[2], name="Renamed Again")
    account.update("persons", persons[5], name="Another Person")
    account.update("notes", notes[4], content="<p>edited twice</p>")
    t3 = account.add("notes", content="<p>new</p>")

    run3 = sync(server, tmp_path, catalog=cat, state=run2.final_state)
    _assert_run_emits_exactly(
        server,
        run3,
        {
            "deals": {d1, n1, n2, d3, d4},  # the archived ones' changes go to the live table too
            "archived_deals": {d3, d4},
            "persons": {persons[2], persons[5]},
            "notes": {notes[4], t3},
        },
        "run 3",
    )
    by_id = {r["id"]: r for r in run3.records("deals")}
    assert by_id[n1]["is_deleted"] is True
    assert by_id[d1]["title"] == "Renamed twice"
    assert by_id[n2]["title"] == "Inserted and edited"
    archived = {r["id"]: r for r in run3.records("archived_deals")}
    assert archived[d3]["is_deleted"] is True
    assert archived[d4]["is_archived"] is True


def test_a_change_stamped_in_the_bookmark_second_after_the_run_is_emitted_next_run(
    fake_factory, catalog, tmp_path
):
    """``updated_since`` is inclusive: the bookmark's second is read again; only the ids
    already written at that second are skipped, a record changed in it since is not."""
    server = fake_factory()
    account = server.account
    cat = select(catalog, set(PAGED))
    run1 = sync(server, tmp_path, catalog=cat)
    changed = {}
    for stream in PAGED:
        mark = bookmark(run1, stream)
        written = set(mark["bookmark_ids"])
        assert written
        # another record is edited in that same second, after the tap read it, and one is added
        other = next(i for i in account.ids(stream) if i not in written)
        account.set_update_time(stream, other, mark["replication_key_value"])
        account.now = dt.datetime.fromisoformat(mark["replication_key_value"].replace("Z", "+00:00"))
        changed[stream] = {other, account.add(stream, advance=0)}

    run2 = sync(server, tmp_path, catalog=cat, state=run1.final_state)
    for stream in PAGED:
        assert_exact(run2.ids(stream), changed[stream], f"{stream} run 2")
    run3 = sync(server, tmp_path, catalog=cat, state=run2.final_state)
    for stream in PAGED:
        assert run3.ids(stream) == [], f"{stream} run 3"


def test_start_date_limits_the_first_run_to_records_updated_since(small, tmp_path):
    server = small["server"]
    start = "2025-07-01T09:30:00Z"  # the second many deals share: the bound is inclusive
    run = sync(server, tmp_path, start_date=start)
    read_deals = set()
    for stream in INCREMENTAL:
        expected = {r["id"] for r in server.account.records(stream) if rfc3339(r["update_time"]) >= start}
        assert_exact(run.ids(stream), expected, f"{stream} since {start}")
        if stream in ("deals", "archived_deals"):
            read_deals |= expected
    assert any(r["update_time"] == start for r in run.records("deals"))
    assert 0 < len(run.records("deals")) < len(server.account.ids("deals"))
    assert_exact(run.ids("deal_products"), _changed_products(server, read_deals), "deal_products")
    for stream in FULL_TABLE:
        assert_exact(ids(run, stream), account_keys(server, stream), stream)


# ---- a run stopped part-way, then resumed ---------------------------------------------------


def test_run_failing_on_the_third_page_resumes_from_its_last_state_without_loss_or_repeats(
    fake_factory, catalog, tmp_path
):
    stream = "deals"
    server = fake_factory(counts={stream: 1500})
    account = server.account
    # 300 records in one second around the failing page's start (positions 850-1149)
    order = [r["id"] for r in sorted_by_update_time(server, stream)]
    shared = order[850:1150]
    last = account.record(stream, order[1149])["update_time"]
    account.set_update_time(stream, shared, last)
    order = [r["id"] for r in sorted_by_update_time(server, stream)]
    cat = select(catalog, {stream})
    server.add_fault(Fault(400, path_pattern=rf"{LIST_PATH[stream]}$", after=2))

    run1 = sync(server, tmp_path, catalog=cat, expect_ok=False)
    assert run1.returncode != 0
    assert server.faults_served == 1
    first = run1.ids(stream)
    assert not duplicates(first)
    assert len(first) == 2 * PAGE_SIZE, "two pages were written before the failure"
    assert set(first) == set(order[: 2 * PAGE_SIZE])
    # the final STATE covers the records written: its bookmark is the last one's second
    assert bookmark(run1, stream)["replication_key_value"] == rfc3339(last)

    server.clear_faults()
    server.reset_counters()
    run2 = sync(server, tmp_path, catalog=cat, state=run1.final_state)
    second = run2.ids(stream)
    assert not duplicates(second)
    assert not set(first) & set(second), f"re-emitted: {sorted(set(first) & set(second))[:10]}"
    assert_exact(first + second, account.ids(stream), f"{stream} run 1 + run 2")


def test_run_killed_mid_stream_resumes_from_its_last_state(fake_factory, catalog, tmp_path):
    """SIGKILL (no chance to write a final STATE) in the middle of the second page of notes."""
    stream = "notes"
    server = fake_factory(counts={stream: 1500})
    cat = select(catalog, {stream})
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(basic_config(server)))
    catalog_path = tmp_path / "catalog.json"
    catalog_path.write_text(json.dumps(cat))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PIPEDRIVE_")}
    cmd = [
        sys.executable,
        "-m",
        "tap_pipedrive",
        "--config",
        str(config_path),
        "--catalog",
        str(catalog_path),
    ]
    lines: list[str] = []
    seen = 0
    with (
        (tmp_path / "stderr.log").open("w") as err,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=tmp_path) as proc,
    ):
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("{") and json.loads(line).get("type") == "RECORD":
                seen += 1
            if seen >= 650:
                proc.send_signal(signal.SIGKILL)
                break
        lines.extend(proc.stdout.read().splitlines(keepends=True))
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the tap finished before it could be killed"
    assert_no_secret("".join(lines), (tmp_path / "stderr.log").read_text())
    complete = [line for line in lines if line.endswith("\n")]
    assert lines[: len(complete)] == complete, "only the last line may be cut by the kill"
    messages = [json.loads(line) for line in complete if line.startswith("{")]
    killed = [m["record"]["id"] for m in messages if m.get("type") == "RECORD" and m["stream"] == stream]
    assert 650 <= len(killed) < 1500, "killed in the middle of the stream"
    states = [m["value"] for m in messages if m.get("type") == "STATE"]
    covered = [m["record"]["id"] for m in records_before_last_state(messages) if m["stream"] == stream]
    assert len(covered) >= PAGE_SIZE, "a STATE was written after the first page"

    run2 = sync(server, tmp_path, catalog=cat, state=states[-1])
    resumed = run2.ids(stream)
    assert not duplicates(resumed)
    assert not set(covered) & set(resumed), f"re-emitted: {sorted(set(covered) & set(resumed))[:10]}"
    assert_exact(list(set(killed) | set(resumed)), server.account.ids(stream), f"{stream}, both runs")


# ---- deal_products ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deals", "archived"),
    [pytest.param(200, 100, id="full-batches"), pytest.param(150, 30, id="partial-batches")],
)
def test_deal_products_reads_100_deals_a_request(fake_factory, catalog, tmp_path, deals, archived):
    server = fake_factory(counts={"deals": deals, "archived_deals": archived})
    run = sync(server, tmp_path, catalog=select(catalog, {"deals", "archived_deals", "deal_products"}))
    read = run.ids("deals") + run.ids("archived_deals")
    assert len(read) == deals + archived
    assert_exact(run.ids("deal_products"), server.account.ids("deal_products"), "deal_products")
    requests = list_requests(server, "/api/v2/deals/products")
    asked = [int(i) for r in requests for i in str(r["query"]["deal_ids"]).split(",")]
    assert all(len(str(r["query"]["deal_ids"]).split(",")) <= 100 for r in requests)
    assert_exact(asked, read, "deal ids asked for")
    # Each parent stream (deals, archived_deals) reads its deals' products in batches of 100.
    per_parent = [len(run.ids("deals")), len(run.ids("archived_deals"))]
    assert len(requests) == sum(math.ceil(n / 100) for n in per_parent), (
        f"{len(requests)} requests to /api/v2/deals/products for {len(read)} deals "
        f"({deals} + {archived} archived)"
    )


# ---- the demo account: what a sync costs ------------------------------------------------------


def _cost(server) -> tuple[int, int, dict]:
    per_path: dict[str, list[int]] = {}
    for r in server.requests:
        entry = per_path.setdefault(r["path"], [0, 0])
        entry[0] += 1
        entry[1] += r["tokens_charged"]
    return len(server.requests), server.tokens_spent, per_path


@pytest.mark.slow
def test_demo_account_full_and_no_change_sync_cost(fake_factory, tmp_path):
    server = fake_factory(size="demo")
    run1 = sync(server, tmp_path)
    for stream in ALL_STREAMS:
        assert_exact(ids(run1, stream), account_keys(server, stream), f"demo {stream}")
    full = _cost(server)
    server.reset_counters()
    run2 = sync(server, tmp_path, state=run1.final_state)
    for stream in INCREMENTAL:
        assert run2.ids(stream) == [], stream
    again = _cost(server)

    print(  # noqa: T201 - the closing note's numbers (run with -s)
        "\ndemo account, requests and tokens per path (full sync | no-change run):"
    )
    for path in sorted(set(full[2]) | set(again[2])):
        a, b = full[2].get(path, [0, 0]), again[2].get(path, [0, 0])
        print(  # noqa: T201 - the closing note's numbers (run with -s)
            f"  {path:32} {a[0]:4} req {a[1]:6} tok | {b[0]:4} req {b[1]:6} tok"
        )
    print(  # noqa: T201 - the closing note's numbers (run with -s)
        f"  {'TOTAL':32} {full[0]:4} req {full[1]:6} tok | {again[0]:4} req {again[1]:6} tok"
    )
    records1 = sum(1 for m in run1.messages if m.get("type") == "RECORD")
    records2 = sum(1 for m in run2.messages if m.get("type") == "RECORD")
    print(  # noqa: T201 - the closing note's numbers (run with -s)
        f"  records: {records1} | {records2}"
    )
    assert again[1] < full[1]
