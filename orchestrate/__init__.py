"""The fleet example: this Meltano project's jobs on Dagster (``definitions.py``)."""
