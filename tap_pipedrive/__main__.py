"""Run the tap: ``python -m tap_pipedrive --config config.json``."""

from tap_pipedrive.tap import TapPipedrive

TapPipedrive.cli()
