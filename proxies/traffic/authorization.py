"""Who may call a service: its authorization rules, decided per request (docs/policy.md).

The destination's own sidecar decides, on its inbound listener, before the local app or its
rate limit sees the request. The caller is the service its mTLS certificate names (the
``x-meshui-source`` header is never trusted for this), or ``unknown`` without one.

- A DENY rule that matches denies (the first in order names itself in ``x-meshui-denied``).
- Otherwise, when there are ALLOW rules, a request none of them matches is denied, as
  ``default-deny``.
- AUDIT rules are ALLOW rules on trial. They enforce nothing. With no ALLOW rule in force, a
  request that is not denied and that no AUDIT rule matches is one they would deny once
  enforced: it goes through, and is counted and recorded. Turning every AUDIT rule into an
  ALLOW rule then denies exactly the requests that were counted.

Pure: ``check`` takes the caller, method, path and a header lookup and returns the verdict.
"""

from __future__ import annotations

from collections.abc import Callable

from proxies.policy.schema import ANY_IDENTITY, UNAUTHENTICATED, Authorization, AuthorizationRule
from proxies.traffic.router import HeaderLookup

DEFAULT_DENY = "default-deny"  # x-meshui-denied of a request no ALLOW rule matched


class Verdict:
    """``denied_by``: the rule that denies (None: allowed); ``audit``: the AUDIT rules would deny it."""

    __slots__ = ("denied_by", "audit")

    def __init__(self, denied_by: str | None, audit: bool) -> None:
        self.denied_by = denied_by
        self.audit = audit

    def __repr__(self) -> str:
        return f"Verdict(denied_by={self.denied_by!r}, audit={self.audit!r})"


ALLOWED = Verdict(None, False)
WOULD_DENY = Verdict(None, True)
_Matcher = tuple[str, frozenset[str], bool, frozenset[str], str | None, tuple[tuple[bytes, bytes], ...]]


def _compiled(rule: AuthorizationRule) -> _Matcher:
    sources = frozenset(rule.sources)
    return (
        rule.name,
        sources - {ANY_IDENTITY},
        ANY_IDENTITY in sources,
        frozenset(rule.methods),
        rule.path_prefix,
        tuple((n.encode("ascii"), v.encode("ascii")) for n, v in rule.headers),
    )


def _matches(
    rule: _Matcher, source: str, method: str, path: str, get: Callable[[bytes], bytes | None]
) -> bool:
    _, sources, any_identity, methods, prefix, headers = rule
    if sources or any_identity:
        named = source in sources or (any_identity and source != UNAUTHENTICATED)
        if not named:
            return False
    if methods and method not in methods:
        return False
    if prefix is not None and not path.startswith(prefix):
        return False
    return all(get(name) == value for name, value in headers)


class Authorizer:
    """One destination's rules, compiled; ``check`` decides a request."""

    __slots__ = ("policy", "_deny", "_allow", "_audit", "audit_rules")

    def __init__(self, policy: Authorization) -> None:
        self.policy = policy
        by_action: dict[str, list[_Matcher]] = {"ALLOW": [], "DENY": [], "AUDIT": []}
        for rule in policy.rules:
            by_action[rule.action].append(_compiled(rule))
        self._deny = tuple(by_action["DENY"])
        self._allow = tuple(by_action["ALLOW"])
        # With ALLOW rules in force, AUDIT ones could only allow more: they never count.
        self._audit = () if self._allow else tuple(by_action["AUDIT"])
        self.audit_rules = tuple(rule[0] for rule in self._audit)  # named in the span event

    def check(self, source: str, method: str, path: str, headers: HeaderLookup) -> Verdict:
        get = headers if callable(headers) else headers.get
        for rule in self._deny:
            if _matches(rule, source, method, path, get):
                return Verdict(rule[0], False)
        if self._allow:
            for rule in self._allow:
                if _matches(rule, source, method, path, get):
                    return ALLOWED
            return Verdict(DEFAULT_DENY, False)
        if self._audit:
            for rule in self._audit:
                if _matches(rule, source, method, path, get):
                    return ALLOWED
            return WOULD_DENY
        return ALLOWED


def authorizer_for(policy: Authorization, current: Authorizer | None) -> Authorizer | None:
    """The compiled rules (None when there are none: nothing to check per request)."""
    if not policy.rules:
        return None
    if current is not None and current.policy == policy:
        return current
    return Authorizer(policy)
