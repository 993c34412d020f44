"""Extract what tap-pipedrive needs from Pipedrive's OpenAPI specs into one JSON file.

The tap (stream schemas, token costs) and the fake Pipedrive used by the tests (field names and
types, parameters, token costs) both read ``tap_pipedrive/openapi.json``, so neither carries
hand-typed copies of the API that could drift. Re-run after updating the specs:

    python scripts/extract_openapi.py [--specs ../shared/pipedrive-api] [--check]

``--check`` exits 1 when the committed file differs from what the specs give (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tap_pipedrive" / "openapi.json"

# (version, path) of every GET operation the tap reads.
ENDPOINTS: list[tuple[str, str]] = [
    ("v2", "/deals"),
    ("v2", "/deals/archived"),
    ("v2", "/persons"),
    ("v2", "/organizations"),
    ("v2", "/activities"),
    ("v2", "/products"),
    ("v2", "/pipelines"),
    ("v2", "/stages"),
    ("v2", "/deals/products"),
    ("v2", "/dealFields"),
    ("v2", "/personFields"),
    ("v2", "/organizationFields"),
    ("v2", "/productFields"),
    ("v2", "/activityFields"),
    ("v1", "/notes"),
    ("v1", "/leads"),
    ("v1", "/leads/archived"),
    ("v1", "/users"),
    ("v1", "/users/me"),
    ("v1", "/leadLabels"),
    ("v1", "/filters"),
    ("v1", "/activityTypes"),
    ("v1", "/currencies"),
    ("v1", "/files"),
    ("v1", "/callLogs"),
    ("v1", "/noteFields"),
    ("v1", "/leadFields"),
]

SPEC_FILES = {"v1": "openapi-v1.yaml", "v2": "openapi-v2.yaml"}


def merge_object(schemas: list[dict]) -> dict:
    """Merge the parts of an ``allOf`` into one object schema."""
    props: dict = {}
    required: list[str] = []
    other: dict = {}
    for part in schemas:
        flat = flatten(part)
        if flat.get("type") not in (None, "object") and not flat.get("properties"):
            other = flat
            continue
        props.update(flat.get("properties", {}))
        required += [r for r in flat.get("required", []) if r not in required]
    if not props and other:
        return other
    out: dict = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def flatten(schema: dict) -> dict:  # noqa: C901
    """Turn an OpenAPI 3.0 schema into a plain JSON schema (allOf merged, nullable kept)."""
    if not isinstance(schema, dict):
        return {}
    if "allOf" in schema:
        merged = merge_object(schema["allOf"])
        if schema.get("nullable"):
            merged["nullable"] = True
        return merged
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [flatten(s) for s in schema[key]]
            objects = [o for o in options if o.get("type") == "object"]
            if objects and len(objects) == len(options):
                return merge_object(schema[key])
            out = {key: options}
            if schema.get("nullable"):
                out["nullable"] = True
            return out
    out = {
        k: v
        for k, v in schema.items()
        if k in ("type", "format", "enum", "nullable", "description", "maximum", "minimum")
    }
    if schema.get("type") == "object" or "properties" in schema:
        out["type"] = "object"
        out["properties"] = {k: flatten(v) for k, v in (schema.get("properties") or {}).items()}
        if isinstance(schema.get("additionalProperties"), dict):
            out["additionalProperties"] = flatten(schema["additionalProperties"])
        elif schema.get("additionalProperties") is True:
            out["additionalProperties"] = True
    if schema.get("type") == "array":
        out["items"] = flatten(schema.get("items") or {})
    return out


def extract(specs_dir: Path) -> dict:
    """Build the extract from the spec files in ``specs_dir``."""
    specs = {
        v: yaml.load((specs_dir / f).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for v, f in SPEC_FILES.items()
    }
    endpoints: dict = {}
    for version, path in ENDPOINTS:
        op = specs[version]["paths"][path]["get"]
        body = flatten(op["responses"]["200"]["content"]["application/json"]["schema"])
        data = body.get("properties", {}).get("data", {})
        item = data.get("items", data) if data.get("type") == "array" else data
        params = {}
        for p in op.get("parameters", []):
            s = p.get("schema", {})
            params[p["name"]] = {
                k: s[k] for k in ("type", "maximum", "minimum", "enum", "default", "format") if k in s
            }
            if p.get("required"):
                params[p["name"]]["required"] = True
            if s.get("type") == "array" and "enum" in s.get("items", {}):
                params[p["name"]]["enum"] = s["items"]["enum"]
        endpoints[f"{version} {path}"] = {
            "version": version,
            "path": path,
            "token_cost": op["x-token-cost"],
            "list": data.get("type") == "array",
            "params": params,
            "item": item,
        }
    oauth = specs["v1"]["paths"]["/oauth/token/"]["post"]
    token = flatten(oauth["responses"]["200"]["content"]["application/json"]["schema"])
    return {
        "_source": "Pipedrive OpenAPI specs openapi-v1.yaml and openapi-v2.yaml; "
        "generated by scripts/extract_openapi.py",
        "endpoints": endpoints,
        "oauth_token_response": token,
    }


def main() -> int:
    """Write or check the extract."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--specs", type=Path, default=ROOT.parent / "shared" / "pipedrive-api")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = json.dumps(extract(args.specs), indent=1, sort_keys=True) + "\n"
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run scripts/extract_openapi.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
