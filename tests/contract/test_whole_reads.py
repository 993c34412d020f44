"""Projects, archived projects and tasks: lists Pipedrive can neither filter nor sort by time.

They are read whole on every run and only what changed is emitted. These tests change the
fake account between runs, during a read (on a page already read), and while a run is
stopped part-way, and check that every change arrives exactly once: no version of a record
(its id at an ``update_time``) is written twice, the last version of every record is written,
and a run after the changes have arrived emits nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tap_pipedrive import schemas
from tap_pipedrive.streams import field_endpoints
from tests.conftest import basic_config, make_fake
from tests.fake_pipedrive import Fault
from tests.helpers import Run, assert_no_secret, catalog_selecting, run_tap

if TYPE_CHECKING:
    from pathlib import Path

STREAMS = ("projects", "archived_projects", "tasks")
TASKS = "/api/v2/tasks"
MANY_TASKS = {"tasks": 1200}  # three pages of 500
NOTHING = {stream: [] for stream in STREAMS}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> dict:
    """The seeded account's catalog with only the whole-read streams selected."""
    with make_fake() as server:
        found = run_tap("--discover", config=basic_config(server), tmp_path=tmp_path_factory.mktemp("cat"))
    assert found.returncode == 0, found.stderr[-2000:]
    return catalog_selecting(json.loads(found.stdout), set(STREAMS))


def sync(server, tmp_path: Path, catalog: dict, state: dict | None = None, **config) -> Run:
    tmp_path.mkdir(parents=True, exist_ok=True)
    run = run_tap(config=basic_config(server, **config), catalog=catalog, state=state, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def versions(run: Run, stream: str) -> list[tuple[int, str]]:
    """(id, update_time) of every record the run wrote."""
    return [(r["id"], r["update_time"]) for r in run.records(stream)]


def current(server, stream: str) -> set[tuple[int, str]]:
    """(id, update_time) of every record the list shows now (as the tap writes them)."""
    out = set()
    for r in server.account.records(stream):
        stamp = r["update_time"].replace(" ", "T")[:19] + "Z"
        out.add((r["id"], stamp))
    return out


def assert_every_version_once(runs: list[Run], server, what: str) -> None:
    """Across ``runs``: no version written twice, and the current version of every record written."""
    for stream in STREAMS:
        written = [v for run in runs for v in versions(run, stream)]
        twice = sorted(v for v, n in Counter(written).items() if n > 1)
        assert not twice, f"{what}: {stream}: written twice: {twice[:5]}"
        missing = sorted(current(server, stream) - set(written))
        assert not missing, f"{what}: {stream}: never written: {missing[:5]}"


def on_request(server, matches, action) -> None:
    """Run ``action`` once, just before the fake answers the first request ``matches`` accepts."""
    answer = server._handle  # noqa: SLF001 - the fake's request entry point, wrapped for the test
    done = []

    def handle(method, raw_path, headers, body):
        if not done and matches(raw_path):
            done.append(raw_path)
            action()
        return answer(method, raw_path, headers, body)

    server._handle = handle  # noqa: SLF001


def second_page_of_tasks(raw_path: str) -> bool:
    return raw_path.startswith(TASKS + "?") and "cursor=" in raw_path


# ---- between runs -------------------------------------------------------------------------


def test_a_run_after_changes_emits_exactly_the_changed_projects_and_tasks_once(
    fake_factory, catalog, tmp_path
):
    server = fake_factory()
    account = server.account
    run1 = sync(server, tmp_path, catalog)
    for stream in STREAMS:
        assert sorted(run1.ids(stream)) == sorted(account.ids(stream)), stream
    assert set(account.ids("projects", status="deleted")) <= set(run1.ids("projects"))
    run2 = sync(server, tmp_path, catalog, run1.final_state)
    assert {s: run2.ids(s) for s in STREAMS} == NOTHING

    live = [i for i in account.ids("projects") if account.record("projects", i)["status"] != "deleted"]
    renamed, deleted, archived = live[:3]
    account.update("projects", renamed, title="Renamed project")
    account.delete("projects", deleted)
    account.archive("projects", archived)
    added = account.add("projects", title="New project")
    old_archived = account.ids("archived_projects")[0]
    account.update("archived_projects", old_archived, title="Renamed archived project")
    tasks = {r["id"]: r for r in account.records("tasks")}
    edited = next(i for i, r in tasks.items() if r["parent_task_id"] is None)
    gone = next(i for i, r in tasks.items() if i != edited and not any(
        t["parent_task_id"] == i for t in tasks.values()) and r["parent_task_id"] != edited)
    account.update("tasks", edited, title="Edited task")
    account.delete("tasks", gone)  # gone from the list: nothing to emit
    new_task = account.add("tasks", project_id=renamed)

    run3 = sync(server, tmp_path, catalog, run2.final_state)
    # what changed in archived_projects goes to projects too: archived is not live there any more
    assert sorted(run3.ids("projects")) == sorted([renamed, deleted, added, archived, old_archived])
    assert sorted(run3.ids("archived_projects")) == sorted([archived, old_archived])
    assert sorted(run3.ids("tasks")) == sorted([edited, new_task])
    projects = {r["id"]: r for r in run3.records("projects")}
    assert projects[renamed]["title"] == "Renamed project"
    assert projects[deleted]["status"] == "deleted"
    assert projects[archived]["archive_time"] is not None
    archive = {r["id"]: r for r in run3.records("archived_projects")}
    assert archive[archived]["archive_time"] is not None
    assert archive[old_archived]["title"] == "Renamed archived project"
    assert {r["id"]: r["title"] for r in run3.records("tasks")}[edited] == "Edited task"
    assert_every_version_once([run1, run2, run3], server, "three runs")

    run4 = sync(server, tmp_path, catalog, run3.final_state)
    assert {s: run4.ids(s) for s in STREAMS} == NOTHING


def test_start_date_limits_the_first_run_and_later_runs_emit_only_changes(fake_factory, catalog, tmp_path):
    server = fake_factory()
    account = server.account
    stamps = sorted(r["update_time"] for r in account.records("tasks"))
    start = stamps[len(stamps) // 2].replace(" ", "T")[:19] + "Z"
    run1 = sync(server, tmp_path, catalog, start_date=start)
    newer = {i for i, stamp in current(server, "tasks") if stamp >= start}
    assert 0 < len(newer) < len(stamps)
    assert sorted(run1.ids("tasks")) == sorted(newer)
    older = next(i for i, stamp in current(server, "tasks") if stamp < start)
    account.update("tasks", older, title="Edited task")
    run2 = sync(server, tmp_path, catalog, run1.final_state, start_date=start)
    assert run2.ids("tasks") == [older]


# ---- during a read --------------------------------------------------------------------------


def test_a_task_changed_on_a_page_already_read_arrives_with_the_next_run(fake_factory, catalog, tmp_path):
    """A bookmark at the newest update_time written would lose the early task: the late one,
    changed after it, was read (and written) after the change, the early one before."""
    server = fake_factory(counts=MANY_TASKS)
    account = server.account
    order = account.ids("tasks")
    early, late = order[10], order[-10]

    def change_both() -> None:
        account.update("tasks", early, title="Changed after its page was read")
        account.update("tasks", late, title="Changed before its page was read")

    on_request(server, second_page_of_tasks, change_both)
    run1 = sync(server, tmp_path, catalog)
    assert sorted(run1.ids("tasks")) == sorted(order)
    titles = {r["id"]: r["title"] for r in run1.records("tasks")}
    assert titles[late] == "Changed before its page was read"
    assert titles[early] != "Changed after its page was read"
    newest = run1.final_state["bookmarks"]["tasks"]["replication_key_value"]
    assert newest == account.record("tasks", late)["update_time"][:19] + "Z"
    assert account.record("tasks", early)["update_time"][:19] + "Z" < newest

    run2 = sync(server, tmp_path, catalog, run1.final_state)
    assert run2.ids("tasks") == [early]
    assert run2.records("tasks")[0]["title"] == "Changed after its page was read"
    run3 = sync(server, tmp_path, catalog, run2.final_state)
    assert run3.ids("tasks") == []
    assert_every_version_once([run1, run2, run3], server, "a change during the read")


# ---- a run stopped part-way ---------------------------------------------------------------


def _sigterm_after(server, catalog: dict, folder: Path, tasks: int, state: dict) -> Run:
    """A run that gets SIGTERM once it has written ``tasks`` tasks."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(basic_config(server)))
    (folder / "catalog.json").write_text(json.dumps(catalog))
    (folder / "state.json").write_text(json.dumps(state))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PIPEDRIVE_")}
    cmd = [sys.executable, "-m", "tap_pipedrive", "--config", "config.json", "--catalog", "catalog.json",
           "--state", "state.json"]
    lines: list[str] = []
    seen = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder,
                          env=env) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith('{"type":"RECORD","stream":"tasks"'):
                seen += 1
                if seen == tasks:
                    proc.send_signal(signal.SIGTERM)
        stderr = proc.stderr.read()
        returncode = proc.wait(timeout=60)
    assert_no_secret("".join(lines), stderr)
    messages = [json.loads(line) for line in lines if line.startswith("{")]
    return Run(returncode, "".join(lines), stderr, messages)


def _tokens_through_first_page_of_tasks() -> int:
    """What a run spends up to and including its first page of tasks: the field definitions
    (read when the streams are built), projects, archived projects, one page of tasks."""
    fields = sum(schemas.token_cost(e.version, e.path) for e in field_endpoints().values())
    return fields + sum(schemas.token_cost("v2", p) for p in ("/projects", "/projects/archived", "/tasks"))


# (how the first run starts, how the read is stopped): a full first read of 1200 tasks, or a
# read of the changes since a complete one (spread over the three pages)
STOPS = [
    *(pytest.param("full", stop, id=f"full-{name}") for name, stop in (
        ("second-page-fails", {"fault_after": 1}),
        ("third-page-fails", {"fault_after": 2}),
        ("budget-after-one-page", {"budget": True}),
        *((f"sigterm-after-{n}", {"sigterm_after": n}) for n in (1, 499, 500, 501, 1001)),
    )),
    *(pytest.param("incremental", stop, id=f"incremental-{name}") for name, stop in (
        ("second-page-fails", {"fault_after": 1}),
        ("third-page-fails", {"fault_after": 2}),
        ("budget-after-one-page", {"budget": True}),
        # 20 changes: 9 on the first page, 8 on the second, 3 on the third. A signal once the
        # run has written them all (its last page) may come too late, so none is sent there.
        *((f"sigterm-after-{n}", {"sigterm_after": n}) for n in (1, 9, 10, 17)),
    )),
]


@pytest.mark.parametrize(("first_run", "stop"), STOPS)
def test_a_read_stopped_part_way_resumes_with_every_change_once(
    fake_factory, catalog, tmp_path, first_run, stop
):
    """Stopped at a page or at a record, with a change during the read and changes while
    stopped (before and after the stop): the resumed run writes the changes made while it was
    stopped, and with the run after it every version is written once, none lost; then nothing
    is left to write."""
    server = fake_factory(counts=MANY_TASKS)
    account = server.account
    order = account.ids("tasks")
    runs: list[Run] = []
    state: dict = {}
    if first_run == "incremental":
        runs.append(sync(server, tmp_path / "base", catalog))
        for i in order[::60]:  # 20 changes, on every page
            account.update("tasks", i, title="Changed after the first run")
        state = runs[-1].final_state
    on_request(server, second_page_of_tasks,
               lambda: account.update("tasks", order[3], title="Changed during the read"))

    folder = tmp_path / "stopped"
    if "sigterm_after" in stop:
        stopped = _sigterm_after(server, catalog, folder, stop["sigterm_after"], state)
    else:
        folder.mkdir()
        config: dict = {"max_tokens_per_run": _tokens_through_first_page_of_tasks()}
        if "fault_after" in stop:
            server.add_fault(Fault(500, path_pattern=rf"^{TASKS}$", after=stop["fault_after"]))
            config = {"max_retries": 0}
        config = basic_config(server, **config)
        stopped = run_tap(config=config, catalog=catalog, state=state, tmp_path=folder)
        server.clear_faults()
    assert stopped.returncode != 0, f"the run was not stopped: {stopped.stderr[-1500:]}"
    assert stopped.messages[-1]["type"] == "STATE"
    assert "reading" in stopped.final_state["bookmarks"]["tasks"], "the read of tasks is incomplete"
    runs.append(stopped)

    written = [i for i, _ in versions(stopped, "tasks")]
    for i in dict.fromkeys((written[0], written[-1])) if written else ():  # handled before the stop
        account.update("tasks", i, title="Changed while stopped")
    account.update("tasks", order[-1], title="Changed while stopped, after the stop")
    added = account.add("tasks", project_id=account.ids("projects")[0])

    resumed = sync(server, tmp_path / "resumed", catalog, stopped.final_state)
    runs.append(resumed)
    assert "reading" not in resumed.final_state["bookmarks"]["tasks"]
    assert {*written[:1], *written[-1:], order[-1], added} <= set(resumed.ids("tasks"))
    # a change during the resumed read, to a page it had read, arrives with the next run
    runs.append(sync(server, tmp_path / "after", catalog, resumed.final_state))
    assert_every_version_once(runs, server, f"{first_run}, {stop}")
    last = sync(server, tmp_path / "last", catalog, runs[-1].final_state)
    assert {s: last.ids(s) for s in STREAMS} == NOTHING
