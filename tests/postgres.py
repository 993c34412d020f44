"""A throw-away PostgreSQL server for the tests: initdb, pg_ctl, psql; 127.0.0.1 only.

    with PostgresServer() as pg:            # initdb into a temp folder, start, wait until ready
        pg.create_database("run1")
        pg.query("run1", "select :'x' as one", x="1")  # -> [{"one": "1"}] (psql variables)
        pg.target_config("run1", "pipedrive")          # -> a target-postgres config for it

The server listens on a free port of 127.0.0.1 and nowhere else (no Unix socket), lets any role
in from 127.0.0.1 without a password (trust) and nobody from anywhere else, and keeps its data,
log and config in one temp folder that ``stop()`` deletes. PostgreSQL refuses to run as root,
so a root process (CI) runs ``initdb``/``pg_ctl`` as the ``postgres`` system user through
``runuser``. SQL goes through ``psql``; the test venv needs no PostgreSQL driver.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

HOST = "127.0.0.1"
SUPERUSER = "postgres"
#: Nothing checks it (trust auth), but target-postgres refuses a config without a password.
PASSWORD = "unused-trust-auth"
#: The system user that runs the server when the tests run as root.
SERVER_USER = "postgres"
#: Every server binary the helper needs (psql may live elsewhere, see ``_find``).
BINARIES = ("initdb", "pg_ctl", "postgres", "psql")


class PostgresUnavailableError(RuntimeError):
    """This machine cannot run a throw-away PostgreSQL server (the message says why)."""


def _find(name: str) -> str | None:
    """``name`` on PATH, else beside ``pg_ctl``'s real path (Debian's /usr/lib/postgresql/N/bin)."""
    found = shutil.which(name)
    if found:
        return found
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidate = Path(pg_ctl).resolve().parent / name
        if candidate.exists():
            return str(candidate)
    return None


def missing_requirements() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    missing = [name for name in BINARIES if _find(name) is None]
    if missing:
        return f"PostgreSQL binaries not found on PATH: {', '.join(missing)}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root, and there is no {SERVER_USER!r} system user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root, and runuser (to start the server as postgres) is not on PATH"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    """The caller's environment without libpq's PG* variables (they would redirect psql)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # initdb's and psql's messages, and the cluster's locale, stay stable
    return env


class PostgresServer:
    """One PostgreSQL server in a temp folder; a context manager (start / stop)."""

    def __init__(self, *, timezone: str = "UTC", start_timeout: float = 60) -> None:
        """``timezone`` is the server's (and so every session's) TimeZone setting."""
        self.timezone = timezone
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.base: Path | None = None
        #: Seconds ``start()`` took: initdb plus start until it accepted connections.
        self.startup_seconds: float | None = None
        self._as_root = os.geteuid() == 0
        self._psql = _find("psql") or "psql"

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def data(self) -> Path:
        assert self.base is not None, "the server was never started"
        return self.base / "data"

    @property
    def log(self) -> Path:
        assert self.base is not None, "the server was never started"
        return self.base / "server.log"

    def _server_cmd(self, *cmd: str) -> list[str]:
        """``cmd`` as the server's user: itself, or ``postgres`` through runuser when root."""
        if self._as_root:
            return ["runuser", "-u", SERVER_USER, "--", *cmd]
        return list(cmd)

    def _run_server_tool(self, *cmd: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._server_cmd(*cmd), capture_output=True, text=True, timeout=timeout,
            env=_clean_env(), cwd=self.base, stdin=subprocess.DEVNULL, check=False,
        )

    def start(self) -> PostgresServer:
        """initdb, start on a free port of 127.0.0.1, wait until it answers ``select 1``."""
        reason = missing_requirements()
        if reason:
            raise PostgresUnavailableError(reason)
        started = time.monotonic()
        self.base = Path(tempfile.mkdtemp(prefix="tap-pipedrive-pg-"))
        try:
            if self._as_root:
                # mkdtemp's folder is root's, mode 0700: hand it to the server's user. Its
                # parents (the system temp folder) must let that user through.
                user = pwd.getpwnam(SERVER_USER)
                os.chown(self.base, user.pw_uid, user.pw_gid)
            self._initdb()
            self._start_on_a_free_port()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _initdb(self) -> None:
        result = self._run_server_tool(
            _find("initdb") or "initdb", "--pgdata", str(self.data), "--username", SUPERUSER,
            "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync",
            "--no-instructions", timeout=120,
        )
        if result.returncode != 0:
            raise PostgresUnavailableError(
                f"initdb failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        # Only TCP from 127.0.0.1, without a password; no other host, no Unix socket at all.
        (self.data / "pg_hba.conf").write_text(
            "# tests/postgres.py: loopback only, trust\n"
            f"host all all {HOST}/32 trust\n",
            encoding="utf-8",
        )
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                "\n# tests/postgres.py: a throw-away server\n"
                f"listen_addresses = '{HOST}'\n"
                "unix_socket_directories = ''\n"
                f"timezone = '{self.timezone}'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
            )

    def _start_on_a_free_port(self) -> None:
        last_error = ""
        for _attempt in range(3):  # another process may take the free port before we bind it
            port = _free_port()
            result = self._run_server_tool(
                _find("pg_ctl") or "pg_ctl", "--pgdata", str(self.data), "--log", str(self.log),
                "--options", f"-p {port}", "--wait", "--timeout", str(int(self.start_timeout)),
                "start", timeout=self.start_timeout + 30,
            )
            if result.returncode == 0:
                self.port = port
                self._wait_until_ready()
                return
            last_error = (
                f"pg_ctl start failed (exit {result.returncode}): {result.stdout.strip()} "
                f"{result.stderr.strip()}\n--- server log ---\n{self._log_tail()}"
            )
            self._pg_ctl_stop()  # in case it half-started
        raise PostgresUnavailableError(last_error)

    def _wait_until_ready(self) -> None:
        """pg_ctl --wait already waits; also check a real connection answers over TCP."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            result = self._psql_run("postgres", "select 1", check=False)
            if result.returncode == 0 and result.stdout.strip() == "1":
                return
            if time.monotonic() > deadline:
                raise PostgresUnavailableError(
                    f"the server did not accept connections on {HOST}:{self.port}: "
                    f"{result.stderr.strip()}\n--- server log ---\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def _pg_ctl_stop(self) -> None:
        if self.base is None or not (self.data / "postmaster.pid").exists():
            return
        result = self._run_server_tool(
            _find("pg_ctl") or "pg_ctl", "--pgdata", str(self.data), "--mode", "fast", "--wait",
            "--timeout", "30", "stop", timeout=60,
        )
        if result.returncode != 0:  # a fast stop that hangs: stop it without a checkpoint
            self._run_server_tool(
                _find("pg_ctl") or "pg_ctl", "--pgdata", str(self.data), "--mode", "immediate",
                "--wait", "stop", timeout=60,
            )

    def stop(self) -> None:
        """Stop the server (if it runs) and delete its folder. Safe to call twice."""
        try:
            self._pg_ctl_stop()
        finally:
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)
                self.base = None
            self.port = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except (OSError, AssertionError):
            return "(no server log)"

    # ---- SQL ------------------------------------------------------------------------------

    def _psql_run(self, database: str, sql: str, *, check: bool = True,
                  params: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``sql`` (from stdin, so psql expands ``:'name'`` / ``:"name"`` from ``params``)."""
        variables = [arg for name, value in (params or {}).items()
                     for arg in ("--set", f"{name}={value}")]
        result = subprocess.run(
            [self._psql, "--host", HOST, "--port", str(self.port), "--username", SUPERUSER,
             "--dbname", database, "--no-psqlrc", "--no-password", "--tuples-only", "--no-align",
             "--quiet", "--set", "ON_ERROR_STOP=1", *variables],
            input=sql, capture_output=True, text=True, timeout=120, env=_clean_env(), check=False,
        )
        if check and result.returncode != 0:
            msg = f"psql failed (exit {result.returncode}) on {database}: {result.stderr.strip()}\nSQL: {sql}"
            raise RuntimeError(msg)
        return result

    def execute(self, database: str, sql: str, **params: str) -> None:
        """Run SQL statements in ``database``; raise with psql's error if one fails.

        ``params`` are psql variables: ``:'name'`` in ``sql`` is the value as a quoted literal,
        ``:"name"`` as a quoted identifier.
        """
        self._psql_run(database, sql, params=params)

    def query(self, database: str, sql: str, **params: str) -> list[dict]:
        """The rows of one SELECT as dicts (values as PostgreSQL's JSON renders them).

        ``params`` as for ``execute``. Timestamps come back as ISO text of what is stored.
        """
        wrapped = f"select coalesce(json_agg(q), '[]'::json) from ({sql.rstrip().rstrip(';')}) as q"  # noqa: S608 - the caller's SQL
        return json.loads(self._psql_run(database, wrapped, params=params).stdout)

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; returns the name."""
        self.execute("postgres", 'create database :"name" template template0', name=name)
        return name

    def columns(self, database: str, schema: str, table: str) -> dict[str, str]:
        """Column name -> data type (information_schema's spelling) of one table."""
        rows = self.query(
            database,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = :'schema' and table_name = :'table' order by ordinal_position",
            schema=schema, table=table,
        )
        return {row["column_name"]: row["data_type"] for row in rows}

    def tables(self, database: str, schema: str) -> set[str]:
        """The base tables of ``schema``."""
        rows = self.query(
            database,
            "select table_name from information_schema.tables "
            "where table_schema = :'schema' and table_type = 'BASE TABLE'",
            schema=schema,
        )
        return {row["table_name"] for row in rows}

    def primary_keys(self, database: str, schema: str) -> dict[str, list[str]]:
        """Table -> the columns of its primary key, in key order (tables without one: absent)."""
        rows = self.query(
            database,
            "select tc.table_name, kcu.column_name from information_schema.table_constraints tc "
            "join information_schema.key_column_usage kcu "
            "  on kcu.constraint_schema = tc.constraint_schema "
            " and kcu.constraint_name = tc.constraint_name "
            "where tc.table_schema = :'schema' and tc.constraint_type = 'PRIMARY KEY' "
            "order by tc.table_name, kcu.ordinal_position",
            schema=schema,
        )
        keys: dict[str, list[str]] = {}
        for row in rows:
            keys.setdefault(row["table_name"], []).append(row["column_name"])
        return keys

    def target_config(self, database: str, schema: str, **extra: object) -> dict:
        """A target-postgres config that loads into ``schema`` of ``database`` on this server."""
        return {
            "host": HOST, "port": self.port, "user": SUPERUSER, "password": PASSWORD,
            "database": database, "default_target_schema": schema, **extra,
        }

