"""The policy store: validate, swap one reference, tell subscribers; a rejection changes nothing."""

from __future__ import annotations

import pytest

from proxies.mesh.endpoints import EndpointRegistry, known_versions
from proxies.policy.schema import Policy, PolicyError
from proxies.policy.store import PolicyStore


def test_it_starts_with_every_default_or_the_policy_it_is_given():
    assert PolicyStore().policy == Policy()
    assert PolicyStore(Policy(revision=4), "policy.yaml").policy.revision == 4


def test_applying_a_document_swaps_it_in_and_tells_subscribers_old_and_new():
    store = PolicyStore()
    seen: list[tuple[int, int]] = []
    store.subscribe(lambda old, new: seen.append((old.revision, new.revision)))
    first = store.apply({"revision": 1})
    store.apply({"revision": 2, "default": {"retries": {"attempts": 5}}})
    assert seen == [(0, 1), (1, 2)]
    assert store.policy.revision == 2 and store.policy.default.retries.attempts == 5
    assert first.default.retries.attempts == 2  # the old snapshot is untouched
    assert store.source == "control"


def test_a_rejected_document_leaves_the_previous_policy_in_force_and_tells_no_one():
    store = PolicyStore()
    store.apply({"revision": 1, "services": {"payments": {"split": {"v1": 90, "v2": 10}}}})
    in_force = store.policy
    seen: list[object] = []
    store.subscribe(lambda old, new: seen.append(new))
    with pytest.raises(PolicyError) as caught:
        store.apply({"revision": 2, "services": {"payments": {"split": {"v1": 90, "v2": 20}}}})
    assert caught.value.field == "services.payments.split"
    assert store.policy is in_force and seen == []


def test_an_unknown_version_is_rejected_against_the_versions_given():
    store = PolicyStore()
    with pytest.raises(PolicyError, match="services.payments.split.v3"):
        store.apply({"services": {"payments": {"split": {"v3": 100}}}}, {"payments": frozenset({"v1"})})
    assert store.policy == Policy()


def test_known_versions_come_from_the_endpoints_and_skip_services_without_instances():
    registry = EndpointRegistry()
    registry.apply(
        1,
        {
            "payments": [
                {"instance": "p1", "version": "v1", "address": "10.0.0.1:15001"},
                {"instance": "p2", "version": "v2", "address": "10.0.0.2:15001"},
                {"instance": "p3", "version": "v2", "address": "10.0.0.3:15001"},
            ],
            "ledger": [],
        },
    )
    assert known_versions(registry.snapshot) == {"payments": frozenset({"v1", "v2"})}
