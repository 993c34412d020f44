"""The streams: a registry of rows (``registry.py``) and the few classes that read them.

* ``definition``: a registry row (:class:`StreamDef`) and the replication modes;
* ``base``: the stream base, the one place that uses the SDK's private stream hooks;
* ``kinds``: plain lists, field definitions, lists read newest first;
* ``deals``: deals and archived deals (one class), and the products read with them;
* ``whole_read``: lists read whole that emit only their changes (projects, tasks);
* ``several_reads``: full-table streams of several requests (per parent record, goals, mail);
* ``registry``: every stream, one row each.
"""

from tap_pipedrive.streams.base import PipedriveStream
from tap_pipedrive.streams.definition import Replication, StreamDef
from tap_pipedrive.streams.registry import STREAMS, endpoints, field_endpoints, markdown_table, wire

__all__ = [
    "STREAMS",
    "PipedriveStream",
    "Replication",
    "StreamDef",
    "endpoints",
    "field_endpoints",
    "markdown_table",
    "wire",
]
