#!/usr/bin/env python3
"""Set up a development environment, then run the demo pipeline or the tests.

    python3 scripts/dev.py demo            # fake Pipedrive -> tap -> DuckDB, rows per table
    python3 scripts/dev.py test [ARGS...]  # the test suite (ARGS go to pytest)

Standard library only, so it runs on a machine that has nothing but Python >= 3.10.

What it installs, each into its own virtual environment (created when missing):

- ``.venv``: this project, editable, with its ``test`` extra.
- ``.venv-tools/target-duckdb``: target-duckdb, the DuckDB loader of the demo. It has its own
  venv because it pins its own ``duckdb`` and ``jsonschema``.
- ``.venv-tools/target-postgres`` (``test`` only): MeltanoLabs' target-postgres, for the
  PostgreSQL warehouse tests. It has its own venv because it brings its own SQLAlchemy,
  psycopg and singer-sdk.
- ``.venv-tools/meltano`` (``test`` only): Meltano, for the Meltano smoke test.
- ``.venv-tools/dagster`` (``test`` only): Dagster, from ``orchestrate/requirements.txt``, for
  the test of the fleet example (``orchestrate/``). It has its own venv because it brings its
  own SQLAlchemy, gRPC and pydantic; it runs Meltano from Meltano's venv.

Each venv holds a stamp file with a hash of what was installed into it (for ``.venv``, the
hash of ``pyproject.toml``); when the stamp matches, nothing is reinstalled, so a second call
starts its real work within a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
TOOLS = ROOT / ".venv-tools"
DEMO = ROOT / "demo"
STAMP = ".dev-stamp"

# target-duckdb 0.8.0, the latest release, loads each batch with `COPY table FROM 'file.csv'`
# and no HEADER option, so DuckDB may sniff the first data row as a header and drop it
# (jwills/target-duckdb#58, fixed upstream but unreleased; duckdb/duckdb#21653): with duckdb
# >= 1.3 for every table, with older ones for tables whose columns are all text. Two settings
# avoid it without touching the package: duckdb stays below 1.3 (the range target-duckdb 0.8.0
# was released against; wheels up to CPython 3.13), and `add_metadata_columns: true` gives
# every table `_sdc_*` timestamp columns, so none is all text. dev.py loads three rows into a
# text-only table with that config and checks all three landed.
TARGET_DUCKDB = "target-duckdb==0.8.0"
DUCKDB_PIN = "duckdb>=1.1,<1.3"
TARGET_DUCKDB_CONFIG = {"add_metadata_columns": True}
# The SDK's PostgreSQL loader (MeltanoLabs), newest release, checked with PostgreSQL 15.
TARGET_POSTGRES = "meltanolabs-target-postgres==0.8.1"
MELTANO = "meltano==4.4.1"
#: The orchestrator of the fleet example, pinned there.
ORCHESTRATE_REQUIREMENTS = ROOT / "orchestrate" / "requirements.txt"

FAKE_TOKEN = "demo-token"  # noqa: S105 - the API token the fake Pipedrive accepts


def say(message: str) -> None:
    """Print a progress line of this script (to stderr, like the tools' logs)."""
    print(f"[dev] {message}", file=sys.stderr, flush=True)


def die(message: str, code: int = 1) -> t.NoReturn:
    """Print an error and exit."""
    print(f"[dev] ERROR: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def bin_dir(venv: Path) -> Path:
    """The folder of a venv's executables."""
    return venv / ("Scripts" if os.name == "nt" else "bin")


def exe(venv: Path, name: str) -> Path:
    """The path of an executable in a venv."""
    return bin_dir(venv) / (f"{name}.exe" if os.name == "nt" else name)


def run(cmd: list[str | Path], cwd: Path | None = None) -> None:
    """Run a command; exit with its code if it fails."""
    result = subprocess.run([str(c) for c in cmd], check=False, cwd=cwd)  # noqa: S603
    if result.returncode != 0:
        die(f"command failed (exit {result.returncode}): {' '.join(map(str, cmd))}")


def ensure_venv(
    venv: Path,
    packages: list[str],
    stamp_text: str,
    post_install: t.Callable[[Path], None] | None = None,
    *,
    recreate: bool = True,
) -> Path:
    """Create ``venv`` if needed and pip-install ``packages`` unless its stamp says it's done.

    With ``recreate``, a venv whose stamp differs is made anew (so nothing of an earlier
    install lingers); otherwise the packages are installed over it. ``post_install(venv)``
    runs after an install, before the stamp is written (so a failure there means a full redo
    next time). Returns the venv's python.
    """
    python = exe(venv, "python")
    stamp = venv / STAMP
    # The stamp also records the interpreter, so a venv left by another Python is redone.
    want = hashlib.sha256(
        f"{sys.version}\n{' '.join(packages)}\n{stamp_text}".encode()
    ).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == want:
        return python
    started = time.monotonic()
    if not python.exists() or recreate:
        if venv.exists():  # a broken, half-made or outdated venv
            shutil.rmtree(venv)
        say(f"creating {venv.relative_to(ROOT)}")
        run([sys.executable, "-m", "venv", venv])
    say(f"installing into {venv.relative_to(ROOT)}: {' '.join(packages)}")
    run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
        cwd=ROOT,
    )
    if post_install is not None:
        post_install(venv)
    stamp.write_text(want + "\n", encoding="utf-8")
    say(f"{venv.relative_to(ROOT)} ready in {time.monotonic() - started:.0f} s")
    return python


def ensure_project() -> Path:
    """The project, editable, with its test extra (pytest, ruff, mypy), in ``.venv``."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    return ensure_venv(VENV, ["-e", ".[test]"], hashlib.sha256(pyproject).hexdigest(), recreate=False)


def ensure_target_duckdb() -> Path:
    """target-duckdb in its own venv, checked to land every row; returns its executable."""
    if sys.version_info >= (3, 14):
        die("target-duckdb 0.8.0 needs duckdb < 1.3, which has no wheels for Python 3.14: "
            "run the demo with Python 3.10 to 3.13")
    venv = TOOLS / "target-duckdb"
    ensure_venv(venv, [TARGET_DUCKDB, DUCKDB_PIN], json.dumps(TARGET_DUCKDB_CONFIG), _check_target_duckdb)
    return exe(venv, "target-duckdb")


_CHECK_TARGET = r"""
import json, subprocess, sys, tempfile, os, duckdb
target, extra = sys.argv[1:]
with tempfile.TemporaryDirectory() as tmp:
    db = os.path.join(tmp, "check.duckdb")
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump({"filepath": db, "default_target_schema": "selfcheck", **json.loads(extra)}, f)
    # All-text columns: the case add_metadata_columns must cover.
    schema = {"type": "object", "properties": {"id": {"type": "string"},
              "name": {"type": ["string", "null"]}}}
    lines = [{"type": "SCHEMA", "stream": "s", "schema": schema, "key_properties": ["id"]}]
    lines += [{"type": "RECORD", "stream": "s", "record": {"id": i, "name": f"n{i}"}}
              for i in ("a", "b", "c")]
    proc = subprocess.run([target, "-c", cfg], input="\n".join(map(json.dumps, lines)) + "\n",
                          text=True, capture_output=True)
    if proc.returncode:
        sys.exit("target-duckdb failed:\n" + proc.stderr[-2000:])
    con = duckdb.connect(db, read_only=True)
    ids = sorted(r[0] for r in con.execute("select id from selfcheck.s").fetchall())
    if ids != ["a", "b", "c"]:
        sys.exit(f"loaded ids {ids}, not ['a', 'b', 'c'] (duckdb {duckdb.__version__})")
"""


def _check_target_duckdb(venv: Path) -> None:
    """Load 3 rows through the fresh target-duckdb and read them back; fail if any is lost."""
    result = subprocess.run(  # noqa: S603
        [str(exe(venv, "python")), "-c", _CHECK_TARGET, str(exe(venv, "target-duckdb")),
         json.dumps(TARGET_DUCKDB_CONFIG)],
        check=False, capture_output=True, text=True,
    )
    if result.returncode != 0:
        die(f"target-duckdb self-check failed: {result.stderr.strip()}")
    say("target-duckdb self-check passed (3 of 3 rows loaded)")


def ensure_target_postgres() -> Path:
    """target-postgres in its own venv; returns its executable."""
    venv = TOOLS / "target-postgres"
    ensure_venv(venv, [TARGET_POSTGRES], "")
    return exe(venv, "target-postgres")


def ensure_meltano() -> Path:
    """Meltano in its own venv; returns its executable."""
    venv = TOOLS / "meltano"
    ensure_venv(venv, [MELTANO], "")
    return exe(venv, "meltano")


def ensure_dagster() -> Path:
    """Dagster (orchestrate/requirements.txt) in its own venv; returns its ``dagster`` executable."""
    venv = TOOLS / "dagster"
    requirements = ORCHESTRATE_REQUIREMENTS.read_bytes()
    ensure_venv(venv, ["-r", str(ORCHESTRATE_REQUIREMENTS.relative_to(ROOT))],
                hashlib.sha256(requirements).hexdigest())
    return exe(venv, "dagster")


# --------------------------------------------------------------------------- demo


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fake_pipedrive(python: Path, size: str, log: Path) -> t.Iterator[str]:
    """Start the fake Pipedrive on a free port; yield its URL; stop it."""
    for _attempt in range(3):
        port = free_port()
        with log.open("w", encoding="utf-8") as log_file:
            proc = subprocess.Popen(  # noqa: S603
                [str(python), "-m", "tests.fake_pipedrive", "--port", str(port), "--size", size],
                cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        if proc.poll() is None and time.monotonic() < deadline:
            break
        _stop(proc)
        say(f"the fake Pipedrive did not start on port {port}; log:\n{_tail(log)}")
    else:
        die(f"could not start the fake Pipedrive (log: {log})")
    say(f"fake Pipedrive ({size} account) listening on http://127.0.0.1:{port} (pid {proc.pid})")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        say("fake Pipedrive stopped")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


_COUNT_ROWS = r"""
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
schema = sys.argv[2]
tables = [r[0] for r in con.execute(
    "select table_name from information_schema.tables where table_schema = ? order by 1",
    [schema]).fetchall()]
# The catalog is named after the file: qualify fully, the schema may have the same name.
catalog = con.execute("select current_database()").fetchone()[0]
print(json.dumps({
    t: con.execute(f'select count(*) from "{catalog}"."{schema}"."{t}"').fetchone()[0]
    for t in tables
}))
"""


def count_rows(tool_python: Path, db: Path, schema: str) -> dict[str, int]:
    """Rows per table of ``schema`` in a DuckDB file, read with the tool venv's duckdb."""
    out = subprocess.run(  # noqa: S603
        [str(tool_python), "-c", _COUNT_ROWS, str(db), schema],
        check=True, capture_output=True, text=True,
    )
    counts: dict[str, int] = json.loads(out.stdout)
    return counts


def demo(_args: list[str]) -> int:
    """Fake Pipedrive (demo account) -> tap-pipedrive -> target-duckdb; print rows per table."""
    ensure_project()
    target = ensure_target_duckdb()
    python = exe(VENV, "python")
    tap = exe(VENV, "tap-pipedrive")
    DEMO.mkdir(exist_ok=True)
    db = DEMO / "pipedrive.duckdb"
    schema = "pipedrive"
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)  # start empty, so the counts are this run's
    tap_config = DEMO / "tap-config.json"
    target_config = DEMO / "target-duckdb-config.json"
    target_config.write_text(
        json.dumps({"filepath": str(db), "default_target_schema": schema, **TARGET_DUCKDB_CONFIG},
                   indent=2) + "\n",
        encoding="utf-8",
    )
    with fake_pipedrive(python, "demo", DEMO / "fake-pipedrive.log") as url:
        tap_config.write_text(
            json.dumps(
                {"company_domain": "demo", "api_token": FAKE_TOKEN, "api_url": url}, indent=2
            ) + "\n",
            encoding="utf-8",
        )
        say(f"running: tap-pipedrive --config {tap_config.relative_to(ROOT)} | target-duckdb "
            f"-c {target_config.relative_to(ROOT)}  (logs in demo/tap.log, demo/target.log)")
        started = time.monotonic()
        with (DEMO / "tap.log").open("w") as tap_log, \
                (DEMO / "target.log").open("w") as target_log, \
                (DEMO / "state.json").open("w") as state:
            tap_proc = subprocess.Popen(  # noqa: S603
                [str(tap), "--config", str(tap_config)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=tap_log, stdin=subprocess.DEVNULL,
            )
            target_proc = subprocess.Popen(  # noqa: S603
                [str(target), "-c", str(target_config)],
                cwd=DEMO, stdin=tap_proc.stdout, stdout=state, stderr=target_log,
            )
            if tap_proc.stdout is not None:
                tap_proc.stdout.close()  # the target owns the pipe now
            target_rc = target_proc.wait()
            tap_rc = tap_proc.wait()
        elapsed = time.monotonic() - started
    print(f"tap-pipedrive exit code: {tap_rc}")
    print(f"target-duckdb exit code: {target_rc}")
    print(f"pipeline time: {elapsed:.1f} s")
    if tap_rc != 0 or target_rc != 0:
        if tap_rc != 0:
            print(f"--- last lines of demo/tap.log ---\n{_tail(DEMO / 'tap.log')}", file=sys.stderr)
        if target_rc != 0:
            print(f"--- last lines of demo/target.log ---\n{_tail(DEMO / 'target.log')}",
                  file=sys.stderr)
        die("the demo pipeline FAILED")
    counts = count_rows(exe(TOOLS / "target-duckdb", "python"), db, schema)
    if not counts:
        die(f"the pipeline succeeded but no table landed in {db}")
    width = max(len(name) for name in counts)
    print(f"\nRows per table in {db.relative_to(ROOT)} (schema {schema}):")
    for name, rows in counts.items():
        print(f"  {name:<{width}}  {rows:>7}")
    print(f"  {'total':<{width}}  {sum(counts.values()):>7}")
    print(f"\nExplore it: {exe(TOOLS / 'target-duckdb', 'python').relative_to(ROOT)} -c "
          f"\"import duckdb; con = duckdb.connect('{db.relative_to(ROOT)}'); "
          f"print(con.sql('from {db.stem}.{schema}.deals limit 5'))\"")
    return 0


# --------------------------------------------------------------------------- test


#: The checks before the tests: lint and types (their settings are in pyproject.toml).
CHECKS = (("ruff", ["-m", "ruff", "check", "."]), ("mypy", ["-m", "mypy"]))


def test(pytest_args: list[str]) -> int:
    """Lint, type-check, then run pytest.

    The tools' paths go to the tests in TAP_PIPEDRIVE_TARGET_DUCKDB, _TARGET_POSTGRES, _MELTANO
    and _DAGSTER.
    """
    python = ensure_project()
    for name, args in CHECKS:
        started = time.monotonic()
        rc = subprocess.run([str(python), *args], cwd=ROOT, check=False).returncode  # noqa: S603
        if rc != 0:
            say(f"{name} found problems (exit {rc})")
            return rc
        say(f"{name}: clean ({time.monotonic() - started:.0f} s)")
    env = dict(os.environ)
    env["TAP_PIPEDRIVE_TARGET_DUCKDB"] = str(ensure_target_duckdb())
    env["TAP_PIPEDRIVE_TARGET_POSTGRES"] = str(ensure_target_postgres())
    env["TAP_PIPEDRIVE_MELTANO"] = str(ensure_meltano())
    env["TAP_PIPEDRIVE_DAGSTER"] = str(ensure_dagster())
    say(f"running pytest {' '.join(pytest_args)}".rstrip())
    rc = subprocess.run(  # noqa: S603
        [str(python), "-m", "pytest", *pytest_args], cwd=ROOT, env=env, check=False
    ).returncode
    if rc == 5:  # noqa: PLR2004 - pytest's "no tests collected"
        say("pytest collected no tests: treating that as a failure")
        return 1
    return rc


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``demo`` or ``test``; everything after ``test`` goes to pytest untouched."""
    argv = sys.argv[1:] if argv is None else argv
    commands = {"demo": demo, "test": test}
    if not argv or argv[0] not in commands:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if sys.version_info < (3, 10):  # noqa: UP036 - a clear message on an old python3
        die(f"Python >= 3.10 is needed, this is {sys.version.split()[0]}")
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
