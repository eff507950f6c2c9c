from __future__ import annotations

from typing import Any

from meshui.accounts.checks import check_secret_key
from meshui.registry.checks import check_legacy_control_token, check_redis_url


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


def test_a_leftover_shared_control_token_warns_w002_that_join_tokens_replaced_it(
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("MESHUI_CONTROL_TOKEN", "s3cret")
    (warning,) = check_legacy_control_token()
    assert warning.id == "meshui.W002"
    assert "join_token --service" in warning.hint
    monkeypatch.delenv("MESHUI_CONTROL_TOKEN")
    assert check_legacy_control_token() == []


def test_ensure_user_creates_then_updates_an_ordinary_user(db: Any, monkeypatch: Any) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    monkeypatch.setenv("MESHUI_USER_PASSWORD", "first")
    call_command("ensure_user", "demo", superuser=True)
    monkeypatch.setenv("MESHUI_USER_PASSWORD", "second")
    call_command("ensure_user", "demo")
    user = get_user_model().objects.get(username="demo")
    assert user.check_password("second") and not user.check_password("first")
    assert user.is_active and not user.is_superuser and not user.is_staff


def test_ensure_user_makes_a_superuser_only_when_asked(db: Any, monkeypatch: Any) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    monkeypatch.setenv("MESHUI_USER_PASSWORD", "pw")
    call_command("ensure_user", "admin", superuser=True)
    assert get_user_model().objects.get(username="admin").is_superuser
