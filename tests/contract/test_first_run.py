"""The README's "A first run of your own" works as written: the fake Pipedrive started by hand,
the config that points the tap at it, then test, discover, a run, its state, and a resumed run.

The commands are read from the README itself (only the port, and the account size for speed,
are replaced), so the page and the tap cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import LOOPBACK_ONLY, ROOT

SECTION = "### A first run of your own"


def _blocks(language: str) -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.split(r"\n##+ ", readme.split(SECTION, 1)[1], maxsplit=1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PIPEDRIVE_")}
    # `tap-pipedrive` on PATH, as the README asks (activate .venv, or a tool install)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | LOOPBACK_ONLY


def test_the_readmes_first_run_works_as_written(tmp_path: Path) -> None:
    start_fake, commands = _blocks("bash")
    (config,) = _blocks("json")
    port = _free_port()
    argv = shlex.split(start_fake.split("#")[0])
    assert argv[:3] == [".venv/bin/python", "-m", "tests.fake_pipedrive"]
    argv = [sys.executable, *argv[1:], "--size", "small"]
    argv[argv.index("8765")] = str(port)
    (tmp_path / "config.json").write_text(config.replace("8765", str(port)), encoding="utf-8")

    log = tmp_path / "fake.log"
    with log.open("w") as log_file:
        fake = subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "listening" not in log.read_text() and fake.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "listening" in log.read_text(), f"the fake Pipedrive did not start: {log.read_text()}"
        run = subprocess.run(
            [shutil.which("bash") or "bash", "-euo", "pipefail", "-c", commands], cwd=tmp_path, env=_env(),
            capture_output=True, text=True, timeout=600, check=False,
        )
    finally:
        fake.terminate()
        fake.wait(timeout=30)

    assert run.returncode == 0, f"{run.stderr[-3000:]}"
    assert run.stdout == "connection available\n"
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    assert {"deals", "persons", "users"} <= {s["tap_stream_id"] for s in catalog["streams"]}

    def messages(name: str) -> list[dict]:
        return [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]

    first, second = messages("messages.jsonl"), messages("more.jsonl")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["type"] == "STATE"
    assert state == [m for m in first if m["type"] == "STATE"][-1]
    assert [m for m in first if m["type"] == "RECORD" and m["stream"] == "deals"]
    # the resumed run starts at the bookmarks: nothing new, so no deal again
    assert not [m for m in second if m["type"] == "RECORD" and m["stream"] == "deals"]
