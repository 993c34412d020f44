#!/usr/bin/env python3
"""Time a full sync of the demo account under Pipedrive's burst limit (20 requests / 2 s).

    .venv/bin/python scripts/benchmark.py [--burst-limit 20] [--size demo]

Starts the fake Pipedrive on 127.0.0.1 (nothing else is contacted), runs the tap as a
subprocess with every stream selected, counts the RECORD messages on its stdout, and prints:
wall time, records, records/s, requests, API tokens, 429s received, the tap's peak RSS and the
tap's own run summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_pipedrive import FakePipedrive  # noqa: E402

TOKEN = "benchmark-api-token-0d9e"  # noqa: S105 - the fake's token, not a real one


def main() -> int:
    """Run the benchmark; return the tap's exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo", choices=["small", "demo"])
    parser.add_argument("--burst-limit", type=int, default=20)
    args = parser.parse_args()

    started = time.monotonic()
    server = FakePipedrive(size=args.size, burst_limit=args.burst_limit, api_token=TOKEN)
    print(f"fake account ({args.size}) generated in {time.monotonic() - started:.1f}s")
    with server, tempfile.TemporaryDirectory(prefix="tap-pipedrive-bench-") as tmp:
        config = Path(tmp, "config.json")
        config.write_text(json.dumps({"company_domain": "demo", "api_token": TOKEN, "api_url": server.url}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PIPEDRIVE_")}
        stderr_path = Path(tmp, "stderr.txt")
        records = 0
        per_stream: dict[str, int] = {}
        with stderr_path.open("w") as stderr:
            begin = time.monotonic()
            proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                [sys.executable, "-m", "tap_pipedrive", "--config", str(config)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=tmp,
                env=env,
                text=True,
            )
            assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
            for line in proc.stdout:
                if line.startswith('{"type":"RECORD"'):
                    records += 1
                    stream = json.loads(line)["stream"]
                    per_stream[stream] = per_stream.get(stream, 0) + 1
            proc.stdout.close()
            returncode = proc.wait()
            wall = time.monotonic() - begin
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        log = stderr_path.read_text()
        summary = next((line.split("| ", 3)[-1] for line in log.splitlines() if "Run summary:" in line), None)

        print(f"exit code:        {returncode}")
        print(f"wall time:        {wall:.1f}s")
        print(f"records:          {records} in {len(per_stream)} streams")
        print(f"records/s:        {records / wall:.0f}")
        print(f"requests:         {len(server.requests)} (burst limit {args.burst_limit} per 2 s)")
        print(f"API tokens:       {server.tokens_spent}")
        early = server.early_requests_after_429
        print(f"429s received:    {server.count_429} (early requests after a 429: {early})")
        print(f"peak RSS (tap):   {peak_kib / 1024:.0f} MiB")
        print(f"tap summary:      {summary or '(none found)'}")
        if returncode != 0:
            print(log[-3000:], file=sys.stderr)
    return returncode


if __name__ == "__main__":
    raise SystemExit(main())
