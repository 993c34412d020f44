"""The fleet example end to end: meltano.yml's company jobs on Dagster (orchestrate/), two fakes.

One Dagster daemon (``orchestrate/dagster.yaml`` as its instance) runs the project's Meltano
jobs, one per company, against two fake Pipedrive companies whose ids overlap, into one
throw-away PostgreSQL. The first company is launched twice with so little of today's budget
left that its first attempt stops part-way (exit 3); the test gives it a new day's budget
("midnight") only after a retry has found the budget still spent. Each company's extractor
runs through a small recorder that notes every tap process (start, end, exit code, the ids it
emitted), so the test sees what Pipedrive would have seen.

Needs Dagster, Meltano and target-postgres (``scripts/dev.py`` installs them and passes their
paths) and PostgreSQL's binaries; without them the test skips, with ``CI`` set it fails.
"""

# The SQL below is built from meltano.yml's schema names and the tap's stream names only.
# ruff: noqa: S608

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tap_pipedrive.streams.definition import Replication
from tap_pipedrive.streams.registry import STREAMS
from tests.conftest import basic_config, make_fake
from tests.helpers import CANARY_API_TOKEN, LOOPBACK_ONLY, ROOT, assert_no_secret, unavailable
from tests.postgres import PostgresServer, missing_requirements

DAGSTER = os.environ.get("TAP_PIPEDRIVE_DAGSTER")
MELTANO = os.environ.get("TAP_PIPEDRIVE_MELTANO")
TARGET_POSTGRES = os.environ.get("TAP_PIPEDRIVE_TARGET_POSTGRES")
TAP = Path(sys.executable).with_name("tap-pipedrive")
DEFINITIONS = ROOT / "orchestrate" / "definitions.py"
#: Streams that resume from their bookmark: a retry must not emit their records again.
INCREMENTAL = {s.name for s in STREAMS if s.replication is Replication.INCREMENTAL}
#: The first company's budget after midnight: one seat of Pipedrive's base plan.
DAILY_BUDGET = 30_000
COMPANY_TAG = "pipedrive/company"
IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}


def _tool(value: str | None, variable: str) -> Path:
    if not value or not Path(value).exists():
        unavailable(f"{variable} ({value or 'unset'}) is no executable; "
                    "`python3 scripts/dev.py test` installs it and sets it")
    return Path(str(value))


# ---- what the recorder saw, what Dagster did ------------------------------------------------


#: Wraps one company's tap: passes everything through, then appends one JSON line to a log.
RECORDER = """\
import json, subprocess, sys, time
TAP, LOG, COMPANY = {tap!r}, {log!r}, {company!r}
started = time.time()
discover = "--discover" in sys.argv
proc = subprocess.Popen([TAP, *sys.argv[1:]], stdout=subprocess.PIPE, text=True)
emitted = {{}}
for line in proc.stdout:
    sys.stdout.write(line)
    if not discover and line.startswith("{{"):
        message = json.loads(line)
        if message.get("type") == "RECORD":
            emitted.setdefault(message["stream"], []).append(message["record"].get("id"))
sys.stdout.flush()
rc = proc.wait()
with open(LOG, "a", encoding="utf-8") as log:
    log.write(json.dumps({{"company": COMPANY, "discover": discover, "start": started,
                          "end": time.time(), "rc": rc, "emitted": emitted}}) + "\\n")
sys.exit(rc)
"""

#: Prints the Dagster instance's runs (and, given a schedule's name, that schedule's verdict now).
QUERY = """\
import importlib.util, json, sys
from dagster import DagsterEventType, DagsterInstance, build_schedule_context
instance = DagsterInstance.get()
runs = []
for record in instance.get_run_records():
    run = record.dagster_run
    retries = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
    runs.append({"job": run.job_name, "status": run.status.value, "tags": dict(run.tags),
                 "start": record.start_time, "end": record.end_time, "retries": len(retries.records)})
verdict = None
if len(sys.argv) > 2:
    spec = importlib.util.spec_from_file_location("fleet_definitions", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (schedule,) = [s for s in module.defs.schedules if s.name == sys.argv[2]]
    with build_schedule_context(instance=instance) as context:
        tick = schedule.evaluate_tick(context)
    verdict = {"skip": tick.skip_message, "run_requests": len(tick.run_requests or [])}
print(json.dumps({"runs": runs, "verdict": verdict}))
"""


@dataclass
class Call:
    """One tap process of one company, as the recorder saw it."""

    company: str
    discover: bool
    start: float
    end: float
    rc: int
    emitted: dict[str, list]


def calls(log: Path) -> list[Call]:
    if not log.exists():
        return []
    return [Call(**json.loads(line)) for line in log.read_text(encoding="utf-8").splitlines() if line]


def overlaps(intervals: list[tuple[float, float]]) -> bool:
    ordered = sorted(intervals)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))


def tight_budget(seed: int, folder: Path) -> int:
    """What is left of a company's budget today: its discovery, and a full sync up to the middle
    of the incremental streams' requests (so that the first attempt stops part-way through them)."""
    lists = {f"/api/{s.version}{s.endpoint}" for s in STREAMS if s.name in INCREMENTAL}
    with make_fake(seed=seed) as server:
        config = folder / "reference.json"
        config.write_text(json.dumps(basic_config(server, max_parallel_requests=1)), encoding="utf-8")
        tap = [str(TAP), "--config", str(config)]
        subprocess.run([*tap, "--discover"], capture_output=True, check=True, timeout=300, cwd=folder)
        discovery = server.tokens_spent
        server.reset_counters()
        subprocess.run(tap, capture_output=True, check=True, timeout=300, cwd=folder)
        costs = [(r["path"] in lists, r["token_cost"]) for r in server.requests]
    middle = [i for i, (incremental, _) in enumerate(costs) if incremental]
    middle_at = middle[len(middle) // 2]
    return discovery + sum(cost for _, cost in costs[:middle_at])


def env_prefix(plugin: str) -> str:
    """Meltano's environment-variable prefix of a plugin: tap-pipedrive--acme -> TAP_PIPEDRIVE__ACME."""
    return plugin.upper().replace("-", "_")


# ---- the fleet --------------------------------------------------------------------------------


@dataclass
class Company:
    extractor: str
    job: str  # the Dagster job (the Meltano job's name, Dagster-safe)
    schedule: str
    schema: str
    seed: int


def fleet_of(project: dict) -> list[Company]:
    """The companies meltano.yml declares, with their jobs, schedules and schemas."""
    jobs = {j["name"]: j for j in project["jobs"]}
    companies = []
    for seed, extractor in enumerate(p for p in project["plugins"]["extractors"]
                                     if p.get("inherit_from") == "tap-pipedrive"):
        (job,) = [n for n, j in jobs.items() if extractor["name"] in j["tasks"][0].split()]
        (schedule,) = [s["name"] for s in project["schedules"] if s["job"] == job]
        companies.append(Company(extractor["name"], job.replace("-", "_"), schedule.replace("-", "_"),
                                 extractor["load_schema"], seed=7 + 4 * seed))
    return companies


def write_project(folder: Path, recorder_log: Path, target_postgres: Path) -> dict:
    """meltano.yml as shipped, but with tools installed here and each company's tap recorded."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    for extractor in project["plugins"]["extractors"]:
        extractor.pop("pip_url", None)
        if extractor.get("inherit_from") == "tap-pipedrive":
            recorder = folder / f"record-{extractor['name']}.py"
            recorder.write_text(f"#!{sys.executable}\n" + RECORDER.format(
                tap=str(TAP), log=str(recorder_log), company=extractor["name"]), encoding="utf-8")
            recorder.chmod(0o755)
            extractor["executable"] = str(recorder)
        else:
            extractor["executable"] = str(TAP)
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == "target-postgres"]
    loader.pop("pip_url")
    loader["executable"] = str(target_postgres)
    project["plugins"]["loaders"] = [loader]
    (folder / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return project


class Dagster:
    """The daemon and the CLI of one Dagster instance, with the environment the fleet runs in."""

    def __init__(self, dagster: Path, env: dict[str, str], log: Path) -> None:
        self.dagster, self.env, self.log = dagster, env, log
        self.python = dagster.with_name("python")
        self.daemon: subprocess.Popen | None = None

    def create_instance(self) -> None:
        """Create the instance's storage once, before the daemon and the launches share it."""
        result = subprocess.run([str(self.dagster), "instance", "migrate"], env=self.env, text=True,
                                capture_output=True, timeout=300, check=False)
        assert result.returncode == 0, f"dagster instance migrate:\n{result.stderr[-4000:]}"

    def start_daemon(self) -> None:
        with self.log.open("w", encoding="utf-8") as out:
            self.daemon = subprocess.Popen(
                [str(self.dagster.with_name("dagster-daemon")), "run", "-f", str(DEFINITIONS)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its code server and run workers: one group to stop
            )

    def stop_daemon(self) -> None:
        if self.daemon is None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.daemon.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.daemon.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def launch(self, *jobs: str) -> None:
        """Queue one run of each job, as `dagster job launch` does for a user."""
        procs = [subprocess.Popen([str(self.dagster), "job", "launch", "-f", str(DEFINITIONS), "-j", job],
                                  env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True) for job in jobs]
        outs = [proc.communicate(timeout=300)[0] for proc in procs]
        for job, proc, out in zip(jobs, procs, outs, strict=True):
            assert proc.returncode == 0, f"dagster job launch -j {job}: exit {proc.returncode}\n{out[-4000:]}"

    def query(self, schedule: str | None = None) -> dict:
        args = [str(DEFINITIONS), schedule] if schedule else []
        result = subprocess.run([str(self.python), "-c", QUERY, *args], env=self.env, capture_output=True,
                                text=True, timeout=300, check=False)
        assert result.returncode == 0, f"the Dagster query failed:\n{result.stderr[-4000:]}"
        parsed: dict = json.loads(result.stdout.splitlines()[-1])
        return parsed

    def daemon_log(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-8000:]


@pytest.fixture(scope="module")
def postgres():
    reason = missing_requirements()
    if reason:
        unavailable(reason)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class FleetRun:
    companies: list[Company]
    accounts: dict[str, object]  # extractor -> the fake's Account
    runs: list[dict]
    calls: list[Call]
    busy_verdict: dict
    idle_verdict: dict


def watch(orchestrator: Dagster, recorder_log: Path, tight: Company, server, expected_runs: int
          ) -> tuple[list[dict], dict]:
    """Give the tight company a new day's budget once a retry found it still spent; wait for
    every run to end. Returns the runs and the tight company's schedule verdict while it was busy.
    """
    deadline = time.monotonic() + 600
    busy_verdict: dict | None = None
    next_query = 0.0
    while True:
        spent = [c for c in calls(recorder_log) if c.company == tight.extractor and c.rc == 3]
        if busy_verdict is None and len(spent) >= 2:  # a retry found the budget still spent
            busy_verdict = orchestrator.query(tight.schedule)["verdict"]
            server.set_daily_budget(DAILY_BUDGET)  # midnight: a new day
        if time.monotonic() >= next_query:
            runs = orchestrator.query()["runs"]
            next_query = time.monotonic() + 3
            failed = [r for r in runs if r["status"] in {"FAILURE", "CANCELED"}]
            assert not failed, f"runs failed: {failed}\n{orchestrator.daemon_log()}"
            if (busy_verdict is not None and len(runs) >= expected_runs
                    and not any(r["status"] in IN_FLIGHT for r in runs)):
                return runs, busy_verdict
        assert time.monotonic() < deadline, f"unfinished: {runs}\n{orchestrator.daemon_log()}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def tools() -> tuple[Path, Path, Path]:
    """Dagster, Meltano and target-postgres, as scripts/dev.py installed them."""
    return (_tool(DAGSTER, "TAP_PIPEDRIVE_DAGSTER"), _tool(MELTANO, "TAP_PIPEDRIVE_MELTANO"),
            _tool(TARGET_POSTGRES, "TAP_PIPEDRIVE_TARGET_POSTGRES"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, tools, postgres) -> FleetRun:  # tools first: skip before a server starts
    dagster, meltano, target_postgres = tools
    folder = tmp_path_factory.mktemp("fleet")
    recorder_log = folder / "taps.jsonl"
    project_dir = folder / "project"
    project_dir.mkdir()
    companies = fleet_of(write_project(project_dir, recorder_log, target_postgres))
    assert len(companies) >= 2
    home = folder / "dagster-home"
    home.mkdir()
    shutil.copy(ROOT / "orchestrate" / "dagster.yaml", home / "dagster.yaml")
    database = postgres.create_database("fleet")

    tight = companies[0]
    budget = tight_budget(tight.seed, folder)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MELTANO_", "TAP_PIPEDRIVE_", "TARGET_POSTGRES_", "PG", "DAGSTER_"))}
    env |= LOOPBACK_ONLY | {
        "DAGSTER_HOME": str(home),
        "MELTANO_PROJECT_ROOT": str(project_dir),
        "MELTANO_BIN": str(meltano),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PIPEDRIVE_BUDGET_RETRY_SECONDS": "1",
        "PIPEDRIVE_BUDGET_RETRIES": "30",
        "PGHOST": "127.0.0.1", "PGPORT": str(postgres.port), "PGUSER": "postgres",
        "PGPASSWORD": "unused", "PGDATABASE": database,
    }
    orchestrator = Dagster(dagster, env, folder / "daemon.log")
    servers = {}
    try:
        for company in companies:
            server = make_fake(seed=company.seed, company_domain=company.extractor.split("--")[-1])
            servers[company.extractor] = server.start()
            env[f"{env_prefix(company.extractor)}_API_URL"] = server.url
            env[f"{env_prefix(company.extractor)}_API_TOKEN"] = CANARY_API_TOKEN
        servers[tight.extractor].set_daily_budget(budget)
        # The tight company reads one request at a time, as its reference run did: Pipedrive does
        # not say how much of the day's budget is left, so where a run reading ahead in parallel
        # stops depends on which reads got the last tokens (the other company reads in parallel).
        env[f"{env_prefix(tight.extractor)}_MAX_PARALLEL_REQUESTS"] = "1"
        # A project in use has its system database; creating it is no job for concurrent commands.
        subprocess.run([str(meltano), "state", "list"], cwd=project_dir, env=env, check=True,
                       capture_output=True, timeout=300)
        orchestrator.create_instance()
        orchestrator.start_daemon()
        # The tight company twice (the second run must wait for the first), every other once.
        orchestrator.launch(tight.job, *(c.job for c in companies))
        runs, busy_verdict = watch(orchestrator, recorder_log, tight, servers[tight.extractor],
                                   expected_runs=len(companies) + 1)
        idle_verdict = orchestrator.query(tight.schedule)["verdict"]
    finally:
        orchestrator.stop_daemon()
        for server in servers.values():
            server.stop()
    assert_no_secret(orchestrator.log.read_text(encoding="utf-8", errors="replace"))
    return FleetRun(companies, {name: s.account for name, s in servers.items()}, runs,
                    calls(recorder_log), busy_verdict, idle_verdict)


def runs_of(fleet: FleetRun, company: Company) -> list[dict]:
    return sorted((r for r in fleet.runs if r["tags"].get(COMPANY_TAG) == company.extractor),
                  key=lambda r: r["start"])


def calls_within(fleet: FleetRun, company: Company, run: dict) -> list[Call]:
    return [c for c in fleet.calls
            if c.company == company.extractor and run["start"] <= c.start and c.end <= run["end"]]


# ---- the tests ---------------------------------------------------------------------------------


@pytest.mark.meltano
def test_every_run_of_the_fleet_succeeds_each_tagged_with_its_company(fleet):
    assert all(r["status"] == "SUCCESS" for r in fleet.runs), fleet.runs
    for company in fleet.companies:
        runs = runs_of(fleet, company)
        expected = 2 if company is fleet.companies[0] else 1
        assert len(runs) >= expected, company.extractor  # a tick of an hourly schedule may add one
        assert {r["job"] for r in runs} == {company.job}
    # every tap process ran inside a run of its own company
    for call in fleet.calls:
        (company,) = [c for c in fleet.companies if c.extractor == call.company]
        assert any(r["start"] <= call.start and call.end <= r["end"] for r in runs_of(fleet, company))


@pytest.mark.meltano
def test_two_runs_of_one_company_never_overlap_while_companies_run_side_by_side(fleet):
    for company in fleet.companies:
        runs = [(r["start"], r["end"]) for r in runs_of(fleet, company)]
        assert not overlaps(runs), f"{company.extractor}: runs overlapped: {runs}"
        taps = [(c.start, c.end) for c in fleet.calls if c.company == company.extractor]
        assert not overlaps(taps), f"{company.extractor}: tap processes overlapped"
    tight, other = fleet.companies[0], fleet.companies[1]
    first = runs_of(fleet, tight)[0]
    assert any(overlaps([(first["start"], first["end"]), (r["start"], r["end"])])
               for r in runs_of(fleet, other)), "the other company waited for the first one"


@pytest.mark.meltano
def test_a_run_stopped_by_the_daily_budget_is_retried_until_the_budget_is_back_and_resumes(fleet):
    tight = fleet.companies[0]
    first = runs_of(fleet, tight)[0]
    taps = calls_within(fleet, tight, first)
    syncs = [c for c in taps if not c.discover]
    failed = [c.rc for c in taps if c.rc]
    assert len(failed) >= 2, "the budget was given back only after a retry found it spent"
    assert set(failed) == {3}, f"every failed attempt stopped for the budget: {failed}"
    assert first["retries"] == len(failed)  # one Dagster retry per stopped attempt
    assert syncs[0].rc == 3, "the first attempt should stop in its sync"
    assert taps[-1].rc == 0

    account = fleet.accounts[tight.extractor]
    first_ids = {s: ids for s, ids in syncs[0].emitted.items() if s in INCREMENTAL}
    assert 0 < sum(map(len, first_ids.values())) < sum(len(account.ids(s)) for s in INCREMENTAL), \
        "the budget should stop the first attempt part-way"
    for stream in sorted(INCREMENTAL):
        emitted = [i for c in syncs for i in c.emitted.get(stream, [])]
        assert len(emitted) == len(set(emitted)), f"{stream}: the retry emitted records again"
        assert sorted(emitted, key=str) == sorted(account.ids(stream), key=str), stream
    # The next run of the company starts from the state the retried run left: nothing new.
    for later in runs_of(fleet, tight)[1:]:
        for call in calls_within(fleet, tight, later):
            assert not any(call.emitted.get(s) for s in INCREMENTAL), call


@pytest.mark.meltano
def test_a_schedule_tick_skips_a_company_with_a_run_in_flight(fleet):
    assert fleet.busy_verdict["run_requests"] == 0
    assert fleet.companies[0].extractor in fleet.busy_verdict["skip"]
    assert fleet.idle_verdict == {"skip": None, "run_requests": 1}


@pytest.mark.meltano
def test_each_company_lands_whole_in_its_own_schema_with_overlapping_ids(fleet, postgres):
    deal_ids = [set(fleet.accounts[c.extractor].ids("deals")) for c in fleet.companies]
    assert set.intersection(*deal_ids), "the fake companies' ids should overlap"
    for company in fleet.companies:
        account = fleet.accounts[company.extractor]
        for stream in ("deals", "persons", "organizations", "activities", "notes", "leads", "users"):
            rows = postgres.query("fleet", f'select id::text as id from "{company.schema}".{stream}')
            ids = [r["id"] for r in rows]
            assert len(ids) == len(set(ids)), f"{company.schema}.{stream}: an id landed twice"
            assert sorted(ids) == sorted(str(i) for i in account.ids(stream)), f"{company.schema}.{stream}"
