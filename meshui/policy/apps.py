from __future__ import annotations

from django.apps import AppConfig


class PolicyConfig(AppConfig):
    """Versioned traffic policy: revisions, their push to the sidecars, and the audit log."""

    name = "meshui.policy"
    label = "policy"
    verbose_name = "Traffic policy"
