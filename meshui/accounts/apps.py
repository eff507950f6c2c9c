from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who may use meshui: logins and their lockout, the read and write rules, users."""

    name = "meshui.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from meshui.accounts import checks  # noqa: F401  (registers the system checks)
