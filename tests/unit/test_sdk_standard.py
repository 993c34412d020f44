"""The Singer SDK's standard tap tests, against the fake Pipedrive."""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_pipedrive.tap import TapPipedrive
from tests import session

TestTapPipedrive = get_tap_test_class(
    tap_class=TapPipedrive,
    config=session.config(),
    suite_config=SuiteConfig(max_records_limit=1000),
    parse_env_config=False,
)
