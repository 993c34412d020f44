"""Progress on long runs: a line per active stream on stderr every ``progress_interval`` seconds.

A first sync of a large company runs for minutes to hours; its stderr says how far each stream
is (records, requests, tokens, records a second), and a short run says nothing extra.
"""

from __future__ import annotations

import json
import re

from tests.conftest import basic_config, make_fake
from tests.helpers import run_tap

PROGRESS = re.compile(
    r"Progress: (?P<stream>\w+): (?P<records>\d+) records, (?P<requests>\d+) requests, "
    r"(?P<tokens>\d+) tokens, (?P<rate>\d+) records/s$"
)
SUMMARY_LINE = re.compile(r"^\s+(?P<stream>\w+): (?P<records>\d+) records, (?P<requests>\d+) requests")


def _progress(stderr: str) -> list[dict[str, str]]:
    found = []
    for line in stderr.splitlines():
        match = PROGRESS.search(line)
        if match:
            found.append(match.groupdict())
    return found


def _summary(stderr: str) -> dict[str, tuple[int, int]]:
    return {m["stream"]: (int(m["records"]), int(m["requests"]))
            for m in map(SUMMARY_LINE.match, stderr.splitlines()) if m}


def test_a_long_run_logs_progress_per_active_stream_on_stderr(tmp_path):
    # 80 ms a request, one at a time: a run of several seconds, lines every half second
    with make_fake(latency=0.08) as server:
        run = run_tap(config=basic_config(server, progress_interval=0.5, max_parallel_requests=1),
                      tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = _progress(run.stderr)
    assert len(lines) >= 4, run.stderr[-3000:]
    summary = _summary(run.stderr)
    assert {line["stream"] for line in lines} <= set(summary)
    assert len({line["stream"] for line in lines}) >= 2  # each line names the stream it is about
    for line in lines:  # never more than the run ends with
        records, requests = summary[line["stream"]]
        assert int(line["records"]) <= records
        assert 0 < int(line["requests"]) <= requests
    assert any(int(line["rate"]) > 0 for line in lines)
    # stdout stays Singer messages only
    for out in run.stdout.splitlines():
        assert json.loads(out)["type"] in {"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION"}


def test_a_short_run_logs_no_progress_lines(tmp_path):
    with make_fake() as server:
        run = run_tap(config=basic_config(server), tmp_path=tmp_path)  # default: every 30 s
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Run summary:" in run.stderr
    assert _progress(run.stderr) == []


def test_progress_interval_0_turns_the_lines_off(tmp_path):
    with make_fake(latency=0.08) as server:
        run = run_tap(config=basic_config(server, progress_interval=0, max_parallel_requests=1),
                      tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _progress(run.stderr) == []
