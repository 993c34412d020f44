#!/usr/bin/env python3
"""Write the README's generated tables: the settings (``--about``) and the streams (the registry).

    .venv/bin/python scripts/readme_tables.py          # rewrite them in README.md
    .venv/bin/python scripts/readme_tables.py --check  # exit 1 if README.md is stale

Each table sits between a ``<!-- NAME table -->`` and an ``<!-- end of NAME table -->`` line.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT))

from tap_pipedrive.streams import markdown_table  # noqa: E402 - the tap's own registry, after sys.path


def settings_table() -> str:
    """The rows of ``tap-pipedrive --about --format markdown``'s Settings section."""
    about = subprocess.run(
        [sys.executable, "-m", "tap_pipedrive", "--about", "--format", "markdown"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    section = about.split("## Settings", 1)[1]
    return "\n".join(line for line in section.strip().splitlines() if line.startswith("|"))


def render(readme: str) -> str:
    """``readme`` with every generated table replaced by its current form."""
    for name, table in (("settings", settings_table()), ("streams", markdown_table())):
        pattern = re.compile(rf"(<!-- {name} table[^\n]*-->\n).*?(\n<!-- end of {name} table -->)", re.DOTALL)
        match = pattern.search(readme)
        if match is None:
            msg = f"README.md has no <!-- {name} table --> ... <!-- end of {name} table --> markers"
            raise SystemExit(msg)
        readme = readme[: match.end(1)] + table + readme[match.start(2) :]
    return readme


def main() -> int:
    """Rewrite or check the README's tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md tables are stale: run scripts/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
