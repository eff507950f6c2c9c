"""The traffic policy in force, and how a new revision replaces it (docs/policy.md).

Reload is gunicorn's, in one process: validate -> build a new immutable ``Policy`` -> swap
one reference -> tell subscribers (which rebuild routers, balancers, breakers). A request
keeps whatever objects it started with. A document that fails validation raises
``PolicyError`` before anything is swapped, so the previous policy stays in force.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from proxies.policy.parser import parse_policy
from proxies.policy.schema import Policy

log = logging.getLogger("proxies.policy")

Subscriber = Callable[[Policy, Policy], None]


class PolicyStore:
    """Holds the ``Policy`` in force; ``apply`` validates a document and swaps it in."""

    __slots__ = ("policy", "source", "_subscribers")

    def __init__(self, policy: Policy | None = None, source: str = "defaults") -> None:
        self.policy: Policy = policy if policy is not None else Policy()
        self.source = source  # "defaults", the --policy file's path, or "control"
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(old, new)`` after every swap (not for the policy already in force)."""
        self._subscribers.append(callback)

    def apply(
        self,
        document: Mapping[str, Any],
        known_versions: Mapping[str, frozenset[str]] | None = None,
        source: str = "control",
    ) -> Policy:
        """Validate ``document`` and put it in force; on PolicyError nothing changes."""
        return self.replace(parse_policy(document, known_versions), source)

    def replace(self, policy: Policy, source: str) -> Policy:
        """Put an already validated policy in force and notify subscribers."""
        old, self.policy, self.source = self.policy, policy, source
        for callback in self._subscribers:
            callback(old, policy)
        return policy
