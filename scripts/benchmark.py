#!/usr/bin/env python3
"""Measure tap-pipedrive's speed, CPU and memory against the fake Pipedrive on 127.0.0.1.

    .venv/bin/python scripts/benchmark.py            # full sync + deal history + CPU floor
    .venv/bin/python scripts/benchmark.py --quick    # a smoke run: small accounts, one plan
    .venv/bin/python scripts/benchmark.py --memory   # also peak RSS at ~150k and ~1M records

It starts the fake Pipedrive in this process, on 127.0.0.1 only (nothing else is contacted),
runs the tap as a subprocess (``python -m tap_pipedrive --config ...``) whose stdout a small
wrapper process reads, as a target would (its RECORD lines counted and discarded), and
measures the tap alone: wall time, CPU time (user + system, from ``os.wait4``), peak RSS,
records; the fake counts the requests, API tokens and 429s. Each run gets a freshly
generated account (the same data every time: one seed).

Parts (``--parts``, default all but ``memory``; ``--memory`` adds it):

* ``full``: a full sync of a ~15,000-record account (the demo account's shape, scaled) at
  ``--latency`` for each burst limit of ``--plans``, and once "unlimited" at 0 latency (the
  CPU row). "Unlimited" is a burst limit no run reaches (``NO_WAIT``): the fake still sends
  the rate-limit headers Pipedrive always sends, without which the tap keeps to one request
  at a time (it does not know the limit).
* ``history``: a first sync of ``deals`` with the opt-in per-deal streams (``deal_changes``,
  ``deal_participants``, ``deal_followers``) selected, on ~1,000 deals, at each plan.
* ``floor``: the CPU floor. The requests the unlimited full sync made, replayed one after
  another by a plain Python process (``requests``, ``json.loads`` of each body,
  ``json.dumps`` of each record of its ``data`` to a null sink): what any Python tap would
  spend at least. ``tap ÷ floor`` compares CPU-seconds per record.
* ``memory``: peak RSS of full syncs of ~150,000 and ~1,000,000 records (almost all
  activities), unlimited, 0 latency. The fake's generation time is printed apart (it runs
  here, not in the tap).

"allowed s" is the shortest wall time the plan permits: requests ÷ the allowed rate + 2 s,
the allowed rate being (limit - 1) / 2 s (the tap leaves one slot of the window free for the
customer's other integrations).

"peak RSS" is the tap's own: each measured process is started by a small wrapper process
(``--measure``) that reads its usage with ``os.wait4``, because on Linux a child's
``ru_maxrss`` includes the RSS of the process it was forked from (here: the fake's accounts).

How long it takes (2 cores): ``--quick`` under a minute; the default about 10 minutes (mostly
the deal history: 2,700 requests, at 20 requests / 2 s 5 minutes even for a tap as fast as
allowed); ``--memory`` adds about 5 (the fake's million records take 45 s to generate).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from tests.fake_pipedrive import Account, FakePipedrive

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "benchmark-api-token-0d9e"  # noqa: S105 - the fake's token, not a real one
WINDOW = 2.0  # seconds of Pipedrive's burst window
SEED = 7
#: What the demo account's shape is scaled from: its entities with 50 records or more.
DEMO_SCALED = ("deals", "deleted_deals", "archived_deals", "persons", "organizations",
               "activities", "products", "notes", "leads", "archived_leads", "files",
               "call_logs", "projects", "mail_threads")
DEMO_RECORDS = 21_015  # what a full sync of the unscaled demo account emits
#: the "unlimited" plan: a burst limit (requests per 2 s) that no run here reaches
NO_WAIT = 100_000
HISTORY_STREAMS = ("deals", "deal_changes", "deal_participants", "deal_followers")
TAP_TIMEOUT = 3 * 3600  # seconds; a tap that hangs is killed, its row marked
LOOPBACK = "127.0.0.1,localhost"
RECORD_MARKS = (b'"type":"RECORD"', b'"type": "RECORD"')
MILLION = 1_000_000
MEASURE = "--measure"  # the wrapper mode: --measure USAGE_FILE -- COMMAND...


def say(message: str) -> None:
    """A progress line (stderr; the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    """One measured process and what the fake saw of it."""

    run: str
    plan: str
    limit: int | None
    wall: float
    cpu: float
    rss_kib: int
    records: int
    requests: int | None = None
    tokens: int | None = None
    count_429: int | None = None
    returncode: int = 0
    #: CPU-seconds of this process meanwhile: the fake serving, and reading the tap's stdout
    fake_cpu: float | None = None
    log_tail: str = ""
    per_stream: dict[str, int] = field(default_factory=dict)

    @property
    def allowed(self) -> float | None:
        """The shortest wall time the burst limit permits for these requests."""
        if self.limit is None or self.requests is None:
            return None
        return self.requests / ((self.limit - 1) / WINDOW) + WINDOW

    @property
    def records_per_cpu_second(self) -> float:
        """Records emitted per CPU-second of the process."""
        return self.records / self.cpu if self.cpu > 0 else 0.0


def child_env() -> dict[str, str]:
    """The environment of the children: no tap settings of the caller, no proxy."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAP_PIPEDRIVE_") and k.lower() not in ("http_proxy", "https_proxy",
                                                                      "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
    return env


def run_measured(cmd: list[str], cwd: Path, log: Path) -> tuple[int, float, float, int, int, dict[str, int]]:
    """Run ``cmd``; count the RECORD lines of its stdout per stream.

    Returns (exit code, wall s, CPU s, peak RSS KiB, records, records per stream), of ``cmd``
    alone. ``cmd`` is started by a small wrapper process (``--measure``), which reads its
    stdout (as a target would, in a process of its own, so this process, which serves the
    fake, does not compete with it) and its usage with ``os.wait4``: on Linux a child's
    ``ru_maxrss`` includes the RSS of the process it was forked from, so a tap forked from
    this process (the fake's accounts, up to gigabytes) would show this process's size. The
    wrapper's own (~12 MiB) is the floor of the reading.
    """
    usage_file = log.with_name(log.name + ".usage.json")
    wrapper = [sys.executable, str(Path(__file__).resolve()), MEASURE, str(usage_file), "--", *cmd]
    with log.open("wb") as err:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            wrapper, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd,
            env=child_env(), start_new_session=True,  # its own group: killed as one
        )
        try:
            proc.wait(timeout=TAP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: leave no tap behind
                _kill_group(proc)
                proc.wait()
    if proc.returncode != 0 or not usage_file.exists():
        return proc.returncode or 1, 0.0, 0.0, 0, 0, {}
    usage = json.loads(usage_file.read_text(encoding="utf-8"))
    per_stream: dict[str, int] = usage["per_stream"]
    return (usage["returncode"], usage["wall"], usage["cpu"], usage["maxrss_kib"],
            sum(per_stream.values()), per_stream)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the wrapper and what it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def measure(usage_file: Path, cmd: list[str]) -> int:
    """The wrapper: run ``cmd``, count its RECORD lines per stream, write its usage as JSON."""
    per_stream: dict[str, int] = {}
    begin = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)  # noqa: S603 - the benchmark's own commands
    assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
    for line in proc.stdout:
        head = line[:48]
        if RECORD_MARKS[0] in head or RECORD_MARKS[1] in head:
            start = line.index(b'"stream":') + 9
            stream = line[start:line.index(b",", start)].strip(b' "').decode()
            per_stream[stream] = per_stream.get(stream, 0) + 1
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - begin
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    usage_file.write_text(json.dumps({
        "returncode": proc.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,  # KiB on Linux
        "per_stream": per_stream,
    }), encoding="utf-8")
    return 0


def write_config(folder: Path, server: FakePipedrive, parallel: int | None) -> Path:
    """The tap's config for ``server`` in ``folder`` (with ``max_parallel_requests`` if given)."""
    config: dict[str, object] = {"company_domain": "demo", "api_token": TOKEN, "api_url": server.url}
    if parallel is not None:
        config["max_parallel_requests"] = parallel
    path = folder / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def tap_command(config: Path, catalog: Path | None = None) -> list[str]:
    """How the tap is run: this interpreter, ``-m tap_pipedrive``."""
    cmd = [sys.executable, "-m", "tap_pipedrive", "--config", str(config)]
    if catalog is not None:
        cmd += ["--catalog", str(catalog)]
    return cmd


def plan_label(limit: int | None) -> str:
    """``20 / 2 s`` or ``unlimited``."""
    return "unlimited" if limit is None else f"{limit} / 2 s"


def run_tap(
    run: str, server: FakePipedrive, limit: int | None, folder: Path, *,
    parallel: int | None, catalog: Path | None = None,
) -> Measured:
    """One measured tap run against ``server`` (started, counters fresh)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, server, parallel)
    log = folder / "tap.log"
    here = time.process_time()
    rc, wall, cpu, rss, records, per_stream = run_measured(tap_command(config, catalog), folder, log)
    fake_cpu = time.process_time() - here
    text = log.read_text(encoding="utf-8", errors="replace")
    summary = next((line.split("| ", 3)[-1] for line in text.splitlines() if "Run summary:" in line), "")
    for warning in [line for line in text.splitlines() if "| WARNING" in line][:3]:
        say(f"{run}, {plan_label(limit)}: the tap warned: {warning.split('| ', 3)[-1]}")
    say(f"{run}, {plan_label(limit)}: exit {rc}, {wall:.1f} s wall, {cpu:.1f} CPU-s, {records} records, "
        f"{len(server.requests)} requests, {server.count_429} 429s, fake {fake_cpu:.1f} CPU-s | "
        f"{summary or 'no run summary'}")
    return Measured(
        run=run, plan=plan_label(limit), limit=limit, wall=wall, cpu=cpu, rss_kib=rss,
        records=records, requests=len(server.requests), tokens=server.tokens_spent,
        count_429=server.count_429, returncode=rc, fake_cpu=fake_cpu,
        log_tail="" if rc == 0 else "\n".join(text.splitlines()[-40:]), per_stream=per_stream,
    )


# --------------------------------------------------------------------------- accounts


def fake_modules() -> tuple[type[Account], type[FakePipedrive]]:
    """The fake, imported only where it runs (the replay child never loads it)."""
    sys.path.insert(0, str(ROOT))
    from tests.fake_pipedrive import Account, FakePipedrive  # noqa: PLC0415 - see above

    return Account, FakePipedrive


def demo_counts(records: int) -> dict[str, int]:
    """The demo account's counts scaled so a full sync emits about ``records`` records."""
    from tests.fake_pipedrive.account import SIZES  # noqa: PLC0415 - see fake_modules

    factor = records / DEMO_RECORDS
    return {name: max(1, round((SIZES["demo"][name] or 0) * factor)) for name in DEMO_SCALED}


@dataclass
class AccountSpec:
    """How to make one benchmark account."""

    label: str
    size: str
    counts: dict[str, int] | None
    generated_seconds: list[float] = field(default_factory=list)

    def make(self) -> Account:
        """Generate the account (timed)."""
        account_cls, _ = fake_modules()
        started = time.monotonic()
        account = account_cls(SEED, self.size, self.counts)
        self.generated_seconds.append(time.monotonic() - started)
        return account


def serve(spec: AccountSpec, limit: int | None, latency: float) -> FakePipedrive:
    """A fake Pipedrive on a freshly generated account (not started)."""
    _, fake_cls = fake_modules()
    return fake_cls(spec.make(), api_token=TOKEN, burst_limit=limit, latency=latency)


# --------------------------------------------------------------------------- parts


def full_sync(spec: AccountSpec, plans: list[int], latency: float, tmp: Path,
              parallel: int | None) -> tuple[list[Measured], list[dict[str, object]]]:
    """The full sync at each plan, then unlimited at 0 latency; also the unlimited run's requests."""
    results = []
    for limit in plans:
        with serve(spec, limit, latency) as server:
            results.append(run_tap("full sync", server, limit, tmp / f"full-{limit}", parallel=parallel))
    with serve(spec, NO_WAIT, 0.0) as server:
        results.append(run_tap("full sync, CPU", server, None, tmp / "full-unlimited",
                               parallel=parallel))
        replay = [{"method": r["method"], "path": r["path"], "query": r["query"]} for r in server.requests]
    return results, replay


def history_catalog(spec: AccountSpec, tmp: Path) -> Path:
    """The discovered catalog with only ``HISTORY_STREAMS`` selected."""
    folder = tmp / "discover"
    folder.mkdir(parents=True, exist_ok=True)
    with serve(spec, None, 0.0) as server:
        config = write_config(folder, server, None)
        proc = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [*tap_command(config), "--discover"], capture_output=True, check=False, cwd=folder,
            env=child_env(), timeout=600,
        )
    if proc.returncode != 0:
        raise SystemExit(f"--discover failed (exit {proc.returncode}):\n{proc.stderr.decode()[-3000:]}")
    catalog = json.loads(proc.stdout)
    found = set()
    for entry in catalog["streams"]:
        wanted = entry["tap_stream_id"] in HISTORY_STREAMS
        found |= {entry["tap_stream_id"]} if wanted else set()
        for meta in entry["metadata"]:
            if not meta["breadcrumb"]:
                meta["metadata"]["selected"] = wanted
    if found != set(HISTORY_STREAMS):
        raise SystemExit(f"the catalog lacks {sorted(set(HISTORY_STREAMS) - found)}")
    path = tmp / "history-catalog.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    return path


def deal_history(spec: AccountSpec, plans: list[int], latency: float, tmp: Path,
                 parallel: int | None) -> list[Measured]:
    """The first sync of deals with their per-deal streams, at each plan."""
    catalog = history_catalog(spec, tmp)
    results = []
    for limit in plans:
        with serve(spec, limit, latency) as server:
            results.append(run_tap("deal history", server, limit, tmp / f"history-{limit}",
                                   parallel=parallel, catalog=catalog))
    return results


def cpu_floor(spec: AccountSpec, replay: list[dict[str, object]], tmp: Path) -> Measured:
    """Replay ``replay`` from a plain Python process against a fake on the same account."""
    folder = tmp / "floor"
    folder.mkdir(parents=True, exist_ok=True)
    requests_file = folder / "requests.json"
    with serve(spec, None, 0.0) as server:
        requests_file.write_text(json.dumps({"url": server.url, "requests": replay}), encoding="utf-8")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--replay", str(requests_file)]
        rc, wall, cpu, rss, _, _ = run_measured(cmd, folder, folder / "replay.log")
        served = len(server.requests)
        statuses = [r["status"] for r in server.requests]
    log = (folder / "replay.log").read_text(encoding="utf-8", errors="replace")
    written = json.loads((folder / "replay.json").read_text()) if rc == 0 else {"records": 0}
    bad = sum(1 for s in statuses if s != 200)  # noqa: PLR2004 - HTTP OK
    say(f"CPU floor: exit {rc}, {wall:.1f} s wall, {cpu:.2f} CPU-s, {written['records']} records, "
        f"{served} requests ({bad} not 200)")
    return Measured(run="CPU floor (replay)", plan="unlimited", limit=None, wall=wall, cpu=cpu,
                    rss_kib=rss, records=int(written["records"]), requests=served, returncode=rc,
                    log_tail="" if rc == 0 else log[-3000:])


def memory(sizes: list[int], tmp: Path, parallel: int | None) -> tuple[list[Measured], list[str]]:
    """Full syncs of accounts of ``sizes`` records (almost all activities), unlimited."""
    results, notes = [], []
    for records in sizes:
        spec = AccountSpec(f"{records:,} records", "small", {"activities": records})
        label = f"memory, ~{records / 1e6:g}M" if records >= MILLION else f"memory, ~{records / 1000:,.0f}k"
        say(f"{label}: generating the account")
        with serve(spec, NO_WAIT, 0.0) as server:
            results.append(run_tap(label, server, None, tmp / f"memory-{records}", parallel=parallel))
        notes.append(f"{label}: the fake generated the account in {spec.generated_seconds[0]:.0f} s "
                     "(not part of the tap's figures)")
    return results, notes


def startup_cpu(tmp: Path) -> float:
    """CPU-seconds of ``tap --about``: the interpreter, imports and settings, no sync."""
    folder = tmp / "about"
    folder.mkdir(parents=True, exist_ok=True)
    _, _, cpu, _, _, _ = run_measured([sys.executable, "-m", "tap_pipedrive", "--about"], folder,
                                      folder / "about.log")
    return cpu


# --------------------------------------------------------------------------- the replay child


def replay(requests_file: Path) -> int:
    """The CPU floor's process: send each request, parse each body, write each record."""
    import requests  # noqa: PLC0415 - only this child needs it

    spec = json.loads(requests_file.read_text(encoding="utf-8"))
    base = spec["url"]
    records = 0
    with requests.Session() as session, open(os.devnull, "w", encoding="utf-8") as sink:  # noqa: PTH123
        session.trust_env = False  # no proxy, no netrc: 127.0.0.1 directly
        session.headers["x-api-token"] = TOKEN
        for request in spec["requests"]:
            resp = session.request(request["method"], base + request["path"], params=request["query"],
                                   timeout=300)
            body = json.loads(resp.content)
            data = body.get("data") if isinstance(body, dict) else None
            items: Iterable[object] = data if isinstance(data, list) else [] if data is None else [data]
            for item in items:
                sink.write(json.dumps(item))
                sink.write("\n")
                records += 1
    requests_file.with_name("replay.json").write_text(json.dumps({"records": records}), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------- the table


COLUMNS = ("run", "plan", "wall s", "allowed s", "wall ÷ allowed", "records", "records / CPU-s",
           "CPU s", "peak RSS MiB", "requests", "tokens", "429s", "fake CPU s")
TEXT_COLUMNS = 2  # run, plan


def _cells(m: Measured) -> list[str]:
    def opt(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    allowed = m.allowed
    run = m.run if m.returncode == 0 else f"{m.run} (EXIT {m.returncode})"
    return [
        run, m.plan, f"{m.wall:.1f}", "-" if allowed is None else f"{allowed:.1f}",
        "-" if allowed is None else f"{m.wall / allowed:.2f}", f"{m.records:,}",
        f"{m.records_per_cpu_second:,.0f}", f"{m.cpu:.1f}", f"{m.rss_kib / 1024:.0f}",
        opt(m.requests), opt(m.tokens), opt(m.count_429),
        "-" if m.fake_cpu is None else f"{m.fake_cpu:.1f}",
    ]


def table(rows: list[Measured]) -> Iterator[str]:
    """The table's lines: the text columns left-aligned, the numbers right-aligned."""
    cells = [list(COLUMNS), *(_cells(m) for m in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for n, row in enumerate(cells):
        yield "  ".join(c.ljust(w) if i < TEXT_COLUMNS else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        if n == 0:
            yield "  ".join("-" * w for w in widths)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with the defaults ``--quick`` changes filled in."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: ~3,000 records, 100 deals, one plan (the last of --plans)")
    parser.add_argument("--memory", action="store_true", help="also the memory part (see --memory-records)")
    parser.add_argument("--memory-records", default=None,
                        help="record counts of the memory part (default 150000,1000000; --quick 20000)")
    parser.add_argument("--parts", default=None,
                        help="comma-separated: full, history, floor, memory (default: all but memory)")
    parser.add_argument("--plans", default="20,40,100", help="burst limits, requests per 2 s")
    parser.add_argument("--latency", type=float, default=0.08,
                        help="seconds of round trip per request at the plans (default 0.08)")
    parser.add_argument("--records", type=int, default=None,
                        help="about this many records in the full sync (default 15000)")
    parser.add_argument("--size", choices=("small", "demo"), default=None,
                        help="the full sync on the fake's named account instead of --records")
    parser.add_argument("--deals", type=int, default=None, help="deals in the history part (default 1000)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="max_parallel_requests in the tap's config (left out by default)")
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)  # the CPU floor's child
    args = parser.parse_args(argv)
    plans = [int(p) for p in args.plans.split(",") if p.strip()]
    if not plans or min(plans) < 2:  # noqa: PLR2004 - the tap needs one slot free
        parser.error("--plans: burst limits of at least 2")
    args.plans = plans[-1:] if args.quick else plans
    args.records = args.records or (3000 if args.quick else 15_000)
    args.deals = args.deals or (100 if args.quick else 1000)
    memory_default = "20000" if args.quick else "150000,1000000"
    args.memory_records = [int(n) for n in (args.memory_records or memory_default).split(",")]
    parts = set((args.parts or "full,history,floor").split(","))
    if args.memory:
        parts.add("memory")
    unknown = parts - {"full", "history", "floor", "memory"}
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}")
    args.parts = parts
    return args


def run_parts(args: argparse.Namespace, tmp: Path) -> tuple[list[Measured], list[str]]:
    """The measured rows and the notes under the table, of the parts asked for."""
    rows: list[Measured] = []
    notes: list[str] = []
    if args.parts & {"full", "floor"}:
        full = AccountSpec("full", args.size or "demo", None if args.size else demo_counts(args.records))
        say(f"full sync: {full.counts or full.size}")
        runs, requests_made = full_sync(full, args.plans if "full" in args.parts else [],
                                        args.latency, tmp, args.parallel)
        rows += runs
        notes.append(f"full sync: the fake generated each account in {min(full.generated_seconds):.1f} s")
        if "floor" in args.parts:
            floor = cpu_floor(full, requests_made, tmp)
            rows.append(floor)
            notes.append(floor_note(runs[-1], floor))
            notes.append(per_record_note(runs[-1], floor, startup_cpu(tmp), floor_startup_cpu(full, tmp)))
    if "history" in args.parts:
        deals = AccountSpec("history", "demo", {"deals": args.deals})
        say(f"deal history: {args.deals} deals")
        rows += deal_history(deals, args.plans, args.latency, tmp, args.parallel)
        notes.append(f"deal history: the fake generated each account in "
                     f"{min(deals.generated_seconds):.1f} s")
    if "memory" in args.parts:
        mem_rows, mem_notes = memory(args.memory_records, tmp, args.parallel)
        rows += mem_rows
        notes += mem_notes
    notes.append(f"tap start-up: {startup_cpu(tmp):.1f} CPU-s (`--about`: interpreter and imports)")
    return rows, notes


def per_record_note(tap: Measured, floor: Measured, tap_start: float, floor_start: float) -> str:
    """The same ratio without each process's fixed start-up (interpreter and imports)."""
    tap_cpu, floor_cpu = tap.cpu - tap_start, floor.cpu - floor_start
    if not (floor.records and tap.records and floor_cpu > 0 and tap_cpu > 0):
        return "per record, start-up excluded: not measured"
    ratio = (tap_cpu / tap.records) / (floor_cpu / floor.records)
    return (f"per record, start-up excluded: {ratio:.1f} times (tap {tap_cpu * 1e6 / tap.records:.0f} µs "
            f"a record after {tap_start:.2f} CPU-s of start-up, floor {floor_cpu * 1e6 / floor.records:.0f} "
            f"µs after {floor_start:.2f})")


def floor_startup_cpu(spec: AccountSpec, tmp: Path) -> float:
    """CPU-seconds of the floor's process replaying no request: the interpreter and its imports."""
    return cpu_floor(spec, [], tmp / "floor-start-up").cpu


def floor_note(tap: Measured, floor: Measured) -> str:
    """The tap's CPU-seconds per record against the floor's."""
    if not (floor.records and tap.records and floor.cpu > 0 and tap.cpu > 0):
        return "tap ÷ floor: not measured (a run failed)"
    ratio = (tap.cpu / tap.records) / (floor.cpu / floor.records)
    return (f"tap ÷ floor: {ratio:.1f} times the CPU-seconds per record (tap "
            f"{tap.records_per_cpu_second:,.0f} records / CPU-s, floor {floor.records_per_cpu_second:,.0f}; "
            f"the floor wrote {floor.records:,} records from the same {floor.requests} requests)")


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for; print the table; return 1 if any tap run failed."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [MEASURE]:  # before argparse: the command's own options follow
        return measure(Path(argv[1]), argv[3:] if argv[2:3] == ["--"] else argv[2:])
    args = parse_args(argv)
    if args.replay is not None:
        return replay(args.replay)
    fake_modules()
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tap-pipedrive-bench-") as tmp:
        rows, notes = run_parts(args, Path(tmp))
    print(f"tap-pipedrive benchmark: latency {args.latency * 1000:.0f} ms at the plans, "
          f"max_parallel_requests {args.parallel if args.parallel is not None else '(not set)'}, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print()
    for line in table(rows):
        print(line)
    print()
    for note in notes:
        print(f"* {note}")
    print("* fake CPU s: this process while the tap ran (the fake serving; the tap's output is read "
          "by the wrapper); near the wall time, the fake was what limited the run")
    _check_same_records(rows)
    print(f"* the benchmark took {(time.monotonic() - begun) / 60:.1f} min")
    failed = [m for m in rows if m.returncode != 0]
    for m in failed:
        print(f"\n--- {m.run}, {m.plan}: exit {m.returncode}; last lines of its log ---\n{m.log_tail}",
              file=sys.stderr)
    return 1 if failed else 0


def _check_same_records(rows: list[Measured]) -> None:
    """Every plan of one account must emit the same records: say so when they differ."""
    by_run: dict[str, set[tuple[tuple[str, int], ...]]] = {}
    for m in rows:
        if m.per_stream and m.returncode == 0:
            key = "full sync" if m.run.startswith("full sync") else m.run
            by_run.setdefault(key, set()).add(tuple(sorted(m.per_stream.items())))
    for run, seen in by_run.items():
        if len(seen) > 1:
            print(f"* WARNING: the {run} runs emitted different records per stream: {sorted(seen)}")


if __name__ == "__main__":
    raise SystemExit(main())
