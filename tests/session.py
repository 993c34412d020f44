"""The session-wide fake Pipedrive used by the SDK's standard tests (started before collection)."""

from __future__ import annotations

from tests.fake_pipedrive import FakePipedrive
from tests.helpers import CANARY_API_TOKEN

SERVER = FakePipedrive(size="small", api_token=CANARY_API_TOKEN)


def start() -> None:
    """Start the server once."""
    if SERVER._httpd is None:  # noqa: SLF001
        SERVER.start()


def stop() -> None:
    """Stop it."""
    SERVER.stop()


def config() -> dict:
    """A Basic config for the session server."""
    start()
    return {"company_domain": "demo", "api_token": CANARY_API_TOKEN, "api_url": SERVER.url}
