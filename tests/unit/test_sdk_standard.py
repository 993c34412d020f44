"""The Singer SDK's standard tap tests, against the fake Pipedrive."""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_pipedrive.tap import TapPipedrive
from tests import session
from tests.helpers import catalog_selecting


def _every_stream_selected() -> dict:
    """The catalog with the opt-in streams selected too.

    The suite's dry run selects every stream after the tap is built, so an opt-in stream's
    transformed schema would still be its unselected one.
    """
    catalog = TapPipedrive(config=session.config(), parse_env_config=False).catalog_dict
    return catalog_selecting(catalog, {entry["tap_stream_id"] for entry in catalog["streams"]})


TestTapPipedrive = get_tap_test_class(
    tap_class=TapPipedrive,
    config=session.config(),
    suite_config=SuiteConfig(max_records_limit=1000),
    parse_env_config=False,
    catalog=_every_stream_selected(),
)
