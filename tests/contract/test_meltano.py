"""The repo's meltano.yml: it matches the tap's settings and defaults, stays in the form Meltano
writes (so `meltano config set` changes only the value's lines), and `meltano run` works end to end."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

MELTANO = os.environ.get("TAP_PIPEDRIVE_MELTANO")
TAP = Path(sys.executable).with_name("tap-pipedrive")
FAKE_TOKEN = "demo-token"
SECRETS = {"api_token", "client_secret", "refresh_token"}
# JSON-schema type -> Meltano setting kind (strings have no kind).
KIND_OF_TYPE = {"boolean": "boolean", "integer": "integer", "number": "decimal",
                "object": "object", "array": "array"}


def _meltano_yml() -> dict:
    return yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))


def _extractor(project: dict) -> dict:
    (extractor,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-pipedrive"]
    return extractor


def test_meltano_yml_declares_every_setting_of_the_tap_with_its_kind() -> None:
    about = json.loads(subprocess.run(
        [TAP, "--about", "--format", "json"], check=True, capture_output=True, text=True
    ).stdout)
    properties = about["settings"]["properties"]
    settings = {s["name"]: s for s in _extractor(_meltano_yml())["settings"]}

    assert list(settings) == list(properties)
    for name, prop in properties.items():
        setting = settings[name]
        assert setting.get("sensitive", False) == (name in SECRETS), name
        assert bool(prop.get("secret")) == (name in SECRETS), name
        types = [t for t in prop["type"] if t != "null"]
        if "enum" in prop:
            assert setting["kind"] == "options", name
            assert [o["value"] for o in setting["options"]] == prop["enum"], name
        elif name == "start_date":
            assert setting["kind"] == "date_iso8601"
        else:
            assert setting.get("kind") == KIND_OF_TYPE.get(types[0]), name
        # Meltano shows (and passes) the tap's own defaults, not None
        assert setting.get("value") == prop.get("default"), name


def _plugin_names(project: dict) -> set[str]:
    return {p["name"] for kind in project["plugins"].values() for p in kind}


def _companies(project: dict) -> dict[str, dict]:
    """The fleet's extractors: those inheriting from tap-pipedrive."""
    return {p["name"]: p for p in project["plugins"]["extractors"]
            if p.get("inherit_from") == "tap-pipedrive"}


def test_every_job_runs_plugins_the_project_declares_and_every_schedule_a_job() -> None:
    project = _meltano_yml()
    plugins = _plugin_names(project)
    jobs = {j["name"]: j for j in project["jobs"]}
    assert jobs
    for name, job in jobs.items():
        blocks = [block for task in job["tasks"] for block in task.split()]
        assert blocks, name
        assert set(blocks) <= plugins, f"job {name} runs undeclared plugins {set(blocks) - plugins}"
    for schedule in project["schedules"]:
        assert schedule["job"] in jobs, f"schedule {schedule['name']} runs no declared job"
        assert schedule["interval"] == "@hourly", schedule["name"]
    assert len({s["name"] for s in project["schedules"]}) == len(project["schedules"])


def test_each_company_has_its_own_schema_job_and_hourly_schedule() -> None:
    project = _meltano_yml()
    companies = _companies(project)
    assert len(companies) >= 2  # the example shows a fleet, not one company
    base = _extractor(project)
    schemas = [base["load_schema"], *(c["load_schema"] for c in companies.values())]
    assert len(set(schemas)) == len(schemas), "two extractors load into one schema"
    domains = [c["config"]["company_domain"] for c in companies.values()]
    assert len(set(domains)) == len(domains)
    # target-postgres follows the extractor's load_schema, so each company gets its own.
    (postgres,) = [p for p in project["plugins"]["loaders"] if p["name"] == "target-postgres"]
    assert postgres["config"]["default_target_schema"] == "$MELTANO_EXTRACT__LOAD_SCHEMA"

    scheduled = {s["job"] for s in project["schedules"]}
    for name in companies:
        (job,) = [j for j in project["jobs"] if any(t.split()[0] == name for t in j["tasks"])]
        assert job["tasks"] == [f"{name} target-postgres"], name
        assert job["name"] in scheduled, f"{job['name']} has no schedule"


needs_meltano = pytest.mark.skipif(
    not MELTANO,
    reason="TAP_PIPEDRIVE_MELTANO (path of a meltano 4.4.1 executable) is unset; "
    "`python3 scripts/dev.py test` installs Meltano and sets it",
)


def _clean_env() -> dict[str, str]:
    """Nothing of the caller's Meltano/tap settings leaks in; no telemetry leaves the machine."""
    prefixes = ("MELTANO_", "TAP_PIPEDRIVE_", "TARGET_JSONL_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return env


def _meltano(
    project: Path, *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    assert MELTANO
    result = subprocess.run(
        [MELTANO, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"meltano {' '.join(args)} exited {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )
    return result


@pytest.mark.meltano
@needs_meltano
def test_meltano_config_set_changes_only_the_lines_of_the_value(tmp_path: Path) -> None:
    original = (ROOT / "meltano.yml").read_text(encoding="utf-8")
    (tmp_path / "meltano.yml").write_text(original, encoding="utf-8")
    env = _clean_env()

    _meltano(tmp_path, "config", "set", "tap-pipedrive", "company_domain", "acme", env=env)
    written = (tmp_path / "meltano.yml").read_text(encoding="utf-8")
    diff = difflib.unified_diff(original.splitlines(), written.splitlines(), lineterm="", n=0)
    changed = [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["+    config:", "+      company_domain: acme"]

    _meltano(tmp_path, "config", "unset", "tap-pipedrive", "company_domain", env=env)
    assert (tmp_path / "meltano.yml").read_text(encoding="utf-8") == original

    # a secret goes to .env, and this file stays as it is
    _meltano(tmp_path, "config", "set", "tap-pipedrive", "api_token", FAKE_TOKEN, env=env)
    assert (tmp_path / "meltano.yml").read_text(encoding="utf-8") == original
    assert f"TAP_PIPEDRIVE_API_TOKEN='{FAKE_TOKEN}'" in (tmp_path / ".env").read_text(encoding="utf-8")

    listing = _meltano(tmp_path, "config", "list", "--all", "tap-pipedrive", env=env).stdout
    assert "request_timeout [env: TAP_PIPEDRIVE_REQUEST_TIMEOUT] current value: 300 (default)" in listing
    assert "[env: TAP_PIPEDRIVE_AUTH_SCHEME] current value: 'Basic' (default)" in listing


@pytest.mark.meltano
@needs_meltano
def test_meltano_run_lands_the_accounts_deals_and_users_in_jsonl(tmp_path: Path) -> None:
    from tests.fake_pipedrive import FakePipedrive  # noqa: PLC0415 - may not exist when skipped

    project = tmp_path / "project"
    project.mkdir()
    config = _meltano_yml()
    _extractor(config)["pip_url"] = f"-e {ROOT}"
    (project / "meltano.yml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    base_env = _clean_env()

    def meltano(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        return _meltano(project, *args, env=env, timeout=timeout)

    meltano("install", env=base_env, timeout=1200)

    with FakePipedrive(size="small") as server:
        env = base_env | {
            "TAP_PIPEDRIVE_API_URL": server.url,
            "TAP_PIPEDRIVE_API_TOKEN": FAKE_TOKEN,
            "TAP_PIPEDRIVE_COMPANY_DOMAIN": "demo",
        }
        meltano("run", "tap-pipedrive", "target-jsonl", env=env, timeout=600)
        listing = meltano("config", "list", "tap-pipedrive", env=env, timeout=120)
        deal_ids = set(server.account.ids("deals"))
        user_ids = set(server.account.ids("users"))

    output = project / "output"

    def ids(stream: str) -> set:
        lines = (output / f"{stream}.jsonl").read_text(encoding="utf-8").splitlines()
        return {json.loads(line)["id"] for line in lines if line.strip()}

    assert deal_ids
    assert ids("deals") == deal_ids
    assert ids("users") == user_ids
    # meltano.yml's `select` leaves the opt-in streams out (a request per changed parent each)
    opt_in = {"deal_changes", "deal_participants", "deal_followers", "product_variations", "mail_messages"}
    landed = {path.stem for path in output.glob("*.jsonl")}
    assert landed >= {"deals", "persons", "deal_products", "projects"}
    assert not landed & opt_in
    shown = listing.stdout + listing.stderr
    assert "api_token" in shown
    assert FAKE_TOKEN not in shown
    assert "(redacted)" in shown
