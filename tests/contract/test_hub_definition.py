"""The Meltano Hub definition (hub/_data/...): generated from --about, in step with meltano.yml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.contract.test_meltano import _extractor, _meltano_yml
from tests.helpers import ROOT, unavailable

MELTANO = os.environ.get("TAP_PIPEDRIVE_MELTANO")

HUB = ROOT / "hub" / "_data" / "meltano" / "extractors" / "tap-pipedrive"
SCRIPT = ROOT / "scripts" / "hub_definition.py"
SECRETS = {"api_token", "client_secret", "refresh_token"}
#: The keys a Hub submission needs (besides the settings).
SUBMISSION = {"name", "namespace", "variant", "label", "description", "logo_url", "pip_url",
              "executable", "repo", "docs", "domain_url", "capabilities", "settings",
              "settings_group_validation", "keywords", "maintenance_status", "quality"}
MELTANO_KINDS = {"string", "integer", "decimal", "boolean", "date_iso8601", "options", "object",
                 "array", "email", "file", "hidden", "oauth"}


def _definition() -> tuple[str, dict]:
    (path,) = HUB.glob("*.yml")
    return path.stem, yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_hub_definition_is_what_the_generator_makes_of_about_now() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True,
                            cwd=ROOT, check=False, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_hub_definition_has_what_a_submission_needs() -> None:
    variant, hub = _definition()
    assert set(hub) >= SUBMISSION, f"missing: {SUBMISSION - set(hub)}"
    assert (hub["name"], hub["variant"]) == ("tap-pipedrive", variant)
    assert hub["keywords"] == ["meltano_sdk"]
    assert hub["pip_url"] == f"git+{hub['repo']}.git"  # PyPI's tap-pipedrive is another tap
    assert hub["repo"].lower().startswith(f"https://github.com/{variant}/")
    names = [s["name"] for s in hub["settings"]]
    assert names == sorted(names)
    for item in hub["settings"]:
        assert item["kind"] in MELTANO_KINDS, item["name"]
        assert item["label"], item["name"]
        assert item["description"], item["name"]
        assert item.get("sensitive", False) == (item["name"] in SECRETS), item["name"]
    defaults = {s["name"]: s.get("value") for s in hub["settings"]}
    assert defaults["auth_scheme"] == "Basic"
    assert defaults["max_retries"] == 5


def test_the_hub_definition_agrees_with_meltano_yml() -> None:
    _variant, hub = _definition()
    extractor = _extractor(_meltano_yml())
    assert (hub["namespace"], hub["executable"]) == (extractor["namespace"], extractor["executable"])
    assert set(extractor["capabilities"]) <= set(hub["capabilities"])
    assert sorted(map(sorted, hub["settings_group_validation"])) == \
        sorted(map(sorted, extractor["settings_group_validation"]))

    declared = {s["name"]: s for s in extractor["settings"]}
    listed = {s["name"]: s for s in hub["settings"]}
    assert {name.split(".")[0] for name in listed} == set(declared)
    for name, mine in declared.items():
        if name not in listed:  # an object the Hub lists leaf by leaf
            assert mine["kind"] == "object", name
            assert any(n.startswith(f"{name}.") for n in listed), name
            continue
        theirs = listed[name]
        assert theirs["label"] == mine["label"], name
        assert theirs["description"] == mine["description"], name
        assert theirs["kind"] == mine.get("kind", "string"), name
        assert theirs.get("sensitive", False) == mine.get("sensitive", False), name
        assert theirs.get("options") == mine.get("options"), name
        if "value" in mine:
            assert theirs.get("value") == mine["value"], name


@pytest.mark.meltano
def test_meltano_adds_the_tap_from_the_definition_without_the_hub(tmp_path: Path) -> None:
    # `meltano add` from the Hub needs a Meltano Cloud login since 4.3; --from-ref needs none.
    if not MELTANO or not Path(MELTANO).exists():
        unavailable("TAP_PIPEDRIVE_MELTANO (a meltano 4.4.1 executable) is unset; scripts/dev.py sets it")
    (tmp_path / "meltano.yml").write_text(
        "requires_meltano: '>=4.0'\nsend_anonymous_usage_stats: false\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_PIPEDRIVE_"))}
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"

    def meltano(*args: str) -> str:
        result = subprocess.run([MELTANO, *args], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=300, check=False)
        assert result.returncode == 0, f"meltano {' '.join(args)}:\n{result.stderr[-4000:]}"
        return result.stdout

    (path,) = HUB.glob("*.yml")
    meltano("add", "extractor", "tap-pipedrive", "--from-ref", str(path), "--no-install")
    about = json.loads(subprocess.run([sys.executable, "-m", "tap_pipedrive", "--about", "--format", "json"],
                                      capture_output=True, text=True, check=True).stdout)
    defaults = {name: prop["default"] for name, prop in about["settings"]["properties"].items()
                if prop.get("default") is not None}
    assert json.loads(meltano("config", "print", "tap-pipedrive")) == defaults
    (added,) = yaml.safe_load((tmp_path / "meltano.yml").read_text(encoding="utf-8"))["plugins"]["extractors"]
    assert added["pip_url"] == _definition()[1]["pip_url"]
