"""Extract what tap-pipedrive needs from Pipedrive's OpenAPI specs into one JSON file.

The tap (stream schemas, token costs) and the fake Pipedrive used by the tests (field names and
types, parameters, token costs) both read ``tap_pipedrive/openapi.json``, so neither carries
hand-typed copies of the API that could drift. The endpoints are the ones the tap's stream
registry names (``tap_pipedrive/streams/registry.py``). Re-run after updating the specs or the
registry:

    python scripts/extract_openapi.py [--specs ../shared/pipedrive-api] [--check]

``--check`` exits 1 when the committed file differs from what the specs give (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "tap_pipedrive" / "openapi.json"

from tap_pipedrive.streams import endpoints as registry_endpoints  # noqa: E402 - the tap's own registry, after sys.path

Schema = dict[str, t.Any]

# Keys the live API sends that the spec's own example omits, with the source that shows them.
# They are merged into the endpoint's "example", so the tap declares them and the fake sends them.
EXAMPLE_SUPPLEMENTS: dict[str, Schema] = {
    # the v2 migration guide's pipeline object (FACTS.md section 9): the user's selected pipeline
    "v2 /pipelines": {"is_selected": False},
}

SPEC_FILES = {"v1": "openapi-v1.yaml", "v2": "openapi-v2.yaml"}


def merge_object(schemas: list[Schema]) -> Schema:
    """Merge the parts of an ``allOf`` into one object schema."""
    props: Schema = {}
    required: list[str] = []
    other: Schema = {}
    for part in schemas:
        flat = flatten(part)
        if flat.get("type") not in (None, "object") and not flat.get("properties"):
            other = flat
            continue
        props.update(flat.get("properties", {}))
        required += [r for r in flat.get("required", []) if r not in required]
    if not props and other:
        return other
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def flatten(schema: Schema) -> Schema:  # noqa: C901
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
            out: Schema = {key: options}
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


def load_yaml(text: str) -> Schema:
    """Parse a spec (with libyaml's safe loader when it is there: pure Python takes a minute)."""
    if hasattr(yaml, "CSafeLoader"):
        return t.cast("Schema", yaml.load(text, Loader=yaml.CSafeLoader))
    return t.cast("Schema", yaml.safe_load(text))


def example_item(content: Schema) -> Schema | None:
    """The first element of the 200 example's ``data`` list, or its ``data`` object."""
    example = content.get("example")
    data = example.get("data") if isinstance(example, dict) else None
    if isinstance(data, list):
        data = data[0] if data else None
    return data if isinstance(data, dict) else None


def extract(specs_dir: Path) -> Schema:
    """Build the extract from the spec files in ``specs_dir``."""
    specs = {v: load_yaml((specs_dir / f).read_text()) for v, f in SPEC_FILES.items()}
    endpoints: Schema = {}
    for version, path in registry_endpoints():
        key = f"{version} {path}"
        op = specs[version]["paths"][path]["get"]
        content = op["responses"]["200"]["content"]["application/json"]
        body = flatten(content["schema"])
        data = body.get("properties", {}).get("data", {})
        item = data.get("items", data) if data.get("type") == "array" else data
        params: Schema = {}
        path_params: Schema = {}
        for p in op.get("parameters", []):
            s = p.get("schema", {})
            entry = {k: s[k] for k in ("type", "maximum", "minimum", "enum", "default", "format") if k in s}
            if p.get("required"):
                entry["required"] = True
            if s.get("type") == "array" and "enum" in s.get("items", {}):
                entry["enum"] = s["items"]["enum"]
            (path_params if p.get("in") == "path" else params)[p["name"]] = entry
        endpoints[key] = {
            "version": version,
            "path": path,
            "token_cost": op["x-token-cost"],
            "list": data.get("type") == "array",
            "params": params,
            "item": item,
        }
        if path_params:
            endpoints[key]["path_params"] = path_params
        example = example_item(content)
        if example is not None or key in EXAMPLE_SUPPLEMENTS:
            endpoints[key]["example"] = {**(example or {}), **EXAMPLE_SUPPLEMENTS.get(key, {})}
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
