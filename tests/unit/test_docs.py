"""The README never lies: its settings table is the tap's own, its test command is CI's."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT


def test_readme_settings_table_is_the_one_about_generates():
    about = subprocess.run(
        [sys.executable, "-m", "tap_pipedrive", "--about", "--format", "markdown"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    table = about.split("## Settings", 1)[1].strip().splitlines()
    rows = [line for line in table if line.startswith("|")]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [row for row in rows if row not in readme]
    assert not missing, f"README settings table is stale; first missing row: {missing[0]}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = "python3 scripts/dev.py test"
    assert command in readme.split("## ", 1)[0]  # among the first commands of the README
    assert command in ci


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def test_readme_sections_come_in_the_order_meltanolabs_taps_use_and_every_link_lands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sections = [line[3:] for line in readme.splitlines() if line.startswith("## ")]
    assert sections == ["Capabilities", "Settings", "Installation", "Configuration",
                        "Source authentication", "Streams", "Usage", "Developer resources"]
    anchors = {_anchor(line.lstrip("#")) for line in readme.splitlines() if line.startswith("#")}
    links = re.findall(r"\]\(#([^)]+)\)", readme)
    assert links
    assert [link for link in links if link not in anchors] == []
