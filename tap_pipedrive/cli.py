"""What the command line gives the tap: the merged config, and the files it came from."""

from __future__ import annotations

import dataclasses

from singer_sdk.plugin_base import _ConfigInput


@dataclasses.dataclass
class CliConfig(_ConfigInput):
    """The SDK's config input, plus the ``--config`` arguments (for refresh-token write-back)."""

    paths: tuple[str, ...] = ()

    @classmethod
    def from_paths(cls, paths: tuple[str, ...]) -> CliConfig:
        """Read the ``--config`` files (and ``ENV``) the way the SDK does, keeping the paths."""
        merged = _ConfigInput.from_cli_args(*paths)
        return cls(config=merged.config, parse_env=merged.parse_env, paths=tuple(str(p) for p in paths))
