"""Running the tap as a user does (a subprocess) and reading what it printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

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
    """One finished ``tap-pipedrive | target`` pipeline."""

    tap_returncode: int
    target_returncode: int
    tap_log: str
    target_log: str

    def assert_ok(self) -> None:
        """Both ends exited 0 (else show the end of the log of the one that did not)."""
        assert self.tap_returncode == 0, self.tap_log[-5000:]
        assert self.target_returncode == 0, self.target_log[-5000:]


def target_config(name: str, **overrides) -> dict:
    """A loader's ``config`` from the project's meltano.yml, with ``overrides``.

    Tests load with the configuration users get (target-duckdb needs its
    ``add_metadata_columns`` to land every row: see meltano.yml).
    """
    import yaml  # noqa: PLC0415 - only the pipeline tests need it

    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == name]
    return {**loader.get("config", {}), **overrides}


def run_pipeline(
    tap_args: list[str],
    target: str | Path,
    target_settings: dict,
    tmp_path: Path,
    *,
    timeout: float = 600,
) -> Pipeline:
    """Run ``tap-pipedrive TAP_ARGS | TARGET -c <target_settings>`` as a user's shell would."""
    target_file = tmp_path / "target-config.json"
    target_file.write_text(json.dumps(target_settings))
    tap_log, target_log = tmp_path / "tap.log", tmp_path / "target.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PIPEDRIVE_")}
    with tap_log.open("w") as tap_err, target_log.open("w") as target_err:
        tap = subprocess.Popen(
            [sys.executable, "-m", "tap_pipedrive", *tap_args],
            stdout=subprocess.PIPE, stderr=tap_err, stdin=subprocess.DEVNULL, cwd=tmp_path, env=env,
        )
        loader = subprocess.Popen(
            [str(target), "-c", str(target_file)],
            stdin=tap.stdout, stdout=subprocess.DEVNULL, stderr=target_err, cwd=tmp_path,
        )
        assert tap.stdout is not None
        tap.stdout.close()  # the target owns the pipe now
        target_rc = loader.wait(timeout=timeout)
        tap_rc = tap.wait(timeout=60)
    return Pipeline(tap_rc, target_rc, tap_log.read_text(), target_log.read_text())


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
