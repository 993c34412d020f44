"""The demo pipeline, `tap-pipedrive | target-duckdb`, lands every row of a small account."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_pipeline, target_config

TARGET_DUCKDB = os.environ.get("TAP_PIPEDRIVE_TARGET_DUCKDB")
SCHEMA = "pipedrive"
STREAMS = ("deals", "persons", "users")

# Read with the duckdb package of target-duckdb's own venv (the test venv has none).
COUNT_ROWS = r"""
import json, sys, duckdb
db, schema, *streams = sys.argv[1:]
con = duckdb.connect(db, read_only=True)
catalog = con.execute("select current_database()").fetchone()[0]  # named after the file
tables = {r[0] for r in con.execute(
    "select table_name from information_schema.tables where table_schema = ?", [schema]
).fetchall()}
query = 'select id from "{}"."{}"."{}"'
print(json.dumps({
    stream: [r[0] for r in con.execute(query.format(catalog, schema, stream)).fetchall()]
    for stream in streams if stream in tables
}))
"""


@pytest.mark.skipif(
    not TARGET_DUCKDB,
    reason="TAP_PIPEDRIVE_TARGET_DUCKDB (path of a target-duckdb executable) is unset; "
    "`python3 scripts/dev.py test` installs target-duckdb and sets it",
)
def test_tap_into_target_duckdb_lands_every_row_of_a_small_account(tmp_path: Path) -> None:
    from tests.fake_pipedrive import FakePipedrive  # noqa: PLC0415 - may not exist when skipped

    db = tmp_path / "pipedrive.duckdb"
    settings = target_config("target-duckdb", filepath=str(db), default_target_schema=SCHEMA)
    with FakePipedrive(size="small") as server:
        tap_config = {"company_domain": "demo", "api_token": "demo-token", "api_url": server.url}
        run_pipeline(tmp_path, tap_config, settings, target=TARGET_DUCKDB).assert_ok()
        expected = {stream: sorted(server.account.ids(stream)) for stream in STREAMS}

    read = subprocess.run(
        [Path(TARGET_DUCKDB).with_name("python"), "-c", COUNT_ROWS, db, SCHEMA, *STREAMS],
        check=False, capture_output=True, text=True,
    )
    assert read.returncode == 0, read.stderr
    landed = json.loads(read.stdout)
    counts = {stream: len(landed.get(stream, [])) for stream in STREAMS}
    assert counts == {stream: len(ids) for stream, ids in expected.items()}
    for stream in STREAMS:
        assert sorted(landed[stream]) == expected[stream], stream
