"""The private SDK hooks the tap relies on still exist with the shape it uses.

Each is used in one place (the stream base, the tap, ``cli.py``); when an SDK release renames
or reshapes one, this fails loudly instead of the tap misbehaving quietly.
"""

from __future__ import annotations

import dataclasses
import inspect
import os

import pytest
from singer_sdk import Stream, Tap
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.plugin_base import PluginBase, _ConfigInput
from singer_sdk.streams._state import StreamStateManager


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    ("owner", "name", "expected"),
    [
        (Stream, "_increment_stream_state", ["self", "latest_record", "context"]),
        (Stream, "_write_state_message", ["self"]),
        (Stream, "_write_record_message", ["self", "record"]),
        (Stream, "_process_record", ["self", "record", "child_context", "partition_context"]),
        (Stream, "_sync_children", ["self", "child_context"]),
        (PluginBase, "_validate_config", ["self", "raise_errors"]),
        (Tap, "_handle_termination", ["self", "signum", "frame"]),
        (Tap, "cb_config", ["ctx", "param", "value"]),
    ],
)
def test_private_hook_has_the_signature_the_tap_overrides(owner, name, expected):
    assert parameters(getattr(owner, name)) == expected


def test_the_state_manager_keeps_a_flushed_flag():
    # The stream base sets it to force a STATE write (streams/base.py write_state).
    assert "is_flushed" in inspect.getsource(StreamStateManager.__init__)


def test_a_record_message_is_one_line_per_stream_map_with_the_stream_version():
    # The stream base writes RECORD lines itself (streams/base.py _write_record_message) from
    # what the SDK's own path reads: the stream maps' transform and alias, the stream version.
    source = inspect.getsource(Stream._generate_record_messages)  # noqa: SLF001
    used = ("self.stream_maps", "stream_map.transform(", "stream_map.stream_alias", "self._stream_version")
    assert all(name in source for name in used)
    assert "self._generate_record_messages(record)" in inspect.getsource(Stream._write_record_message)  # noqa: SLF001


def test_a_record_s_own_step_only_adds_partition_keys_and_syncs_children():
    # The stream base skips it for a stream with no children and no partition context.
    source = inspect.getsource(Stream._process_record)  # noqa: SLF001
    assert "partition_context.items()" in source
    assert "self.generate_child_contexts(" in source
    assert "self._sync_children(" in source


def test_the_config_input_is_a_dataclass_of_config_and_parse_env():
    # cli.CliConfig extends it with the config file paths.
    assert [f.name for f in dataclasses.fields(_ConfigInput)] == ["config", "parse_env"]
    assert parameters(_ConfigInput.from_cli_args) == ["args"]


def test_the_environment_parser_takes_a_schema_a_prefix_and_a_dotenv_path(monkeypatch):
    # cli.environment_settings calls it one setting at a time, with os.devnull for the .env.
    assert parameters(parse_environment_config) == ["config_schema", "prefix", "dotenv_path"]
    monkeypatch.setenv("TAP_X_RETRIES", "3")
    schema = {"properties": {"retries": {"type": ["integer", "null"]}}}
    assert parse_environment_config(schema, "TAP_X_", dotenv_path=os.devnull) == {"retries": 3}


def test_the_tap_reads_the_raw_config_where_the_sdk_keeps_it():
    assert "self._config = config_dict" in inspect.getsource(PluginBase.__init__)
