"""Endpoint snapshots and their validation (and config flags from the environment)."""

from __future__ import annotations

import pytest

from proxies.config import parse_config
from proxies.mesh.endpoints import EndpointRegistry, EndpointsError

SET = {
    "catalog": [
        {"instance": "a", "version": "v1", "address": "10.0.0.1:1"},
        {"instance": "b", "version": "v1", "address": "10.0.0.2:1"},
        {"instance": "c", "version": "v2", "address": "10.0.0.3:1"},
    ]
}


def test_a_swap_leaves_the_old_snapshot_intact_for_requests_in_flight():
    registry = EndpointRegistry()
    first = registry.apply(1, SET)
    second = registry.apply(2, {"catalog": SET["catalog"][:1]})
    assert registry.snapshot is second
    assert len(first.services["catalog"].endpoints) == 3
    # Counters follow an instance that stays from one snapshot to the next.
    assert second.services["catalog"].endpoints[0] is first.services["catalog"].endpoints[0]


@pytest.mark.parametrize(
    ("services", "key"),
    [
        ([], "services"),
        ({"Catalog": []}, "services.Catalog"),
        ({"catalog": {}}, "services.catalog"),
        ({"catalog": [{"instance": "", "version": "v", "address": "h:1"}]}, ".instance"),
        ({"catalog": [{"instance": "a", "version": 1, "address": "h:1"}]}, ".version"),
        ({"catalog": [{"instance": "a", "version": "v", "address": "h:99999"}]}, ".address"),
    ],
)
def test_a_malformed_set_is_rejected_naming_the_key_and_the_old_one_stays(services, key):
    registry = EndpointRegistry()
    registry.apply(1, SET)
    with pytest.raises(EndpointsError, match=key.replace("[", r"\[").replace(".", r"\.")):
        registry.apply(2, services)
    assert registry.snapshot.version == 1


def test_every_flag_can_come_from_the_environment():
    config = parse_config(
        ["--service", "catalog"],
        {
            "MESHUI_SIDECAR_VERSION": "v3",
            "MESHUI_SIDECAR_APP": "127.0.0.1:9001",
            "MESHUI_SIDECAR_CONTROL": "ws://127.0.0.1:8000/api/v1/control",
            "MESHUI_JOIN_TOKEN": "T",
            "MESHUI_SIDECAR_TRACE_SAMPLE": "0.5",
        },
    )
    assert (config.service, config.version, config.app) == ("catalog", "v3", ("127.0.0.1", 9001))
    assert config.token == "T" and config.trace_sample == 0.5


def test_a_static_identity_needs_all_three_files(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--service", "a", "--version", "v1", "--app", "h:1", "--endpoints", "e.json",
                      "--cert", "a.crt", "--key", "a.key"], {})
    assert "needs all of --cert, --key and --trust-bundle" in capsys.readouterr().err


def test_a_control_url_without_a_token_is_refused_at_startup():
    with pytest.raises(SystemExit):
        parse_config(["--service", "a", "--version", "v1", "--app", "h:1", "--control", "ws://x"], {})


def test_an_ipv6_listener_address_is_sent_in_the_form_meshui_accepts() -> None:
    from proxies.mesh.schema import address_problem, join_address, split_address

    assert join_address("::1", 15001) == "[::1]:15001"
    assert join_address("127.0.0.1", 15001) == "127.0.0.1:15001"
    assert address_problem(join_address("::1", 15001)) is None
    assert split_address(join_address("::1", 15001)) == ("::1", 15001)
