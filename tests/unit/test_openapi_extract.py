"""The tap's schemas and token costs come from Pipedrive's OpenAPI specs, not hand-typed copies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tap_pipedrive import schemas
from tests.helpers import ROOT

SPECS = ROOT.parent / "shared" / "pipedrive-api"


@pytest.mark.skipif(
    not SPECS.is_dir(), reason="the specs folder ../shared/pipedrive-api is not beside the repo"
)
def test_extract_matches_the_specs():
    check = subprocess.run(
        [sys.executable, "scripts/extract_openapi.py", "--specs", str(SPECS), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize(
    ("version", "path", "cost"),
    [
        ("v2", "/deals", 10),
        ("v2", "/deals/archived", 20),
        ("v1", "/users/me", 2),
        ("v1", "/notes", 20),
        # a concrete path costs what its template does (v1 lists cost 20 by default, not 10)
        ("v1", "/roles/3/assignments", 10),
        ("v1", "/leadSources", 2),
    ],
)
def test_token_costs_are_the_specs_x_token_cost(version, path, cost):
    assert schemas.token_cost(version, path) == cost
