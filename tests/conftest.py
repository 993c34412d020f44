"""Shared fixtures: a fake Pipedrive on 127.0.0.1 and configs that point the tap at it.

The SDK's standard tests (``test_core.py``) build their streams at collection time, so one
session-wide fake is started in ``pytest_configure``, before collection.
"""

from __future__ import annotations

import pytest

from tests import session
from tests.fake_pipedrive import FakePipedrive
from tests.helpers import (
    CANARY_API_TOKEN,
    CANARY_CLIENT_ID,
    CANARY_CLIENT_SECRET,
    CANARY_REFRESH_TOKEN,
    SEEN_SECRETS,
)


def pytest_configure(config: pytest.Config) -> None:  # noqa: ARG001
    """Start the session's fake Pipedrive before the standard tests are collected."""
    session.start()


def pytest_unconfigure(config: pytest.Config) -> None:  # noqa: ARG001
    """Stop it."""
    session.stop()


def make_fake(**kwargs) -> FakePipedrive:
    """A fake Pipedrive whose credentials are the canary secrets."""
    kwargs.setdefault("api_token", CANARY_API_TOKEN)
    kwargs.setdefault("client_id", CANARY_CLIENT_ID)
    kwargs.setdefault("client_secret", CANARY_CLIENT_SECRET)
    kwargs.setdefault("refresh_token", CANARY_REFRESH_TOKEN)
    return FakePipedrive(**kwargs)


def basic_config(server: FakePipedrive, **extra) -> dict:
    """A Basic config for ``server``."""
    return {
        "company_domain": "demo",
        "api_token": CANARY_API_TOKEN,
        "api_url": server.url,
        "retry_initial_delay": 0.01,
        **extra,
    }


def oauth_config(server: FakePipedrive, **extra) -> dict:
    """An OAuth config for ``server`` (its token endpoint; the API host from api_domain)."""
    return {
        "company_domain": "demo",
        "auth_scheme": "OAuth",
        "client_id": CANARY_CLIENT_ID,
        "client_secret": CANARY_CLIENT_SECRET,
        "refresh_token": CANARY_REFRESH_TOKEN,
        "oauth_token_url": f"{server.url}/oauth/token",
        "retry_initial_delay": 0.01,
        **extra,
    }


@pytest.fixture
def fake():
    """A fresh small fake account, started for one test."""
    server = make_fake()
    with server:
        yield server
        # Every token the fake issued is a secret too: later output checks look for them.
        SEEN_SECRETS.update(server.issued_tokens)


@pytest.fixture
def fake_factory():
    """Start fakes with options (counts, limits, faults); all are stopped after the test."""
    started: list[FakePipedrive] = []

    def start(**kwargs) -> FakePipedrive:
        server = make_fake(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        SEEN_SECRETS.update(server.issued_tokens)
        server.stop()
