"""Running the tap as a user does (a subprocess) and reading what it printed."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Distinctive secret values: no test output, STATE or catalog may ever contain them.
CANARY_API_TOKEN = "canary-api-token-7f3a9c"
CANARY_CLIENT_ID = "canary-client-id"
CANARY_CLIENT_SECRET = "canary-client-secret-51d0e2"
CANARY_REFRESH_TOKEN = "canary-refresh-token-9b84aa"
CANARIES = [CANARY_API_TOKEN, CANARY_CLIENT_SECRET, CANARY_REFRESH_TOKEN]

#: Environment for runs without ``api_url``: were the tap ever to leave loopback, the (dead)
#: proxy makes the request fail here instead of reaching the internet.
LOOPBACK_ONLY = {
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}

#: Every secret value the tests have seen (the canaries plus tokens the fake issued).
SEEN_SECRETS: set[str] = set(CANARIES)


@dataclass
class Run:
    """One finished run of the tap."""

    returncode: int
    stdout: str
    stderr: str
    messages: list[dict] = field(default_factory=list)

    def records(self, stream: str) -> list[dict]:
        """The records of ``stream``, in order."""
        return [m["record"] for m in self.messages if m.get("type") == "RECORD" and m["stream"] == stream]

    def ids(self, stream: str, key: str = "id") -> list:
        """The primary keys of ``stream``'s records, in order (with repeats)."""
        return [r[key] for r in self.records(stream)]

    @property
    def states(self) -> list[dict]:
        """Every STATE value, in order."""
        return [m["value"] for m in self.messages if m.get("type") == "STATE"]

    @property
    def final_state(self) -> dict:
        """The last STATE value."""
        return self.states[-1] if self.states else {}

    def streams_with_records(self) -> set[str]:
        """Names of the streams that emitted at least one record."""
        return {m["stream"] for m in self.messages if m.get("type") == "RECORD"}


def unavailable(reason: str) -> NoReturn:
    """A tool a test needs is missing: skip on a developer machine, fail in CI (``CI`` set)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have it (see scripts/dev.py and the image's PostgreSQL)")
    pytest.skip(reason)


def assert_no_secret(*texts: str, secrets: set[str] | None = None) -> None:
    """Fail if any secret value appears in ``texts``."""
    for text in texts:
        for secret in secrets or SEEN_SECRETS:
            assert secret not in text, f"a secret ({secret[:6]}…) leaked into the output"


def run_tap(
    *args: str,
    config: dict | None = None,
    config_path: Path | None = None,
    state: dict | None = None,
    catalog: dict | None = None,
    tmp_path: Path,
    env: dict | None = None,
    timeout: float = 300,
    check_secrets: bool = True,
) -> Run:
    """Run ``tap-pipedrive`` with ``args`` and a config (file), as a user would."""
    cmd = [sys.executable, "-m", "tap_pipedrive"]
    if config is not None:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        cmd += ["--state", str(state_path)]
    if catalog is not None:
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        cmd += ["--catalog", str(catalog_path)]
    cmd += list(args)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PIPEDRIVE_")}
    full_env.update(env or {})
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=tmp_path, check=False
    )
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    if "--discover" not in args and "--about" not in args:
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                run.messages.append(json.loads(line))
    if check_secrets:
        assert_no_secret(proc.stdout, proc.stderr)
        if state is not None:
            assert_no_secret(json.dumps(run.final_state))
    return run


@dataclass
class Pipeline:
    """What one ``tap-pipedrive | target`` run did."""

    tap_rc: int
    target_rc: int
    tap_log: str
    target_log: str
    seconds: float
    #: stream -> the key properties of its (last) SCHEMA message
    keys: dict[str, list[str]] = field(default_factory=dict)
    #: stream -> the primary keys of the records the tap emitted, in order
    emitted: dict[str, list] = field(default_factory=dict)
    #: the states the target printed once their records were loaded (what Meltano stores)
    target_states: list[dict] = field(default_factory=list)
    message_types: Counter = field(default_factory=Counter)

    @property
    def final_state(self) -> dict:
        return self.target_states[-1] if self.target_states else {}

    def assert_ok(self) -> None:
        assert self.tap_rc == 0, f"tap-pipedrive exited {self.tap_rc}:\n{self.tap_log[-5000:]}"
        assert self.target_rc == 0, f"the target exited {self.target_rc}:\n{self.target_log[-5000:]}"


def target_config(name: str, **overrides) -> dict:
    """A loader's ``config`` from the project's meltano.yml, with ``overrides``.

    Tests load with the configuration users get (target-duckdb needs its
    ``add_metadata_columns`` to land every row: see meltano.yml).
    """
    import yaml  # noqa: PLC0415 - only the pipeline tests need it

    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == name]
    return {**loader.get("config", {}), **overrides}


def _tee(tap: subprocess.Popen, sink: subprocess.Popen, pipeline: Pipeline) -> None:
    """Copy the tap's stdout into the target, noting each message's type, keys and records."""
    assert tap.stdout is not None
    assert sink.stdin is not None
    for line in tap.stdout:
        message = json.loads(line)
        kind = message.get("type")
        pipeline.message_types[kind] += 1
        if kind == "SCHEMA":
            pipeline.keys[message["stream"]] = message.get("key_properties") or []
            pipeline.emitted.setdefault(message["stream"], [])
        elif kind == "RECORD":
            stream, record = message["stream"], message["record"]
            stream_keys = pipeline.keys.get(stream) or [None]
            pipeline.emitted.setdefault(stream, []).append(record.get(stream_keys[0]))
        try:
            sink.stdin.write(line)
        except BrokenPipeError:  # the target died: its log says why
            tap.kill()
            break
    with contextlib.suppress(BrokenPipeError):
        sink.stdin.close()


def run_pipeline(
    folder: Path,
    tap_config: dict,
    target_settings: dict,
    *,
    target: Path | str,
    state: dict | None = None,
    catalog: dict | None = None,
    target_env: dict | None = None,
    timeout: float = 300,
) -> Pipeline:
    """Pipe the tap into ``target``, reading the tap's messages on the way (a tee)."""
    folder.mkdir(parents=True, exist_ok=True)
    tap_cmd = [sys.executable, "-m", "tap_pipedrive", "--config", str(folder / "tap.json")]
    (folder / "tap.json").write_text(json.dumps(tap_config), encoding="utf-8")
    for name, value in (("state", state), ("catalog", catalog)):
        if value is not None:
            (folder / f"{name}.json").write_text(json.dumps(value), encoding="utf-8")
            tap_cmd += [f"--{name}", str(folder / f"{name}.json")]
    (folder / "target.json").write_text(json.dumps(target_settings), encoding="utf-8")
    # Neither the caller's tap/target settings nor its libpq defaults leak in.
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("TAP_PIPEDRIVE_", "TARGET_POSTGRES_", "PG"))}
    tap_log, target_log, states = folder / "tap.log", folder / "target.log", folder / "states.jsonl"
    pipeline = Pipeline(tap_rc=-1, target_rc=-1, tap_log="", target_log="", seconds=0.0)
    started = time.monotonic()
    with tap_log.open("w") as tap_err, target_log.open("w") as target_err, states.open("w") as out:
        tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=tap_err,
                               stdin=subprocess.DEVNULL, env=base_env, cwd=folder, text=True)
        sink = subprocess.Popen([str(target), "--config", str(folder / "target.json")],
                                stdin=subprocess.PIPE, stdout=out, stderr=target_err,
                                env=base_env | (target_env or {}), cwd=folder, text=True)
        timer = threading.Timer(timeout, lambda: (tap.kill(), sink.kill()))
        timer.start()
        try:
            _tee(tap, sink, pipeline)
            pipeline.target_rc = sink.wait()
            pipeline.tap_rc = tap.wait()
        finally:
            timer.cancel()
            for proc in (tap, sink):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert tap.stdout is not None
            tap.stdout.close()
    pipeline.seconds = time.monotonic() - started
    pipeline.tap_log = tap_log.read_text(encoding="utf-8")
    pipeline.target_log = target_log.read_text(encoding="utf-8")
    # A target prints each state it has committed as a bare JSON object, one a line.
    pipeline.target_states = [
        json.loads(line) for line in states.read_text(encoding="utf-8").splitlines() if line.startswith("{")
    ]
    assert_no_secret(pipeline.tap_log, pipeline.target_log)
    return pipeline


def catalog_selecting(catalog: dict, streams: set[str]) -> dict:
    """``catalog`` with only ``streams`` selected."""
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if not meta["breadcrumb"]:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def track_issued(server) -> set[str]:
    """The live set of every token ``server`` issues (access and refresh), even once expired."""
    return server.issued_tokens
