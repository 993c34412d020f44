"""Exactly once across any stop: a run stopped at any request, or by SIGTERM at any point,
leaves a STATE from which the next run writes what is missing and nothing twice.

Every stop point of a small account is tried, not a few: each request failing for good
(retries exhausted), the token budget running out before each request (``max_tokens_per_run``),
SIGTERM while each request is in flight, and SIGTERM after many different numbers of records.
Incremental, child, newest-first and whole-read streams must be exact across the two runs;
the one full-table stream here (``users``) may be read again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import basic_config, make_fake
from tests.fake_pipedrive import Fault
from tests.helpers import Run, assert_no_secret, catalog_selecting, run_tap

STREAMS = {
    "deals", "archived_deals", "deal_products", "persons", "notes", "leads", "files",
    "archived_leads", "users", "projects", "archived_projects", "tasks",
}  # fmt: skip
FULL_TABLE = {"users"}
COUNTS = {"deals": 60, "persons": 30, "notes": 25, "leads": 15, "files": 250, "archived_leads": 4}
KEY = {}


def fresh():
    """A new fake with the same (seeded) account, sized so several streams span pages."""
    return make_fake(counts=COUNTS).start()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The catalog, and the requests (with their token costs) of an uninterrupted run."""
    server = fresh()
    try:
        tmp = tmp_path_factory.mktemp("reference")
        found = run_tap("--discover", config=basic_config(server), tmp_path=tmp)
        assert found.returncode == 0, found.stderr[-2000:]
        catalog = catalog_selecting(json.loads(found.stdout), STREAMS)
        server.reset_counters()
        # one request at a time: the order a run near the end of its token budget keeps too
        run = run_tap(config=basic_config(server, max_retries=0, max_parallel_requests=1), catalog=catalog,
                      tmp_path=tmp)
        assert run.returncode == 0, run.stderr[-2000:]
        requests = [r for r in server.requests if r["path"].startswith("/api/")]
        return {
            "catalog": catalog,
            "costs": [r["token_cost"] for r in requests],
            "paths": [r["path"] for r in requests],
        }
    finally:
        server.stop()


def assert_exactly_once(first: Run, second: Run, server, what: str) -> None:
    for stream in sorted(STREAMS):
        key = "id"
        a, b = first.ids(stream, key), second.ids(stream, key)
        expected = set(server.account.ids(stream))
        assert set(a) | set(b) == expected, (
            f"{what}: {stream}: lost {sorted(expected - set(a) - set(b), key=str)[:5]}"
        )
        if stream not in FULL_TABLE:
            twice = (set(a) & set(b)) | {i for i in a if a.count(i) > 1} | {i for i in b if b.count(i) > 1}
            assert not twice, f"{what}: {stream}: written twice: {sorted(twice, key=str)[:5]}"
    if first.messages:  # a run stopped before its first message has nothing to cover
        assert first.messages[-1]["type"] == "STATE", f"{what}: the last message is not a STATE"


def resume(server, first: Run, catalog: dict, tmp_path) -> Run:
    server.clear_faults()
    second = run_tap(config=basic_config(server), catalog=catalog, state=first.final_state, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    return second


def test_a_request_failing_for_good_anywhere_leaves_an_exact_resume(reference, tmp_path):
    for k in range(1, len(reference["paths"]) + 1):
        server = fresh()
        try:
            server.add_fault(Fault(500, path_pattern=r"^/api/", after=k - 1))
            first = run_tap(
                config=basic_config(server, max_retries=0), catalog=reference["catalog"], tmp_path=tmp_path
            )
            assert first.returncode == 1, f"request {k}: {first.stderr[-1000:]}"
            assert "failed after 1 attempts" in first.stderr
            assert_exactly_once(
                first, resume(server, first, reference["catalog"], tmp_path), server, f"request {k}"
            )
        finally:
            server.stop()


def test_the_token_budget_running_out_before_any_request_leaves_an_exact_resume(reference, tmp_path):
    spent = 0
    for k, cost in enumerate(reference["costs"], start=1):
        if spent:  # max_tokens_per_run is at least 1: the first request always goes
            server = fresh()
            try:
                first = run_tap(
                    config=basic_config(server, max_tokens_per_run=spent),
                    catalog=reference["catalog"],
                    tmp_path=tmp_path,
                )
                assert first.returncode == 3, f"request {k}: {first.stderr[-1000:]}"
                assert server.tokens_spent == spent
                assert_exactly_once(
                    first, resume(server, first, reference["catalog"], tmp_path), server, f"budget {k}"
                )
            finally:
                server.stop()
        spent += cost


def _sigterm_run(
    server, catalog: dict, tmp_path, *, at_request: int | None = None, after_records: int | None = None
) -> Run:
    """Run the tap and send it SIGTERM while request ``at_request`` is in flight, or once it
    has written ``after_records`` records."""
    folder = tmp_path / f"sigterm-{at_request}-{after_records}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(basic_config(server)))
    (folder / "catalog.json").write_text(json.dumps(catalog))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PIPEDRIVE_")}
    cmd = [sys.executable, "-m", "tap_pipedrive", "--config", "config.json", "--catalog", "catalog.json"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder, env=env
    )
    if at_request is not None:
        answer = server._handle  # noqa: SLF001 - the fake's request entry point, wrapped for the test
        seen = [0]

        def handle(method, raw_path, headers, body):
            if raw_path.startswith("/api/"):
                seen[0] += 1
                if seen[0] == at_request:
                    proc.send_signal(signal.SIGTERM)
            return answer(method, raw_path, headers, body)

        server._handle = handle  # noqa: SLF001
    lines: list[str] = []
    records = 0
    with proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        for line in proc.stdout:
            lines.append(line)
            if after_records is not None and line.startswith('{"type":"RECORD"'):
                records += 1
                if records == after_records:
                    proc.send_signal(signal.SIGTERM)
        stderr = proc.stderr.read()
        returncode = proc.wait(timeout=60)
    assert_no_secret("".join(lines), stderr)
    return Run(
        returncode, "".join(lines), stderr, [json.loads(line) for line in lines if line.startswith("{")]
    )


def _check_sigterm(server, first: Run, catalog: dict, tmp_path, what: str) -> None:
    if first.returncode == 0:  # the run ended before the signal arrived: nothing to resume
        return
    assert first.returncode == 128 + signal.SIGTERM, f"{what}: {first.stderr[-1000:]}"
    assert "Traceback" not in first.stderr
    assert_exactly_once(first, resume(server, first, catalog, tmp_path), server, what)


def test_sigterm_while_any_request_is_in_flight_leaves_an_exact_resume(reference, tmp_path):
    for k in range(1, len(reference["paths"]) + 1):
        server = fresh()
        try:
            first = _sigterm_run(server, reference["catalog"], tmp_path, at_request=k)
            assert first.returncode == 128 + signal.SIGTERM, f"request {k}: {first.stderr[-1000:]}"
            _check_sigterm(server, first, reference["catalog"], tmp_path, f"SIGTERM at request {k}")
        finally:
            server.stop()


def test_sigterm_after_any_number_of_records_leaves_an_exact_resume(reference, tmp_path):
    total = 1 + 60 + 30 + 25 + 15 + 250 + 4 + 7 + 2 + 16  # a few more records than these, at the most
    points = sorted({1, 2, 3, 50, 99, 100, 101, 150, 250, 333, *range(5, total, 17)})
    stopped = 0
    for after in points:
        server = fresh()
        try:
            first = _sigterm_run(server, reference["catalog"], tmp_path, after_records=after)
            stopped += first.returncode != 0
            _check_sigterm(server, first, reference["catalog"], tmp_path, f"SIGTERM after {after} records")
        finally:
            server.stop()
    assert stopped > len(points) // 2, "most signals should land before the run ends"


def test_a_transient_fault_of_the_oauth_token_endpoint_is_retried(fake_factory, tmp_path):
    from tests.conftest import oauth_config  # noqa: PLC0415
    from tests.helpers import LOOPBACK_ONLY  # noqa: PLC0415

    for kind in (500, 503, "cut"):
        server = fake_factory()
        server.add_fault(Fault(kind, path_pattern=r"^/oauth/token", times=1))
        run = run_tap("--test", config=oauth_config(server), tmp_path=tmp_path, env=LOOPBACK_ONLY)
        assert run.stdout == "connection available\n", (kind, run.stderr[-2000:])
        assert [r["status"] for r in server.oauth_requests][-1] == 200
        assert len(server.oauth_requests) == 2
