"""Secrets are masked in any log line, including tokens issued during the run."""

from __future__ import annotations

import io
import logging

from tap_pipedrive.connection import check_connection
from tap_pipedrive.tap import TapPipedrive
from tests.conftest import oauth_config
from tests.helpers import CANARY_CLIENT_SECRET, CANARY_REFRESH_TOKEN


def test_log_lines_never_carry_a_secret_even_one_issued_mid_run(fake):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        tap = TapPipedrive(config=oauth_config(fake), setup_mapper=False, parse_env_config=False)
        ok, reason = check_connection(tap)
        assert ok, reason
        access = tap.services.authenticator.access_token
        assert access
        for secret in (access, CANARY_REFRESH_TOKEN, CANARY_CLIENT_SECRET):
            logging.getLogger("tap-pipedrive.http").warning("careless line with %s inside", secret)
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("careless line with *** inside") == 3
    assert access not in text
    assert CANARY_REFRESH_TOKEN not in text
    assert CANARY_CLIENT_SECRET not in text
