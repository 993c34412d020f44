"""Custom fields an analyst can read: readable column names, real types, option labels.

Pipedrive keys custom-field values by 40-character hashes (v2: in a ``custom_fields`` object;
v1 leads: as top-level keys with companions such as ``<hash>_currency``) and gives option
fields as ids. The modules, one job each:

* ``definition``: a field's definition, from the Fields API;
* ``types``: field type → column schema → value conversion, as a table;
* ``names``: column names (snake_case, unique, stable, pinnable);
* ``columns``: declaring the columns in a stream's schema and moving values into them.
"""

from tap_pipedrive.custom_fields.columns import (
    RAW_OBJECT,
    UNCATALOGED,
    Style,
    ValueMapper,
    columns_in_schema,
    extend_schema,
)
from tap_pipedrive.custom_fields.definition import CustomField
from tap_pipedrive.custom_fields.names import column_names, snake_case

__all__ = [
    "RAW_OBJECT",
    "UNCATALOGED",
    "CustomField",
    "Style",
    "ValueMapper",
    "column_names",
    "columns_in_schema",
    "extend_schema",
    "snake_case",
]
