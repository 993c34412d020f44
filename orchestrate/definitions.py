"""Dagster definitions that run a fleet of Pipedrive companies from this Meltano project.

    export DAGSTER_HOME=/srv/dagster            # holds a copy of orchestrate/dagster.yaml
    export MELTANO_PROJECT_ROOT=/srv/pipedrive  # the Meltano project (default: this repository)
    export MELTANO_BIN=/srv/meltano/bin/meltano # default: `meltano` on PATH
    dagster-daemon run -f orchestrate/definitions.py                       # schedules, queue, retries
    dagster job launch -f orchestrate/definitions.py -j pipedrive_acme    # one run, queued

Every job of the Meltano project (``meltano job list``) becomes a Dagster job whose one op runs
``meltano run <job>``, and every Meltano schedule of a job a Dagster schedule of it. A job that
runs a Pipedrive extractor (``tap-pipedrive`` or one inheriting from it, named
``tap-pipedrive--<company>``) is tagged ``pipedrive/company: <that extractor>``:
``dagster.yaml`` lets one run per value of that tag be in progress, so two runs of one company
never overlap (the burst window and the daily token budget are the company's, not the run's),
while different companies run side by side.

When the tap stops because the company's daily token budget is spent (its exit code 3), the op
asks Dagster to retry it after ``PIPEDRIVE_BUDGET_RETRY_SECONDS`` (default an hour, since
Pipedrive resets the budget at midnight of a server time zone it does not publish), up to
``PIPEDRIVE_BUDGET_RETRIES`` times (default 24, a day). Meltano has kept the state of what was
loaded, so each retry resumes where the last attempt stopped; the run, and with it the company's
slot, stays in progress meanwhile, and a schedule tick of a company with a run queued or in
progress is skipped instead of queueing behind it. Any other failure fails the run at once.

Meltano 4.4.1 exits 1 whatever the tap's exit code was, so the op reads the tap's code from
Meltano's JSON log (``--log-format=json``): the failed block's ``exit_codes``, or the message of
a discovery that failed.
"""

# No `from __future__ import annotations`: Dagster reads the op's `context` annotation at run time.

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    Definitions,
    Failure,
    JobDefinition,
    OpExecutionContext,
    RetryRequested,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    in_process_executor,
    job,
    op,
    schedule,
)

PROJECT_ROOT = Path(os.environ.get("MELTANO_PROJECT_ROOT", Path(__file__).resolve().parent.parent))
MELTANO = os.environ.get("MELTANO_BIN", "meltano")
#: The run tag that dagster.yaml limits to one run in progress per value.
COMPANY_TAG = "pipedrive/company"
#: The tap's exit code when the company's daily API token budget is spent (README: exit codes).
BUDGET_SPENT = 3
#: Runs that hold their company's slot, or will.
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
#: A Meltano job's tasks: each a string of blocks, or a list of such strings.
Tasks = list[str | list[str]]
#: How Meltano 4.4.1 reports a discovery (``tap --discover``) that exited non-zero.
DISCOVERY_FAILED = re.compile(r"Catalog discovery failed: command \[.*?\] returned (-?\d+) with stderr")


def budget_retry_seconds() -> float:
    """Seconds between attempts while the budget is spent (read at run time, so tests can shorten it)."""
    return float(os.environ.get("PIPEDRIVE_BUDGET_RETRY_SECONDS", "3600"))


def budget_retries() -> int:
    """How many times a run whose budget was spent is retried."""
    return int(os.environ.get("PIPEDRIVE_BUDGET_RETRIES", "24"))


def meltano_listing(command: str) -> dict[str, Any]:
    """The JSON that ``meltano <command> list --format=json`` prints.

    One at a time: a Meltano command creates or upgrades the project's system database, and
    two doing that at once fail.
    """
    result = subprocess.run(  # noqa: S603 - our own command line
        [MELTANO, command, "list", "--format=json"], cwd=PROJECT_ROOT, capture_output=True,
        text=True, stdin=subprocess.DEVNULL, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"meltano {command} list exited {result.returncode}: {result.stderr[-2000:]}")
    listing: dict[str, Any] = json.loads(result.stdout)
    return listing


def is_pipedrive_extractor(block: str) -> bool:
    """``tap-pipedrive`` itself, or a plugin inheriting from it under Meltano's naming."""
    return block == "tap-pipedrive" or block.startswith("tap-pipedrive--")


def blocks_of(tasks: Tasks) -> list[str]:
    """Every block name of a Meltano job's tasks (strings of blocks, or lists of them)."""
    blocks: list[str] = []
    for task in tasks:
        for part in task if isinstance(task, list) else [task]:
            blocks.extend(part.split())
    return blocks


def company_of(job_name: str, tasks: Tasks) -> str | None:
    """The one Pipedrive extractor of a job, or None for a job without one."""
    extractors = sorted({b for b in blocks_of(tasks) if is_pipedrive_extractor(b)})
    if len(extractors) > 1:
        raise ValueError(f"Meltano job {job_name!r} runs {', '.join(extractors)}: give each "
                         "Pipedrive company its own job, so each run holds one company's slot")
    return extractors[0] if extractors else None


def dagster_name(name: str) -> str:
    """A Meltano name as a Dagster name (letters, digits and underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def tap_exit_code(event: dict[str, Any]) -> int | None:
    """The extractor's exit code if this Meltano log event reports a failed one."""
    codes = event.get("exit_codes")
    if isinstance(codes, dict) and isinstance(codes.get("extractors"), int):
        return int(codes["extractors"])
    for text in (event.get("err"), event.get("event")):
        found = DISCOVERY_FAILED.search(text) if isinstance(text, str) else None
        if found:
            return int(found.group(1))
    return None


def run_meltano_job(context: OpExecutionContext, job_name: str) -> None:
    """``meltano run <job>``: Meltano's log to the step's stdout, errors to Dagster's log."""
    command = [MELTANO, "--log-format=json", "run", job_name]
    context.log.info("running %s in %s", " ".join(command), PROJECT_ROOT)
    tap_code: int | None = None
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
        for line in proc.stdout:
            sys.stdout.write(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            tap_code = tap_exit_code(event) if tap_code is None else tap_code
            if event.get("level") == "error":
                context.log.error(str(event.get("event", ""))[:2000])
        returncode = proc.wait()
    finally:
        if proc.poll() is None:  # the run was terminated: let the tap write its final STATE
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if returncode == 0:
        return
    if tap_code == BUDGET_SPENT:
        delay = budget_retry_seconds()
        context.log.warning("the company's daily API token budget is spent: retrying in %g s "
                            "(attempt %d of %d)", delay, context.retry_number + 1, budget_retries() + 1)
        raise RetryRequested(max_retries=budget_retries(), seconds_to_wait=delay)
    raise Failure(f"meltano run {job_name} exited {returncode} (tap exit code {tap_code})")


def build_job(job_name: str, tasks: Tasks) -> tuple[JobDefinition, str | None]:
    """One Dagster job of one op for a Meltano job, tagged with its company."""
    company = company_of(job_name, tasks)

    # Op names are unique across the code location, hence the job's name in it.
    @op(name=f"meltano_run_{dagster_name(job_name)}", description=f"meltano run {job_name}")
    def meltano_run(context: OpExecutionContext) -> None:
        run_meltano_job(context, job_name)

    @job(
        name=dagster_name(job_name),
        description=f"The Meltano job {job_name}: {'; '.join(map(str, tasks))}",
        tags={COMPANY_TAG: company} if company else {},
        executor_def=in_process_executor,
    )
    def dagster_job() -> None:
        meltano_run()

    return dagster_job, company


def build_schedule(name: str, cron: str, job_def: JobDefinition, company: str | None) -> ScheduleDefinition:
    """A Dagster schedule of a Meltano schedule; it skips a tick while the company is busy."""

    @schedule(name=dagster_name(name), cron_schedule=cron, job=job_def, execution_timezone="UTC",
              default_status=DefaultScheduleStatus.RUNNING)
    def tick(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        if company is not None and context.instance.get_run_records(
            RunsFilter(tags={COMPANY_TAG: company}, statuses=IN_FLIGHT), limit=1
        ):
            return SkipReason(f"{company} has a run queued or in progress")
        return RunRequest()

    return tick


def build_definitions() -> Definitions:
    """Jobs and schedules from the Meltano project's ``meltano job list`` and ``schedule list``."""
    jobs = {j["job_name"]: build_job(j["job_name"], j["tasks"]) for j in meltano_listing("job")["jobs"]}
    schedules = [
        build_schedule(s["name"], s["cron_interval"], *jobs[s["job"]["name"]])
        for s in meltano_listing("schedule")["schedules"]["job"]
        if s.get("cron_interval")  # @once, @manual and @none have none: nothing to schedule
    ]
    return Definitions(jobs=[j for j, _ in jobs.values()], schedules=schedules)


defs = build_definitions()
