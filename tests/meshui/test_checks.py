from __future__ import annotations

from typing import Any

from meshui.checks import check_control_token, check_redis_url, check_secret_key


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_a_missing_redis_url_is_error_e001(settings: Any) -> None:
    settings.REDIS_URL = ""
    assert ids(check_redis_url()) == ["meshui.E001"]


def test_a_redis_url_of_another_scheme_is_error_e002(settings: Any) -> None:
    settings.REDIS_URL = "http://localhost:6379"
    assert ids(check_redis_url()) == ["meshui.E002"]


def test_a_proper_redis_url_passes(settings: Any) -> None:
    for url in ("redis://localhost:6379/0", "rediss://h:6380", "unix:///tmp/r.sock"):
        settings.REDIS_URL = url
        assert check_redis_url() == []


def test_the_generated_secret_key_warns_w001(settings: Any) -> None:
    settings.MESHUI_DEFAULT_SECRET_KEY = True
    assert ids(check_secret_key()) == ["meshui.W001"]
    settings.MESHUI_DEFAULT_SECRET_KEY = False
    assert check_secret_key() == []


def test_a_missing_control_token_warns_w002(settings: Any) -> None:
    settings.MESHUI_CONTROL_TOKEN = ""
    assert ids(check_control_token()) == ["meshui.W002"]
    settings.MESHUI_CONTROL_TOKEN = "s3cret"
    assert check_control_token() == []


def test_ensure_user_creates_then_updates_a_superuser(
    db: Any, monkeypatch: Any
) -> None:
    from django.contrib.auth import authenticate
    from django.core.management import call_command
    from django.test import RequestFactory

    monkeypatch.setenv("MESHUI_USER_PASSWORD", "first")
    call_command("ensure_user", "demo")
    monkeypatch.setenv("MESHUI_USER_PASSWORD", "second")
    call_command("ensure_user", "demo")
    # django-axes' backend needs the request (it counts failures per username + address).
    user = authenticate(RequestFactory().post("/accounts/login/"), username="demo",
                        password="second")
    assert user is not None and user.is_superuser
