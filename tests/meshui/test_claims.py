"""Who may take an instance row (claims.hello_verdict), and the one set of name rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshui.registry.claims import Holder, hello_verdict
from meshui.registry.frames import Hello
from proxies.config import parse_config
from proxies.mesh.endpoints import EndpointsError, validate_services
from proxies.mesh.schema import (
    address_problem,
    proxy_id_problem,
    service_name_problem,
    version_problem,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STALE = timedelta(seconds=15)
HELLO = Hello("catalog-1", "catalog", "v1", "10.0.0.8:15001", "", None, "")


def holder(**overrides: object) -> Holder:
    fields = {"connection": "old!1", "connected": True, "last_seen": NOW - timedelta(seconds=2),
              "service": "catalog", "address": "10.0.0.8:15001"}
    fields.update(overrides)
    return Holder(**fields)  # type: ignore[arg-type]


def test_a_new_proxy_id_is_registered() -> None:
    assert hello_verdict(None, "new!2", HELLO, NOW, STALE).allowed


def test_a_live_instance_cannot_be_claimed_from_another_address() -> None:
    verdict = hello_verdict(holder(address="10.6.6.6:15001"), "new!2", HELLO, NOW, STALE)
    assert not verdict.allowed and "another live connection" in verdict.reason


def test_a_live_instance_cannot_be_relabelled_as_another_service() -> None:
    assert not hello_verdict(holder(service="payments"), "new!2", HELLO, NOW, STALE).allowed


def test_a_reconnect_from_the_same_address_takes_over_and_supersedes_the_old_connection() -> None:
    verdict = hello_verdict(holder(), "new!2", HELLO, NOW, STALE)
    assert verdict.allowed and verdict.superseded == "old!1"


@pytest.mark.parametrize("state", [
    {"connected": False},
    {"last_seen": NOW - timedelta(seconds=16)},
    {"last_seen": None},
])
def test_a_closed_or_silent_instance_may_be_claimed_from_anywhere(state: dict) -> None:
    verdict = hello_verdict(holder(address="10.9.9.9:1", **state), "new!2", HELLO, NOW, STALE)
    assert verdict.allowed and verdict.superseded is None


def test_the_same_connection_may_say_hello_again() -> None:
    assert hello_verdict(holder(address="10.9.9.9:1"), "old!1", HELLO, NOW, STALE).allowed


@pytest.mark.parametrize(("check", "good", "bad"), [
    (service_name_problem, ["a", "catalog", "shop-web", "a" * 63, "0"],
     ["", "Catalog", "-a", "a-", "a_b", "a.b", "a" * 64, "é", "a:b", 1, None]),
    (version_problem, ["", "v1", "V2", "1.2.3-rc1", "a_b", "v" * 63],
     [" ", "v 1", ".v", "v-", "v" * 64, "v\n", 3, None]),
    (proxy_id_problem, ["c1", "catalog-v1-abc123", "x" * 200, "A.b_c-1"],
     ["", "-a", "a b", "x" * 201, "a/b", "é", 7, None]),
    (address_problem, ["h:1", "127.0.0.1:65535", "[::1]:15001", "catalog.svc:80", "0.0.0.0:8"],
     ["h", "h:0", "h:65536", ":80", "h:", "::1:80", "[nope]:1", "h_1:80", "h:+1", "h:١",
      "a" * 252 + ":80", "-h:1", 80, None]),
])
def test_the_name_rules(check: object, good: list, bad: list) -> None:
    assert [v for v in good if check(v) is not None] == []  # type: ignore[operator]
    assert [v for v in bad if check(v) is None] == []  # type: ignore[operator]


def test_the_sidecar_s_endpoints_validator_uses_the_same_rules() -> None:
    with pytest.raises(EndpointsError, match=r"services\.Evil:Name: must be a lower-case DNS"):
        validate_services({"Evil:Name": []})
    with pytest.raises(EndpointsError, match=r"services\.catalog\[0\]\.instance"):
        validate_services({"catalog": [{"instance": "a b", "version": "", "address": "h:1"}]})
    assert validate_services({"catalog": [{"instance": "c1", "version": "v1",
                                           "address": "[::1]:15001"}]}) == {
        "catalog": [("c1", "v1", "::1", 15001)]}


@pytest.mark.parametrize(("flag", "value"), [
    ("--service", "Evil:Name"), ("--version", "v 1"), ("--proxy-id", "a b"),
    ("--advertise", "h_1:80")])
def test_a_sidecar_refuses_to_start_with_a_name_meshui_would_refuse(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--service", "catalog", "--version", "v1", "--app", "127.0.0.1:1",
            "--endpoints", "e.json", flag, value]
    with pytest.raises(SystemExit):
        parse_config(argv, {})
    assert flag in capsys.readouterr().err
