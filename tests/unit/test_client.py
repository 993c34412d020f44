"""The HTTP client in-process, against the fake Pipedrive on 127.0.0.1: retries, waits, the
budget, 401s, redirects and unreachable hosts, each with the one-line error a user sees."""

from __future__ import annotations

import pytest

from tap_pipedrive.auth import PipedriveAuthenticator
from tap_pipedrive.errors import (
    APIError,
    AuthError,
    BudgetExhaustedError,
    ConnectError,
    StreamUnavailableError,
    TransientError,
)
from tap_pipedrive.http.client import PipedriveClient
from tap_pipedrive.http.limits import RateLimiter
from tap_pipedrive.http.paging import ListRequest, PagingKind
from tap_pipedrive.report import RunReport
from tap_pipedrive.settings import AuthScheme
from tests.fake_pipedrive import Fault
from tests.helpers import CANARY_API_TOKEN


def client_for(
    server, *, token: str = CANARY_API_TOKEN, report: RunReport | None = None, **kwargs
) -> PipedriveClient:
    auth = PipedriveAuthenticator(
        auth_scheme=AuthScheme.BASIC, api_token=token, token_url="https://unused.invalid"
    )
    kwargs.setdefault("retry_initial_delay", 0.001)
    return PipedriveClient(
        authenticator=auth,
        base_url=server.url,
        default_base_url="https://unused.invalid",
        user_agent="tap-pipedrive/test",
        stats=(report or RunReport()).stats,
        **kwargs,
    )


def test_a_get_returns_the_body_and_charges_the_stream(fake):
    report = RunReport()
    body = client_for(fake, report=report).get("v2", "/deals", {"limit": 1}, stream="deals")
    assert body["success"] is True
    assert len(body["data"]) == 1
    stats = report.stats["deals"]
    assert (stats.requests, stats.tokens, stats.retries) == (1, 10, 0)


def test_a_transient_fault_is_retried_and_counted(fake):
    fake.add_fault(Fault(503, path_pattern="/api/v2/deals", times=2))
    report = RunReport()
    body = client_for(fake, report=report).get("v2", "/deals", stream="deals")
    assert body["success"] is True
    stats = report.stats["deals"]
    assert (stats.requests, stats.retries, stats.tokens) == (3, 2, 10)  # faulted requests cost nothing


def test_retries_exhausted_say_how_many_attempts_and_why(fake):
    fake.add_fault(Fault(502, path_pattern="/api/v2/deals"))
    with pytest.raises(TransientError, match=r"GET /api/v2/deals failed after 3 attempts: 502"):
        client_for(fake, max_retries=2).get("v2", "/deals")


@pytest.mark.parametrize("kind", ["truncated_json", "non_json", "cut", "reset"])
def test_a_broken_or_cut_answer_is_a_transient_fault(fake, kind):
    fake.add_fault(Fault(kind, path_pattern="/api/v2/persons", times=1))
    assert client_for(fake).get("v2", "/persons")["success"] is True
    assert fake.faults_served == 1


def test_a_timeout_is_retried(fake):
    fake.add_fault(Fault("timeout", path_pattern="/api/v2/persons", times=1, delay=0.5))
    assert client_for(fake, timeout=0.2).get("v2", "/persons")["success"] is True


def test_a_429_holds_every_request_until_the_announced_reset(fake):
    fake.add_fault(Fault(429, path_pattern="/api/v2/deals", times=1, reset=1))
    client = client_for(fake)
    assert client.get("v2", "/deals")["success"] is True
    assert fake.early_requests_after_429 == 0
    assert client.limiter.waited_seconds >= 0.9


def test_the_daily_budget_stops_the_run_and_costs_nothing(fake):
    fake.set_daily_budget(5)
    client = client_for(fake)
    with pytest.raises(BudgetExhaustedError, match="daily API token budget"):
        client.get("v2", "/deals")
    assert client.budget.spent == 0


def test_max_tokens_per_run_stops_before_the_request_that_would_overspend(fake):
    client = client_for(fake, max_tokens_per_run=15)
    client.get("v2", "/deals")
    with pytest.raises(BudgetExhaustedError, match=r"max_tokens_per_run \(15\) reached after 10 tokens"):
        client.get("v2", "/deals")
    assert len(fake.requests) == 1


def test_a_rejected_api_token_stops_at_once(fake):
    with pytest.raises(AuthError, match=r"^Pipedrive rejected the API token \(401\)$"):
        client_for(fake, token="wrong-token").get("v1", "/users/me")
    assert [r["status"] for r in fake.requests] == [401]


@pytest.mark.parametrize("status", [402, 403, 404, 410])
def test_an_unavailable_endpoint_is_a_stream_unavailable_error(fake, status):
    fake.add_fault(Fault(status, path_pattern="/api/v2/products"))
    with pytest.raises(StreamUnavailableError, match=rf"GET /api/v2/products answered {status}") as caught:
        client_for(fake).get("v2", "/products")
    assert caught.value.status == status


def test_a_400_is_not_retried_and_carries_pipedrives_text(fake):
    with pytest.raises(APIError, match=r"was rejected \(400: Validation failed: limit"):
        client_for(fake).get("v2", "/deals", {"limit": 501})
    assert len(fake.requests) == 1


def test_an_unreachable_host_is_named(fake):
    port = fake.port
    fake.stop()
    client = client_for(fake, max_retries=1)
    with pytest.raises(
        ConnectError, match=rf"cannot reach 127.0.0.1:{port} \(connection refused or DNS failure\)"
    ):
        client.get("v1", "/users/me")


def test_pages_reads_a_whole_list_through_the_client(fake):
    request = ListRequest(
        "v2", "/persons", {"sort_by": "id", "sort_direction": "asc"}, page_size=7, stream="persons"
    )
    pages = list(client_for(fake).pages(request, PagingKind.CURSOR))
    assert [r["id"] for page in pages for r in page] == fake.account.ids("persons")
    assert len(pages) == -(-len(fake.account.ids("persons")) // 7)


def test_one_limiter_paces_the_client_to_the_announced_window(fake_factory):
    server = fake_factory(burst_limit=4, burst_window=0.5)
    client = client_for(server, limiter=RateLimiter(window=0.5))
    for _ in range(12):
        client.get("v1", "/users/me")
    assert server.count_429 == 0
    assert client.limiter.limit == 4


def _proxies(monkeypatch, proxy: str | None, no_proxy: str | None) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        for variant in (name, name.lower()):
            monkeypatch.delenv(variant, raising=False)
    if proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    if no_proxy:
        monkeypatch.setenv("NO_PROXY", no_proxy)


def test_the_proxy_the_environment_names_is_used_unless_no_proxy_covers_the_host(fake, monkeypatch):
    dead = "http://127.0.0.1:9"  # nothing listens there: a request through it fails
    _proxies(monkeypatch, dead, "127.0.0.1,localhost")
    assert client_for(fake).get("v1", "/users/me")["success"] is True
    _proxies(monkeypatch, dead, None)
    fake.reset_counters()
    with pytest.raises((ConnectError, TransientError)):
        client_for(fake, max_retries=0).get("v1", "/users/me")
    assert fake.requests == []  # it went to the proxy, not to the host


def test_a_netrc_entry_for_the_host_is_not_sent(fake, monkeypatch, tmp_path):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password NETRC-CANARY\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    _proxies(monkeypatch, None, None)
    sent: list[dict[str, str]] = []
    answer = fake._handle  # noqa: SLF001 - the fake's request entry point, wrapped to see the headers

    def handle(method, raw_path, headers, body):
        sent.append({k.lower(): v for k, v in headers.items()})
        return answer(method, raw_path, headers, body)

    monkeypatch.setattr(fake, "_handle", handle)
    assert client_for(fake).get("v1", "/users/me")["success"] is True
    assert "authorization" not in sent[-1]
    assert sent[-1]["x-api-token"] == CANARY_API_TOKEN
