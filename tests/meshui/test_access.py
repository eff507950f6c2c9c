"""Front-door rules of the web app: 401 before CSRF, security headers, login lockout."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.contrib.auth.models import User
from django.test import Client

from meshui.accounts.lockout import retry_wording
from meshui.security import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.mark.parametrize("public_read", [False, True])
def test_an_anonymous_write_is_a_401_even_without_a_csrf_token(
    meshui_settings: Any, public_read: bool
) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = public_read
    browser = Client(enforce_csrf_checks=True)  # as a real browser or curl: CSRF is checked
    for method in ("post", "put", "patch", "delete"):
        response = getattr(browser, method)("/api/v1/graph")
        assert response.status_code == 401, method
        assert response.json() == {"error": "unauthenticated",
                                   "detail": "log in to use this endpoint"}


def test_a_logged_in_write_with_the_csrf_token_passes_the_csrf_check(meshui_settings: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.create_user("writer", password="pw"))
    browser.get(LOGIN)  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    refused = browser.post("/api/v1/graph")
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    passed = browser.post("/api/v1/graph", headers={"X-CSRFToken": token})
    assert passed.status_code == 405  # past login and CSRF: the endpoint is read-only


@pytest.mark.parametrize("public_read", [False, True])
def test_a_logged_in_reader_gets_the_async_graph_endpoint(
    meshui_settings: Any, public_read: bool
) -> None:
    # Under public read the session's user was resolved lazily in the event loop by
    # ninja's truth test of the auth result: every logged-in poll of the graph was a 500.
    meshui_settings.MESHUI_PUBLIC_READ = public_read
    reader = Client()
    reader.force_login(User.objects.create_user("reader", password="pw"))
    response = reader.get("/api/v1/graph?window=10")
    assert response.status_code == 200, response.content
    assert response.json()["window"] == 10


@pytest.mark.parametrize(
    "path", ["/", LOGIN, "/api/v1/graph", "/admin/login/", "/static/dashboard/graph.js"])
def test_every_response_carries_the_browser_security_headers(
    meshui_settings: Any, path: str
) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    response = Client().get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "camera=()" in response["Permissions-Policy"]
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    if not path.startswith("/static/"):  # WhiteNoise answers before the clickjacking check
        assert response["X-Frame-Options"] == "DENY"


def test_even_a_refused_host_gets_the_csp(meshui_settings: Any) -> None:
    response = Client(HTTP_HOST="evil.example").get("/")
    assert response.status_code == 400
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", ["/", LOGIN])
def test_our_pages_have_no_inline_script_or_event_handler(meshui_settings: Any, path: str) -> None:
    meshui_settings.MESHUI_PUBLIC_READ = True
    html = Client().get(path).content.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts or path == LOGIN
    for attributes, body in scripts:
        assert "src=" in attributes or 'type="application/json"' in attributes, attributes
        assert "src=" not in attributes or not body.strip()
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "javascript:" not in html


def login(client: Client, password: str, username: str = "alice") -> Any:
    return client.post(LOGIN, {"username": username, "password": password})


@pytest.fixture
def alice(meshui_settings: Any) -> User:
    meshui_settings.AXES_FAILURE_LIMIT = 5
    meshui_settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return User.objects.create_user("alice", password="right-password")


def test_five_wrong_passwords_lock_the_username_from_that_address_with_a_retry_time(
    alice: User,
) -> None:
    client = Client()
    for attempt in range(4):
        response = login(client, "wrong")
        assert response.status_code == 200, attempt  # the form again, "didn't match"
        assert b"didn't match" in response.content
    locked = login(client, "wrong")
    assert locked.status_code == 429
    # Counted from the failure's recorded time, so the seconds spent answering come off it
    # (898 once, on a loaded CI machine).
    assert 15 * 60 - 30 <= int(locked["Retry-After"]) <= 15 * 60
    text = locked.content.decode()
    assert "Too many failed log-ins." in text
    assert re.search(r"Try again after \d\d:\d\d UTC \(in 15 minutes\)", text), text

    # Locked: even the right password is refused now, and the failures are counted.
    assert login(client, "right-password").status_code == 429
    attempt = AccessAttempt.objects.get(username="alice")
    assert attempt.failures_since_start == 5
    assert AccessFailureLog.objects.filter(username="alice").count() == 5
    assert AccessFailureLog.objects.filter(username="alice", locked_out=True).count() == 1

    # Another username from the same address, and alice from another address, still log in.
    User.objects.create_user("bob", password="bobs-password")
    assert login(Client(), "bobs-password", "bob").status_code == 302
    other_address = Client(REMOTE_ADDR="10.0.0.7")
    assert login(other_address, "right-password").status_code == 302


def test_the_lockout_ends_after_the_cool_off(alice: User) -> None:
    client = Client()
    for _ in range(5):
        login(client, "wrong")
    assert login(client, "right-password").status_code == 429
    # Sixteen minutes pass: axes compares the last failure's time with now.
    AccessAttempt.objects.filter(username="alice").update(
        attempt_time=datetime.now(UTC) - timedelta(minutes=16))
    response = login(client, "right-password")
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_retry_wording_names_a_time_and_a_wait() -> None:
    now = datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC)
    assert retry_wording(now + timedelta(minutes=15), now) == "after 14:15 UTC (in 15 minutes)"
    assert retry_wording(now + timedelta(seconds=61), now) == "after 14:01 UTC (in 2 minutes)"
    assert retry_wording(now + timedelta(seconds=30), now) == "after 14:00:30 UTC (in 30 seconds)"
    assert retry_wording(now + timedelta(seconds=1), now) == "after 14:00:01 UTC (in 1 second)"
    assert retry_wording(now - timedelta(seconds=5), now) == "after 13:59:55 UTC (in 0 seconds)"


def settings_in_a_fresh_process(**env: str) -> Any:
    import json
    import os
    import subprocess
    import sys

    code = ("import json, django; django.setup(); from django.conf import settings as s; "
            "print(json.dumps([s.AXES_ENABLED, s.AXES_FAILURE_LIMIT, "
            "s.AXES_COOLOFF_TIME.total_seconds(), s.MESHUI_GRAPH_MAX_NODES]))")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "meshui.settings", **env})
    return result.returncode, (json.loads(result.stdout) if result.returncode == 0
                               else result.stderr)


def test_the_lockout_and_node_cap_settings_come_from_the_environment() -> None:
    assert settings_in_a_fresh_process() == (0, [True, 5, 900.0, 100])
    assert settings_in_a_fresh_process(
        MESHUI_LOGIN_LOCKOUT="off", MESHUI_LOGIN_FAILURE_LIMIT="3", MESHUI_LOGIN_COOLOFF="60",
        MESHUI_GRAPH_MAX_NODES="25") == (0, [False, 3, 60.0, 25])
    code, error = settings_in_a_fresh_process(MESHUI_LOGIN_FAILURE_LIMIT="five")
    assert code != 0 and "MESHUI_LOGIN_FAILURE_LIMIT must be an integer, got 'five'" in error
    code, error = settings_in_a_fresh_process(MESHUI_GRAPH_MAX_NODES="0")
    assert code != 0 and "MESHUI_GRAPH_MAX_NODES must be at least 1, got 0" in error
