"""Reading in parallel changes when requests go out, never what is read, written or spent.

Twin fake companies (same seed, same edits between runs) are synced once one request at a
time (``max_parallel_requests`` 1) and once with requests in parallel: every stream,
opt-in ones included, a first run and an incremental run after edits, deletes and
archiving. The two must write the same records in the same order, end with the same
bookmarks, and make the same requests (so spend the same tokens): a page read ahead and not
needed would show up here as an extra request. And parallel requests stay inside the burst
window: no 429, even with more requests allowed at once than the window holds.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.conftest import basic_config, make_fake
from tests.helpers import Run, catalog_selecting, run_tap

if TYPE_CHECKING:
    from pathlib import Path

COUNTS = {"deals": 700, "persons": 600, "activities": 700, "files": 250, "notes": 300, "mail_threads": 30}


@pytest.fixture(scope="module")
def every_stream(tmp_path_factory) -> dict:
    """The catalog with every stream selected, the opt-in ones too."""
    with make_fake() as server:
        run = run_tap("--discover", config=basic_config(server), tmp_path=tmp_path_factory.mktemp("discover"))
    assert run.returncode == 0, run.stderr[-2000:]
    catalog = json.loads(run.stdout)
    return catalog_selecting(catalog, {entry["tap_stream_id"] for entry in catalog["streams"]})


def sync(server, tmp_path: Path, catalog: dict, state: dict | None, *, parallel: int, name: str) -> Run:
    workdir = tmp_path / name
    workdir.mkdir()
    config = basic_config(server, max_parallel_requests=parallel)
    run = run_tap(config=config, catalog=catalog, state=state, tmp_path=workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def edit(account) -> None:
    """The same changes between runs on both twins: updates, adds, deletes, archiving."""
    deals = account.ids("deals")
    account.update("deals", deals[3], title="Renegotiated")
    account.update("deals", deals[-1], archived=True)
    account.add("persons", name="New Person")
    account.delete("persons", account.ids("persons")[5])
    account.delete("notes", account.ids("notes")[0])
    account.update("activities", account.ids("activities")[10], subject="Moved")
    account.update("files", account.ids("files")[0], description="edited")
    account.add("deal_followers", deal_id=deals[7], user_id=account.ids("users")[1])


def written(run: Run) -> dict[str, list[dict]]:
    """Each stream's records in order, without the tap's own time columns."""
    out: dict[str, list[dict]] = {}
    for message in run.messages:
        if message.get("type") == "RECORD":
            record = {k: v for k, v in message["record"].items() if not k.startswith("_sdc_")}
            out.setdefault(message["stream"], []).append(record)
    return out


def bookmarks(run: Run) -> dict[str, object]:
    return {
        name: (b.get("replication_key_value"), b.get("bookmark_ids"))
        for name, b in run.final_state.get("bookmarks", {}).items()
    }


def requests(server) -> Counter:
    """Every API request, as a multiset (the order differs; the set must not)."""
    return Counter(
        (r["method"], r["path"], json.dumps(r["query"], sort_keys=True), r["status"]) for r in server.requests
    )


def test_parallel_reads_write_read_and_spend_exactly_what_one_at_a_time_does(every_stream, tmp_path):
    runs: dict[int, list[Run]] = {}
    asked: dict[int, list[Counter]] = {}
    spent: dict[int, list[int]] = {}
    for parallel in (1, 8):
        with make_fake(counts=COUNTS) as server:
            first = sync(server, tmp_path, every_stream, None, parallel=parallel, name=f"p{parallel}-1st")
            asked[parallel], spent[parallel] = [requests(server)], [server.tokens_spent]
            server.reset_counters()
            edit(server.account)
            state = first.final_state
            second = sync(server, tmp_path, every_stream, state, parallel=parallel, name=f"p{parallel}-2nd")
            asked[parallel].append(requests(server))
            spent[parallel].append(server.tokens_spent)
            runs[parallel] = [first, second]
    for number, (one, many) in enumerate(zip(runs[1], runs[8], strict=True), start=1):
        assert written(many) == written(one), f"run {number}: the records differ"
        assert bookmarks(many) == bookmarks(one), f"run {number}: the bookmarks differ"
    assert sum(len(v) for v in written(runs[1][0]).values()) > 5000, "not enough data to page"
    assert written(runs[1][1]), "the edits were not read"
    for number in (0, 1):
        extra = asked[8][number] - asked[1][number]
        missing = asked[1][number] - asked[8][number]
        assert not extra, f"run {number + 1}: requests only the parallel run made: {list(extra)[:5]}"
        assert not missing, f"run {number + 1}: requests only the serial run made: {list(missing)[:5]}"
    assert spent[8] == spent[1]


def test_parallel_requests_never_overrun_a_burst_window_smaller_than_them(every_stream, tmp_path):
    streams = {"deals", "deal_products", "deal_installments", "persons", "activities", "organizations"}
    catalog = catalog_selecting(every_stream, streams)
    with make_fake(counts={"deals": 1200, "persons": 900, "activities": 900}, burst_limit=5) as server:
        run = sync(server, tmp_path, catalog, None, parallel=16, name="burst")
        assert server.count_429 == 0
        assert server.early_requests_after_429 == 0
        assert len(server.requests) > 40
        assert sorted(set(run.ids("deals"))) == sorted(server.account.ids("deals"))
        assert len(run.ids("deals")) == len(server.account.ids("deals"))
