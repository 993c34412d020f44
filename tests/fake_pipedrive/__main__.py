"""Run the fake Pipedrive in the foreground: ``python -m tests.fake_pipedrive --port 8765``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .account import Account
from .server import FakePipedrive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_pipedrive", description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1", help="only loopback addresses make sense")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--size", choices=("small", "demo"), default="demo")
    parser.add_argument("--burst-limit", type=int, default=None, help="requests per 2 s per token")
    parser.add_argument("--daily-token-budget", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds of network round trip added to every request")
    parser.add_argument("--company-id", type=int, default=7_654_321)
    args = parser.parse_args(argv)

    account = Account(seed=args.seed, size=args.size, company_id=args.company_id)
    server = FakePipedrive(account, seed=args.seed, host=args.host, port=args.port,
                           burst_limit=args.burst_limit, daily_token_budget=args.daily_token_budget,
                           latency=args.latency)
    # before the first line announces the server: a SIGTERM sent once it is read must stop it
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    err = sys.stderr
    print(f"fake pipedrive listening on {server.url}", file=err, flush=True)
    print(f"  api token (x-api-token header): {server.api_token}", file=err)
    print(f"  oauth: client_id={server.client_id} client_secret={server.client_secret} "
          f"refresh_token={next(iter(server.refresh_tokens))} token_url={server.url}/oauth/token",
          file=err, flush=True)

    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
