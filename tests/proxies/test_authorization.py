"""Authorization on the destination's sidecar, through real sockets: DENY, ALLOW, AUDIT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxies.policy.parser import parse_policy
from proxies.policy.schema import PolicyError
from proxies.traffic.authorization import DEFAULT_DENY, Authorizer
from tests.proxies.mesh_ca import MeshCA
from tests.proxies.mtls_mesh import Mesh, client_context, request


def authorization(*rules: dict[str, Any]) -> Any:
    return parse_policy({"services": {"payments": {"authorization": {"rules": list(rules)}}}})


@pytest.fixture
async def mesh(tmp_path: Path):
    m = Mesh(tmp_path, MeshCA())
    yield m
    await m.stop()


class Callers:
    """frontend (through its sidecar), checkout (a TLS client with its certificate) and a
    plaintext caller claiming to be frontend in x-meshui-source."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        key, chain = mesh.ca.issue("checkout")
        self.checkout_tls = client_context(mesh.ca, chain, key, mesh.tmp)

    async def frontend(self, raw: bytes = b"GET /pay HTTP/1.1\r\nHost: payments\r\n\r\n") -> tuple:
        return await request(self.mesh.frontend.ports["outbound"], raw)

    async def checkout(self, raw: bytes = b"GET /pay HTTP/1.1\r\nHost: payments\r\n\r\n") -> tuple:
        return await request(self.mesh.inbound, raw, self.checkout_tls)

    async def plaintext(self) -> tuple:
        return await request(self.mesh.inbound,
                             b"GET /pay HTTP/1.1\r\nHost: payments\r\nx-meshui-source: frontend\r\n\r\n")


REFUND = b"POST /refund HTTP/1.1\r\nHost: payments\r\ncontent-length: 0\r\n\r\n"


def status(response: tuple) -> int:
    return int(response[0].split()[1])


async def test_a_deny_rule_answers_403_naming_itself(servers, mesh) -> None:
    await mesh.start(servers, payments_policy=authorization(
        {"name": "no-refunds-from-checkout", "action": "DENY", "sources": ["checkout"],
         "path_prefix": "/refund"}))
    callers = Callers(mesh)
    head, headers, body = await callers.checkout(REFUND)
    assert status((head,)) == 403
    assert headers[b"x-meshui-denied"] == b"no-refunds-from-checkout"
    assert headers[b"x-meshui-error"] == b"denied"
    assert b"payments denied this request" in body
    assert status(await callers.checkout()) == 200  # another path
    assert status(await callers.frontend(REFUND)) == 200
    metrics = mesh.payments.plane.metrics
    assert metrics.denied == {"no-refunds-from-checkout": 1}
    assert metrics.edges.counts[("meshui.proxy.authz.denied", "checkout", "payments", ())] == 1
    # The app never saw the denied request; the 403 is in telemetry on its edge.
    assert [r[4] for r in mesh.payments_telemetry.requests] == [403, 200, 200]


async def test_allow_rules_let_only_the_listed_callers_through(servers, mesh) -> None:
    await mesh.start(servers, payments_policy=authorization(
        {"name": "frontend-reads", "action": "ALLOW", "sources": ["frontend"], "methods": ["GET"]}))
    callers = Callers(mesh)
    assert status(await callers.frontend()) == 200
    head, headers, _ = await callers.checkout()
    assert status((head,)) == 403 and headers[b"x-meshui-denied"] == DEFAULT_DENY.encode()
    # A plaintext caller is "unknown", whatever its x-meshui-source says.
    head, headers, _ = await callers.plaintext()
    assert status((head,)) == 403 and headers[b"x-meshui-denied"] == DEFAULT_DENY.encode()
    # The method condition holds too.
    assert status(await callers.frontend(b"DELETE /pay HTTP/1.1\r\nHost: payments\r\n\r\n")) == 403
    assert mesh.payments.plane.metrics.denied == {DEFAULT_DENY: 3}


async def test_deny_wins_over_allow(servers, mesh) -> None:
    await mesh.start(servers, payments_policy=authorization(
        {"name": "everyone", "action": "ALLOW", "sources": ["*"]},
        {"name": "no-admin", "action": "DENY", "path_prefix": "/admin"}))
    callers = Callers(mesh)
    assert status(await callers.frontend()) == 200
    assert status(await callers.frontend(b"GET /admin/x HTTP/1.1\r\nHost: payments\r\n\r\n")) == 403
    assert status(await callers.plaintext()) == 403  # "*" is any mesh identity, not "unknown"


async def test_audit_blocks_nothing_and_counts_exactly_what_enforcing_would_deny(servers, mesh) -> None:
    rule = {"name": "seen-frontend", "sources": ["frontend"]}
    await mesh.start(servers, payments_policy=authorization({**rule, "action": "AUDIT"}))
    callers = Callers(mesh)
    traffic = [callers.frontend] * 5 + [callers.checkout] * 3 + [callers.plaintext] * 2
    assert [status(await call()) for call in traffic] == [200] * 10
    metrics = mesh.payments.plane.metrics
    assert metrics.audit_denied == 5
    assert metrics.edges.counts[("meshui.proxy.authz.audit_denied", "checkout", "payments", ())] == 3
    # plaintext callers claiming frontend land on the edge their header names, as the graph does
    assert metrics.edges.counts[("meshui.proxy.authz.audit_denied", "frontend", "payments", ())] == 2
    assert metrics.denied == {}
    # Enforced (AUDIT -> ALLOW in a new revision), the same traffic is denied exactly there.
    mesh.payments.policies.replace(authorization({**rule, "action": "ALLOW"}), "test")
    assert [status(await call()) for call in traffic] == [200] * 5 + [403] * 5
    assert metrics.denied == {DEFAULT_DENY: 5}
    assert metrics.audit_denied == 5


async def test_a_header_condition_reads_the_request(servers, mesh) -> None:
    await mesh.start(servers, payments_policy=authorization(
        {"name": "no-beta", "action": "DENY", "headers": {"x-channel": "beta"}}))
    callers = Callers(mesh)
    for channel, expected in ((b"beta", 403), (b"stable", 200)):
        raw = b"GET / HTTP/1.1\r\nHost: payments\r\nx-channel: %s\r\n\r\n" % channel
        assert status(await callers.frontend(raw)) == expected


def test_audit_rules_never_count_while_allow_rules_are_in_force() -> None:
    policy = authorization({"name": "a", "action": "ALLOW", "sources": ["frontend"]},
                           {"name": "b", "action": "AUDIT", "sources": ["checkout"]})
    authorizer = Authorizer(policy.for_service("payments").authorization)
    assert authorizer.check("unknown", "GET", "/", {}).denied_by == DEFAULT_DENY
    assert not authorizer.check("frontend", "GET", "/", {}).audit


@pytest.mark.parametrize(("rules", "field", "words"), [
    ([{"name": "x", "action": "PERMIT"}], "rules[0].action", "ALLOW, DENY, AUDIT"),
    ([{"name": "x y", "action": "DENY"}], "rules[0].name", "x-meshui-denied"),
    ([{"action": "DENY"}], "rules[0].name", "required"),
    ([{"name": "x", "action": "DENY"}, {"name": "x", "action": "ALLOW"}], "rules[1].name", "duplicate"),
    ([{"name": "x", "action": "DENY", "sources": ["Not A Service"]}], "rules[0].sources[0]", "service name"),
    ([{"name": "x", "action": "DENY", "methods": ["G T"]}], "rules[0].methods[0]", "HTTP method"),
    ([{"name": "x", "action": "DENY", "path_prefix": "admin"}], "rules[0].path_prefix", "'/'"),
    ([{"name": f"r{i}", "action": "DENY"} for i in range(257)], "rules", "at most 256"),
])
def test_bad_rules_are_refused_naming_the_field(rules, field, words) -> None:
    with pytest.raises(PolicyError) as error:
        authorization(*rules)
    assert error.value.field == f"services.payments.authorization.{field}"
    assert words in error.value.message
