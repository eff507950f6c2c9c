"""What the service page's authorization editor starts from (static/policy/authorization.js).

Pure: the service's policy in force, the graph JSON and the trust domain in; JSON out. The
editor keeps it live from ``GET /api/v1/graph`` with the same sums as ``callers`` here.

"Allow only what you see" (docs/ui.md) proposes one AUDIT rule per caller observed over a
window the user picks (``PROPOSAL_WINDOWS``), named ``PROPOSAL_PREFIX`` + the caller; the
vocabulary it needs (actions, the names of "any mesh identity" and "no identity", the rule
name's rule) comes from the sidecar's own schema and checks, never from a copy in the script.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from meshui.dashboard.edge_security import identity, mtls_share
from proxies.policy.checks import AUTHORIZATION_RULES_MAX
from proxies.policy.schema import ANY_IDENTITY, AUTHORIZATION_ACTIONS, UNAUTHENTICATED

# What the proposals are read over: (seconds, words); the graph keeps an hour.
PROPOSAL_WINDOWS: tuple[tuple[int, str], ...] = ((900, "last 15 min"), (3600, "last hour"))
PROPOSAL_PREFIX = "seen-"
RULE_NAME_MAX = 63  # proxies.policy.checks' rule names: sent in x-meshui-denied
HELP = ("Who may call this service, decided by its own sidecar by the caller's certificate "
        "(mutual TLS). DENY wins, then ALLOW: with any ALLOW rule, a caller none names is "
        "denied (403). AUDIT rules are ALLOW rules on trial: they deny nothing and count "
        "what they would deny.")
UNKNOWN_NOTE = ("callers from outside the mesh: no sidecar, no certificate (plaintext, e.g. "
                "users reaching an entry service)")


class CallerJSON(TypedDict):
    source: str
    identity: str | None  # its SPIFFE ID; None for ``unknown``
    requests: int
    mtls_share: float | None
    denied: int
    audit_denied: int


def callers(graph: Mapping[str, Any] | None, service: str, trust_domain: str) -> list[CallerJSON]:
    """Every caller of ``service`` in the graph's window, busiest first: its requests, the
    share over mTLS and what the service's rules denied or would deny of them."""
    rows: list[CallerJSON] = []
    for edge in (graph or {}).get("edges") or ():
        if edge.get("target") != service:
            continue
        events = edge.get("events") or {}
        source = str(edge["source"])
        rows.append({
            "source": source,
            "identity": None if source == UNAUTHENTICATED else identity(trust_domain, source),
            "requests": int(edge.get("requests") or 0),
            "mtls_share": mtls_share(edge),
            "denied": int(events.get("denied") or 0),
            "audit_denied": int(events.get("audit_denied") or 0)})
    return sorted(rows, key=lambda r: (-r["requests"], r["source"]))


def editor_json(policy: Mapping[str, Any], graph: Mapping[str, Any] | None, service: str,
                trust_domain: str) -> dict[str, Any]:
    """The editor's seeds (the rules in force) and its vocabulary."""
    return {
        "rules": list((policy.get("authorization") or {}).get("rules") or ()),
        "actions": list(AUTHORIZATION_ACTIONS),
        "any_identity": ANY_IDENTITY,
        "unauthenticated": UNAUTHENTICATED,
        "unknown_note": UNKNOWN_NOTE,
        "proposal_prefix": PROPOSAL_PREFIX,
        "rule_name_max": RULE_NAME_MAX,
        "rules_max": AUTHORIZATION_RULES_MAX,
        "proposal_windows": [[seconds, words] for seconds, words in PROPOSAL_WINDOWS],
        "trust_domain": trust_domain,
        "help": HELP,
        "callers": None if graph is None else callers(graph, service, trust_domain),
    }
