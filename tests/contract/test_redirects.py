"""A redirect is never followed with credentials, to another host or anywhere else."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import CANARY_API_TOKEN, run_tap


class _Recorder(BaseHTTPRequestHandler):
    """Answers every GET with a redirect (or 200), and remembers the headers it was sent."""

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))
        location = self.server.location
        self.send_response(302 if location else 200)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "2")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def servers():
    started = []

    def start(location: str | None) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        httpd.seen, httpd.location = [], location
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return httpd

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("mode", ["test", "sync"])
def test_redirect_to_another_host_is_not_followed(servers, tmp_path, mode):
    other = servers(None)
    redirecting = servers(f"http://127.0.0.1:{other.server_address[1]}/api/v1/users/me")
    config = {
        "company_domain": "demo",
        "api_token": CANARY_API_TOKEN,
        "api_url": f"http://127.0.0.1:{redirecting.server_address[1]}",
    }
    run = run_tap(*(["--test"] if mode == "test" else []), config=config, tmp_path=tmp_path, timeout=60)
    assert run.returncode == 1
    assert "redirected to 127.0.0.1:" in run.stderr
    assert "not following it with credentials" in run.stderr
    assert other.seen == []  # the credentials never went to the other host
    assert redirecting.seen
    assert all(h.get("x-api-token") == CANARY_API_TOKEN for h in redirecting.seen)
