"""The policy UI in real Chromium against a real uvicorn, with sidecars on the real control
channel: split from the graph to ACKs, read-only viewers, history and rollback, the YAML
editor, the observed share."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from playwright.sync_api import expect

from collector.graphwriter import GraphWriter
from proxies.telemetry import histogram
from tests.meshui.browser import (
    HAVE_CHROMIUM,
    chromium,
    csp_problems,
    join_tokens,
    meshui_server,
    new_page,
    open_service_page,
    split_values,
)
from tests.meshui.conftest import StoppableRedis
from tests.meshui.fake_sidecars import FakeSidecar, fake_sidecars
from tests.meshui.sample_graph import write_sample_graph

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium")

PASSWORD = "browser-user-password"
USERS = {"olivia": "operator", "victor": "viewer"}
CATALOG = [FakeSidecar("catalog-1", "catalog", "v1", 9101),
           FakeSidecar("catalog-2", "catalog", "v2", 9102)]


@pytest.fixture(scope="module")
def page_redis() -> Iterator[StoppableRedis]:
    server = StoppableRedis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(page_redis: StoppableRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    write_sample_graph(page_redis.url, seconds=5)
    workdir = tmp_path_factory.mktemp("meshui")
    with meshui_server(page_redis.url, workdir, users=USERS, MESHUI_USER_PASSWORD=PASSWORD,
                       MESHUI_PUBLIC_READ="false") as url:
        tokens = join_tokens(page_redis.url, workdir, {s.service for s in CATALOG})
        with fake_sidecars(url, tokens, CATALOG):
            yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def logged_in(browser: Any, server: str, username: str) -> tuple[Any, list[str]]:
    page, console = new_page(browser)
    page.goto(server + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    return page, console


def api(page: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The API from the page's own session, with its CSRF token, as the page's script does."""
    token = next((c["value"] for c in page.context.cookies() if c["name"] == "csrftoken"), "")
    response = page.request.fetch(page.url.split("/", 3)[0] + "//" + page.url.split("/")[2] + path,
                                  method=method, headers={"X-CSRFToken": token,
                                                          "Content-Type": "application/json"},
                                  data=json.dumps(body) if body is not None else None)
    return response.status, response.json()


def current(page: Any) -> int:
    return api(page, "GET", "/api/v1/policy")[1]["revision"]


def wait_for_sidecars(page: Any) -> None:
    page.wait_for_function("""async () => {
        const r = await fetch('/api/v1/proxies');
        const body = await r.json();
        return body.proxies.filter((p) => p.service === 'catalog' && p.connected).length === 2;
    }""", timeout=15000)






def test_an_operator_splits_catalog_50_50_from_the_graph_and_sees_every_sidecar_apply_it(
    server: str, browser: Any
) -> None:
    page, console = logged_in(browser, server, "olivia")
    wait_for_sidecars(page)
    page.wait_for_selector("#status.live", timeout=10000)
    open_service_page(page, "catalog")
    page.wait_for_url(server + "/services/catalog", timeout=10000)
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#service-name").inner_text() == "catalog"

    # The slider to the end by key (exact, unlike a drag), then the exact number in the box.
    v1 = page.locator('.split-range[data-version="v1"]')
    v1.focus()
    page.keyboard.press("End")
    assert split_values(page) == {"v1": 100, "v2": 0}
    page.locator('.split-number[data-version="v1"]').fill("50")
    page.locator('.split-number[data-version="v1"]').press("Tab")
    assert split_values(page) == {"v1": 50, "v2": 50}
    assert page.locator("#split-total").inner_text() == "total 100%"

    page.click("#apply")
    page.wait_for_selector("#apply-dialog:not([hidden])")
    for line in ("+    split:", "+      v1: 50", "+      v2: 50"):
        expect(page.locator("#apply-diff")).to_contain_text(line, timeout=10000)
    page.fill("#apply-message", "even split")
    page.click("#apply-confirm")
    page.wait_for_selector("#apply-progress .sync-count", timeout=10000)
    assert "applied on" in page.locator("#apply-progress").inner_text()
    page.wait_for_function(
        "() => document.querySelector('#apply-progress').textContent"
        ".includes('applied on all 2 sidecars')", timeout=15000)
    assert page.evaluate("window.__sameDocument") is True  # live, no reload
    revision = current(page)
    assert all(revision in sidecar.configs for sidecar in CATALOG)
    expect(page.locator("#loaded-revision")).to_have_text(str(revision), timeout=10000)
    assert csp_problems(page, console) == []
    page.close()


def test_a_viewer_sees_every_control_disabled_with_the_reason(server: str, browser: Any) -> None:
    page, console = logged_in(browser, server, "victor")
    page.goto(server + "/services/catalog")
    note = page.locator("#read-only-note")
    assert note.is_visible()
    reason = "Changing the traffic policy needs the operator role; victor is a viewer"
    assert reason in note.inner_text()
    for selector in ("#apply", '.split-range[data-version="v1"]', "#route-add",
                     "#f-circuit-breaker-max-requests", "#f-load-balancer"):
        assert page.locator(selector).is_disabled(), selector
    assert reason in page.locator("#apply").get_attribute("title")
    assert reason in page.locator("#f-circuit-breaker-max-requests").get_attribute("title")
    page.goto(server + "/policy/history")
    assert page.locator("#read-only-note").is_visible()
    assert csp_problems(page, console) == []
    page.close()


def test_history_shows_the_revision_and_rollback_restores_the_previous_split(
    server: str, browser: Any
) -> None:
    page, console = logged_in(browser, server, "olivia")
    wait_for_sidecars(page)
    for weights, message in (({"v1": 90, "v2": 10}, "canary 10%"), ({"v1": 30, "v2": 70}, "most to v2")):
        status, body = api(page, "PATCH", "/api/v1/policy/services/catalog",
                           {"patch": {"split": weights}, "parent": current(page),
                            "message": message})
        assert status == 201, body
    canary = current(page) - 1
    page.goto(server + "/policy/history")
    row = page.locator(f'tr[data-revision="{canary}"]')
    assert "canary 10%" in row.inner_text() and "olivia" in row.inner_text()
    # The diff is fetched after the page loads: expect() waits for it (newest vs the one before).
    expect(page.locator("#diff")).to_contain_text("+      v2: 70", timeout=10000)

    button = row.locator(".rollback")
    button.click()
    assert button.inner_text() == f"Confirm: roll back to {canary}"
    button.click()
    page.wait_for_url(f"**/policy/history?written={canary + 2}")
    page.wait_for_function(
        "() => document.querySelector('#history-progress').textContent"
        ".includes('applied on all 2')", timeout=15000)
    assert f"roll back to revision {canary}" in page.locator(
        f'tr[data-revision="{canary + 2}"]').inner_text()

    page.goto(server + "/services/catalog")
    assert split_values(page) == {"v1": 90, "v2": 10}
    assert csp_problems(page, console) == []
    page.close()


def test_the_yaml_editor_points_at_the_split_summing_to_90_and_creates_nothing(
    server: str, browser: Any
) -> None:
    page, console = logged_in(browser, server, "olivia")
    before = current(page)
    page.goto(server + "/policy/edit")
    page.wait_for_selector(".ok-line", timeout=10000)
    page.fill("#yaml", "services:\n  catalog:\n    split:\n      v1: 50\n      v2: 40\n")
    error = page.locator('.problem.error[data-field="services.catalog.split"]')
    error.wait_for(timeout=10000)
    assert "weights must sum to 100, got 90" in error.inner_text()
    assert error.get_attribute("data-line") == "3"
    assert page.locator("#gutter .bad-line").all_inner_texts() == ["3"]
    assert page.locator("#yaml-save").is_disabled()
    assert current(page) == before
    assert csp_problems(page, console) == []
    page.close()


def test_the_page_shows_the_observed_share_and_breaker_events_from_the_graph(
    server: str, browser: Any
) -> None:
    page, console = logged_in(browser, server, "victor")

    def by_version(v1: int, v2: int) -> dict[str, Any]:
        return {v: {"requests": n, "errors": 0, "rps": n / 60, "share": n / (v1 + v2),
                    "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
                for v, n in (("v1", v1), ("v2", v2))}

    events = {"retries": 0, "ejections": 2, "overflows": 0, "timeouts": 0, "faults": 0,
              "rate_limited": 0, "retry_budget_exhausted": 0}
    graph = {"window": 60, "generated_at": 0, "hidden": {"nodes": 0, "edges": 0},
             "nodes": [{"id": "catalog", "service": "catalog", "versions": ["v1", "v2"],
                        "requests": 800, "errors": 8, "rps": 13.3, "error_rate": 0.01,
                        "p50_ms": 4.0, "p95_ms": 9.0, "p99_ms": 12.0}],
             "edges": [{"source": "frontend", "target": "catalog", "events": events,
                        "by_version": by_version(500, 100)},
                       {"source": "search", "target": "catalog", "events": events,
                        "by_version": by_version(100, 100)}]}
    page.route("**/api/v1/graph?window=60", lambda route: route.fulfill(json=graph))
    until = datetime.now(UTC) + timedelta(seconds=90)
    ejected = {"ejections": [{"service": "catalog", "instance": "catalog-2",
                              "until": until.isoformat().replace("+00:00", "Z"),
                              "ejected_by": ["frontend-1", "search-1"]}]}
    page.route("**/api/v1/ejections?service=catalog", lambda route: route.fulfill(json=ejected))
    page.goto(server + "/services/catalog")
    row = page.locator('#ejected-now .ejected-row[data-instance="catalog-2"]')
    expect(row).to_contain_text("catalog-2 ejected by 2 callers until", timeout=10000)
    assert row.locator("[title]").get_attribute("title") == "frontend-1, search-1"
    observed = page.locator('.observed[data-version="v1"]')
    page.wait_for_function("(s) => document.querySelector(s).textContent.includes('75.0%')",
                           arg='.observed[data-version="v1"]', timeout=10000)
    assert observed.inner_text() == "observed 75.0% · 600 req"
    assert page.locator('.observed[data-version="v2"]').inner_text() == "observed 25.0% · 200 req"
    assert page.locator("#live-ejections").inner_text() == "4 ejections in the last minute"
    assert page.locator("#g-success").inner_text() == "99.00%"

    graph["edges"] = []
    ejected["ejections"] = []
    page.wait_for_function("(s) => document.querySelector(s).textContent === 'no traffic'",
                           arg='.observed[data-version="v1"]', timeout=10000)
    expect(page.locator("#ejected-now")).to_have_text("No instance ejected now", timeout=10000)
    assert csp_problems(page, console) == []
    page.close()


def test_apply_puts_an_invalid_value_next_to_its_field_and_a_409_names_who_wrote(
    server: str, browser: Any
) -> None:
    page, console = logged_in(browser, server, "olivia")
    page.goto(server + "/services/catalog")
    page.fill("#f-retries-backoff-max-ms", "5")  # below the 25 ms base
    page.click("#apply")
    page.wait_for_selector("#apply-dialog:not([hidden])")
    slot = page.locator('[data-field="retries.backoff_max_ms"] .field-error')
    slot.wait_for(timeout=10000)
    assert "must be at least backoff_base_ms" in slot.inner_text()
    assert page.locator("#apply-confirm").is_disabled()
    page.click("#apply-cancel")

    page.fill("#f-retries-backoff-max-ms", "")
    page.fill("#f-circuit-breaker-max-retries", "7")
    status, _ = api(page, "PATCH", "/api/v1/policy/services/catalog",
                    {"patch": {"retries": {"attempts": 4}}, "parent": current(page),
                     "message": "behind your back"})
    assert status == 201
    page.click("#apply")
    page.wait_for_selector("#apply-dialog:not([hidden])")
    page.click("#apply-confirm")
    conflict = page.locator(".problem.conflict")
    conflict.wait_for(timeout=10000)
    assert "olivia changed the policy meanwhile" in conflict.inner_text()
    assert "behind your back" in conflict.inner_text()
    assert page.locator("#reload").is_visible()
    assert csp_problems(page, console) == []
    page.close()


def test_the_service_page_shows_where_the_time_goes_for_the_service_and_each_instance(
    server: str, browser: Any, page_redis: StoppableRedis
) -> None:
    now = time.time()
    writer = GraphWriter(clock=lambda: now - 5)
    for instance, version, requests, ms in (("catalog-1", "v1", 30, 4.0), ("catalog-2", "v2", 7, 900.0)):
        writer.add_node("catalog", version, requests, 0, {histogram.bucket_index(ms): requests},
                        instance=instance)
    client = redis.Redis.from_url(page_redis.url)
    pipe = client.pipeline(transaction=False)
    GraphWriter.queue_writes(pipe, writer.take())
    pipe.execute()
    client.close()

    page, console = logged_in(browser, server, "victor")
    page.goto(server + "/services/catalog")
    panel = page.locator("#service-panel")
    expect(panel).to_have_attribute("data-scope", "service=catalog&window=300&step=5", timeout=10000)
    served = int(panel.get_attribute("data-requests"))
    assert served >= 37  # the sample graph's requests too
    page.select_option("#panel-scope", "instance=catalog-2")
    expect(panel).to_have_attribute("data-scope", "service=catalog&instance=catalog-2&window=300&step=5",
                                    timeout=10000)
    expect(panel).to_have_attribute("data-requests", "7")
    assert page.url.endswith("#instance-catalog-2")
    page.locator("#service-panel .panel-ranges a", has_text="1 h").click()
    expect(panel).to_have_attribute("data-scope", "service=catalog&instance=catalog-2&window=3600&step=60",
                                    timeout=10000)
    expect(panel).to_have_attribute("data-requests", "7")
    assert page.locator("#service-panel .chart .main-svg").count() >= 4
    page.goto(server + "/services/catalog#version-v1")  # a link picks the scope, the range stays
    expect(panel).to_have_attribute("data-scope", "service=catalog&version=v1&window=3600&step=60",
                                    timeout=10000)
    assert page.input_value("#panel-scope") == "version=v1"
    assert csp_problems(page, console) == []
    page.close()
