"""What the fake knows about the real API, read from ``tap_pipedrive/openapi.json``.

The tap and the fake read the same extract of Pipedrive's OpenAPI specs, so field lists, query
parameters and token costs cannot drift apart. Nothing here is hand-typed except ``REAL_NULLS``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

OPENAPI_JSON = Path(__file__).resolve().parents[2] / "tap_pipedrive" / "openapi.json"
SPEC: dict = json.loads(OPENAPI_JSON.read_text(encoding="utf-8"))
ENDPOINTS: dict[str, dict] = SPEC["endpoints"]  # keyed "v2 /deals", "v1 /notes", ...

# Fields the specs declare non-nullable but that the live API returns as null when there is
# nothing to show (a deal that is not won has no won_time, a note not attached to a deal has no
# deal_id, ...). The fake emits null only for these, so a tap whose schema is built from the spec
# learns which fields must still be nullable. The tests widen exactly these when validating.
# "a.b" names key b inside object a (or inside the items of array a).
REAL_NULLS: dict[str, frozenset[str]] = {
    "v2 /deals": frozenset({"person_id", "org_id", "won_time", "lost_time"}),
    "v2 /deals/archived": frozenset({"person_id", "org_id", "won_time", "lost_time"}),
    "v2 /persons": frozenset({"org_id", "picture_id"}),
    "v2 /activities": frozenset({
        "deal_id", "lead_id", "person_id", "org_id", "project_id", "marked_as_done_time",
        "location", "conference_meeting_client", "conference_meeting_url",
        "conference_meeting_id", "attendees.person_id", "attendees.user_id",
    }),
    "v1 /notes": frozenset({
        "deal_id", "person_id", "org_id", "lead_id", "project_id", "task_id",
        "deal", "person", "organization", "project", "task",
    }),
    "v1 /files": frozenset({
        "deal_id", "person_id", "org_id", "product_id", "activity_id", "lead_id", "project_id",
        "deal_name", "person_name", "org_name", "product_name", "lead_name", "project_name",
        "mail_message_id", "mail_template_id", "cid",
    }),
    "v1 /callLogs": frozenset({"activity_id", "deal_id", "lead_id", "person_id", "org_id", "note"}),
}
# the spec: "An array of pipeline IDs or `null` for all pipelines" (and activity types alike);
# a mail party whose address is no person's (the user's own, say) links to no person
REAL_NULLS.update({
    "v1 /goals/find": frozenset({"goals.type.params.pipeline_id",
                                 "goals.type.params.activity_type_id",
                                 "goals.duration.end"}),  # '"end" can be set to null'

    "v1 /mailbox/mailThreads": frozenset({"parties.from.linked_person_id",
                                          "parties.to.linked_person_id",
                                          "drafts_parties.linked_person_id"}),
    "v1 /mailbox/mailThreads/{id}/mailMessages": frozenset({
        f"{k}.linked_person_id" for k in ("from", "to", "cc", "bcc")}),
})
# a single GET answers the record its list shows
REAL_NULLS.update({f"{k}/{{id}}": REAL_NULLS[k] for k in (
    "v2 /deals", "v2 /persons", "v2 /activities", "v1 /notes", "v1 /files")})


# "v2 /deals/{id}" -> a pattern for "v2 /deals/123"; exact keys are matched before these
_TEMPLATES = [
    (key, re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(key)) + "$"))
    for key in ENDPOINTS if "{" in key
]


def resolve(key: str | None) -> tuple[str | None, dict[str, str]]:
    """The endpoint key a concrete ``"v2 /deals/123"`` calls, and its path parameters."""
    if key is None or key in ENDPOINTS:
        return key, {}
    for template, pattern in _TEMPLATES:
        m = pattern.match(key)
        if m:
            return template, m.groupdict()
    return key, {}


def props(key: str) -> dict[str, dict]:
    """The properties of one endpoint's item schema."""
    return ENDPOINTS[key]["item"].get("properties", {})


def example(key: str) -> dict:
    """The spec's example item of an endpoint (``{}`` when the spec has none)."""
    return ENDPOINTS[key].get("example") or {}


def example_only(key: str) -> dict:
    """Keys the example shows but the item schema omits, with the example's values."""
    declared = props(key)
    return {k: v for k, v in example(key).items() if k not in declared}


def token_cost(key: str) -> int:
    """x-token-cost of the GET operation ``key`` ("v2 /deals")."""
    return int(ENDPOINTS[key]["token_cost"])


def param(key: str, name: str) -> dict | None:
    """The declared query parameter ``name`` of an endpoint, or None."""
    return ENDPOINTS[key]["params"].get(name)
