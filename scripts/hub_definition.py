#!/usr/bin/env python3
"""Write the tap's Meltano Hub plugin definition from ``tap-pipedrive --about --format json``.

    .venv/bin/python scripts/hub_definition.py          # rewrite hub/_data/.../<variant>.yml
    .venv/bin/python scripts/hub_definition.py --check  # exit 1 if it is stale

The file sits where the Hub's repository (meltano/hub) keeps definitions,
``_data/meltano/extractors/<name>/<variant>.yml``, under ``hub/``: a submission copies
``hub/_data`` into a clone of that repository. What the tap knows comes from ``--about``:
every setting with its kind, default, description and secrecy, the setting groups of the two
auth schemes, the capabilities, the Python versions. Object settings with declared
properties become one setting per leaf, as the Hub lists SDK taps (``batch_config.encoding.format``).
The namespace, the executable and the options' labels come from meltano.yml; what only the
Hub needs (label, logo, links, status) is below.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import typing as t
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
#: Where the tap is published. The Hub names a variant after the repository's owner, and
#: installs it from there (PyPI's `tap-pipedrive` is singer-io's tap).
REPOSITORY = "https://github.com/tap-pipedrive/tap-pipedrive"
VARIANT = REPOSITORY.rstrip("/").split("/")[-2].lower()
HUB_METADATA: dict[str, t.Any] = {
    "label": "Pipedrive",
    "description": "Sales CRM and pipeline management software",
    "logo_url": "/assets/logos/extractors/pipedrive.png",  # the Hub's own, used by singer-io's
    "domain_url": "https://www.pipedrive.com/",
    "repo": REPOSITORY,
    "docs": f"{REPOSITORY}#readme",
    "pip_url": f"git+{REPOSITORY}.git",
    "keywords": ["meltano_sdk"],
    "maintenance_status": "active",
    # Required by the Hub's schema; its maintainers rate a new variant (an SDK tap: silver).
    "quality": "silver",
}
#: JSON-schema type -> Meltano setting kind (as meltano.yml and tests/contract/test_meltano.py).
KIND_OF_TYPE = {"boolean": "boolean", "integer": "integer", "number": "decimal",
                "object": "object", "array": "array", "string": "string"}
#: Objects the Hub keeps whole although they declare properties (per-stream maps).
WHOLE_OBJECTS = {"stream_maps"}


def definition_path() -> Path:
    """The definition's path in this repository."""
    return ROOT / "hub" / "_data" / "meltano" / "extractors" / "tap-pipedrive" / f"{VARIANT}.yml"


def about() -> dict[str, t.Any]:
    """``tap-pipedrive --about --format json``."""
    out = subprocess.run(
        [sys.executable, "-m", "tap_pipedrive", "--about", "--format", "json"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    parsed: dict[str, t.Any] = json.loads(out)
    return parsed


def meltano_extractor() -> dict[str, t.Any]:
    """meltano.yml's tap-pipedrive extractor."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (extractor,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-pipedrive"]
    return t.cast("dict[str, t.Any]", extractor)


def types_of(prop: dict[str, t.Any]) -> list[str]:
    """The non-null JSON types a property allows, its ``oneOf``/``anyOf`` alternatives included."""
    declared = prop.get("type", [])
    found = [declared] if isinstance(declared, str) else list(declared)
    for alternative in (*prop.get("oneOf", ()), *prop.get("anyOf", ())):
        if isinstance(alternative, dict):
            found += types_of(alternative)
    return [kind for kind in dict.fromkeys(found) if kind != "null"]


def kind_of(prop: dict[str, t.Any]) -> str:
    """The Meltano kind of a property: options, date_iso8601, or its type's kind."""
    if "enum" in prop:
        return "options"
    types = types_of(prop)
    if types == ["string"] and prop.get("format") in {"date-time", "date"}:
        return "date_iso8601"
    if "array" in types:  # a value or a list of them (faker's locale): a list covers both
        return "array"
    return KIND_OF_TYPE[types[0]] if len(types) == 1 else "string"


def leaves(name: str, prop: dict[str, t.Any]) -> t.Iterator[tuple[str, dict[str, t.Any]]]:
    """``(dotted name, property)`` of a setting, one per leaf of an object with properties."""
    nested = prop.get("properties")
    if nested and name not in WHOLE_OBJECTS:
        for sub, sub_prop in nested.items():
            yield from leaves(f"{name}.{sub}", sub_prop)
    else:
        yield name, prop


def setting(name: str, prop: dict[str, t.Any], declared: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """One Hub setting: name, label, description, kind, options, default, sensitive."""
    entry: dict[str, t.Any] = {
        "name": name,
        "label": prop.get("title") or (declared or {}).get("label") or name,
        "description": prop.get("description", ""),
        "kind": kind_of(prop),
    }
    if entry["kind"] == "options":
        labels = {o["value"]: o["label"] for o in (declared or {}).get("options", [])}
        entry["options"] = [{"label": labels.get(v, v), "value": v} for v in prop["enum"]]
    if prop.get("default") is not None and entry["kind"] != "date_iso8601":
        entry["value"] = prop["default"]
    if prop.get("secret"):
        entry["sensitive"] = True
    return entry


def setting_groups(schema: dict[str, t.Any]) -> list[list[str]]:
    """One group of required settings per auth scheme, from the schema's ``if``/``then``/``else``."""
    required = list(schema.get("required", []))
    groups = []
    for rule in schema.get("allOf", []):
        if "if" in rule:
            groups.append(required + rule.get("else", {}).get("required", []))
            groups.append(required + rule["if"].get("required", []) + rule["then"].get("required", []))
    return groups or [required]


def definition() -> dict[str, t.Any]:
    """The whole plugin definition."""
    info = about()
    extractor = meltano_extractor()
    declared = {s["name"]: s for s in extractor["settings"]}
    schema = info["settings"]
    settings = [setting(leaf, leaf_prop, declared.get(name))
                for name, prop in schema["properties"].items()
                for leaf, leaf_prop in leaves(name, prop)]
    return {
        "name": info["name"],
        "namespace": extractor["namespace"],
        "variant": VARIANT,
        "executable": extractor["executable"],
        **HUB_METADATA,
        "capabilities": sorted(info["capabilities"]),
        "supported_python_versions": info["supported_python_versions"],
        "settings": sorted(settings, key=lambda s: s["name"]),
        "settings_group_validation": setting_groups(schema),
    }


def render() -> str:
    """The definition as the Hub writes its files: keys sorted, block style."""
    return yaml.safe_dump(definition(), sort_keys=True, allow_unicode=True, default_flow_style=False)


def main() -> int:
    """Rewrite or check the definition."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the definition is stale")
    args = parser.parse_args()
    path = definition_path()
    wanted = render()
    if args.check:
        if not path.exists() or path.read_text(encoding="utf-8") != wanted:
            print(f"{path.relative_to(ROOT)} is stale: run scripts/hub_definition.py", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
