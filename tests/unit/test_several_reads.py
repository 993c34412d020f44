"""Streams read with several requests, in-process against the fake Pipedrive: goals (every
assignee type, active and inactive), mail threads (every folder, a thread once), and the lists
read once per parent (phases per board, assignments per role and permission set), with what a
402/403/404 does to each."""

from __future__ import annotations

import logging

import pytest

from tap_pipedrive.tap import TapPipedrive
from tests.conftest import basic_config
from tests.fake_pipedrive import Fault


def stream_of(server, name: str):
    """The stream ``name`` of a tap pointed at ``server``."""
    tap = TapPipedrive(config=basic_config(server), parse_env_config=False, setup_mapper=False)
    return tap.streams[name]


def read(server, name: str) -> tuple[list[dict], list[dict]]:
    """The records ``name`` reads, and the requests to Pipedrive it made for them."""
    stream = stream_of(server, name)
    server.reset_counters()
    records = list(stream.get_records(None))
    return records, [r for r in server.requests if r["path"].startswith("/api/")]


def keys(records: list[dict], *fields: str) -> list:
    return [tuple(r[f] for f in fields) if len(fields) > 1 else r[fields[0]] for r in records]


# ---- goals -------------------------------------------------------------------------------------


def test_goals_are_read_per_assignee_type_and_state_and_every_goal_arrives_once(fake):
    account = fake.account
    goals, requests = read(fake, "goals")
    assert sorted(keys(goals, "id")) == sorted(account.ids("goals"))
    assert len(set(keys(goals, "id"))) == len(goals)
    asked = sorted((r["query"]["assignee.type"], r["query"]["is_active"]) for r in requests)
    assert asked == sorted((k, s) for k in ("person", "company", "team") for s in ("true", "false"))
    assert all(set(r["query"]) == {"assignee.type", "is_active"} for r in requests)
    # what the stream is for: inactive goals, and goals of others than the token's user
    assert any(g["is_active"] is False for g in goals)
    assert any(g["assignee"] != {"type": "person", "id": account.me_id} for g in goals)


def test_the_plain_goals_request_would_miss_goals(fake):
    """/goals/find without a widening filter gives only the token user's active goals."""
    stream = stream_of(fake, "goals")
    body = stream.services.client.get("v1", "/goals/find")
    assert 0 < len(body["data"]["goals"]) < len(fake.account.ids("goals"))


def test_goal_records_are_the_goals_not_their_envelope(fake):
    goals, _ = read(fake, "goals")
    schema = stream_of(fake, "goals").schema["properties"]
    assert {"id", "title", "type", "assignee", "is_active", "duration"} <= set(schema)
    assert all(set(g) <= set(schema) for g in goals)


# ---- mail threads ----------------------------------------------------------------------------


def test_mail_threads_are_read_per_folder_and_a_thread_in_two_folders_arrives_once(fake):
    account = fake.account
    threads = {r["id"]: r for r in account.records("mail_threads")}
    both = [i for i, t in threads.items() if len(t["folders"]) > 1]
    assert both, "the fake has a thread in two folders"
    records, requests = read(fake, "mail_threads")
    assert sorted(r["query"]["folder"] for r in requests) == ["archive", "drafts", "inbox", "sent"]
    assert sorted(keys(records, "id")) == sorted(threads)
    assert len(set(keys(records, "id"))) == len(records)


def test_mail_threads_page_within_each_folder(fake_factory):
    server = fake_factory(counts={"mail_threads": 1200})
    records, requests = read(server, "mail_threads")
    assert sorted(keys(records, "id")) == sorted(server.account.ids("mail_threads"))
    inbox = [r for r in requests if r["query"]["folder"] == "inbox"]
    assert [int(r["query"].get("start", 0)) for r in inbox] == [500 * i for i in range(len(inbox))]
    assert len(inbox) > 1


# ---- once per parent -------------------------------------------------------------------------


PER_PARENT = {  # stream: (its parents, the parent list's path, its path, its key)
    "phases": ("boards", "/api/v2/boards", "/api/v2/phases", ("id",)),
    "role_assignments": ("roles", "/api/v1/roles", "/api/v1/roles/{id}/assignments", ("role_id", "user_id")),
    "permission_set_assignments": (
        "permission_sets",
        "/api/v1/permissionSets",
        "/api/v1/permissionSets/{id}/assignments",
        ("permission_set_id", "user_id"),
    ),
}


@pytest.mark.parametrize("stream", sorted(PER_PARENT))
def test_a_per_parent_stream_reads_the_parents_then_each_parent_once(fake, stream):
    parents, parent_path, path, key = PER_PARENT[stream]
    account = fake.account
    records, requests = read(fake, stream)
    assert sorted(keys(records, *key), key=str) == sorted(account.ids(stream), key=str)
    parent_ids = account.ids(parents)
    assert requests[0]["path"] == parent_path
    children = requests[1:]  # each parent once (in parallel after the first: in any order)
    if "{id}" in path:
        assert sorted(r["path"] for r in children) == sorted(path.replace("{id}", str(i)) for i in parent_ids)
    else:
        assert [r["path"] for r in children] == [path] * len(parent_ids)
        assert sorted(int(r["query"]["board_id"]) for r in children) == sorted(parent_ids)
    # written in the parents' order, whatever order the answers came in
    parent_key = key[0] if "{id}" in path else "board_id"
    written = [r.get(parent_key) for r in records]
    assert written == sorted(written, key=parent_ids.index)


def test_role_assignments_are_charged_their_own_token_cost(fake):
    stream = stream_of(fake, "role_assignments")
    fake.reset_counters()
    list(stream.get_records(None))
    stats = stream.services.report.stats["role_assignments"]
    assert stats.tokens == sum(r["tokens_charged"] for r in fake.requests)
    assert stats.requests == len(fake.requests)


def test_a_parent_gone_before_its_read_is_skipped_and_the_others_are_read(fake, caplog):
    fake.add_fault(Fault(404, path_pattern=r"^/api/v2/phases$", times=1))
    boards = fake.account.ids("boards")
    with caplog.at_level(logging.WARNING):
        records, requests = read(fake, "phases")
    assert len([r for r in requests if r["path"] == "/api/v2/phases"]) == len(boards)
    first = {r["id"] for r in fake.account.records("phases") if r["board_id"] == boards[0]}
    assert set(keys(records, "id")) == set(fake.account.ids("phases")) - first
    assert "skipping that read" in caplog.text


@pytest.mark.parametrize("status", [402, 403])
@pytest.mark.parametrize(
    ("stream", "pattern"),
    [
        ("phases", r"^/api/v2/phases$"),
        ("phases", r"^/api/v2/boards$"),
        ("role_assignments", r"^/api/v1/roles/\d+/assignments$"),
        ("permission_set_assignments", r"^/api/v1/permissionSets$"),
        ("goals", r"^/api/v1/goals/find$"),
        ("mail_threads", r"^/api/v1/mailbox/mailThreads$"),
    ],
)
def test_a_402_or_403_skips_the_whole_stream_with_a_warning_and_one_request(
    fake, caplog, status, stream, pattern
):
    fake.add_fault(Fault(status, path_pattern=pattern))
    tap_stream = stream_of(fake, stream)
    fake.reset_counters()
    with caplog.at_level(logging.WARNING):
        records = list(tap_stream.get_records(None))
    assert records == []
    assert stream in tap_stream.services.report.skipped
    assert f"Skipping stream '{stream}'" in caplog.text
    assert len([r for r in fake.requests if r["fault"] == status]) == 1, "no further reads after it"


@pytest.mark.parametrize("parent_first", [True, False], ids=["parent-first", "child-first"])
@pytest.mark.parametrize("stream", sorted(PER_PARENT))
def test_the_parent_list_is_read_once_a_run_with_its_own_stream(fake, stream, parent_first):
    parents, parent_path, _, key = PER_PARENT[stream]
    tap = TapPipedrive(config=basic_config(fake), parse_env_config=False, setup_mapper=False)
    order = [parents, stream] if parent_first else [stream, parents]
    fake.reset_counters()
    read_records = {name: list(tap.streams[name].get_records(None)) for name in order}
    assert [r["path"] for r in fake.requests].count(parent_path) == 1
    assert sorted(keys(read_records[parents], "id"), key=str) == sorted(fake.account.ids(parents), key=str)
    assert sorted(keys(read_records[stream], *key), key=str) == sorted(fake.account.ids(stream), key=str)
